/** Responses of `request()`: status, headers and a streaming body. */
import { Readable } from 'node:stream'
import { fromNative } from '../errors.js'
import { run, type NativeBody, type ResponseParts } from '../native.js'
import { parseHeaderBlock, type IncomingHeaders } from './headers.js'

/**
 * A response body: a Readable of Buffers with helpers to consume it whole.
 * Reading is on demand: pconn reads the socket only while you consume.
 * Small bodies (64 KiB or less with a known length) are complete already
 * and their connection is back in the pool.
 *
 * A body you do not want should be consumed or destroyed; one that is never
 * read and garbage-collected closes its connection (it never leaks).
 */
export class ResponseBody extends Readable {
  #first: Buffer | undefined
  #rest: NativeBody | undefined
  #onTrailers: (block: string) => void

  /** @internal */
  constructor(first: Buffer, rest: NativeBody | undefined, onTrailers: (block: string) => void) {
    super()
    this.#first = first.length > 0 ? first : undefined
    this.#rest = rest
    this.#onTrailers = onTrailers
  }

  override _read(): void {
    if (this.#first !== undefined) {
      const first = this.#first
      this.#first = undefined
      this.push(first)
      if (this.#rest === undefined) this.push(null)
      return
    }
    const rest = this.#rest
    if (rest === undefined) {
      this.push(null)
      return
    }
    run<Buffer | string>((id) => rest.read(id)).then(
      (value) => {
        if (Buffer.isBuffer(value)) {
          this.push(value)
        } else {
          this.#rest = undefined
          this.#onTrailers(value)
          this.push(null)
        }
      },
      (err: unknown) => this.destroy(fromNative(err)),
    )
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.#rest?.destroy()
    this.#rest = undefined
    callback(err)
  }

  /** The whole body as a Buffer. */
  async bytes(): Promise<Buffer> {
    if (this.#rest === undefined && !this.readableDidRead) {
      // Complete already: hand the buffer over without stream machinery;
      // a later read of the stream sees its end at once.
      const first = this.#first ?? Buffer.alloc(0)
      this.#first = undefined
      return first
    }
    const chunks: Buffer[] = []
    for await (const chunk of this) chunks.push(chunk as Buffer)
    return Buffer.concat(chunks)
  }

  /** The whole body decoded as UTF-8. */
  async text(): Promise<string> {
    return (await this.bytes()).toString('utf8')
  }

  /** The whole body parsed as JSON. */
  async json<T = unknown>(): Promise<T> {
    return JSON.parse(await this.text()) as T
  }

  /** The whole body as an ArrayBuffer. */
  async arrayBuffer(): Promise<ArrayBuffer> {
    const b = await this.bytes()
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer
  }

  /** Read and discard the rest, so the connection can go back to the pool. */
  async dump(): Promise<void> {
    for await (const _ of this) {
      // discard
    }
  }
}

/** An HTTP response whose head has arrived. */
export class Response {
  /** The status code, e.g. 200. */
  readonly statusCode: number
  /** `'1.1'` or `'1.0'`. */
  readonly httpVersion: string
  /** Whether the request went over a connection that served an earlier one. */
  readonly reused: boolean
  /** The body (see {@link ResponseBody}). */
  readonly body: ResponseBody
  readonly #head: string
  #headers: IncomingHeaders | undefined
  #trailers: IncomingHeaders | string

  /** @internal */
  constructor(parts: ResponseParts) {
    const flags = parts.statusFlags
    this.statusCode = flags & 0x3ff
    this.httpVersion = flags & 0x400 ? '1.1' : '1.0'
    this.reused = (flags & 0x800) !== 0
    this.#head = parts.head
    this.#trailers = ''
    if (flags & 0x1000) {
      const gap = parts.head.indexOf('\r\n\r\n')
      if (gap >= 0) this.#trailers = parts.head.slice(gap + 4)
    }
    this.body = new ResponseBody(parts.body, parts.stream, (block) => {
      this.#trailers = block
    })
  }

  /** The reason phrase, e.g. `'OK'`. */
  get statusMessage(): string {
    const end = this.#head.indexOf('\r\n')
    return end < 0 ? this.#head : this.#head.slice(0, end)
  }

  /** Lower-cased names; a repeated header is an array of its values. */
  get headers(): IncomingHeaders {
    if (this.#headers === undefined) {
      const end = this.#head.indexOf('\r\n')
      this.#headers = end < 0 ? {} : parseHeaderBlock(this.#head, end + 2)
    }
    return this.#headers
  }

  /** Trailers of a chunked body; filled in once the body has been read. */
  get trailers(): IncomingHeaders {
    if (typeof this.#trailers === 'string') this.#trailers = parseHeaderBlock(this.#trailers)
    return this.#trailers
  }
}
