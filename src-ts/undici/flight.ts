/**
 * One dispatched request, driven over pconn's native exchange: the old-style
 * handler callbacks in undici's order, backpressure through the native
 * body (nothing is read from the socket while the handler is paused), the
 * abort function, and undici's diagnostics channels.
 */
import { isIPv6 } from 'node:net'
import { PconnError } from '../errors.js'
import { chunkBytes, type OutgoingBody } from '../http/body.js'
import { startExchange, type Exchange } from '../http/exchange.js'
import { RESPONSE_REUSED, RESPONSE_STATUS_BITS, run, type ExchangeDetails, type NativeBody, type NativeRequestOptions, type ResponseParts } from '../native.js'
import type { Pool } from '../pool.js'
import { channels, type ConnectParams } from './channels.js'
import { isConnectFailure, toUndiciError, type SocketInfo } from './errors.js'
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
  /** Requests in flight. */
  readonly inflight: Set<Flight>
  /** Called when a flight ends. */
  settled(): void
}

/** The connect stub the connect channels carry: pconn connects natively. */
function connector(_options: unknown, callback: (err: Error | null, socket: null) => void): void {
  callback(new errors.NotSupportedError('pconn connects in its native core; this connector is a stand-in'), null)
}

/** Header lines (`name: value` CRLF ...) from `start` to an empty line or the end, as flat latin1 Buffers. */
function rawLines(block: string, start: number): { raw: Buffer[]; next: number } {
  const raw: Buffer[] = []
  let at = start
  while (at < block.length) {
    let end = block.indexOf('\r\n', at)
    if (end < 0) end = block.length
    if (end === at) return { raw, next: end + 2 }
    const colon = block.indexOf(':', at)
    if (colon > at && colon < end) {
      const valueStart = block.charCodeAt(colon + 1) === 0x20 ? colon + 2 : colon + 1
      raw.push(Buffer.from(block.slice(at, colon), 'latin1'), Buffer.from(block.slice(valueStart, end), 'latin1'))
    }
    at = end + 2
  }
  return { raw, next: block.length }
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

export class Flight {
  readonly #host: FlightHost
  readonly #target: ParsedOrigin
  readonly #request: DispatchRequest
  readonly #source: CheckedDispatch['body']
  readonly #handler: RawHandler
  #done = false
  #responded = false
  #paused = false
  #pumping = false
  #reading = false
  #bodyReported = false
  #exchange: Exchange | undefined
  /** The next body chunk to deliver. */
  #next: Buffer | undefined
  /** The rest of the body, in the native core. */
  #rest: NativeBody | undefined
  /** The trailer lines, once known. */
  #trailers = ''

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
      const options: NativeRequestOptions = {
        headersTimeoutMs: headersTimeout === undefined ? undefined : Math.ceil(headersTimeout),
        bodyTimeoutMs: bodyTimeout === undefined ? undefined : Math.ceil(bodyTimeout),
        cancellable: true,
        // The peer's address for the channels' socket, only when they are watched.
        detailed: channels.sendHeaders.hasSubscribers || channels.connected.hasSubscribers,
      }
      const servername = req.servername || host.servername
      const route = servername || host.socketPath !== undefined ? { servername: servername || undefined, socketPath: host.socketPath } : undefined
      const target = host.pool.target(this.#target.origin + req.path, route)
      const exchange = startExchange(host.pool, { target, method: req.method, headers, body, options })
      this.#exchange = exchange
      exchange.response.then(
        (parts) => this.#onResponse(parts),
        (err: unknown) => this.#onFailure(err),
      )
    } catch (err) {
      this.#onFailure(err)
    }
  }

  #onFailure(err: unknown): void {
    if (this.#done) return
    if (!isPconnFailure(err)) {
      this.fail(asError(err))
      return
    }
    if (isConnectFailure(err)) this.#publishConnect(err as Error)
    this.fail(toUndiciError(err, () => this.#socketInfo()))
  }

  /**
   * The peer: as the connection reported it once the response came
   * (`details`), else as far as the origin tells (an IP host).
   */
  #socketInfo(details?: ExchangeDetails): SocketInfo {
    const t = this.#target
    const overSocket = this.#host.socketPath !== undefined
    const address = details?.remoteAddress ?? (!overSocket && t.ipFamily !== 0 ? t.hostname : undefined)
    return {
      localAddress: undefined,
      localPort: undefined,
      remoteAddress: address,
      remotePort: details?.remotePort ?? (overSocket ? undefined : t.portNumber),
      remoteFamily: address === undefined ? undefined : isIPv6(address) ? 'IPv6' : 'IPv4',
      timeout: undefined,
      bytesWritten: undefined,
      bytesRead: undefined,
      alpnProtocol: false,
    }
  }

  #connectParams(): ConnectParams {
    const t = this.#target
    return {
      host: t.host,
      hostname: t.hostname,
      protocol: t.protocol,
      port: t.port,
      version: 'h1',
      servername: this.#request.servername || this.#host.servername || null,
      localAddress: null,
    }
  }

  /** The connect channels, after the fact: a new connection carried the request (`error` undefined) or connecting failed. */
  #publishConnect(error: Error | undefined, details?: ExchangeDetails): void {
    const { beforeConnect, connected, connectError } = channels
    const after = error === undefined ? connected : connectError
    if (!beforeConnect.hasSubscribers && !after.hasSubscribers) return
    const connectParams = this.#connectParams()
    if (beforeConnect.hasSubscribers) beforeConnect.publish({ connectParams, connector })
    if (error === undefined) {
      if (connected.hasSubscribers) connected.publish({ connectParams, connector, socket: this.#socketInfo(details) })
    } else if (connectError.hasSubscribers) {
      connectError.publish({ connectParams, connector, error })
    }
  }

  #sendHeadersText(): string {
    const req = this.#request
    let text = `${req.method} ${req.path} HTTP/1.1\r\nhost: ${req.host ?? this.#target.host}\r\nconnection: ${req.reset === true ? 'close' : 'keep-alive'}\r\n`
    const list = req.headers
    for (let i = 0; i < list.length; i += 2) {
      const value = list[i + 1]
      for (const v of Array.isArray(value) ? value : [value]) text += `${String(list[i])}: ${String(v)}\r\n`
    }
    return text
  }

  #onResponse(parts: ResponseParts): void {
    this.#exchange = undefined
    if (this.#done) {
      parts.stream?.destroy()
      return
    }
    const flags = parts.statusFlags
    const statusCode = flags & RESPONSE_STATUS_BITS
    const reused = (flags & RESPONSE_REUSED) !== 0
    const head = parts.slab.toString('latin1', parts.headStart, parts.headEnd)
    const lineEnd = head.indexOf('\r\n')
    const statusText = lineEnd < 0 ? head : head.slice(0, lineEnd)
    const { raw, next } = rawLines(head, lineEnd < 0 ? head.length : lineEnd + 2)
    if (next < head.length) this.#trailers = head.slice(next)
    this.#next = parts.body ?? (parts.bodyEnd > parts.headEnd ? Buffer.from(parts.slab.subarray(parts.headEnd, parts.bodyEnd)) : undefined)
    this.#rest = parts.stream
    const req = this.#request
    if (!reused) this.#publishConnect(undefined, parts.details)
    if (channels.sendHeaders.hasSubscribers) {
      channels.sendHeaders.publish({ request: req, headers: this.#sendHeadersText(), socket: this.#socketInfo(parts.details) })
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

  #read(rest: NativeBody): void {
    if (this.#reading) return
    this.#reading = true
    run<Buffer | string>((id) => rest.read(id)).then(
      (value) => {
        this.#reading = false
        if (this.#done) return
        if (Buffer.isBuffer(value)) {
          this.#next = value
        } else {
          this.#rest = undefined
          this.#trailers = value
        }
        this.#pump()
      },
      (err: unknown) => {
        this.#reading = false
        this.#rest = undefined
        this.#onFailure(err)
      },
    )
  }

  #complete(): void {
    this.#done = true
    this.#host.inflight.delete(this)
    const req = this.#request
    const trailers = this.#trailers === '' ? [] : rawLines(this.#trailers, 0).raw
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
    this.#exchange?.cancel()
    this.#exchange = undefined
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
