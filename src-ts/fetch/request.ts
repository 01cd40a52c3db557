/**
 * A fetch request as pconn sends it: `fetch(input, init)` normalised once
 * by the rules of Node's fetch (methods, headers, bodies and their
 * Content-Type, the headers fetch adds, `redirect`, `integrity`, `window`,
 * `referrer`).
 */
import { bytesOf, type OutgoingBody } from '../http/body.js'
import { hasHeader } from '../http/headers.js'
import type { Pool } from '../pool.js'
import { policyOf, referrerOf, type ReferrerPolicy } from './referrer.js'

// The WHATWG names, from the global `RequestInit` Node's types declare (no
// import of undici's types: a consumer may not have them).
type BodyInit = NonNullable<RequestInit['body']>
type HeadersInit = NonNullable<RequestInit['headers']>
type RequestRedirect = NonNullable<RequestInit['redirect']>
export type RequestInfo = string | URL | Request

/**
 * `fetch`'s `init`: the standard `RequestInit`, plus the pool to use. With
 * a `dispatcher` (an undici Dispatcher: a MockAgent, a ProxyAgent, ...) the
 * request is Node's fetch's, on that dispatcher, as the caller asked.
 */
export interface FetchInit extends RequestInit {
  /** The Pool the request goes through. Default: the default pool (`getDefaultPool()`). */
  pool?: Pool
}

/** A request, normalised once. */
export interface Prepared {
  url: string
  method: string
  /** `[name, value, ...]`. */
  headers: string[]
  body: OutgoingBody
  signal: AbortSignal | undefined
  redirect: RequestRedirect
  /** Subresource integrity metadata; '' checks nothing. */
  integrity: string
  /** `init.window` was given (null): a 407 is then a network error, as the spec says. */
  noWindow: boolean
  /** Where the request says it comes from (`init.referrer`), if anywhere. */
  referrer: URL | undefined
  referrerPolicy: ReferrerPolicy
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

const tag = (value: unknown): string => Object.prototype.toString.call(value)

function methodOf(method: string): string {
  if (!TOKEN.test(method)) throw new TypeError(`'${method}' is not a valid HTTP method.`)
  const upper = method.toUpperCase()
  if (FORBIDDEN.has(upper)) throw new TypeError(`'${method}' HTTP method is unsupported.`)
  return NORMALIZED.has(upper) ? upper : method
}

/** Any `HeadersInit` (a `Headers` of any implementation, pairs, a record), flat. */
function flatHeaders(init: HeadersInit | undefined): string[] {
  const flat: string[] = []
  if (init === undefined || init === null) return flat
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

/**
 * A form as Node's fetch encodes it (multipart). A form of another
 * implementation (undici's package has its own `FormData`) is copied into
 * Node's first: its entries are the same `Blob`s and strings.
 */
async function encodeForm(form: FormData): Promise<OutgoingBody> {
  let own = form
  if (!(form instanceof FormData)) {
    own = new FormData()
    for (const [name, value] of form as unknown as Iterable<[string, string | Blob]>) {
      if (typeof value === 'string') own.append(name, value)
      else own.append(name, value, (value as Partial<File>).name)
    }
  }
  const encoded = new Response(own)
  return { bytes: Buffer.from(await encoded.arrayBuffer()), contentType: encoded.headers.get('content-type') ?? undefined }
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
  if (body instanceof FormData || tag(body) === '[object FormData]') return encodeForm(body as FormData)
  if (body instanceof ReadableStream || Symbol.asyncIterator in Object(body)) {
    if (duplex !== 'half') throw new TypeError('RequestInit: duplex option is required when sending a body.')
    return { stream: body as unknown as AsyncIterable<unknown> }
  }
  throw new TypeError(`fetch cannot send a body of type ${tag(body)}`)
}

/**
 * `input` as a `Request`: Node's own, or one of another implementation of
 * the class (undici's package exports its own `Request`), known by its shape.
 */
export function requestOf(input: RequestInfo): Request | undefined {
  if (input instanceof Request) return input
  if (typeof input !== 'object' || input === null || input instanceof URL) return undefined
  const like = input as Partial<Request>
  return typeof like.url === 'string' && typeof like.method === 'string' && typeof like.arrayBuffer === 'function' ? (input as Request) : undefined
}

/** Normalise `fetch(input, init)`: a `Request` is read field by field, its body whole. */
export async function prepare(input: RequestInfo, init: FetchInit | undefined): Promise<Prepared> {
  const request = requestOf(input)
  const url = request !== undefined ? request.url : input instanceof URL ? input.href : String(input)
  const method = methodOf(init?.method ?? request?.method ?? 'GET')
  // The Host header is the URL's, whatever the caller set (as in Node's fetch).
  const headers = removeHeaders(flatHeaders(init?.headers ?? request?.headers), ['host'])
  let body: BodyInit | null | undefined = init?.body
  if (body === undefined && request?.body != null) body = await request.arrayBuffer()
  if (body != null && (method === 'GET' || method === 'HEAD')) {
    throw new TypeError('Request with GET/HEAD method cannot have body.')
  }
  const window = (init as { window?: unknown } | undefined)?.window
  if (window !== undefined && window !== null) throw new TypeError(`'window' option '${String(window)}' must be null`)
  const outgoing = await bodyOf(body, init?.duplex ?? (request !== undefined ? 'half' : undefined))
  for (const [name, value] of DEFAULT_HEADERS) if (!hasHeader(headers, name)) headers.push(name, value)
  if (outgoing.contentType !== undefined && !hasHeader(headers, 'content-type')) headers.push('content-type', outgoing.contentType)
  const signal = init?.signal ?? request?.signal ?? undefined
  const redirect = init?.redirect ?? request?.redirect ?? 'follow'
  if (redirect !== 'follow' && redirect !== 'manual' && redirect !== 'error') {
    throw new TypeError(`Failed to read the 'redirect' property from 'RequestInit': The provided value '${String(redirect)}' is not a valid enum value of type RequestRedirect.`)
  }
  return {
    url,
    method,
    headers,
    body: outgoing,
    signal,
    redirect,
    integrity: init?.integrity ?? request?.integrity ?? '',
    noWindow: init !== undefined && 'window' in init,
    referrer: referrerOf(init?.referrer ?? request?.referrer),
    referrerPolicy: policyOf(init?.referrerPolicy ?? request?.referrerPolicy),
  }
}

/** `flat` without the headers named in `names` (lower-case). */
export function removeHeaders(flat: string[], names: readonly string[]): string[] {
  const out: string[] = []
  for (let i = 0; i < flat.length; i += 2) {
    if (!names.includes(flat[i]!.toLowerCase())) out.push(flat[i]!, flat[i + 1]!)
  }
  return out
}

/** A stream body is cancelled with the abort's reason, as Node's fetch cancels it. */
export function cancelBody(body: OutgoingBody, reason: unknown): void {
  const stream = body.stream as unknown
  if (stream instanceof ReadableStream && !stream.locked) stream.cancel(reason).catch(() => {})
}
