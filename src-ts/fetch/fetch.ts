/**
 * WHATWG `fetch` on pconn's native exchange: the standard signature,
 * Node's global `Response` (a subclass of it), redirects, decompression in
 * Rust, and Node's error shapes (`TypeError('fetch failed')` with the cause).
 * Only http: and https: URLs go over pconn; others (`data:`, `blob:`) are
 * handed to Node's own fetch.
 */
import { RequestFlag } from '../../native/index.js'
import { startExchange } from '../http/exchange.js'
import { headerLines } from '../http/headers.js'
import { publishLoan } from '../diagnostics.js'
import { nodeTlsError } from '../errors.js'
import { RESPONSE_REUSED, RESPONSE_STATUS_BITS, type ResponseParts } from '../native.js'
import type { Pool } from '../pool.js'
import { integrityMatches } from './integrity.js'
import { cancelBody, prepare, removeHeaders, requestOf, type FetchInit, type Prepared, type RequestInfo } from './request.js'
import { policyFromHeader, refererFor } from './referrer.js'
import { FetchResponse } from './response.js'

/** Request headers that describe the body: dropped when a redirect drops it. */
const BODY_HEADERS = ['content-type', 'content-length', 'content-encoding', 'content-language', 'content-location']
/** Dropped when a redirect leaves the origin. */
const CREDENTIAL_HEADERS = ['authorization', 'proxy-authorization', 'cookie', 'host']

const MAX_REDIRECTS = 20

/** Node's own fetch, taken before anyone sets `globalThis.fetch` to pconn's. */
const nodeFetch = globalThis.fetch

/** A network error as Node's fetch reports it (a certificate failure's cause carries Node's code). */
function fetchFailed(cause: unknown): TypeError {
  return new TypeError('fetch failed', { cause: nodeTlsError(cause) ?? cause })
}

/** Send one request; its response head, or the failure. */
function send(pool: Pool, req: Prepared): Promise<ResponseParts> {
  return new Promise<ResponseParts>((resolve, reject) => {
    const { signal } = req
    let flags = RequestFlag.Decompress
    if (signal !== undefined) flags |= RequestFlag.Cancellable
    const target = pool.target(req.url)
    const referer = req.referrer === undefined ? undefined : refererFor(req.referrer, req.referrerPolicy, new URL(req.url))
    const headers = referer === undefined ? req.headers : [...req.headers, 'referer', referer]
    const id = startExchange(
      pool,
      { key: target, path: target.path, method: req.method, headers, body: req.body, flags, headersTimeoutMs: -1, bodyTimeoutMs: -1 },
      {
        resolve(parts: unknown) {
          signal?.removeEventListener('abort', onAbort)
          const response = parts as ResponseParts
          publishLoan(response.connectionId, target.key, (response.statusFlags & RESPONSE_REUSED) !== 0)
          resolve(response)
        },
        reject(err: Error) {
          signal?.removeEventListener('abort', onAbort)
          reject(signal?.aborted ? signal.reason : err)
        },
      },
    )
    const onAbort = (): void => pool.native.cancel(id)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/**
 * The value of header `name` (lower-case) in a response head, if any. A
 * `Location`'s bytes are read as UTF-8 (servers send non-ASCII paths that
 * way; a URL then percent-encodes them).
 */
function headerOf(parts: ResponseParts, start: number, name: string, encoding: 'latin1' | 'utf8' = 'latin1'): string | undefined {
  const { slab } = parts
  const { lines } = headerLines(slab, start, parts.headEnd)
  for (let i = 0; i < lines.length; i += 3) {
    const colon = lines[i + 1]!
    if (colon - lines[i]! === name.length && slab.toString('latin1', lines[i]!, colon) === name) {
      return slab.toString(encoding, colon + 2, lines[i + 2]!)
    }
  }
  return undefined
}

/** A redirect's body is not wanted: drop it (a streamed one closes its connection). */
function discard(parts: ResponseParts): void {
  parts.stream?.destroy()
}

/** The URL as `Response.url` shows it: serialised, without its fragment. */
function responseUrl(url: string): () => string {
  let shown: string | undefined
  return () => {
    if (shown === undefined) {
      const u = new URL(url)
      u.hash = ''
      shown = u.href
    }
    return shown
  }
}

/**
 * `fetch(input, init)` over `pool`. Rejects with the signal's reason on
 * abort, with `TypeError('fetch failed')` (the pconn error as `cause`) on
 * a network error, with a `TypeError` for a request fetch refuses. URLs
 * other than http(s), and requests given an undici `dispatcher`, are Node's
 * fetch's.
 */
export async function fetchWith(pool: Pool, input: RequestInfo, init?: FetchInit): Promise<Response> {
  const href = requestOf(input)?.url ?? (input instanceof URL ? input.href : String(input))
  if (!/^https?:/i.test(href) || (init as { dispatcher?: unknown } | undefined)?.dispatcher != null) return nodeFetch(input, init)
  let req: Prepared
  try {
    req = await prepare(input, init)
  } catch (err) {
    throw err instanceof TypeError ? err : new TypeError((err as Error).message, { cause: err })
  }
  if (req.signal?.aborted) {
    cancelBody(req.body, req.signal.reason)
    throw req.signal.reason
  }
  let redirected = false
  for (let redirects = 0; ; redirects++) {
    let parts: ResponseParts
    try {
      parts = await send(pool, req)
    } catch (err) {
      if (req.signal?.aborted) throw req.signal.reason
      const code = (err as { code?: unknown }).code
      if (code === 'ERR_INVALID_ARG_VALUE' || code === 'ERR_INVALID_ARG_TYPE') throw new TypeError((err as Error).message, { cause: err })
      throw fetchFailed(err)
    }
    const status = parts.statusFlags & RESPONSE_STATUS_BITS
    const { slab, headStart, headEnd } = parts
    let reasonEnd = headStart
    while (reasonEnd < headEnd && slab[reasonEnd] !== 0x0d) reasonEnd++
    const linesStart = reasonEnd + 2
    if (status === 407 && req.noWindow) {
      discard(parts)
      throw fetchFailed(new Error('proxy authentication required'))
    }
    const redirect = status === 301 || status === 302 || status === 303 || status === 307 || status === 308
    if (redirect && req.redirect === 'error') {
      discard(parts)
      throw fetchFailed(new Error('unexpected redirect'))
    }
    const location = redirect && req.redirect === 'follow' ? headerOf(parts, linesStart, 'location', 'utf8') : undefined
    if (location === undefined) {
      const response = respond(parts, req, status, slab.toString('latin1', headStart, reasonEnd), linesStart, redirected)
      return req.integrity === '' ? (response as unknown as Response) : checked(response, req)
    }
    discard(parts)
    if (redirects >= MAX_REDIRECTS) throw fetchFailed(new Error('redirect count exceeded'))
    let next: URL
    try {
      next = new URL(location, req.url)
    } catch (err) {
      throw fetchFailed(err)
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') throw fetchFailed(new Error(`URL scheme must be a HTTP(S) scheme: ${next.href}`))
    let { method, headers, body } = req
    if (status === 303 ? method !== 'HEAD' : (status === 301 || status === 302) && method === 'POST') {
      method = 'GET'
      body = {}
      headers = removeHeaders(headers, BODY_HEADERS)
    } else if (body.stream !== undefined) {
      throw fetchFailed(new Error('a streamed request body cannot be sent again to follow a redirect'))
    }
    if (next.origin !== new URL(req.url).origin) headers = removeHeaders(headers, CREDENTIAL_HEADERS)
    const referrerPolicy = policyFromHeader(headerOf(parts, linesStart, 'referrer-policy')) ?? req.referrerPolicy
    req = { ...req, url: next.href, method, headers, body, referrerPolicy }
    redirected = true
  }
}

/** The response once its whole body matched the request's `integrity` (fetch resolves only then). */
async function checked(response: FetchResponse, req: Prepared): Promise<Response> {
  let bytes: Buffer
  try {
    bytes = await response.whole()
  } catch (err) {
    throw req.signal?.aborted ? req.signal.reason : fetchFailed(err)
  }
  if (!integrityMatches(bytes, req.integrity)) throw fetchFailed(new Error('integrity mismatch'))
  return response.withBody(bytes) as unknown as Response
}

function respond(parts: ResponseParts, req: Prepared, status: number, statusText: string, linesStart: number, redirected: boolean): FetchResponse {
  if (req.method === 'HEAD') discard(parts)
  let response: FetchResponse
  try {
    response = FetchResponse.from(parts, status, statusText, linesStart, responseUrl(req.url), redirected, req.method === 'HEAD')
  } catch (err) {
    // A status outside 200-599 or a status text Response refuses.
    discard(parts)
    throw fetchFailed(err)
  }
  if (req.signal !== undefined) response.watch(req.signal)
  return response
}
