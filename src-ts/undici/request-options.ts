/**
 * undici's dispatch options, checked and normalised as undici's core does
 * (lib/core/request.js): the same accepted shapes, the same errors with
 * the same messages. The result is the `request` object undici's
 * diagnostics channels carry, so subscribers (OpenTelemetry) see what they
 * see with undici.
 */
import { isIP } from 'node:net'
import { stringify } from 'node:querystring'
import { Readable } from 'node:stream'
import { bytesOf } from '../http/body.js'
import { errors } from './peer.js'

/** A request body as the Agent sends it, before it is read. */
export type BodySource =
  | { kind: 'none' }
  | { kind: 'bytes'; bytes: Buffer }
  | { kind: 'stream'; stream: AsyncIterable<unknown>; destroy: (() => void) | undefined }
  | { kind: 'blob'; blob: Blob }
  | { kind: 'form'; form: FormData }

/** An origin parsed once. */
export interface ParsedOrigin {
  /** `scheme://host[:port]`, as `URL.origin`. */
  origin: string
  /** `'http:'` or `'https:'`. */
  protocol: string
  /** Host name without IPv6 brackets. */
  hostname: string
  /** Host and port, as the Host header has it. */
  host: string
  /** The port given in the URL, `''` when it is the scheme's default. */
  port: string
  /** The port in use. */
  portNumber: number
  /** 4 or 6 when `hostname` is an IP address, else 0. */
  ipFamily: number
}

const ORIGIN_CACHE_LIMIT = 256
const origins = new Map<string, ParsedOrigin>()

/** undici's `parseOrigin`: an http(s) URL with nothing after the authority. */
function parseOrigin(input: unknown): ParsedOrigin {
  if ((typeof input !== 'string' || input === '') && !(input instanceof URL)) {
    throw new errors.InvalidArgumentError('opts.origin must be a non-empty string or URL.')
  }
  const text = typeof input === 'string' ? input : input.href
  const cached = origins.get(text)
  if (cached !== undefined) return cached
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new errors.InvalidArgumentError('invalid url')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new errors.InvalidArgumentError('Invalid URL protocol: the URL must start with `http:` or `https:`.')
  }
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '') throw new errors.InvalidArgumentError('invalid url')
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
  const parsed: ParsedOrigin = {
    origin: url.origin,
    protocol: url.protocol,
    hostname,
    host: url.host,
    port: url.port,
    portNumber: url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port),
    ipFamily: isIP(hostname),
  }
  if (origins.size >= ORIGIN_CACHE_LIMIT) origins.clear()
  origins.set(text, parsed)
  return parsed
}

// RFC 9110 tchar, and undici's header value rule (no controls but tab).
const TOKEN = /^[\^_`a-zA-Z\-0-9!#$%&'*+.|~]+$/
const BAD_HEADER_VALUE = /[^\t\x20-\x7e\x80-\xff]/
const BAD_PATH = /[^\u0021-\u00ff]/

/** Methods whose requests carry a length even when they have no body (undici's list). */
const EXPECTS_PAYLOAD = new Set(['POST', 'PUT', 'PATCH', 'QUERY', 'PROPFIND', 'PROPPATCH'])

/** What a caller may pass to `dispatch` (undici's `DispatchOptions` and the fields it reads). */
export interface DispatchOptionsInput {
  origin?: unknown
  path?: unknown
  method?: unknown
  body?: unknown
  headers?: unknown
  query?: unknown
  idempotent?: unknown
  blocking?: unknown
  upgrade?: unknown
  headersTimeout?: unknown
  bodyTimeout?: unknown
  reset?: unknown
  expectContinue?: unknown
  servername?: unknown
  throwOnError?: unknown
  maxRedirections?: unknown
  typeOfService?: unknown
}

/**
 * A request as undici's channels carry it (the fields of undici 7's
 * `Request` that subscribers read). `headers` is flat: `[name, value, ...]`
 * with names as given and a value a string or an array of strings;
 * `host` and `content-length` live in `host` and `contentLength`.
 */
export class DispatchRequest {
  readonly origin: string
  readonly method: string
  readonly path: string
  readonly protocol: string
  headers: Array<string | string[]> = []
  host: string | null = null
  contentLength: number | null = null
  contentType: string | null = null
  reset: boolean | null
  readonly body: unknown
  readonly idempotent: boolean
  readonly blocking: boolean
  readonly upgrade: string | null
  servername: string | null = null
  readonly headersTimeout: number | undefined
  readonly bodyTimeout: number | undefined
  readonly expectContinue: boolean
  readonly typeOfService: number | undefined
  completed = false
  aborted = false

  /** @internal */
  constructor(target: ParsedOrigin, path: string, method: string, body: unknown, opts: DispatchOptionsInput) {
    this.origin = target.origin
    this.protocol = target.protocol
    this.path = path
    this.method = method
    this.body = body
    this.idempotent = opts.idempotent == null ? method === 'HEAD' || method === 'GET' : Boolean(opts.idempotent)
    this.blocking = opts.blocking == null ? method !== 'HEAD' : Boolean(opts.blocking)
    this.reset = opts.reset == null ? null : (opts.reset as boolean)
    this.headersTimeout = opts.headersTimeout == null ? undefined : (opts.headersTimeout as number)
    this.bodyTimeout = opts.bodyTimeout == null ? undefined : (opts.bodyTimeout as number)
    this.expectContinue = opts.expectContinue == null ? false : (opts.expectContinue as boolean)
    this.typeOfService = opts.typeOfService == null ? undefined : (opts.typeOfService as number)
    this.upgrade = typeof opts.upgrade === 'string' && opts.upgrade !== '' ? opts.upgrade : null
  }

  /** Add a header, checked as the options' headers are (OpenTelemetry adds `traceparent` so). */
  addHeader(name: string, value: unknown): this {
    processHeader(this, name, value)
    return this
  }
}

function headerValue(name: string, value: unknown): string {
  if (typeof value === 'string') {
    if (BAD_HEADER_VALUE.test(value)) throw new errors.InvalidArgumentError(`invalid ${name} header`)
    return value
  }
  if (value === null) return ''
  if (typeof value === 'object' || typeof value === 'function' || typeof value === 'symbol') {
    throw new errors.InvalidArgumentError(`invalid ${name} header`)
  }
  const text = `${value as string | number | boolean | bigint}`
  if (BAD_HEADER_VALUE.test(text)) throw new errors.InvalidArgumentError(`invalid ${name} header`)
  return text
}

/** undici's `processHeader`: one header into the request, special names handled. */
function processHeader(request: DispatchRequest, name: unknown, value: unknown): void {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    throw new errors.InvalidArgumentError(`invalid ${String(name)} header`)
  }
  if (value === undefined) return
  if (typeof name !== 'string') throw new errors.InvalidArgumentError('invalid header key')
  const lower = name.toLowerCase()
  if (!TOKEN.test(lower)) throw new errors.InvalidArgumentError('invalid header key')
  const val: string | string[] = Array.isArray(value) ? value.map((v: unknown) => headerValue(name, v)) : headerValue(name, value)
  switch (lower) {
    case 'host':
      if (request.host !== null) throw new errors.InvalidArgumentError('duplicate host header')
      if (typeof val !== 'string') throw new errors.InvalidArgumentError('invalid host header')
      request.host = val
      return
    case 'content-length':
      if (request.contentLength !== null) throw new errors.InvalidArgumentError('duplicate content-length header')
      if (typeof val !== 'string' || !/^\d+$/.test(val)) throw new errors.InvalidArgumentError('invalid content-length header')
      request.contentLength = parseInt(val, 10)
      return
    case 'transfer-encoding':
    case 'keep-alive':
    case 'upgrade':
      throw new errors.InvalidArgumentError(`invalid ${lower} header`)
    case 'connection': {
      if (typeof val !== 'string') throw new errors.InvalidArgumentError('invalid connection header')
      for (const token of val.toLowerCase().split(',')) {
        const t = token.trim()
        if (!TOKEN.test(t)) throw new errors.InvalidArgumentError('invalid connection header')
        if (t === 'close') request.reset = true
      }
      return
    }
    case 'expect':
      throw new errors.NotSupportedError('expect header not supported')
    case 'content-type':
      if (request.contentType === null) request.contentType = typeof val === 'string' ? val : (val[0] ?? '')
      request.headers.push(name, val)
      return
    default:
      request.headers.push(name, val)
  }
}

/** An object with its own (or a class's) iterator: not a plain record. */
function hasSafeIterator(obj: object): obj is Iterable<unknown> {
  const proto: unknown = Object.getPrototypeOf(obj)
  const own = Object.prototype.hasOwnProperty.call(obj, Symbol.iterator)
  return own || (proto != null && proto !== Object.prototype && typeof (obj as Partial<Iterable<unknown>>)[Symbol.iterator] === 'function')
}

function processHeaders(request: DispatchRequest, headers: unknown): void {
  if (headers == null) return
  if (Array.isArray(headers)) {
    // An array of pairs is what undici's redirect and dns interceptors
    // accept too: a harmless superset of undici's core.
    if (headers.length > 0 && headers.every((h) => Array.isArray(h) && h.length === 2 && typeof h[0] === 'string')) {
      for (const [k, v] of headers as Array<[string, unknown]>) processHeader(request, k, v)
      return
    }
    if (headers.length % 2 !== 0) throw new errors.InvalidArgumentError('headers array must be even')
    for (let i = 0; i < headers.length; i += 2) processHeader(request, headers[i], headers[i + 1])
    return
  }
  if (typeof headers !== 'object') throw new errors.InvalidArgumentError('headers must be an object or an array')
  if (hasSafeIterator(headers)) {
    for (const pair of headers) {
      if (!Array.isArray(pair) || pair.length !== 2) throw new errors.InvalidArgumentError('headers must be in key-value pair format')
      processHeader(request, pair[0], pair[1])
    }
    return
  }
  const record = headers as Record<string, unknown>
  for (const key of Object.keys(record)) processHeader(request, key, record[key])
}

function isStream(body: object): body is Readable {
  return typeof (body as Partial<Readable>).pipe === 'function' && typeof (body as Partial<Readable>).on === 'function'
}

function isFormData(body: object): body is FormData {
  const f = body as Partial<FormData> & { [Symbol.toStringTag]?: unknown }
  return (
    typeof f.append === 'function' &&
    typeof f.delete === 'function' &&
    typeof f.get === 'function' &&
    typeof f.getAll === 'function' &&
    typeof f.has === 'function' &&
    typeof f.set === 'function' &&
    f[Symbol.toStringTag] === 'FormData'
  )
}

function isBlob(body: object): body is Blob {
  if (body instanceof Blob) return true
  const b = body as Partial<Blob> & { [Symbol.toStringTag]?: unknown }
  const tag = b[Symbol.toStringTag]
  return (tag === 'Blob' || tag === 'File') && (typeof b.stream === 'function' || typeof b.arrayBuffer === 'function')
}

async function* fromSyncIterable(source: Iterable<unknown>): AsyncGenerator<unknown> {
  for (const chunk of source) yield chunk
}

const NO_BODY: BodySource = Object.freeze({ kind: 'none' })

/** Classify a body as undici does; a zero-length one is no body. */
function bodySource(body: unknown): BodySource {
  if (body == null) return NO_BODY
  const bytes = bytesOf(body)
  if (bytes !== undefined) return bytes.length === 0 ? NO_BODY : { kind: 'bytes', bytes }
  if (typeof body !== 'object') {
    throw new errors.InvalidArgumentError('body must be a string, a Buffer, a Readable stream, an iterable, or an async iterable')
  }
  if (isStream(body)) {
    const stream: AsyncIterable<unknown> =
      Symbol.asyncIterator in body ? body : new Readable().wrap(body as unknown as NodeJS.ReadableStream)
    // Destroyed without an error: an 'error' event nobody listens to would crash the process.
    const destroy = typeof body.destroy === 'function' ? () => void body.destroy() : undefined
    return { kind: 'stream', stream, destroy }
  }
  if (isFormData(body)) return { kind: 'form', form: body }
  if (isBlob(body)) {
    // Its type becomes the content-type header: no CR or LF may smuggle another.
    if (/[\r\n]/.test(body.type)) throw new errors.InvalidArgumentError('invalid content-type header')
    return { kind: 'blob', blob: body }
  }
  if (typeof (body as Partial<AsyncIterable<unknown>>)[Symbol.asyncIterator] === 'function') {
    const iterable = body as AsyncIterable<unknown>
    const it = body as { return?: unknown; throw?: unknown }
    const destroy = typeof it.return === 'function' ? () => void (it.return as () => Promise<unknown>).call(body).catch(() => {}) : undefined
    return { kind: 'stream', stream: iterable, destroy }
  }
  if (typeof (body as Partial<Iterable<unknown>>)[Symbol.iterator] === 'function') {
    return { kind: 'stream', stream: fromSyncIterable(body as Iterable<unknown>), destroy: undefined }
  }
  throw new errors.InvalidArgumentError('body must be a string, a Buffer, a Readable stream, an iterable, or an async iterable')
}

/** A dispatch, checked: the channels' request object and its body. */
export interface CheckedDispatch {
  target: ParsedOrigin
  request: DispatchRequest
  body: BodySource
}

/** A timeout in ms as undici checks one (for a dispatch or an Agent); absent is undefined. */
export function checkTimeout(name: string, value: unknown): number | undefined {
  if (value == null) return undefined
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new errors.InvalidArgumentError(`invalid ${name}`)
  }
  return value
}

/**
 * Check `opts` as undici's Request constructor does (same order, same
 * errors). A path that is an absolute URL (a proxy's request target) is
 * refused with `NotSupportedError`: pconn sends origin-form targets only
 * (and authority-form for CONNECT).
 */
export function checkDispatch(opts: DispatchOptionsInput): CheckedDispatch {
  const target = parseOrigin(opts.origin)
  const { path, method, upgrade } = opts
  if (typeof method !== 'string') throw new errors.InvalidArgumentError('method must be a string')
  if (typeof path !== 'string') throw new errors.InvalidArgumentError('path must be a string')
  // CONNECT's target is an authority (`host:port`), any other's a path.
  if (method === 'CONNECT' ? path === '' || /\s/.test(path) : path[0] !== '/') {
    if (method === 'CONNECT') throw new errors.InvalidArgumentError('invalid CONNECT target')
    if (path.startsWith('http://') || path.startsWith('https://')) {
      throw new errors.NotSupportedError('absolute-form request paths are not supported by the pconn Agent')
    }
    throw new errors.InvalidArgumentError('path must be an absolute URL or start with a slash')
  }
  if (BAD_PATH.test(path)) throw new errors.InvalidArgumentError('invalid request path')
  if (!TOKEN.test(method)) throw new errors.InvalidArgumentError('invalid request method')
  if (upgrade && typeof upgrade !== 'string') throw new errors.InvalidArgumentError('upgrade must be a string')
  // It goes into the head as a header value: no CR, LF or NUL (as undici).
  if (typeof upgrade === 'string' && BAD_HEADER_VALUE.test(upgrade)) throw new errors.InvalidArgumentError('invalid upgrade header')
  checkTimeout('headersTimeout', opts.headersTimeout)
  checkTimeout('bodyTimeout', opts.bodyTimeout)
  if (opts.reset != null && typeof opts.reset !== 'boolean') throw new errors.InvalidArgumentError('invalid reset')
  if (opts.expectContinue != null && typeof opts.expectContinue !== 'boolean') {
    throw new errors.InvalidArgumentError('invalid expectContinue')
  }
  if (opts.throwOnError != null) throw new errors.InvalidArgumentError('invalid throwOnError')
  if (opts.maxRedirections != null && opts.maxRedirections !== 0) {
    throw new errors.InvalidArgumentError('maxRedirections is not supported, use the redirect interceptor')
  }
  const tos = opts.typeOfService
  if (tos != null && (typeof tos !== 'number' || !Number.isInteger(tos) || tos < 0 || tos > 255)) {
    throw new errors.InvalidArgumentError('typeOfService must be an integer between 0 and 255')
  }
  const body = bodySource(opts.body)
  let fullPath = path
  if (opts.query != null) {
    if (path.includes('?') || path.includes('#')) {
      throw new errors.InvalidArgumentError('Query params cannot be passed when url already contains "?" or "#".')
    }
    const query = stringify(opts.query as Record<string, string | number | boolean | readonly string[] | null>)
    if (query !== '') fullPath = `${path}?${query}`
  }
  const request = new DispatchRequest(target, fullPath, method, body.kind === 'bytes' ? body.bytes : opts.body ?? null, opts)
  processHeaders(request, opts.headers)
  const servername = opts.servername
  if (servername != null && typeof servername !== 'string') throw new errors.InvalidArgumentError('invalid servername')
  request.servername = servername || serverNameOf(request.host) || null
  return { target, request, body }
}

/** undici's `getServerName`: the name in a Host header, `''` for an IP. */
function serverNameOf(host: string | null): string | null {
  if (!host) return null
  let name: string
  if (host[0] === '[') {
    const end = host.indexOf(']')
    name = end < 0 ? host : host.slice(1, end)
  } else {
    const colon = host.indexOf(':')
    name = colon < 0 ? host : host.slice(0, colon)
  }
  return isIP(name) ? '' : name
}

/** Whether the request carries `content-length: 0` when it has no body. */
export function expectsPayload(method: string): boolean {
  return EXPECTS_PAYLOAD.has(method)
}
