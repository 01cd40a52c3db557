/** Turning what users pass as a destination into native pool keys. */
import { invalidArgType, fromNative } from './errors.js'
import type { NativeKey, NativePool, NativeTarget } from './native.js'

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

/** A parsed request URL: the native handle and, read once, its key and path. */
export interface Target {
  readonly native: NativeTarget
  /** The pool key, e.g. `'https://api.example.com:443'`. */
  readonly key: string
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

  /** The origin and request target of an http(s) URL, over `route`. */
  target(url: string, route?: Route): Target {
    const id = route === undefined ? url : `${url}\n${route.servername ?? ''}\n${route.socketPath ?? ''}`
    const cached = this.#targets.get(id)
    if (cached !== undefined) return cached
    const native = this.#native(() => this.#pool.target(url, route?.servername, route?.socketPath))
    return this.#targets.remember(id, { native, key: native.key, path: native.path })
  }

  #fromUrl(url: string): NativeKey {
    const cached = this.#byUrl.get(url)
    if (cached !== undefined) return cached
    return this.#byUrl.remember(url, this.#native(() => this.#pool.keyFromUrl(url)))
  }
}
