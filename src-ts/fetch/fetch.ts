/**
 * WHATWG `fetch` on pconn's native exchange: the standard signature,
 * Node's global `Response` (a subclass of it), redirects, decompression in
 * Rust, and Node's error shapes (`TypeError('fetch failed')` with the cause).
 * Only http: and https: URLs go over pconn; others (`data:`, `blob:`) are
 * handed to Node's own fetch.
 */
import { RequestFlag } from '../../native/index.js'
import { bytesOf, type OutgoingBody } from '../http/body.js'
import { startExchange } from '../http/exchange.js'
import { headerLines, hasHeader } from '../http/headers.js'
import { RESPONSE_STATUS_BITS, type ResponseParts } from '../native.js'
import type { Pool } from '../pool.js'
import { FetchResponse } from './response.js'

// The WHATWG names, from the global `RequestInit` Node's types declare (no
// import of undici's types: a consumer may not have them).
type BodyInit = NonNullable<RequestInit['body']>
type HeadersInit = NonNullable<RequestInit['headers']>
type RequestRedirect = NonNullable<RequestInit['redirect']>
type RequestInfo = string | URL | Request

/** `fetch`'s `init`: the standard `RequestInit`, plus the pool to use. */
export interface FetchInit extends RequestInit {
  /** The Pool the request goes through. Default: the default pool (`getDefaultPool()`). */
  pool?: Pool
}

/** The headers Node's fetch sends unless the request sets them. */
const DEFAULT_HEADERS: ReadonlyArray<readonly [string, string]> = [
  ['accept', '*/*'],
  ['accept-language', '*'],
  ['sec-fetch-mode', 'cors'],
  ['user-agent', 'node'],
  ['accept-encoding', 'gzip, deflate, br'],
]

/** Methods fetch upper-cases; the others keep their case. */
const NORMALIZED = new Set(['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT'])
const FORBIDDEN = new Set(['CONNECT', 'TRACE', 'TRACK'])
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/** Request headers that describe the body: dropped when a redirect drops it. */
const BODY_HEADERS = ['content-type', 'content-length', 'content-encoding', 'content-language', 'content-location']
/** Dropped when a redirect leaves the origin. */
const CREDENTIAL_HEADERS = ['authorization', 'proxy-authorization', 'cookie', 'host']

const MAX_REDIRECTS = 20

/** A request, normalised once. */
interface Prepared {
  url: string
  method: string
  /** `[name, value, ...]`. */
  headers: string[]
  body: OutgoingBody
  signal: AbortSignal | undefined
  redirect: RequestRedirect
}

/** A network error as Node's fetch reports it. */
function fetchFailed(cause: unknown): TypeError {
  return new TypeError('fetch failed', { cause })
}

function methodOf(method: string): string {
  if (!TOKEN.test(method)) throw new TypeError(`'${method}' is not a valid HTTP method.`)
  const upper = method.toUpperCase()
  if (FORBIDDEN.has(upper)) throw new TypeError(`'${method}' HTTP method is unsupported.`)
  return NORMALIZED.has(upper) ? upper : method
}

/** Any `HeadersInit`, flat. */
function flatHeaders(init: HeadersInit | undefined): string[] {
  const flat: string[] = []
  if (init === undefined || init === null) return flat
  if (init instanceof Headers) {
    for (const [name, value] of init) flat.push(name, value)
    return flat
  }
  if (Array.isArray(init) || Symbol.iterator in init) {
    for (const pair of init as Iterable<readonly string[]>) {
      if (!Array.isArray(pair) || pair.length !== 2) throw new TypeError('Headers constructor: expected name/value pair to be length 2')
      flat.push(String(pair[0]), String(pair[1]))
    }
    return flat
  }
  for (const name of Object.keys(init)) flat.push(name, String((init as Record<string, string>)[name]))
  return flat
}

/** A request body as fetch accepts it, ready to send. */
async function bodyOf(body: BodyInit | null | undefined, duplex: unknown): Promise<OutgoingBody> {
  if (body === undefined || body === null) return {}
  if (typeof body === 'string') return { bytes: Buffer.from(body), contentType: 'text/plain;charset=UTF-8' }
  const bytes = bytesOf(body)
  if (bytes !== undefined) return { bytes }
  if (body instanceof URLSearchParams) {
    return { bytes: Buffer.from(body.toString()), contentType: 'application/x-www-form-urlencoded;charset=UTF-8' }
  }
  if (body instanceof Blob) return { bytes: Buffer.from(await body.arrayBuffer()), contentType: body.type || undefined }
  if (body instanceof FormData) {
    // Node's own multipart encoding of the form.
    const encoded = new Response(body)
    return { bytes: Buffer.from(await encoded.arrayBuffer()), contentType: encoded.headers.get('content-type') ?? undefined }
  }
  if (body instanceof ReadableStream || Symbol.asyncIterator in Object(body)) {
    if (duplex !== 'half') throw new TypeError('RequestInit: duplex option is required when sending a body.')
    return { stream: body as unknown as AsyncIterable<unknown> }
  }
  throw new TypeError(`fetch cannot send a body of type ${Object.prototype.toString.call(body)}`)
}

/** Normalise `fetch(input, init)`: a `Request` is read field by field, its body whole. */
async function prepare(input: RequestInfo, init: FetchInit | undefined): Promise<Prepared> {
  const request = input instanceof Request ? input : undefined
  const url = request !== undefined ? request.url : input instanceof URL ? input.href : String(input)
  const method = methodOf(init?.method ?? request?.method ?? 'GET')
  const headers = flatHeaders(init?.headers ?? request?.headers)
  let body: BodyInit | null | undefined = init?.body
  if (body === undefined && request?.body != null) body = await request.arrayBuffer()
  if (body != null && (method === 'GET' || method === 'HEAD')) {
    throw new TypeError('Request with GET/HEAD method cannot have body.')
  }
  const outgoing = await bodyOf(body, init?.duplex ?? (request !== undefined ? 'half' : undefined))
  for (const [name, value] of DEFAULT_HEADERS) if (!hasHeader(headers, name)) headers.push(name, value)
  if (outgoing.contentType !== undefined && !hasHeader(headers, 'content-type')) headers.push('content-type', outgoing.contentType)
  const signal = init?.signal ?? request?.signal ?? undefined
  const redirect = init?.redirect ?? request?.redirect ?? 'follow'
  if (redirect !== 'follow' && redirect !== 'manual' && redirect !== 'error') {
    throw new TypeError(`Failed to read the 'redirect' property from 'RequestInit': The provided value '${String(redirect)}' is not a valid enum value of type RequestRedirect.`)
  }
  return { url, method, headers, body: { bytes: outgoing.bytes, stream: outgoing.stream } as OutgoingBody, signal, redirect }
}

/** Send one request; its response head, or the failure. */
function send(pool: Pool, req: Prepared): Promise<ResponseParts> {
  return new Promise<ResponseParts>((resolve, reject) => {
    const { signal } = req
    let flags = RequestFlag.Decompress
    if (signal !== undefined) flags |= RequestFlag.Cancellable
    const target = pool.target(req.url)
    const id = startExchange(
      pool,
      { key: target, path: target.path, method: req.method, headers: req.headers, body: req.body, flags, headersTimeoutMs: -1, bodyTimeoutMs: -1 },
      {
        resolve(parts: unknown) {
          signal?.removeEventListener('abort', onAbort)
          resolve(parts as ResponseParts)
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

/** The value of header `name` (lower-case) in a response head, if any. */
function headerOf(parts: ResponseParts, start: number, name: string): string | undefined {
  const { slab } = parts
  const { lines } = headerLines(slab, start, parts.headEnd)
  for (let i = 0; i < lines.length; i += 3) {
    const colon = lines[i + 1]!
    if (colon - lines[i]! === name.length && slab.toString('latin1', lines[i]!, colon) === name) {
      return slab.toString('latin1', colon + 2, lines[i + 2]!)
    }
  }
  return undefined
}

/** A redirect's body is not wanted: drop it (a streamed one closes its connection). */
function discard(parts: ResponseParts): void {
  parts.stream?.destroy()
}

function removeHeaders(flat: string[], names: readonly string[]): string[] {
  const out: string[] = []
  for (let i = 0; i < flat.length; i += 2) {
    if (!names.includes(flat[i]!.toLowerCase())) out.push(flat[i]!, flat[i + 1]!)
  }
  return out
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
 * a network error, with a `TypeError` for a request fetch refuses.
 */
export async function fetchWith(pool: Pool, input: RequestInfo, init?: FetchInit): Promise<Response> {
  const href = input instanceof Request ? input.url : input instanceof URL ? input.href : String(input)
  if (!/^https?:/i.test(href)) return globalThis.fetch(input, init)
  let req: Prepared
  try {
    req = await prepare(input, init)
  } catch (err) {
    throw err instanceof TypeError ? err : new TypeError((err as Error).message, { cause: err })
  }
  if (req.signal?.aborted) throw req.signal.reason
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
    const location = status >= 300 && status < 400 && status !== 304 && req.redirect !== 'manual' ? headerOf(parts, linesStart, 'location') : undefined
    if (location === undefined) {
      return respond(parts, req, status, slab.toString('latin1', headStart, reasonEnd), linesStart, redirected)
    }
    discard(parts)
    if (req.redirect === 'error') throw fetchFailed(new Error(`unexpected redirect to ${location}`))
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
    req = { ...req, url: next.href, method, headers, body }
    redirected = true
  }
}

function respond(parts: ResponseParts, req: Prepared, status: number, statusText: string, linesStart: number, redirected: boolean): Response {
  if (req.method === 'HEAD') discard(parts)
  let response: FetchResponse
  try {
    response = FetchResponse.from(req.method === 'HEAD' ? { ...parts, stream: undefined, body: undefined, bodyEnd: -1 } : parts, status, statusText, linesStart, responseUrl(req.url), redirected)
  } catch (err) {
    // A status outside 200-599 or a status text Response refuses.
    discard(parts)
    throw fetchFailed(err)
  }
  const { signal } = req
  if (signal !== undefined && parts.stream !== undefined) {
    // The signal still covers the body.
    const onAbort = (): void => response.abort(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    response.onSettled(() => signal.removeEventListener('abort', onAbort))
  }
  return response as unknown as Response
}
