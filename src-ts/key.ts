/** Turning what users pass as a destination into native pool keys. */
import { invalidArgType, invalidArgValue, fromNative } from './errors.js'
import type { NativeKey, NativePool, NativeTarget } from './native.js'

/** Where to connect: `'https://host:port/any/path'` or an object. */
export type KeyInput = string | URL | KeyObject

export interface KeyObject {
  /** `'http'`, `'https'` (HTTP use) or `'tcp'`, `'tls'` (raw protocols). */
  scheme: 'http' | 'https' | 'tcp' | 'tls'
  host: string
  /** Defaults to 80 for http and 443 for https; required for tcp and tls. */
  port?: number
  /** TLS name to send and verify instead of `host`; keeps its own connections. */
  servername?: string
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
  readonly #targets = new BoundedCache<NativeTarget>()

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
    if (typeof k.host !== 'string') throw invalidArgType(`${name}.host`, 'of type string', k.host)
    if (k.port !== undefined) {
      if (typeof k.port !== 'number') throw invalidArgType(`${name}.port`, 'of type number', k.port)
      if (!Number.isInteger(k.port) || k.port < 1 || k.port > 65535) {
        throw invalidArgValue(`${name}.port`, 'must be an integer from 1 to 65535', k.port)
      }
    }
    if (k.servername !== undefined && typeof k.servername !== 'string') {
      throw invalidArgType(`${name}.servername`, 'of type string', k.servername)
    }
    try {
      return this.#pool.keyFromParts(k.scheme, k.host, k.port as number | undefined, k.servername as string | undefined)
    } catch (err) {
      throw fromNative(err)
    }
  }

  /** The origin and request target of an http(s) URL. */
  target(url: string): NativeTarget {
    const cached = this.#targets.get(url)
    if (cached !== undefined) return cached
    try {
      return this.#targets.remember(url, this.#pool.target(url))
    } catch (err) {
      throw fromNative(err)
    }
  }

  #fromUrl(url: string): NativeKey {
    const cached = this.#byUrl.get(url)
    if (cached !== undefined) return cached
    try {
      return this.#byUrl.remember(url, this.#pool.keyFromUrl(url))
    } catch (err) {
      throw fromNative(err)
    }
  }
}
