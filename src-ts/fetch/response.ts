/**
 * The `Response` pconn's `fetch` resolves with: a subclass of Node's global
 * `Response` (`instanceof Response`, every method), built without the
 * work a plain `new Response(bytes, init)` does up front. Headers are made
 * from the batch's bytes when first read; the body stays where it arrived
 * (a view of the batch, then the native body) until it is consumed, and a
 * web `ReadableStream` is made only if `body` is read.
 */
import { defaultMaxListeners, getMaxListeners, setMaxListeners } from 'node:events'
import * as nodeStream from 'node:stream'
import { startInto, type NativeBody, type Pending, type ResponseParts } from '../native.js'
import { headerLines } from '../http/headers.js'

const utf8 = new TextDecoder()

/** What one signal may carry before Node warns of a leak (undici's fetch sets the same). */
const LISTENERS_PER_SIGNAL = 1500

/** Removes a body's abort listener once its response is garbage-collected unread. */
const unwatchWhenCollected = new FinalizationRegistry<{ signal: AbortSignal; onAbort: () => void }>(({ signal, onAbort }) => {
  signal.removeEventListener('abort', onAbort)
})

/** Whether a web stream has been read from or cancelled (Node has it; its types do not). */
const isDisturbed = (nodeStream as unknown as { isDisturbed(stream: unknown): boolean }).isDisturbed

/**
 * Node's global Response, as a base class whose members can be overridden
 * (its type declares them as properties, which accessors may not override).
 */
const ResponseBase = Response as unknown as new (body: null, init: ResponseInit) => {
  readonly status: number
  readonly statusText: string
  readonly ok: boolean
}

/** Statuses whose responses have no body (and HEAD requests). */
function hasNullBody(status: number): boolean {
  return status === 101 || status === 103 || status === 204 || status === 205 || status === 304
}

/** Where a fetch response's body is. */
export type BodySource =
  | { kind: 'none' }
  /** Complete: these bytes (a view of the batch, or a Buffer of its own). */
  | { kind: 'bytes'; bytes: Buffer }
  /** The first part (maybe empty), then the native body. */
  | { kind: 'native'; first: Buffer | undefined; rest: NativeBody }
  /** A stream (after `clone()`). */
  | { kind: 'stream'; stream: ReadableStream<Uint8Array> }

/** What a response knows beyond its status. */
export interface FetchResponseInit {
  status: number
  statusText: string
  /** The head's `name: value` lines, read into `Headers` on first use. */
  head: { slab: Buffer; start: number; end: number } | Headers
  url: string | (() => string)
  redirected: boolean
}

/** The body's bytes from the native body, read to the end. */
function readAll(rest: NativeBody, first: Buffer | undefined): Promise<Buffer> {
  const chunks: Buffer[] = first === undefined || first.length === 0 ? [] : [first]
  return new Promise<Buffer>((resolve, reject) => {
    const reader: Pending = {
      resolve(value: unknown) {
        if (Buffer.isBuffer(value)) {
          chunks.push(value)
          next()
        } else {
          resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks))
        }
      },
      reject,
    }
    const next = (): void => startInto((id) => rest.read(id), reader)
    next()
  })
}

/** What a body stream reports back to its response. */
interface StreamHooks {
  /** The abort's reason, once the request's signal fired. */
  aborted(): unknown
  /** The error to show for a failed read (an abort's reason wins). */
  failure(err: Error): unknown
  /** The body ended, failed or was cancelled. */
  settled(): void
}

/** A web stream over a body source (chunks are Uint8Arrays). */
function streamOf(source: BodySource, hooks: StreamHooks): ReadableStream<Uint8Array> | null {
  switch (source.kind) {
    case 'none':
      return null
    case 'stream':
      return source.stream
    case 'bytes': {
      const { bytes } = source
      // Handed over on the first read, so an abort before it still fails
      // the body, as it would a body still on the network.
      return new ReadableStream<Uint8Array>({
        pull(controller) {
          const reason = hooks.aborted()
          if (reason !== undefined) {
            controller.error(reason)
          } else {
            if (bytes.length > 0) controller.enqueue(new Uint8Array(bytes))
            controller.close()
          }
          hooks.settled()
        },
        cancel() {
          hooks.settled()
        },
      })
    }
    case 'native': {
      let first = source.first
      const { rest } = source
      return new ReadableStream<Uint8Array>({
        pull(controller) {
          if (first !== undefined && first.length > 0) {
            controller.enqueue(new Uint8Array(first))
            first = undefined
            return
          }
          return new Promise<void>((resolve, reject) => {
            const failed = (err: Error): void => {
              hooks.settled()
              reject(hooks.failure(err))
            }
            startInto((id) => rest.read(id), {
              resolve(value: unknown) {
                if (Buffer.isBuffer(value)) {
                  controller.enqueue(new Uint8Array(value))
                } else {
                  controller.close()
                  hooks.settled()
                }
                resolve()
              },
              reject: failed,
            })
          })
        },
        cancel() {
          rest.destroy()
          hooks.settled()
        },
      })
    }
  }
}

export class FetchResponse extends ResponseBase {
  #source: BodySource
  /** The native body while it may still be read (an abort destroys it). */
  readonly #native: NativeBody | undefined
  #stream: ReadableStream<Uint8Array> | null | undefined
  #used = false
  #head: FetchResponseInit['head']
  #headers: Headers | undefined
  readonly #url: FetchResponseInit['url']
  readonly #redirected: boolean
  /** The request's signal, which covers the body until it is read. */
  #signal: AbortSignal | undefined
  /** Stops listening to the signal (a body still on the network only). */
  #unwatch: (() => void) | undefined
  readonly #hooks: StreamHooks = {
    aborted: () => this.#abortReason(),
    failure: (err) => this.#abortReason() ?? err,
    settled: () => {
      const unwatch = this.#unwatch
      this.#unwatch = undefined
      unwatch?.()
    },
  }

  /** @internal */
  constructor(init: FetchResponseInit, source: BodySource) {
    // The status line goes to Response itself (it validates the status
    // text); headers and the body stay here until they are used.
    super(null, { status: init.status, statusText: init.statusText })
    this.#source = hasNullBody(init.status) ? { kind: 'none' } : source
    this.#native = this.#source.kind === 'native' ? this.#source.rest : undefined
    this.#head = init.head
    this.#url = init.url
    this.#redirected = init.redirected
  }

  /**
   * @internal A response of `fetch` from the parts the bridge delivered
   * (`headStart`: where the header lines begin); `nullBody` for a HEAD
   * request. A status text `Response` refuses is dropped; a status outside
   * 200-599 throws (a RangeError).
   */
  static from(parts: ResponseParts, status: number, statusText: string, headStart: number, url: FetchResponseInit['url'], redirected: boolean, nullBody: boolean): FetchResponse {
    const { slab, headEnd } = parts
    const first = parts.body ?? (parts.bodyEnd > headEnd ? slab.subarray(headEnd, parts.bodyEnd) : undefined)
    // An empty body is still a body (an empty stream), as in Node's fetch.
    const source: BodySource = nullBody
      ? { kind: 'none' }
      : parts.stream !== undefined
        ? { kind: 'native', first, rest: parts.stream }
        : { kind: 'bytes', bytes: first ?? Buffer.alloc(0) }
    const init: FetchResponseInit = { status, statusText, head: { slab, start: headStart, end: headEnd }, url, redirected }
    try {
      return new FetchResponse(init, source)
    } catch (err) {
      if (!(err instanceof TypeError) || statusText === '') throw err
      return new FetchResponse({ ...init, statusText: '' }, source)
    }
  }

  /**
   * @internal Let the request's `signal` fail the body until it is read, as
   * in Node's fetch. A body already here is checked when read; one still on
   * the network is destroyed at the abort, through a listener that holds
   * this response weakly and goes when the body ends or the response is
   * collected (unread responses must not pile listeners on a reused signal).
   */
  watch(signal: AbortSignal): void {
    this.#signal = signal
    const native = this.#native
    if (native === undefined) return
    const onAbort = (): void => native.destroy()
    if (getMaxListeners(signal) === defaultMaxListeners) setMaxListeners(LISTENERS_PER_SIGNAL, signal)
    signal.addEventListener('abort', onAbort, { once: true })
    const token = {}
    unwatchWhenCollected.register(this, { signal, onAbort }, token)
    this.#unwatch = () => {
      signal.removeEventListener('abort', onAbort)
      unwatchWhenCollected.unregister(token)
    }
  }

  /** The abort's reason, once the signal fired. */
  #abortReason(): unknown {
    const signal = this.#signal
    return signal?.aborted === true ? signal.reason : undefined
  }

  get headers(): Headers {
    if (this.#headers === undefined) {
      const head = this.#head
      if (head instanceof Headers) {
        this.#headers = head
      } else {
        const { slab } = head
        const { lines } = headerLines(slab, head.start, head.end)
        const headers = new Headers()
        for (let i = 0; i < lines.length; i += 3) {
          const colon = lines[i + 1]!
          headers.append(slab.toString('latin1', lines[i]!, colon), slab.toString('latin1', colon + 2, lines[i + 2]!))
        }
        this.#headers = headers
      }
    }
    return this.#headers
  }

  get url(): string {
    const url = this.#url
    return typeof url === 'string' ? url : url()
  }

  get redirected(): boolean {
    return this.#redirected
  }

  get type(): Response['type'] {
    return 'basic'
  }

  get body(): ReadableStream<Uint8Array> | null {
    if (this.#stream === undefined) this.#stream = streamOf(this.#source, this.#hooks)
    return this.#stream
  }

  get bodyUsed(): boolean {
    return this.#used || (this.#stream !== undefined && this.#stream !== null && isDisturbed(this.#stream))
  }

  /** Take the whole body once; a second time is a TypeError, as fetch's. */
  async #consume(): Promise<Buffer> {
    if (this.bodyUsed || this.#stream?.locked === true) throw new TypeError('Body is unusable: Body has already been read')
    this.#used = true
    if (this.#abortReason() !== undefined) throw this.#abortReason()
    try {
      const stream = this.#stream
      if (stream !== undefined && stream !== null) return Buffer.from(await new Response(stream).arrayBuffer())
      const source = this.#source
      this.#source = { kind: 'none' }
      switch (source.kind) {
        case 'none':
          return Buffer.alloc(0)
        case 'bytes':
          // One turn of the microtask queue, as reading a body stream takes:
          // an abort made right after the call still fails it, as in Node's fetch.
          await Promise.resolve()
          if (this.#abortReason() !== undefined) throw this.#abortReason()
          return source.bytes
        case 'native':
          return await readAll(source.rest, source.first)
        case 'stream':
          return Buffer.from(await new Response(source.stream).arrayBuffer())
      }
    } catch (err) {
      throw this.#hooks.failure(err as Error)
    } finally {
      this.#hooks.settled()
    }
  }

  /** @internal The whole body, read now (what `integrity` checks). */
  whole(): Promise<Buffer> {
    return this.#consume()
  }

  /** @internal This response with `bytes` as its body (after `whole`). */
  withBody(bytes: Buffer): FetchResponse {
    return new FetchResponse(this.#init(), { kind: 'bytes', bytes })
  }

  /** What a copy of this response starts from. */
  #init(): FetchResponseInit {
    return { status: this.status, statusText: this.statusText, head: this.headers, url: this.#url, redirected: this.#redirected }
  }

  async text(): Promise<string> {
    return utf8.decode(await this.#consume())
  }

  async json(): Promise<unknown> {
    return JSON.parse(await this.text()) as unknown
  }

  async arrayBuffer(): Promise<ArrayBuffer> {
    const bytes = await this.#consume()
    const copy = new ArrayBuffer(bytes.length)
    new Uint8Array(copy).set(bytes)
    return copy
  }

  /** The body as a `Uint8Array` of its own. */
  async bytes(): Promise<Uint8Array> {
    return new Uint8Array(await this.arrayBuffer())
  }

  async blob(): Promise<Blob> {
    const bytes = await this.#consume()
    return new Blob([bytes], { type: this.headers.get('content-type') ?? '' })
  }

  async formData(): Promise<FormData> {
    const bytes = await this.#consume()
    return new Response(bytes, { headers: this.headers }).formData() as Promise<FormData>
  }

  clone(): FetchResponse {
    if (this.bodyUsed) throw new TypeError('Response.clone: Body has already been consumed.')
    const init = this.#init()
    const stream = this.body
    if (stream === null) return new FetchResponse(init, { kind: 'none' })
    const [mine, theirs] = stream.tee()
    this.#stream = mine
    return new FetchResponse(init, { kind: 'stream', stream: theirs })
  }
}

