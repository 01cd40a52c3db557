/**
 * Upgrades and `CONNECT` through the Agent (undici's `upgrade()`,
 * `connect()` and `WebSocket`). The request goes out on a connection of
 * the pool taken as a raw loan: pconn writes the head, reads the answer,
 * and on `101 Switching Protocols` (or a 2xx to `CONNECT`) hands the
 * connection to the handler's `onUpgrade` as a `net.Socket`-like `Duplex`.
 * Any other answer is a response for a handler that reads one (fetch's).
 * The connection never returns to the pool: it closes with the socket.
 */
import { Duplex } from 'node:stream'
import type { Connection } from '../connection.js'
import type { CheckedDispatch, DispatchRequest, ParsedOrigin } from './request-options.js'
import type { FlightHost } from './flight.js'
import type { RawHandler } from './handler.js'
import { channels, headText, socketInfo } from './channels.js'
import { toUndiciError } from './errors.js'
import { errors } from './peer.js'

/** undici's default `headersTimeout` and `bodyTimeout`, for an answer to an upgrade. */
const DEFAULT_TIMEOUT = 300_000

/** A connection handed over by an upgrade, as a socket. */
export class UpgradedSocket extends Duplex {
  readonly #conn: Connection
  #released = false

  constructor(conn: Connection, rest: Buffer) {
    super({ allowHalfOpen: false })
    this.#conn = conn
    if (rest.length > 0) this.push(rest)
  }

  get remoteAddress(): string | undefined {
    return this.#conn.remoteAddress
  }

  get remotePort(): number | undefined {
    return this.#conn.remotePort
  }

  override _read(): void {
    if (this.#released) return
    this.#conn.read().then(
      (chunk) => {
        if (chunk === null) this.push(null)
        else this.push(chunk)
      },
      (err: unknown) => {
        // A read cut short by our own close is the end, not an error.
        if (this.#released) this.push(null)
        else this.destroy(err as Error)
      },
    )
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#conn.write(chunk).then(() => callback(), callback)
  }

  /**
   * `end()` half-closes, as a `net.Socket`'s does: the peer reads EOF and
   * may still answer; the socket closes once the peer ends too. When the
   * peer ended first, there is nothing left to tell it.
   */
  override _final(callback: (error?: Error | null) => void): void {
    if (this.readableEnded) {
      this.#release()
      callback()
      return
    }
    this.#conn.end().then(() => callback(), callback)
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.#release()
    callback(err)
  }

  #release(): void {
    if (this.#released) return
    this.#released = true
    this.#conn.release(false)
  }

  // Accepted as net.Socket accepts them; pconn sets its own socket options.
  setNoDelay(): this {
    return this
  }
  setKeepAlive(): this {
    return this
  }
  setTimeout(): this {
    return this
  }
  ref(): this {
    return this
  }
  unref(): this {
    return this
  }
}

/**
 * Status, raw headers and the bytes after the head, once a whole head
 * arrived. (The native parser reads only answers whose connection goes
 * back to the pool; this one reads the head of a connection that leaves
 * it, whose bytes after the head are the new protocol's.)
 */
function parseAnswer(buf: Buffer): { statusCode: number; rawHeaders: Buffer[]; rest: Buffer } | undefined {
  const end = buf.indexOf('\r\n\r\n')
  if (end < 0) return undefined
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n')
  const statusCode = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1])
  if (!Number.isInteger(statusCode)) throw new errors.HTTPParserError('Response does not match the HTTP/1.1 protocol (invalid status line)')
  const rawHeaders: Buffer[] = []
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':')
    if (colon <= 0) throw new errors.HTTPParserError('Response does not match the HTTP/1.1 protocol (invalid header line)')
    rawHeaders.push(Buffer.from(line.slice(0, colon), 'latin1'), Buffer.from(line.slice(colon + 1).trim(), 'latin1'))
  }
  return { statusCode, rawHeaders, rest: buf.subarray(end + 4) }
}

/** 1xx answers but 101: informational, another answer follows. */
function isInterim(statusCode: number): boolean {
  return statusCode >= 100 && statusCode < 200 && statusCode !== 101
}

/** One upgrade or CONNECT in flight (until `onUpgrade` or `onError`). */
export class Upgrade {
  readonly #host: FlightHost
  readonly #target: ParsedOrigin
  readonly #request: DispatchRequest
  readonly #handler: RawHandler
  #conn: Connection | undefined
  #done = false
  /** The headers timeout until the answer's head is in; then, for an answer that did not upgrade, the body timeout between reads. */
  #timer: NodeJS.Timeout | undefined
  /** Stops the acquire when the upgrade fails or is aborted before it has a connection. */
  readonly #acquiring = new AbortController()

  constructor(host: FlightHost, checked: CheckedDispatch, handler: RawHandler) {
    this.#host = host
    this.#target = checked.target
    this.#request = checked.request
    this.#handler = handler
  }

  start(): void {
    this.#host.inflight.add(this)
    try {
      this.#handler.onConnect((reason) => this.fail(reason ?? new errors.RequestAbortedError()))
    } catch (err) {
      this.fail(err as Error)
      return
    }
    if (this.#done) return
    this.#arm(this.#request.headersTimeout ?? this.#host.headersTimeout, () => new errors.HeadersTimeoutError('Headers Timeout Error'))
    this.#run().catch((err: unknown) => this.fail(err as Error))
  }

  /** (Re)start the timer that fails the upgrade with `error()` after `limit` ms (undici's default; 0: none). */
  #arm(limit: number | undefined, error: () => Error): void {
    clearTimeout(this.#timer)
    const ms = limit ?? DEFAULT_TIMEOUT
    this.#timer = ms > 0 ? setTimeout(() => this.fail(error()), ms).unref() : undefined
  }

  async #run(): Promise<void> {
    if (this.#host.socketPath !== undefined) {
      throw new errors.NotSupportedError('upgrade and CONNECT over connect.socketPath are not supported by the pconn Agent')
    }
    const target = this.#target
    const req = this.#request
    // A raw loan (never HTTP/2), under the TLS name a request would use.
    const secure = target.protocol === 'https:'
    const conn = await this.#host.pool.acquire({
      scheme: secure ? 'https' : 'http',
      host: target.hostname,
      port: target.portNumber,
      servername: secure ? (req.servername ?? this.#host.servername) : undefined,
    }, { signal: this.#acquiring.signal })
    if (this.#done) {
      // Nothing was written on it: it can serve someone else.
      conn.release(true)
      return
    }
    this.#conn = conn
    const connection = req.upgrade ? `upgrade\r\nupgrade: ${req.upgrade}` : 'keep-alive'
    await conn.write(`${headText(req, target, connection)}\r\n`)
    let buf: Buffer = Buffer.alloc(0)
    let answer: ReturnType<typeof parseAnswer>
    for (;;) {
      answer = parseAnswer(buf)
      // Informational answers (100, 103, ...) come before the one that counts.
      if (answer !== undefined && !isInterim(answer.statusCode)) break
      if (answer !== undefined) buf = answer.rest
      else if (buf.length > this.#host.pool.options.maxHeaderSize) throw new errors.HeadersOverflowError()
      if (answer === undefined || buf.length === 0) {
        const chunk = await conn.read()
        if (chunk === null) throw new errors.SocketError('other side closed')
        buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
      }
      if (this.#done) return
    }
    const { statusCode, rawHeaders, rest } = answer
    const connect = this.#request.method === 'CONNECT'
    const upgraded = connect ? statusCode >= 200 && statusCode < 300 : statusCode === 101
    if (!upgraded) {
      // Not upgraded: a handler that reads responses gets this one (fetch's
      // WebSocket sees a 401 and tries again with credentials); undici's
      // upgrade() and connect() handlers refuse it in onHeaders.
      if (typeof this.#handler.onHeaders !== 'function') throw new errors.SocketError(connect ? 'bad connect' : 'bad upgrade')
      await this.#respond(conn, statusCode, rawHeaders, rest)
      return
    }
    this.#finish()
    if (channels.headers.hasSubscribers) {
      channels.headers.publish({ request: this.#request, response: { statusCode, headers: rawHeaders, statusText: '' } })
    }
    const socket = new UpgradedSocket(conn, rest)
    try {
      this.#handler.onUpgrade?.(statusCode, rawHeaders, socket)
    } catch {
      // As undici: the socket of a handler that threw is destroyed (without
      // an 'error' event nobody would listen to).
      socket.destroy()
    } finally {
      this.#host.settled()
    }
  }

  /** The upgrade is over (handed on, answered or failed): out of flight. */
  #finish(): void {
    this.#done = true
    this.#host.inflight.delete(this)
    this.#conn = undefined
    clearTimeout(this.#timer)
  }

  /**
   * Deliver an answer that did not upgrade as a response: its head, then a
   * body framed by Content-Length (or running to the close); the
   * connection closes after it.
   */
  async #respond(conn: Connection, statusCode: number, rawHeaders: Buffer[], rest: Buffer): Promise<void> {
    // 204 and 304 have no body whatever they say.
    let length: number | undefined = statusCode === 204 || statusCode === 304 ? 0 : undefined
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i]!.toString('latin1').toLowerCase()
      if (name === 'transfer-encoding') throw new errors.SocketError('bad upgrade')
      if (name !== 'content-length' || length === 0) continue
      const value = rawHeaders[i + 1]!.toString('latin1')
      if (!/^\d+$/.test(value)) throw new errors.HTTPParserError('Response does not match the HTTP/1.1 protocol (invalid content-length)')
      length = Number(value)
    }
    const bodyTimeout = this.#request.bodyTimeout ?? this.#host.bodyTimeout
    const stalled = (): Error => new errors.BodyTimeoutError('Body Timeout Error')
    this.#arm(bodyTimeout, stalled)
    this.#handler.onHeaders(statusCode, rawHeaders, () => {}, '')
    let left = length ?? Infinity
    let chunk: Buffer | null = rest
    while (left > 0 && !this.#done) {
      if (chunk !== null && chunk.length > 0) {
        const piece = chunk.subarray(0, Math.min(chunk.length, left))
        left -= piece.length
        this.#handler.onData(piece)
      }
      if (left === 0) break
      chunk = await conn.read()
      this.#arm(bodyTimeout, stalled)
      if (chunk === null) {
        if (length !== undefined) throw new errors.SocketError('other side closed')
        break
      }
    }
    if (this.#done) return
    this.#finish()
    conn.release(false)
    try {
      this.#handler.onComplete([])
    } catch (err) {
      // As undici: an exception from onComplete goes to onError.
      this.#handler.onError(err as Error)
    } finally {
      this.#host.settled()
    }
  }

  /** End the upgrade with `err` (before `onUpgrade`): the connection closes. */
  fail(err: Error): void {
    if (this.#done) return
    this.#acquiring.abort()
    this.#conn?.release(false)
    this.#finish()
    const error = toUndiciError(err, () => socketInfo(this.#target, this.#host))
    if (channels.error.hasSubscribers) channels.error.publish({ request: this.#request, error })
    try {
      this.#handler.onError(error)
    } finally {
      this.#host.settled()
    }
  }
}
