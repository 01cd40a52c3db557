/** `request()`: HTTP/1.1 over the pool. */
import { publishLoan, requestsObserved } from '../diagnostics.js'
import { abortError, invalidArgType, withCallerStack } from '../errors.js'
import type { Target } from '../key.js'
import { RequestFlag } from '../../native/index.js'
import type { ResponseParts } from '../native.js'
import { checkNumber } from '../options.js'
import type { Pool } from '../pool.js'
import { toOutgoingBody, type OutgoingBody, type RequestBodyInit } from './body.js'
import { exchangeResponse } from './exchange.js'
import { flattenHeaders, type OutgoingHeaders } from './headers.js'
import { RequestObservation } from './observe.js'
import { Response } from './response.js'

export type { RequestBodyInit } from './body.js'

/** Options of `request()`. */
export interface RequestOptions {
  /** Default `'GET'`; upper-cased. */
  method?: string
  headers?: OutgoingHeaders
  /**
   * The body. A `Blob` or `URLSearchParams` also sets `Content-Type` (the
   * Blob's type; `application/x-www-form-urlencoded;charset=UTF-8`) unless
   * you set one.
   */
  body?: RequestBodyInit | null
  /**
   * Aborts at any stage (waiting, connecting, sending, head, body). The
   * request rejects with the signal's reason, as fetch does: `ac.abort()`
   * gives an `ABORT_ERR` named `AbortError`, `AbortSignal.timeout()` one
   * named `TimeoutError`, and `ac.abort(yourError)` rejects with
   * `yourError` itself.
   */
  signal?: AbortSignal
  /** Time allowed for the response head once the request is fully sent (ms); 0 = no limit. Default 300000 (as undici). */
  headersTimeoutMs?: number
  /** Time allowed between two pieces of either body (ms); 0 = no limit. Default 300000 (as undici). */
  bodyTimeoutMs?: number
  /**
   * Safe to send twice. GET, HEAD, OPTIONS, PUT, DELETE, TRACE and requests with an
   * `Idempotency-Key` header are already; only idempotent requests are
   * retried (once, on a fresh connection) when a reused connection turns out
   * to be closed before any response byte arrived.
   */
  idempotent?: boolean
  /**
   * With a body, over HTTP/1.1: send `Expect: 100-continue` with the head
   * and the body only once the server answers `100 Continue` (or after a
   * second without an answer, for servers that ignore it, as curl does).
   * A final answer instead (a 401, 413, 417...) is the response: the body
   * is never sent and the connection is not reused. Over HTTP/2 the body
   * goes at once. Default false.
   */
  expectContinue?: boolean
  /**
   * Connect to this Unix domain socket instead of the URL's host (which
   * still goes in the Host header). Part of the key: such connections
   * serve only requests for the same socket. Default: none.
   */
  socketPath?: string
}

/** A request checked and converted, its body still possibly being read. */
interface Checked {
  target: Target
  method: string
  headers: string[] | undefined
  signal: AbortSignal | undefined
  /** `RequestFlag` bits. */
  flags: number
  headersTimeoutMs: number
  bodyTimeoutMs: number
  /** Someone listens to `pconn:request:*`: measure this request. */
  observed: boolean
}

function check(pool: Pool, url: unknown, options: RequestOptions): Checked {
  if (typeof url !== 'string' && !(url instanceof URL)) throw invalidArgType('url', 'a string or a URL', url)
  if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'of type object', options)
  const { socketPath } = options
  if (socketPath !== undefined && typeof socketPath !== 'string') throw invalidArgType('options.socketPath', 'of type string', socketPath)
  const href = typeof url === 'string' ? url : url.href
  const target = socketPath === undefined ? pool.target(href) : pool.target(href, { socketPath })
  const method = options.method ?? 'GET'
  if (typeof method !== 'string') throw invalidArgType('options.method', 'of type string', method)
  const { signal, idempotent, expectContinue, headersTimeoutMs, bodyTimeoutMs } = options
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidArgType('options.signal', 'an AbortSignal', signal)
  if (idempotent !== undefined && typeof idempotent !== 'boolean') throw invalidArgType('options.idempotent', 'of type boolean', idempotent)
  if (expectContinue !== undefined && typeof expectContinue !== 'boolean') {
    throw invalidArgType('options.expectContinue', 'of type boolean', expectContinue)
  }
  const observed = requestsObserved()
  let flags = 0
  if (signal !== undefined) flags |= RequestFlag.Cancellable
  if (idempotent === true) flags |= RequestFlag.Idempotent
  if (expectContinue === true) flags |= RequestFlag.ExpectContinue
  if (observed) flags |= RequestFlag.Detailed
  return {
    target,
    method: method.toUpperCase(),
    headers: flattenHeaders(options.headers),
    signal,
    flags,
    // Absent timeouts stay absent (-1): their defaults live in the native core.
    headersTimeoutMs: headersTimeoutMs === undefined ? -1 : checkNumber('options.headersTimeoutMs', headersTimeoutMs, 'ms'),
    bodyTimeoutMs: bodyTimeoutMs === undefined ? -1 : checkNumber('options.bodyTimeoutMs', bodyTimeoutMs, 'ms'),
    observed,
  }
}

/** @internal The body of `Pool.request`: bad arguments reject, never throw. */
export function sendRequest(pool: Pool, url: string | URL, options: RequestOptions = {}): Promise<Response> {
  try {
    const checked = check(pool, url, options)
    const body = toOutgoingBody(options.body)
    if (body instanceof Promise) return body.then((ready) => start(pool, checked, ready))
    return start(pool, checked, body)
  } catch (err) {
    return Promise.reject(err)
  }
}

function start(pool: Pool, req: Checked, body: OutgoingBody): Promise<Response> {
  const { target, signal } = req
  const observation = req.observed ? new RequestObservation(target, req.method) : undefined
  const fail = (err: unknown): Promise<never> => {
    observation?.failed(err)
    return Promise.reject(err)
  }
  if (signal?.aborted) return fail(abortError(signal))
  // A failure to start is the Promise's rejection (the exchange starts in its executor).
  const exchange = exchangeResponse(pool, {
    key: target,
    path: target.path,
    method: req.method,
    headers: req.headers,
    body,
    flags: req.flags,
    headersTimeoutMs: req.headersTimeoutMs,
    bodyTimeoutMs: req.bodyTimeoutMs,
  })
  const onAbort = signal === undefined ? undefined : () => pool.native.cancel(exchange.id)
  if (onAbort !== undefined) signal?.addEventListener('abort', onAbort, { once: true })
  return exchange.response.then(
    (parts) => {
      if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort)
      const response = respond(parts, target, signal)
      observation?.responded(parts, response)
      return response
    },
    (err: Error) => {
      if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort)
      const error = (err as { code?: unknown }).code === 'ABORT_ERR' && signal?.aborted ? abortError(signal) : err
      observation?.failed(error)
      // Captured here, in a reaction of the Promise the caller awaits, the
      // stack shows the caller's async frames.
      throw withCallerStack(error)
    },
  )
}

function respond(parts: ResponseParts, target: Target, signal: AbortSignal | undefined): Response {
  const response = new Response(parts)
  publishLoan(parts.connectionId, target.key, response.reused)
  if (signal !== undefined && parts.stream !== undefined) {
    // The signal still covers the body: abort destroys it (and closes the connection).
    const abortBody = () => response.body.destroy(abortError(signal))
    signal.addEventListener('abort', abortBody, { once: true })
    response.body.once('close', () => signal.removeEventListener('abort', abortBody))
  }
  return response
}
