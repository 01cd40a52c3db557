/** Responses of `request()`: status, headers and a streaming body. */
import { Readable } from 'node:stream'
import { fromNative } from '../errors.js'
import { RESPONSE_HTTP11, RESPONSE_HTTP2, RESPONSE_REUSED, RESPONSE_STATUS_BITS, run, type NativeBody, type ResponseParts } from '../native.js'
import { parseHeaderBlock, type IncomingHeaders } from './headers.js'

/** The part of a body that arrived with the head, until someone reads it. */
type FirstPart = { slab: Buffer; start: number; end: number } | Buffer | undefined

/**
 * A response body: a Readable of Buffers with helpers to consume it whole.
 * Reading is on demand: pconn reads the socket only while you consume.
 * Small bodies (64 KiB or less with a known length) are complete already
 * and their connection is back in the pool.
 *
 * A body can be consumed once: after `text()`, `json()`, `bytes()`,
 * `arrayBuffer()`, `dump()` or reading the stream, `bodyUsed` is true and
 * the helpers reject with `ERR_INVALID_STATE`.
 *
 * A body you do not want should be consumed or destroyed; one that is never
 * read and garbage-collected closes its connection (it never leaks).
 */
export class ResponseBody extends Readable {
  #first: FirstPart
  #rest: NativeBody | undefined
  #used = false
  readonly #onTrailers: (block: string) => void

  /** @internal */
  constructor(parts: ResponseParts, onTrailers: (block: string) => void) {
    super()
    this.#first =
      parts.body ?? (parts.bodyEnd > parts.headEnd ? { slab: parts.slab, start: parts.headEnd, end: parts.bodyEnd } : undefined)
    this.#rest = parts.stream
    this.#onTrailers = onTrailers
  }

  /** Whether the body has been (or is being) consumed. */
  get bodyUsed(): boolean {
    return this.#used || this.readableDidRead
  }

  /** The first part as a Buffer of its own, taken out. */
  #takeFirst(): Buffer | undefined {
    const first = this.#first
    this.#first = undefined
    return first === undefined || Buffer.isBuffer(first) ? first : Buffer.from(first.slab.subarray(first.start, first.end))
  }

  override _read(): void {
    this.#used = true
    const first = this.#takeFirst()
    if (first !== undefined) {
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

  /** Refuse a second consumption; mark this one. */
  #claim(): void {
    if (this.bodyUsed) {
      throw Object.assign(new TypeError('the response body was already read (bodyUsed is true); read it once'), {
        code: 'ERR_INVALID_STATE',
      })
    }
    this.#used = true
  }

  /** The whole body as a Buffer. */
  async bytes(): Promise<Buffer> {
    this.#claim()
    if (this.#rest === undefined) return this.#takeFirst() ?? Buffer.alloc(0)
    const chunks: Buffer[] = []
    for await (const chunk of this) chunks.push(chunk as Buffer)
    // One chunk is the body already: no copy.
    return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)
  }

  /** The whole body decoded as UTF-8. */
  async text(): Promise<string> {
    const first = this.#first
    if (this.#rest === undefined && first !== undefined && !Buffer.isBuffer(first) && !this.bodyUsed) {
      // Complete and small: decode straight from the batch's bytes.
      this.#used = true
      this.#first = undefined
      return first.slab.toString('utf8', first.start, first.end)
    }
    return (await this.bytes()).toString('utf8')
  }

  /** The whole body parsed as JSON. */
  async json<T = unknown>(): Promise<T> {
    return JSON.parse(await this.text()) as T
  }

  /** The whole body as an ArrayBuffer. */
  async arrayBuffer(): Promise<ArrayBuffer> {
    const b = await this.bytes()
    // A Buffer that owns all of its memory hands it over; one that is a
    // view into a shared slab (small bodies, Node's pool) is copied out.
    if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength) return b.buffer as ArrayBuffer
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer
  }

  /** Read and discard the rest, so the connection can go back to the pool. */
  async dump(): Promise<void> {
    this.#claim()
    this.#first = undefined
    for await (const _ of this) {
      // discard
    }
  }
}

/** An HTTP response whose head has arrived. */
export class Response {
  /** The status code, e.g. 200. */
  readonly statusCode: number
  /** `'2.0'` (HTTP/2), `'1.1'` or `'1.0'`. */
  readonly httpVersion: string
  /** Whether the request went over a connection that served an earlier one. */
  readonly reused: boolean
  /** The body (see {@link ResponseBody}). */
  readonly body: ResponseBody
  /** Where the head lies in the batch's bytes, until decoded. */
  #raw: { slab: Buffer; start: number; end: number } | undefined
  #head = ''
  #headers: IncomingHeaders | undefined
  #trailers: IncomingHeaders | string = ''

  /** @internal */
  constructor(parts: ResponseParts) {
    const flags = parts.statusFlags
    this.statusCode = flags & RESPONSE_STATUS_BITS
    this.httpVersion = flags & RESPONSE_HTTP2 ? '2.0' : flags & RESPONSE_HTTP11 ? '1.1' : '1.0'
    this.reused = (flags & RESPONSE_REUSED) !== 0
    this.#raw = { slab: parts.slab, start: parts.headStart, end: parts.headEnd }
    this.body = new ResponseBody(parts, (block) => {
      this.#trailers = block
    })
  }

  /** The head block (reason, then header lines; trailers of a complete chunked body after an empty line). */
  #block(): string {
    const raw = this.#raw
    if (raw !== undefined) {
      this.#raw = undefined
      this.#head = raw.slab.toString('latin1', raw.start, raw.end)
      const gap = this.#head.indexOf('\r\n\r\n')
      if (gap >= 0) this.#trailers = this.#head.slice(gap + 4)
    }
    return this.#head
  }

  /** The reason phrase, e.g. `'OK'`. */
  get statusMessage(): string {
    const head = this.#block()
    const end = head.indexOf('\r\n')
    return end < 0 ? head : head.slice(0, end)
  }

  /** Lower-cased names (a null-prototype object); a repeated header is an array of its values. */
  get headers(): IncomingHeaders {
    if (this.#headers === undefined) {
      const head = this.#block()
      const end = head.indexOf('\r\n')
      this.#headers = parseHeaderBlock(head, end < 0 ? head.length : end + 2)
    }
    return this.#headers
  }

  /** Trailers of a chunked body; filled in once the body has been read. */
  get trailers(): IncomingHeaders {
    this.#block()
    if (typeof this.#trailers === 'string') this.#trailers = parseHeaderBlock(this.#trailers)
    return this.#trailers
  }
}
