/** The pool: acquire, release, flushForHost, shutdownAll, stats. */
import { inspect } from 'node:util'
import { Connection, loanOf, type Loan } from './connection.js'
import { connectChannel, reuseChannel } from './diagnostics.js'
import { abortError, fromNative, invalidArgType, invalidArgValue, withCallerStack } from './errors.js'
import { KeyResolver, type KeyInput, type OriginKey, type Route, type Target } from './key.js'
import { watchLoan } from './leak-detector.js'
import { channel, completionOf, native, nextOperationId, run, type NativeConnection, type NativeKey, type NativePool } from './native.js'
import { checkNumber, resolveOptions, toNative, type LookupFunction, type PoolOptions, type ResolvedOptions } from './options.js'
import { toPoolStats, type PoolStats } from './stats.js'
import { sendRequest, type RequestOptions } from './http/request.js'
import { fetchWith } from './fetch/fetch.js'
import type { FetchInit } from './fetch/request.js'
import type { Response } from './http/response.js'

/** Options of one `acquire`. */
export interface AcquireOptions {
  /** Abort waiting or connecting: rejects with `ABORT_ERR` (name `AbortError`). */
  signal?: AbortSignal
  /** Overrides the pool's `acquireTimeoutMs` for this call. */
  acquireTimeoutMs?: number
}

/**
 * A keep-alive connection pool. Connections are keyed by scheme, host, port,
 * TLS identity and route (direct, a Unix socket or a proxy); see
 * docs/ARCHITECTURE.md for the exact rules.
 *
 * A pool belongs to the thread that made it. With `shared: name`, it is a
 * handle onto one process-wide pool of that name instead: every thread
 * (main or worker) that opens the same name shares its connections and
 * its limits, and `shutdownAll()` closes only the calling handle.
 *
 * ```ts
 * const pool = new Pool({ maxConnectionsPerHost: 16 })
 * const conn = await pool.acquire('tls://db.internal:5433')
 * await conn.write(query)
 * const reply = await conn.read()
 * pool.release(conn)
 * ```
 */
export class Pool {
  /** The options in force, defaults filled in. */
  readonly options: Readonly<ResolvedOptions>
  /** @internal */
  readonly native: NativePool
  readonly #keys: KeyResolver
  readonly #poolId: number
  readonly #releaseFn = (conn: Connection, keepAliveOk: boolean): void => this.release(conn, keepAliveOk)
  #shutdown: Promise<void> | undefined

  constructor(options?: PoolOptions) {
    this.options = Object.freeze(resolveOptions(options))
    const lookup = this.options.lookup === undefined ? undefined : askLookup(this.options.lookup)
    try {
      this.native = new native.NativePool(toNative(this.options), this.options.shared, channel, lookup?.ask)
    } catch (err) {
      throw fromNative(err)
    }
    lookup?.answerTo(this.native)
    this.#poolId = this.native.id
    this.#keys = new KeyResolver(this.native)
  }

  /** Get a connection: a live idle one, a new one, or (at a limit) the next released one. */
  acquire(key: KeyInput, options?: AcquireOptions): Promise<Connection>
  /** The callback form: exactly one of `onReady` / `onError` is called. */
  acquire(key: KeyInput, onReady: (conn: Connection) => void, onError: (err: Error) => void): void
  acquire(
    key: KeyInput,
    second?: AcquireOptions | ((conn: Connection) => void),
    onError?: (err: Error) => void,
  ): Promise<Connection> | void {
    if (typeof second === 'function') {
      if (typeof onError !== 'function') throw invalidArgType('onError', 'of type function', onError)
      this.acquire(key).then(second, onError)
      return
    }
    const site = this.options.leakDetectionMs > 0 ? acquireSite(Pool.prototype.acquire) : undefined
    let resolved: NativeKey
    try {
      resolved = this.resolveKey(key)
    } catch (err) {
      return Promise.reject(err)
    }
    return this.acquireKey(resolved, second, site)
  }

  /** @internal Resolve a destination to a key (throws on bad input). */
  resolveKey(key: unknown): NativeKey {
    return this.#keys.resolve(key)
  }

  /** @internal Parse a request URL (cached; throws on bad input). */
  target(url: string, route?: Route): Target {
    return this.#keys.target(url, route)
  }

  /** @internal The key of an origin (`scheme://host[:port]`, cached; throws on bad input). */
  origin(origin: string, route?: Route): OriginKey {
    return this.#keys.origin(origin, route)
  }

  /** @internal Acquire by resolved key. */
  acquireKey(key: NativeKey, options?: AcquireOptions, site?: string): Promise<Connection> {
    let checked: { signal?: AbortSignal; timeoutMs?: number }
    try {
      checked = checkAcquireOptions(options)
    } catch (err) {
      return Promise.reject(err)
    }
    const { signal, timeoutMs } = checked
    if (signal?.aborted) return Promise.reject(abortError(signal))
    const cancel = signal === undefined ? undefined : new native.NativeCancel()
    const id = nextOperationId()
    let ready: NativeConnection | null
    try {
      ready = this.native.acquire(id, key, timeoutMs, cancel)
    } catch (err) {
      return Promise.reject(fromNative(err))
    }
    if (ready !== null) return Promise.resolve(this.#lend(ready, site))
    return this.#completeAcquire(id, signal, cancel, site)
  }

  async #completeAcquire(
    id: number,
    signal: AbortSignal | undefined,
    cancel: InstanceType<typeof native.NativeCancel> | undefined,
    site: string | undefined,
  ): Promise<Connection> {
    const onAbort = () => cancel?.cancel()
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      let conn: NativeConnection
      try {
        conn = await completionOf<NativeConnection>(id)
      } catch (err) {
        throw (err as { code?: unknown }).code === 'ABORT_ERR' && signal?.aborted ? abortError(signal) : withCallerStack(err)
      }
      if (signal?.aborted) {
        this.native.release(conn, true)
        throw abortError(signal)
      }
      return this.#lend(conn, site)
    } finally {
      signal?.removeEventListener('abort', onAbort)
    }
  }

  #lend(conn: NativeConnection, site: string | undefined): Connection {
    const limit = this.options.leakDetectionMs
    const loan: Loan = {
      native: conn,
      poolId: this.#poolId,
      stopLeakWatch: limit > 0 ? watchLoan(conn.id, conn.key, limit, site ?? acquireSite(this.#lend)) : undefined,
    }
    if (connectChannel.hasSubscribers || reuseChannel.hasSubscribers) {
      const channel = conn.reused ? reuseChannel : connectChannel
      channel.publish({ id: conn.id, key: conn.key, uses: conn.uses, remoteAddress: conn.remoteAddress, remotePort: conn.remotePort })
    }
    return new Connection(loan, this.#releaseFn)
  }

  /**
   * Give a connection back. `keepAliveOk = false` closes it (use when the
   * protocol state is unknown). Releasing twice throws
   * `PCONN_ALREADY_RELEASED`; releasing into another pool throws
   * `ERR_INVALID_ARG_VALUE`. Neither changes any state.
   */
  release(conn: Connection, keepAliveOk = true): void {
    const loan = loanOf(conn)
    if (loan === undefined) throw invalidArgType('conn', 'a Connection from Pool.acquire', conn)
    if (typeof keepAliveOk !== 'boolean') throw invalidArgType('keepAliveOk', 'of type boolean', keepAliveOk)
    if (loan.poolId !== this.#poolId) {
      throw invalidArgValue('conn', 'belongs to another pool; release it to the pool that acquired it')
    }
    try {
      this.native.release(loan.native, keepAliveOk)
    } catch (err) {
      throw fromNative(err)
    }
    loan.stopLeakWatch?.()
  }

  /**
   * Send an HTTP/1.1 request over a pooled connection. The connection goes
   * back to the pool by itself once the body is read (docs/ARCHITECTURE.md
   * says when it is closed instead).
   *
   * ```ts
   * const res = await pool.request('http://127.0.0.1:8080/users/1')
   * const user = await res.body.json()
   * ```
   */
  request(url: string | URL, options?: RequestOptions): Promise<Response> {
    return sendRequest(this, url, options)
  }
  /**
   * WHATWG `fetch` over this pool: resolves with a `Response` (Node's global
   * class), follows redirects, decodes gzip, deflate and br bodies. See
   * `fetch` for what differs from Node's.
   */
  fetch(input: string | URL | Request, init?: Omit<FetchInit, 'pool'>): Promise<globalThis.Response> {
    return fetchWith(this, input, init)
  }

  /**
   * Open connections to `key` (in parallel, within every limit) until
   * `count` are idle, so that the first burst of requests pays no
   * handshake. Resolves with the number idle then (fewer than `count` at a
   * limit, or when some connects failed); rejects only when none is idle,
   * with the last connect's error (`PCONN_CIRCUIT_OPEN` while the key's
   * circuit is not closed). An `http`/`https` key is warmed as `request()`,
   * `fetch` and the Agent use it (an HTTPS server that picks HTTP/2 gets
   * one connection: it carries every request); `tcp`/`tls` keys as
   * `acquire()` uses them.
   */
  warm(key: KeyInput, count: number): Promise<number> {
    let resolved: NativeKey
    try {
      resolved = this.resolveKey(key)
      checkNumber('count', count, 'size')
    } catch (err) {
      return Promise.reject(err)
    }
    return run<number>((id) => this.native.warm(id, resolved, count))
  }

  /** Close every idle connection to `host` (all schemes and ports). Returns how many. */
  flushForHost(host: string): number {
    if (typeof host !== 'string') throw invalidArgType('host', 'of type string', host)
    if (host === '') throw invalidArgValue('host', 'must not be empty', host)
    return this.native.flushForHost(host)
  }

  /**
   * Close idle connections now, reject waiting and later acquires with
   * `PCONN_POOL_CLOSED`, cancel connects in progress, close active ones as
   * they are released. Resolves once every socket of the pool is closed.
   * Calling it again returns the same Promise.
   *
   * On a `shared` pool this closes only this handle: its waiters and later
   * acquires fail with `PCONN_POOL_CLOSED`, its connections go back to the
   * shared pool as they are released, and it resolves once none is on
   * loan. The shared pool closes with its last handle.
   */
  shutdownAll(): Promise<void> {
    this.#shutdown ??= run<void>((id) => this.native.shutdown(id))
    return this.#shutdown
  }

  /** `await using pool = new Pool()` shuts it down at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdownAll()
  }

  /** Whether `shutdownAll` was called. */
  get closed(): boolean {
    return this.#shutdown !== undefined
  }

  /** Connection gauges and totals, for the pool and per key. */
  stats(): PoolStats {
    return toPoolStats(this.native.stats())
  }

  /** @internal Test hook: a panic inside native code must reject, not abort. */
  debugPanic(where: 'sync' | 'async' | 'background'): Promise<void> {
    if (where === 'sync') {
      try {
        this.native.debugPanic(0, where)
      } catch (err) {
        return Promise.reject(fromNative(err))
      }
    }
    return run<void>((id) => this.native.debugPanic(id, where))
  }

  /** @internal Test hook: the `lookup` option's lookups still waiting for an answer. */
  debugLookupsWaiting(): number {
    return this.native.debugLookupsWaiting()
  }

  /**
   * @internal Test hook: operations completed in one batch, each as its
   * fault says; one that cannot be delivered must fail alone.
   */
  debugBatch(faults: ReadonlyArray<'done' | 'panic' | 'unknown-kind'>): Promise<void>[] {
    const ids = faults.map(() => nextOperationId())
    const settled = ids.map((id) => completionOf<void>(id))
    this.native.debugBatch(ids, [...faults])
    return settled
  }
}

/** The caller's stack, without pconn's own frames (from `above` up). */
function acquireSite(above: (...args: never[]) => unknown): string {
  const holder: { stack?: string } = {}
  Error.captureStackTrace(holder, above)
  return (holder.stack ?? '').split('\n').slice(1).join('\n')
}

function checkAcquireOptions(options: AcquireOptions | undefined): { signal?: AbortSignal; timeoutMs?: number } {
  if (options === undefined) return {}
  if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'of type object', options)
  const { signal, acquireTimeoutMs } = options
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidArgType('options.signal', 'an AbortSignal', signal)
  const timeoutMs = acquireTimeoutMs === undefined ? undefined : checkNumber('options.acquireTimeoutMs', acquireTimeoutMs, 'ms')
  return { signal, timeoutMs }
}

/**
 * The native side of the `lookup` option: the I/O thread asks `(id,
 * hostname)`, the user's function answers, and the answer goes back by
 * id. The native pool is held weakly: the threadsafe function that holds
 * `ask` must not keep an unreferenced pool alive.
 */
function askLookup(lookup: LookupFunction): { ask: (id: number, hostname: string) => void; answerTo: (pool: NativePool) => void } {
  let pool: WeakRef<NativePool> | undefined
  const answer = (id: number, addresses: string[] | undefined, error: string | undefined): void => {
    pool?.deref()?.answerLookup(id, addresses, error)
  }
  const ask = (id: number, hostname: string): void => {
    let answered: Promise<unknown>
    try {
      answered = Promise.resolve(lookup(hostname))
    } catch (err) {
      answered = Promise.reject(err)
    }
    answered.then(
      (addresses) => {
        if (Array.isArray(addresses) && addresses.every((a) => typeof a === 'string')) answer(id, addresses as string[], undefined)
        else answer(id, undefined, `lookup must return an array of IP address strings, not ${inspect(addresses)}`)
      },
      (err: unknown) => answer(id, undefined, err instanceof Error ? err.message : String(err)),
    )
  }
  return { ask, answerTo: (native) => void (pool = new WeakRef(native)) }
}
