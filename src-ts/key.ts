/** Turning what users pass as a destination into native pool keys. */
import { invalidArgType, fromNative } from './errors.js'
import type { NativeKey, NativePool } from './native.js'

/** Where to connect: `'https://host:port/any/path'` or an object. */
export type KeyInput = string | URL | KeyObject

/** A destination as an object. */
export type KeyObject = HostKeyObject | UnixKeyObject

export interface HostKeyObject {
  /** `'http'`, `'https'` (HTTP use) or `'tcp'`, `'tls'` (raw protocols). */
  scheme: 'http' | 'https' | 'tcp' | 'tls'
  host: string
  /** Defaults to 80 for http and 443 for https; required for tcp and tls. */
  port?: number
  /** TLS name to send and verify instead of `host`; keeps its own connections. */
  servername?: string
}

/** Raw bytes over a Unix domain socket; keyed by its path. */
export interface UnixKeyObject {
  scheme: 'unix'
  /** The socket's path (at most 103 bytes). */
  path: string
}

/** The pool key of an origin (over a route): the native handle and its name. */
export interface OriginKey {
  readonly native: NativeKey
  /** The pool key, e.g. `'https://api.example.com:443'`. */
  readonly key: string
}

/** A parsed request URL: its origin's key and its request target. */
export interface Target extends OriginKey {
  /** Path and query, percent-encoded, as sent. */
  readonly path: string
}

/** How a request reaches its origin, when not straight by the URL's host. */
export interface Route {
  /** TLS name to send and verify instead of the URL's host (https only). */
  servername?: string
  /** Connect to this Unix domain socket instead of the URL's host. */
  socketPath?: string
}

const CACHE_LIMIT = 1024

/** A map that forgets everything when full (URLs repeat; a clear is rare). */
class BoundedCache<V> extends Map<string, V> {
  remember(key: string, value: V): V {
    if (this.size >= CACHE_LIMIT) this.clear()
    this.set(key, value)
    return value
  }
}

/**
 * Resolves and caches keys and request targets for one pool (keys depend
 * on its TLS settings), so a repeated URL costs one map lookup.
 */
export class KeyResolver {
  readonly #pool: NativePool
  readonly #byUrl = new BoundedCache<NativeKey>()
  readonly #targets = new BoundedCache<Target>()
  readonly #origins = new BoundedCache<OriginKey>()

  constructor(pool: NativePool) {
    this.#pool = pool
  }

  resolve(input: unknown, name = 'key'): NativeKey {
    if (typeof input === 'string') return this.#fromUrl(input)
    if (input instanceof URL) return this.#fromUrl(input.href)
    if (typeof input !== 'object' || input === null) {
      throw invalidArgType(name, 'a URL string, a URL or a { scheme, host, port } object', input)
    }
    const k = input as Record<string, unknown>
    if (typeof k.scheme !== 'string') throw invalidArgType(`${name}.scheme`, 'of type string', k.scheme)
    if (k.scheme === 'unix') {
      if (typeof k.path !== 'string') throw invalidArgType(`${name}.path`, 'of type string', k.path)
      return this.#native(() => this.#pool.keyFromParts('unix', '', undefined, undefined, k.path as string))
    }
    if (typeof k.host !== 'string') throw invalidArgType(`${name}.host`, 'of type string', k.host)
    if (k.port !== undefined && typeof k.port !== 'number') throw invalidArgType(`${name}.port`, 'of type number', k.port)
    if (k.servername !== undefined && typeof k.servername !== 'string') {
      throw invalidArgType(`${name}.servername`, 'of type string', k.servername)
    }
    // Values (the port's range included) are checked natively, in one place.
    const { scheme, host, port, servername } = k as { scheme: string; host: string; port?: number; servername?: string }
    return this.#native(() => this.#pool.keyFromParts(scheme, host, port, servername, undefined))
  }

  #native<T>(make: () => T): T {
    try {
      return make()
    } catch (err) {
      throw fromNative(err)
    }
  }

  /**
   * The origin and request target of an http(s) URL, over `route`. A URL
   * already seen costs a map lookup; a new path on a known origin, when
   * the URL needs no WHATWG normalisation, a split.
   */
  target(url: string, route?: Route): Target {
    const id = route === undefined ? url : `${url}\n${route.servername ?? ''}\n${route.socketPath ?? ''}`
    const cached = this.#targets.get(id)
    if (cached !== undefined) return cached
    const split = splitPlainUrl(url)
    if (split !== undefined) {
      const origin = this.origin(split.origin, route)
      return this.#targets.remember(id, { native: origin.native, key: origin.key, path: split.path })
    }
    const parsed = this.#native(() => this.#pool.target(url, route?.servername, route?.socketPath))
    return this.#targets.remember(id, { native: parsed.key, key: parsed.key.display, path: parsed.path })
  }

  /** The key of `origin` (`scheme://host[:port]`), over `route`. */
  origin(origin: string, route?: Route): OriginKey {
    const id = route === undefined ? origin : `${origin}\n${route.servername ?? ''}\n${route.socketPath ?? ''}`
    const cached = this.#origins.get(id)
    if (cached !== undefined) return cached
    const parsed = this.#native(() => this.#pool.target(`${origin}/`, route?.servername, route?.socketPath))
    return this.#origins.remember(id, { native: parsed.key, key: parsed.key.display })
  }

  #fromUrl(url: string): NativeKey {
    const cached = this.#byUrl.get(url)
    if (cached !== undefined) return cached
    return this.#byUrl.remember(url, this.#native(() => this.#pool.keyFromUrl(url)))
  }
}

/**
 * Characters a WHATWG parser leaves as they are in an http(s) path and
 * query (no percent-encoding, no normalisation); `'` is encoded in the
 * query of special URLs, so it is not here.
 */
const PLAIN_TARGET = /^[A-Za-z0-9\-._~!$&()*+,;=:@/%?]*$/

/**
 * Split `http(s)://authority/path?query` into origin and target when the
 * URL is already what a WHATWG parser would make of its target (lower-case
 * scheme, a path that starts with `/`, no dot segment, no fragment, no
 * character to encode). Anything else is left to the native parser.
 */
function splitPlainUrl(url: string): { origin: string; path: string } | undefined {
  const start = url.startsWith('http://') ? 7 : url.startsWith('https://') ? 8 : -1
  if (start < 0) return undefined
  const slash = url.indexOf('/', start)
  if (slash < 0) return undefined
  const path = url.slice(slash)
  const authority = url.slice(start, slash)
  if (authority === '' || /[?#@\\]/.test(authority)) return undefined
  if (!PLAIN_TARGET.test(path) || path.includes('/.') || /%2e/i.test(path)) return undefined
  return { origin: url.slice(0, slash), path }
}
