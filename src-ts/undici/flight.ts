/**
 * One dispatched request, driven over pconn's native exchange: the old-style
 * handler callbacks in undici's order, backpressure through the native
 * body (nothing is read from the socket while the handler is paused), the
 * abort function, and undici's diagnostics channels (published by
 * channels.ts, only when watched).
 *
 * Built for the hot path: the Flight itself receives its exchange's result
 * (no Promise), an abort cancels the native operation by id (no handle
 * object), and the response's raw headers and small body are views of the
 * batch's bytes (no copy, no decoding to strings).
 */
import { RequestFlag } from '../../native/index.js'
import { publishLoan } from '../diagnostics.js'
import { PconnError } from '../errors.js'
import { chunkBytes, type OutgoingBody } from '../http/body.js'
import { startExchange } from '../http/exchange.js'
import { headerLines } from '../http/headers.js'
import { RESPONSE_REUSED, RESPONSE_STATUS_BITS, type NativeBody, type Pending, type ResponseParts, startInto } from '../native.js'
import type { Pool } from '../pool.js'
import { channels, publishConnect, sendHeadersText, socketInfo } from './channels.js'
import { isConnectFailure, toUndiciError } from './errors.js'
import type { RawHandler } from './handler.js'
import { errors, undici } from './peer.js'
import { expectsPayload, type CheckedDispatch, type DispatchRequest, type ParsedOrigin } from './request-options.js'

/** What a flight needs of its Agent. */
export interface FlightHost {
  readonly pool: Pool
  /** `connect.socketPath` of the Agent. */
  readonly socketPath: string | undefined
  /** `connect.servername` of the Agent. */
  readonly servername: string | undefined
  /** The Agent's defaults, in ms (undefined: pconn's own, 300000). */
  readonly headersTimeout: number | undefined
  readonly bodyTimeout: number | undefined
  /** Requests in flight (and upgrades not yet handed over). */
  readonly inflight: Set<{ fail(err: Error): void }>
  /** Called when a flight ends. */
  settled(): void
}

/** Bytes of a head block in a batch's slab. */
interface Block {
  slab: Buffer
  start: number
  end: number
}

/** The raw header Buffers of the lines `headerLines` found: views of the slab. */
function rawOf(slab: Buffer, lines: number[]): Buffer[] {
  const raw = new Array<Buffer>((lines.length / 3) * 2)
  for (let i = 0, j = 0; i < lines.length; i += 3) {
    const colon = lines[i + 1]!
    raw[j++] = slab.subarray(lines[i]!, colon)
    raw[j++] = slab.subarray(colon + 2, lines[i + 2]!)
  }
  return raw
}

function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value))
}

/** A failure of pconn's own (native or argument checks), as opposed to one of the caller's (a body stream's error). */
function isPconnFailure(err: unknown): boolean {
  if (err instanceof PconnError) return true
  const code = (err as { code?: unknown } | null)?.code
  return (err instanceof RangeError || err instanceof TypeError) && (code === 'ERR_INVALID_ARG_VALUE' || code === 'ERR_INVALID_ARG_TYPE')
}

/** Report an exception thrown by `onError` itself, as undici does: uncaught. */
function rethrowLater(err: unknown): void {
  process.nextTick(() => {
    throw err
  })
}

export class Flight implements Pending {
  readonly #host: FlightHost
  readonly #target: ParsedOrigin
  /** The pool key the request went under (for `pconn:connect` / `pconn:reuse`). */
  #key = ''
  readonly #request: DispatchRequest
  readonly #source: CheckedDispatch['body']
  readonly #handler: RawHandler
  #done = false
  #responded = false
  #paused = false
  #pumping = false
  #reading = false
  #bodyReported = false
  /** The exchange's operation id while its head is awaited, else 0. */
  #exchange = 0
  /** The next body chunk to deliver. */
  #next: Buffer | undefined
  /** The rest of the body, in the native core. */
  #rest: NativeBody | undefined
  /** Receives the body's reads. */
  #reader: Pending | undefined
  /** The trailer lines, once known. */
  #trailers: Block | undefined

  readonly #abort = (reason?: Error): void => {
    this.fail(reason ?? new errors.RequestAbortedError())
  }

  readonly #resume = (): void => {
    if (!this.#paused) return
    this.#paused = false
    if (this.#responded && !this.#done) this.#pump()
  }

  constructor(host: FlightHost, checked: CheckedDispatch, handler: RawHandler) {
    this.#host = host
    this.#target = checked.target
    this.#request = checked.request
    this.#source = checked.body
    this.#handler = handler
  }

  /** Call `onConnect`, read a Blob or FormData body if there is one, and send. */
  start(): void {
    this.#host.inflight.add(this)
    try {
      this.#handler.onConnect(this.#abort, undefined)
    } catch (err) {
      this.fail(asError(err))
      return
    }
    if (this.#done) return
    const source = this.#source
    switch (source.kind) {
      case 'none':
        return this.#send({})
      case 'bytes':
        return this.#send({ bytes: source.bytes })
      case 'stream':
        return this.#send({ stream: this.#observe(source.stream) })
      case 'blob':
        return this.#sendEncoded(async () => {
          const { blob } = source
          // A Blob-like may offer only stream(), as undici allows.
          const ab = typeof blob.arrayBuffer === 'function' ? await blob.arrayBuffer() : await new Response(blob.stream()).arrayBuffer()
          return { bytes: Buffer.from(ab), contentType: blob.type || undefined }
        })
      case 'form':
        return this.#sendEncoded(async () => {
          // The multipart encoding of the same undici that made the FormData.
          const { form } = source
          const ResponseClass = form instanceof globalThis.FormData ? globalThis.Response : formResponse()
          const encoded = new ResponseClass(form)
          return { bytes: Buffer.from(await encoded.arrayBuffer()), contentType: encoded.headers.get('content-type') ?? undefined }
        })
    }
  }

  /** Send a body that takes encoding first; any failure of it, even a synchronous one, fails the request. */
  #sendEncoded(encode: () => Promise<OutgoingBody>): void {
    encode().then(
      (body) => this.#send(body),
      (err: unknown) => this.fail(asError(err)),
    )
  }

  /** A streamed body, reported on the channels and to `onBodySent` chunk by chunk. */
  async *#observe(source: AsyncIterable<unknown>): AsyncGenerator<Buffer> {
    for await (const chunk of source) {
      const bytes = chunkBytes(chunk)
      if (bytes.length === 0) continue
      this.#chunkSent(bytes)
      yield bytes
    }
    this.#bodySent()
  }

  #chunkSent(chunk: Buffer): void {
    if (this.#done) return
    if (channels.bodyChunkSent.hasSubscribers) channels.bodyChunkSent.publish({ request: this.#request, chunk })
    if (this.#handler.onBodySent !== undefined) {
      try {
        this.#handler.onBodySent(chunk)
      } catch (err) {
        this.fail(asError(err))
      }
    }
  }

  #bodySent(): void {
    if (this.#bodyReported || this.#done) return
    this.#bodyReported = true
    if (channels.bodySent.hasSubscribers) channels.bodySent.publish({ request: this.#request })
    if (this.#handler.onRequestSent !== undefined) {
      try {
        this.#handler.onRequestSent()
      } catch (err) {
        this.fail(asError(err))
      }
    }
  }

  /** Serialise the head (after `create` subscribers had their say) and start the exchange. */
  #send(body: OutgoingBody): void {
    if (this.#done) return
    const req = this.#request
    const host = this.#host
    try {
      if (body.contentType !== undefined && req.contentType === null) {
        req.contentType = body.contentType
        req.headers.push('content-type', body.contentType)
      }
      const headers: string[] = []
      if (req.host !== null) headers.push('host', req.host)
      const list = req.headers
      for (let i = 0; i < list.length; i += 2) {
        const name = list[i] as string
        const value = list[i + 1]
        if (Array.isArray(value)) for (const v of value) headers.push(name, v)
        else if (value !== undefined) headers.push(name, value)
      }
      const declared = req.contentLength
      if (body.stream !== undefined) {
        if (declared !== null) headers.push('content-length', String(declared))
      } else {
        const length = body.bytes?.length ?? 0
        if (declared !== null && declared !== length) throw new errors.RequestContentLengthMismatchError()
        if (length === 0 && expectsPayload(req.method)) headers.push('content-length', '0')
      }
      if (req.reset === true) headers.push('connection', 'close')
      const headersTimeout = req.headersTimeout ?? host.headersTimeout
      const bodyTimeout = req.bodyTimeout ?? host.bodyTimeout
      // rawHeaders keep the wire's case, as undici's do.
      let flags = RequestFlag.Cancellable | RequestFlag.RawHeaderCase
      // undici honours it over HTTP/2 only; pconn over HTTP/1.1 too.
      if (req.expectContinue) flags |= RequestFlag.ExpectContinue
      // The peer's address for the channels' socket, only when they are watched.
      if (channels.sendHeaders.hasSubscribers || channels.connected.hasSubscribers) flags |= RequestFlag.Detailed
      const servername = req.servername || host.servername
      const route = servername || host.socketPath !== undefined ? { servername: servername || undefined, socketPath: host.socketPath } : undefined
      const key = host.pool.origin(this.#target.origin, route)
      this.#key = key.key
      this.#exchange = startExchange(
        host.pool,
        {
          key,
          path: req.path,
          method: req.method,
          headers,
          body,
          flags,
          headersTimeoutMs: headersTimeout === undefined ? -1 : Math.ceil(headersTimeout),
          bodyTimeoutMs: bodyTimeout === undefined ? -1 : Math.ceil(bodyTimeout),
        },
        this,
      )
    } catch (err) {
      this.#onFailure(err)
    }
  }

  /** @internal The response head arrived (the exchange's result). */
  resolve(parts: unknown): void {
    this.#exchange = 0
    this.#onResponse(parts as ResponseParts)
  }

  /** @internal The exchange failed. */
  reject(err: Error): void {
    this.#exchange = 0
    this.#onFailure(err)
  }

  #onFailure(err: unknown): void {
    if (this.#done) return
    if (!isPconnFailure(err)) {
      this.fail(asError(err))
      return
    }
    if (isConnectFailure(err)) publishConnect(this.#target, this.#request, this.#host, err as Error)
    this.fail(toUndiciError(err, () => socketInfo(this.#target, this.#host)))
  }

  #onResponse(parts: ResponseParts): void {
    if (this.#done) {
      parts.stream?.destroy()
      return
    }
    const flags = parts.statusFlags
    const statusCode = flags & RESPONSE_STATUS_BITS
    const { slab, headEnd } = parts
    let reasonEnd = parts.headStart
    while (reasonEnd < headEnd && slab[reasonEnd] !== 0x0d) reasonEnd++
    const statusText = slab.toString('latin1', parts.headStart, reasonEnd)
    const { lines, next } = headerLines(slab, reasonEnd + 2, headEnd)
    const raw = rawOf(slab, lines)
    if (next < headEnd) this.#trailers = { slab, start: next, end: headEnd }
    this.#next = parts.body ?? (parts.bodyEnd > headEnd ? slab.subarray(headEnd, parts.bodyEnd) : undefined)
    this.#rest = parts.stream
    const req = this.#request
    const host = this.#host
    publishLoan(parts.connectionId, this.#key, (flags & RESPONSE_REUSED) !== 0)
    if ((flags & RESPONSE_REUSED) === 0) publishConnect(this.#target, req, host, undefined, parts.details)
    if (channels.sendHeaders.hasSubscribers) {
      channels.sendHeaders.publish({ request: req, headers: sendHeadersText(req, this.#target), socket: socketInfo(this.#target, host, parts.details) })
    }
    if (this.#source.kind !== 'stream' && !this.#bodyReported) {
      const sent = this.#source.kind === 'bytes' ? this.#source.bytes : undefined
      if (sent !== undefined) this.#chunkSent(sent)
      this.#bodySent()
      if (this.#done) return
    }
    if (channels.headers.hasSubscribers) {
      channels.headers.publish({ request: req, response: { statusCode, headers: raw, statusText } })
    }
    const handler = this.#handler
    try {
      handler.onResponseStarted?.()
      if (handler.onHeaders(statusCode, raw, this.#resume, statusText) === false) this.#paused = true
    } catch (err) {
      this.fail(asError(err))
      return
    }
    if (this.#done) return
    this.#responded = true
    this.#pump()
  }

  /** Deliver what is here while the handler wants it; read more, or complete. */
  #pump(): void {
    if (this.#pumping) return
    this.#pumping = true
    try {
      while (!this.#done && !this.#paused) {
        const chunk = this.#next
        if (chunk !== undefined) {
          this.#next = undefined
          this.#deliver(chunk)
          continue
        }
        if (this.#rest !== undefined) {
          this.#read(this.#rest)
          return
        }
        this.#complete()
        return
      }
    } finally {
      this.#pumping = false
    }
  }

  #deliver(chunk: Buffer): void {
    if (channels.bodyChunkReceived.hasSubscribers) channels.bodyChunkReceived.publish({ request: this.#request, chunk })
    try {
      if (this.#handler.onData(chunk) === false) this.#paused = true
    } catch (err) {
      this.fail(asError(err))
    }
  }

  /** Read the next chunk of the body (one read in flight at a time). */
  #read(rest: NativeBody): void {
    if (this.#reading) return
    this.#reading = true
    this.#reader ??= {
      resolve: (value: unknown) => {
        this.#reading = false
        if (this.#done) return
        if (Buffer.isBuffer(value)) {
          this.#next = value
        } else {
          this.#rest = undefined
          // The end of the body: its trailer lines, if any (usually none).
          if (value !== '') {
            const block = Buffer.from(value as string, 'latin1')
            this.#trailers = { slab: block, start: 0, end: block.length }
          }
        }
        this.#pump()
      },
      reject: (err: Error) => {
        this.#reading = false
        this.#rest = undefined
        this.#onFailure(err)
      },
    }
    startInto((id) => rest.read(id), this.#reader)
  }

  #complete(): void {
    this.#done = true
    this.#host.inflight.delete(this)
    const req = this.#request
    const block = this.#trailers
    const trailers = block === undefined ? [] : rawOf(block.slab, headerLines(block.slab, block.start, block.end).lines)
    req.completed = true
    if (channels.trailers.hasSubscribers) channels.trailers.publish({ request: req, trailers })
    try {
      this.#handler.onComplete(trailers)
    } catch (err) {
      // As undici: an exception from onComplete goes to onError.
      const error = asError(err)
      if (channels.error.hasSubscribers) channels.error.publish({ request: req, error })
      try {
        this.#handler.onError(error)
      } catch (again) {
        rethrowLater(again)
      }
    }
    this.#host.settled()
  }

  /** End the request with `err`: close what it holds, then `onError`. Once only; nothing after completion. */
  fail(err: Error): void {
    if (this.#done) return
    this.#done = true
    this.#host.inflight.delete(this)
    const req = this.#request
    req.aborted = true
    if (this.#exchange !== 0) this.#host.pool.native.cancel(this.#exchange)
    this.#exchange = 0
    // Dropping the native body mid-way closes its connection.
    this.#rest?.destroy()
    this.#rest = undefined
    this.#next = undefined
    if (this.#source.kind === 'stream') this.#source.destroy?.()
    if (channels.error.hasSubscribers) channels.error.publish({ request: req, error: err })
    try {
      this.#handler.onError(err)
    } catch (again) {
      rethrowLater(again)
    }
    this.#host.settled()
  }
}

type ResponseConstructor = new (body: FormData) => globalThis.Response

/** undici's own Response, for a FormData made by (that) undici rather than Node's global one. */
function formResponse(): ResponseConstructor {
  return undici.Response as unknown as ResponseConstructor
}
