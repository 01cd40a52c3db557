/** `request()`: HTTP/1.1 over the pool. */
import { connectChannel, reuseChannel } from '../diagnostics.js'
import { abortError, fromNative, invalidArgType, withCallerStack } from '../errors.js'
import { completionMapped, nextOperationId, run, type NativeRequest, type NativeRequestOptions, type NativeTarget, type ResponseParts } from '../native.js'
import { checkNumber } from '../options.js'
import type { Pool } from '../pool.js'
import { chunkBytes, toOutgoingBody, type OutgoingBody, type RequestBodyInit } from './body.js'
import { flattenHeaders, hasHeader, type OutgoingHeaders } from './headers.js'
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
   * Safe to send twice. GET, HEAD, OPTIONS, PUT, DELETE and requests with an
   * `Idempotency-Key` header are already; only idempotent requests are
   * retried (once, on a fresh connection) when a reused connection turns out
   * to be closed before any response byte arrived.
   */
  idempotent?: boolean
}

/** A request checked and converted, its body still possibly being read. */
interface Checked {
  target: NativeTarget
  method: string
  headers: string[] | undefined
  signal: AbortSignal | undefined
  native: NativeRequestOptions | undefined
}

function check(pool: Pool, url: unknown, options: RequestOptions): Checked {
  if (typeof url !== 'string' && !(url instanceof URL)) throw invalidArgType('url', 'a string or a URL', url)
  if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'of type object', options)
  const target = pool.target(typeof url === 'string' ? url : url.href)
  const method = options.method ?? 'GET'
  if (typeof method !== 'string') throw invalidArgType('options.method', 'of type string', method)
  const { signal, idempotent, headersTimeoutMs, bodyTimeoutMs } = options
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidArgType('options.signal', 'an AbortSignal', signal)
  if (idempotent !== undefined && typeof idempotent !== 'boolean') throw invalidArgType('options.idempotent', 'of type boolean', idempotent)
  // Absent options stay absent: their defaults live in the native core.
  let native: NativeRequestOptions | undefined
  if (signal !== undefined || idempotent !== undefined || headersTimeoutMs !== undefined || bodyTimeoutMs !== undefined) {
    native = {
      headersTimeoutMs: headersTimeoutMs === undefined ? undefined : checkNumber('options.headersTimeoutMs', headersTimeoutMs, 'ms'),
      bodyTimeoutMs: bodyTimeoutMs === undefined ? undefined : checkNumber('options.bodyTimeoutMs', bodyTimeoutMs, 'ms'),
      idempotent,
      cancellable: signal !== undefined,
    }
  }
  return { target, method: method.toUpperCase(), headers: flattenHeaders(options.headers), signal, native }
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
  if (signal?.aborted) return Promise.reject(abortError(signal))
  let { headers, native: options } = req
  if (body.contentType !== undefined && !hasHeader(headers, 'content-type')) {
    headers = [...(headers ?? []), 'content-type', body.contentType]
  }
  if (body.stream !== undefined) options = { ...options, streamBody: true }
  const id = nextOperationId()
  let handle: NativeRequest | null
  try {
    handle = pool.native.request(id, target, req.method, headers, body.bytes, options)
  } catch (err) {
    return Promise.reject(fromNative(err))
  }
  const onAbort = signal === undefined ? undefined : () => handle?.cancel()
  if (onAbort !== undefined) signal?.addEventListener('abort', onAbort, { once: true })
  let sourceError: unknown
  if (handle !== null && body.stream !== undefined) {
    pump(body.stream, handle).catch((err: unknown) => {
      // The upload also stops when the exchange ends first (an early
      // response): that is not the source's fault.
      if ((err as { code?: unknown }).code !== 'PCONN_SOCKET_CLOSED') sourceError = err
      handle.cancel()
    })
  }
  return completionMapped(
    id,
    (value) => {
      if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort)
      return respond(value as ResponseParts, target, signal)
    },
    (err) => {
      if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort)
      if (sourceError instanceof Error) return sourceError
      if ((err as { code?: unknown }).code === 'ABORT_ERR' && signal?.aborted) return abortError(signal)
      return withCallerStack(err) as Error
    },
  )
}

function respond(parts: ResponseParts, target: NativeTarget, signal: AbortSignal | undefined): Response {
  const response = new Response(parts)
  if (connectChannel.hasSubscribers || reuseChannel.hasSubscribers) {
    const channel = response.reused ? reuseChannel : connectChannel
    channel.publish({ id: parts.connectionId, key: target.key })
  }
  if (signal !== undefined && parts.stream !== undefined) {
    // The signal still covers the body: abort destroys it (and closes the connection).
    const abortBody = () => response.body.destroy(abortError(signal))
    signal.addEventListener('abort', abortBody, { once: true })
    response.body.once('close', () => signal.removeEventListener('abort', abortBody))
  }
  return response
}

/**
 * Feed a streamed body to the exchange, one chunk in flight at a time. The
 * body is ended only when the source ends cleanly: a failing source must
 * never look like a complete request to the server.
 */
async function pump(source: AsyncIterable<unknown>, handle: NativeRequest): Promise<void> {
  for await (const chunk of source) {
    const bytes = chunkBytes(chunk)
    if (bytes.length > 0) await run<void>((id) => handle.write(id, bytes))
  }
  handle.end()
}
