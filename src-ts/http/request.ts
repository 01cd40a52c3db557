/** `request()`: HTTP/1.1 over the pool. */
import { Readable } from 'node:stream'
import { connectChannel, reuseChannel } from '../diagnostics.js'
import { abortError, fromNative, invalidArgType, invalidArgValue } from '../errors.js'
import { completionMapped, inFlight, native, nextOperationId, run, type NativeUpload, type ResponseParts } from '../native.js'
import { checkNumber } from '../options.js'
import type { Pool } from '../pool.js'
import { flattenHeaders, type OutgoingHeaders } from './headers.js'
import { Response } from './response.js'

/** A request body. Strings and bytes are sent with Content-Length; streams chunked. */
export type RequestBodyInit = string | Uint8Array | Readable | AsyncIterable<Uint8Array | string>

/** Options of `request()`. */
export interface RequestOptions {
  /** Default `'GET'`; upper-cased. */
  method?: string
  headers?: OutgoingHeaders
  body?: RequestBodyInit | null
  /** Aborts at any stage (waiting, connecting, sending, head, body): `ABORT_ERR`. */
  signal?: AbortSignal
  /** Time allowed for the response head once the request is sent. Default 300000 (as undici). */
  headersTimeoutMs?: number
  /** Time allowed between two pieces of the body. Default 300000 (as undici). */
  bodyTimeoutMs?: number
  /**
   * Safe to send twice. GET, HEAD, OPTIONS, PUT, DELETE and requests with an
   * `Idempotency-Key` header are already; only idempotent requests are
   * retried (once, on a fresh connection) when a reused connection turns out
   * to be closed before any response byte arrived.
   */
  idempotent?: boolean
}

const DEFAULT_TIMEOUT_MS = 300_000

/** Split a URL string into origin and request target without a full parse. */
function splitUrl(url: string | URL): { origin: string; path: string } {
  if (url instanceof URL) return { origin: url.origin, path: (url.pathname || '/') + url.search }
  const start = url.indexOf('://')
  if (start < 0) throw invalidArgValue('url', 'must be an absolute http:// or https:// URL', url)
  let end = url.length
  for (const c of ['/', '?', '#']) {
    const at = url.indexOf(c, start + 3)
    if (at >= 0 && at < end) end = at
  }
  const hash = url.indexOf('#', end)
  let path = url.slice(end, hash < 0 ? url.length : hash)
  if (path === '' || path[0] === '?') path = '/' + path
  return { origin: url.slice(0, end), path }
}

function isStreamBody(body: unknown): body is Readable | AsyncIterable<Uint8Array | string> {
  return body instanceof Readable || (typeof body === 'object' && body !== null && Symbol.asyncIterator in body)
}

function toBuffer(chunk: unknown): Buffer {
  if (typeof chunk === 'string') return Buffer.from(chunk)
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
  throw invalidArgType('body chunk', 'a string, Buffer or Uint8Array', chunk)
}

/**
 * Feed a streamed body to the exchange, one chunk in flight at a time. The
 * body is ended only when the source ends cleanly: a failing source must
 * never look like a complete request to the server.
 */
async function pump(source: AsyncIterable<unknown>, upload: NativeUpload): Promise<void> {
  for await (const chunk of source) {
    const buf = toBuffer(chunk)
    if (buf.length > 0) await run<void>((id) => upload.write(id, buf))
  }
  upload.end()
}

/** @internal The body of `Pool.request`: bad arguments reject, never throw. */
export function sendRequest(pool: Pool, url: string | URL, options: RequestOptions = {}): Promise<Response> {
  try {
    return startRequest(pool, url, options)
  } catch (err) {
    return Promise.reject(err)
  }
}

function startRequest(pool: Pool, url: string | URL, options: RequestOptions): Promise<Response> {
  if (typeof url !== 'string' && !(url instanceof URL)) throw invalidArgType('url', 'a string or a URL', url)
  if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'of type object', options)
  const { origin, path } = splitUrl(url)
  const key = pool.resolveKey(origin)
  // Checked on the string: asking the native key would cost a crossing per request.
  const scheme = origin.slice(0, origin.indexOf(':')).toLowerCase()
  if (scheme !== 'http' && scheme !== 'https') {
    throw invalidArgValue('url', 'must use http: or https: (use acquire() for tcp and tls)', origin)
  }
  const method = options.method ?? 'GET'
  if (typeof method !== 'string') throw invalidArgType('options.method', 'of type string', method)
  const headers = flattenHeaders(options.headers)
  const { body, signal } = options
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidArgType('options.signal', 'an AbortSignal', signal)
  if (options.idempotent !== undefined && typeof options.idempotent !== 'boolean') {
    throw invalidArgType('options.idempotent', 'of type boolean', options.idempotent)
  }
  const headersTimeoutMs =
    options.headersTimeoutMs === undefined ? DEFAULT_TIMEOUT_MS : checkNumber('options.headersTimeoutMs', options.headersTimeoutMs, 'ms')
  const bodyTimeoutMs =
    options.bodyTimeoutMs === undefined ? DEFAULT_TIMEOUT_MS : checkNumber('options.bodyTimeoutMs', options.bodyTimeoutMs, 'ms')
  const streamed = isStreamBody(body)
  let bytes: Buffer | undefined
  if (body !== undefined && body !== null && !streamed) {
    if (typeof body !== 'string' && !(body instanceof Uint8Array)) {
      throw invalidArgType('options.body', 'a string, Uint8Array, Readable or AsyncIterable', body)
    }
    bytes = toBuffer(body)
  }
  if (signal?.aborted) return Promise.reject(abortError(signal))
  const cancel = signal === undefined && !streamed ? undefined : new native.NativeCancel()
  const id = nextOperationId()
  let upload: NativeUpload | null
  try {
    upload = pool.native.request(
      id, key, method.toUpperCase(), path, headers, bytes, streamed,
      headersTimeoutMs, bodyTimeoutMs, options.idempotent ?? false, cancel,
      // Alone in flight: write on this thread (latency); else let the I/O thread do it (throughput).
      inFlight() === 0,
    )
  } catch (err) {
    throw fromNative(err)
  }
  const onAbort = () => cancel?.cancel()
  signal?.addEventListener('abort', onAbort, { once: true })
  let uploadError: unknown
  if (upload !== null && streamed) {
    pump(body, upload).catch((err: unknown) => {
      uploadError = err
      cancel?.cancel()
    })
  }
  return completionMapped(
    id,
    (value) => {
      const res = value as ResponseParts
      signal?.removeEventListener('abort', onAbort)
      const response = new Response(res)
      if (connectChannel.hasSubscribers || reuseChannel.hasSubscribers) {
        const channel = response.reused ? reuseChannel : connectChannel
        channel.publish({ id: res.connectionId, key: key.display })
      }
      if (signal !== undefined && res.stream !== undefined) {
        // The signal still covers the body: abort destroys it (and closes the connection).
        const abortBody = () => response.body.destroy(abortError(signal))
        signal.addEventListener('abort', abortBody, { once: true })
        response.body.once('close', () => signal.removeEventListener('abort', abortBody))
      }
      return response
    },
    (err) => {
      signal?.removeEventListener('abort', onAbort)
      if (uploadError instanceof Error) return uploadError
      return (err as { code?: unknown }).code === 'ABORT_ERR' && signal?.aborted ? abortError(signal) : err
    },
  )
}
