/**
 * The default pool behind the top-level functions, created on first use.
 * Its idle connections are closed cleanly when the process exits normally.
 */
import type { Connection } from './connection.js'
import type { KeyInput } from './key.js'
import { Pool, type AcquireOptions } from './pool.js'
import type { PoolStats } from './stats.js'
import type { RequestOptions } from './http/request.js'
import type { Response } from './http/response.js'
import { fetchWith } from './fetch/fetch.js'
import type { FetchInit } from './fetch/request.js'

let defaultPool: Pool | undefined

/** The pool the top-level functions use. */
export function getDefaultPool(): Pool {
  if (defaultPool === undefined) {
    const pool = new Pool()
    defaultPool = pool
    process.once('exit', () => pool.native.closeNow())
  }
  return defaultPool
}

export function acquire(key: KeyInput, options?: AcquireOptions): Promise<Connection>
export function acquire(key: KeyInput, onReady: (conn: Connection) => void, onError: (err: Error) => void): void
export function acquire(
  key: KeyInput,
  second?: AcquireOptions | ((conn: Connection) => void),
  onError?: (err: Error) => void,
): Promise<Connection> | void {
  const pool = getDefaultPool()
  return typeof second === 'function' ? pool.acquire(key, second, onError as (err: Error) => void) : pool.acquire(key, second)
}

export function release(conn: Connection, keepAliveOk = true): void {
  getDefaultPool().release(conn, keepAliveOk)
}

export function flushForHost(host: string): number {
  return getDefaultPool().flushForHost(host)
}

export function shutdownAll(): Promise<void> {
  return getDefaultPool().shutdownAll()
}

export function stats(): PoolStats {
  return getDefaultPool().stats()
}

export function request(url: string | URL, options?: RequestOptions): Promise<Response> {
  return getDefaultPool().request(url, options)
}

/**
 * WHATWG `fetch` on pconn: the standard signature, Node's global `Response`,
 * redirects, gzip/deflate/br decoding, `TypeError('fetch failed')` with
 * pconn's error as `cause` on a network error. `init.pool` picks the Pool
 * (default: the default pool). It never replaces `globalThis.fetch` by
 * itself: `globalThis.fetch = fetch` does, if you want it to.
 */
export function fetch(input: string | URL | Request, init: FetchInit | undefined = undefined): Promise<globalThis.Response> {
  return fetchWith(init?.pool ?? getDefaultPool(), input, init)
}
