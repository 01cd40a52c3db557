/** `Agent`: an undici Dispatcher over a pconn Pool. */
import type { Dispatcher } from 'undici'
import type { PoolOptions, TlsOptions } from '../options.js'
import { Pool } from '../pool.js'
import { channels } from './channels.js'
import { Flight, type FlightHost } from './flight.js'
import { assertRawHandler, unwrapHandler, type AnyHandler } from './handler.js'
import { MockRegistry } from './mock-registry.js'
import { Upgrade } from './upgrade.js'
import { errors, internals, undici } from './peer.js'
import { checkDispatch, checkTimeout, type DispatchOptionsInput } from './request-options.js'

/**
 * How the Agent connects: the part of undici's `connect` options pconn
 * supports. A connect *function* (a custom connector) is not supported.
 */
export interface AgentConnectOptions {
  /**
   * Connect to this Unix domain socket instead of each origin's host. The
   * requests still carry the origin's Host header; connections are keyed
   * by the path. Default: none (TCP to the origin's host).
   */
  socketPath?: string
  /**
   * TLS name (SNI and certificate check) for https origins when the
   * request names none (undici's `servername` dispatch option, or the Host
   * header's name, come first). Ignored for http. Default: the origin's host.
   */
  servername?: string
  /** Connect timeout (ms), as the Pool's `connectTimeoutMs`. Not with `pool`. Default 10000. */
  timeout?: number
  /** As the Pool's `tls.rejectUnauthorized`. Not with `pool`. Default true. */
  rejectUnauthorized?: boolean
  /** As the Pool's `tls.ca`. Not with `pool`. Default: the Mozilla roots plus `NODE_EXTRA_CA_CERTS`. */
  ca?: TlsOptions['ca']
  /** As the Pool's `tls.cert` (client certificate). Not with `pool`. Default: none. */
  cert?: TlsOptions['cert']
  /** As the Pool's `tls.key`. Not with `pool`. Default: none. */
  key?: TlsOptions['key']
}

/**
 * Options of `new Agent(options)`: every pconn {@link PoolOptions} (for the
 * Pool the Agent makes, see there for each default), or `pool` to share
 * one, plus undici's `headersTimeout`, `bodyTimeout` and `connect`.
 */
export interface AgentOptions extends PoolOptions {
  /**
   * Send over this existing pconn Pool instead of a new one: the Agent
   * shares its connections and limits, and does not shut it down on
   * `close()` / `destroy()`. Pool options (and `connect.timeout` or TLS
   * settings) cannot be given with it. Default: a new Pool of the other options.
   */
  pool?: Pool
  /**
   * Time (ms) allowed for the response head once the request is sent:
   * `UND_ERR_HEADERS_TIMEOUT` after. 0 = no limit. A dispatch's own
   * `headersTimeout` wins. Default 300000 (as undici).
   */
  headersTimeout?: number
  /**
   * Time (ms) allowed between two pieces of the response body (and of a
   * streamed request body): `UND_ERR_BODY_TIMEOUT` after. It does not run
   * while the consumer has paused reading. 0 = no limit. A dispatch's own
   * `bodyTimeout` wins. Default 300000 (as undici).
   */
  bodyTimeout?: number
  /** How to connect (see {@link AgentConnectOptions}). Default: TCP (TLS for https) to each origin. */
  connect?: AgentConnectOptions
}

type Callback = (err: Error | null, data: null) => void

/** @internal The Agent's state, under a symbol: `compose()` proxies the Agent, and `#private` fields fail through a Proxy. */
export const kState = Symbol('pconn.undici.Agent')

/** @internal */
export interface AgentState extends FlightHost {
  readonly ownsPool: boolean
  closed: boolean
  destroyed: boolean
  onClosed: Callback[] | null
  onDestroyed: Callback[] | null
  idle: Array<() => void>
  /** The mock pools of an undici MockAgent wrapping this Agent. */
  mocks?: MockRegistry
}

const CONNECT_KEYS = new Set(['socketPath', 'servername', 'timeout', 'rejectUnauthorized', 'ca', 'cert', 'key'])
const TLS_KEYS = ['rejectUnauthorized', 'ca', 'cert', 'key'] as const

function checkConnect(connect: unknown): AgentConnectOptions {
  if (connect === undefined || connect === null) return {}
  if (typeof connect !== 'object') {
    throw new errors.InvalidArgumentError('connect must be an object of connect options (a connector function is not supported by the pconn Agent)')
  }
  const c = connect as Record<string, unknown>
  for (const key of Object.keys(c)) {
    if (c[key] !== undefined && !CONNECT_KEYS.has(key)) {
      throw new errors.InvalidArgumentError(`connect.${key} is not supported by the pconn Agent (supported: ${[...CONNECT_KEYS].join(', ')})`)
    }
  }
  if (c.socketPath !== undefined && (typeof c.socketPath !== 'string' || c.socketPath === '')) {
    throw new errors.InvalidArgumentError('connect.socketPath must be a non-empty string')
  }
  if (c.servername !== undefined && (typeof c.servername !== 'string' || c.servername === '')) {
    throw new errors.InvalidArgumentError('connect.servername must be a non-empty string')
  }
  return c as AgentConnectOptions
}

function makePool(poolOptions: PoolOptions, connect: AgentConnectOptions): Pool {
  const options: PoolOptions = { ...poolOptions }
  if (connect.timeout !== undefined) {
    if (options.connectTimeoutMs !== undefined) {
      throw new errors.InvalidArgumentError('give connect.timeout or connectTimeoutMs, not both')
    }
    options.connectTimeoutMs = connect.timeout
  }
  if (TLS_KEYS.some((k) => connect[k] !== undefined)) {
    const tls: TlsOptions = { ...options.tls }
    for (const k of TLS_KEYS) {
      if (connect[k] === undefined) continue
      if (tls[k] !== undefined) throw new errors.InvalidArgumentError(`give connect.${k} or tls.${k}, not both`)
      Object.assign(tls, { [k]: connect[k] })
    }
    options.tls = tls
  }
  return new Pool(options)
}

/**
 * An undici Dispatcher whose requests run on pconn's native HTTP/1.1 and
 * HTTP/2 client: one line makes fetch, undici's APIs and everything built on them
 * use pconn's pool.
 *
 * ```ts
 * import { Agent } from 'pconn/undici'
 * import { setGlobalDispatcher, interceptors } from 'undici'
 *
 * const agent = new Agent({ maxConnectionsPerHost: 16 })
 * await fetch('http://127.0.0.1:8080/', { dispatcher: agent })  // Node's fetch or undici's
 * setGlobalDispatcher(agent)                                     // plain fetch() too
 * const smart = agent.compose(interceptors.retry(), interceptors.redirect())
 * ```
 *
 * It implements undici's Dispatcher contract (`dispatch` with either
 * handler style, pause/resume/abort, `close()`, `destroy()`), publishes
 * undici's diagnostics channels (so `@opentelemetry/instrumentation-undici`
 * traces it unchanged; see channels.ts for when each is published) and
 * reports undici's error classes (`SocketError`, `HeadersTimeoutError`,
 * ...; connect errors such as `ECONNREFUSED` pass through with their
 * `code`; pconn's error stays as `cause`).
 *
 * `upgrade` and `CONNECT` (WebSocket, `undici.upgrade`, `undici.connect`)
 * hand the connection to `onUpgrade` as a socket (see upgrade.ts).
 *
 * Differences from undici's Agent:
 * - The `expect` header is refused with `NotSupportedError`, as undici
 *   does (use `expectContinue`); a path that is an absolute URL is
 *   refused. HTTP/2 is offered to https origins unless `allowH2: false`
 *   (undici's option, a Pool option here).
 * - `maxRedirections` other than 0 is refused, as in undici 7: use
 *   `interceptors.redirect()`.
 * - Connections are pconn's: keyed and limited by the Pool's options.
 *   `dispatch` always returns true (requests queue in the Pool) and no
 *   `connect`/`disconnect`/`drain` events are emitted.
 * - undici's connect channels are published after the fact (pconn
 *   connects in its native core), and the channels' `socket` has the peer
 *   address only when the origin's host is an IP address.
 *
 * undici (version 7) is a peer dependency of `pconn/undici` only.
 */
/** One origin's entry in `agent.stats` (undici's `PoolStats` shape). */
export interface AgentOriginStats {
  connected: number
  free: number
  pending: number
  queued: number
  running: number
  size: number
}

/** The origin (`scheme://host[:port]`, default ports left out) of a pool key; none for raw Unix keys (`'null'` for raw TCP and TLS ones). */
function originOfKey(key: string): string | undefined {
  if (key.startsWith('unix:')) return undefined
  const hash = key.indexOf('#')
  try {
    return new URL(hash < 0 ? key : key.slice(0, hash)).origin
  } catch {
    return undefined
  }
}

/** Two keys of one origin (over different routes) counted together. */
function sumStats(a: AgentOriginStats, b: AgentOriginStats): AgentOriginStats {
  return {
    connected: a.connected + b.connected,
    free: a.free + b.free,
    pending: a.pending + b.pending,
    queued: a.queued + b.queued,
    running: a.running + b.running,
    size: a.size + b.size,
  }
}

export class Agent extends undici.Dispatcher {
  /** @internal */
  declare readonly [kState]: AgentState

  constructor(options: AgentOptions = {}) {
    super()
    if (typeof options !== 'object' || options === null) throw new errors.InvalidArgumentError('options must be an object')
    const { pool, headersTimeout, bodyTimeout, connect, ...poolOptions } = options
    const connectOptions = checkConnect(connect)
    let shared: Pool | undefined
    if (pool !== undefined) {
      if (!(pool instanceof Pool)) throw new errors.InvalidArgumentError('pool must be a pconn Pool')
      const extra = Object.keys(poolOptions).filter((k) => (poolOptions as Record<string, unknown>)[k] !== undefined)
      if (connectOptions.timeout !== undefined) extra.push('connect.timeout')
      for (const k of TLS_KEYS) if (connectOptions[k] !== undefined) extra.push(`connect.${k}`)
      if (extra.length > 0) {
        throw new errors.InvalidArgumentError(`${extra.join(', ')} cannot be given with pool: they are the pool's own options`)
      }
      shared = pool
    }
    const state: AgentState = {
      pool: shared ?? makePool(poolOptions, connectOptions),
      ownsPool: shared === undefined,
      socketPath: connectOptions.socketPath,
      servername: connectOptions.servername,
      headersTimeout: checkTimeout('headersTimeout', headersTimeout),
      bodyTimeout: checkTimeout('bodyTimeout', bodyTimeout),
      inflight: new Set(),
      closed: false,
      destroyed: false,
      onClosed: null,
      onDestroyed: null,
      idle: [],
      settled() {
        if (state.inflight.size === 0 && state.idle.length > 0) {
          const waiting = state.idle
          state.idle = []
          for (const resolve of waiting) resolve()
        }
      },
    }
    Object.defineProperty(this, kState, { value: state })
    if (internals !== undefined) {
      // undici's MockAgent keeps its mock pools here (see mock-registry.ts).
      state.mocks = new MockRegistry((o, h) => this.#send(o, h, false))
      Object.defineProperty(this, internals.kClients, { value: state.mocks })
    }
  }

  /** The pconn Pool the requests run on (for `stats()`, or to share with `request()`). */
  get pool(): Pool {
    return this[kState].pool
  }

  /**
   * undici's `Agent.stats`: per origin (`'https://api.example.com'`), the
   * shape of undici's `PoolStats`, computed from the pool's `stats()`:
   * `connected` open connections, `free` idle ones, `pending` and `queued`
   * requests waiting at a limit, `running` requests in flight (one per
   * HTTP/1.1 connection on loan, one per HTTP/2 stream), `size` = `pending`
   * + `running`. Origins without a connection or a waiting request are
   * left out; a pool shared with `request()` counts its traffic too.
   */
  get stats(): Record<string, AgentOriginStats> {
    const out: Record<string, AgentOriginStats> = {}
    for (const [key, s] of Object.entries(this[kState].pool.stats().hosts)) {
      if (s.connections === 0 && s.connecting === 0 && s.pending === 0) continue
      const origin = originOfKey(key)
      if (origin === undefined || origin === 'null') continue
      const running = Math.max(0, s.active - s.http2) + s.streams
      const was = out[origin]
      const stats: AgentOriginStats = {
        connected: s.connections,
        free: s.idle,
        pending: s.pending,
        queued: s.pending,
        running,
        size: s.pending + running,
      }
      out[origin] = was === undefined ? stats : sumStats(was, stats)
    }
    return out
  }

  /** Whether `close()` (or `destroy()`) was called. */
  get closed(): boolean {
    return this[kState].closed
  }

  /** Whether the Agent was destroyed (also once `close()` has finished). */
  get destroyed(): boolean {
    return this[kState].destroyed
  }

  /**
   * Start a request (undici's Dispatcher contract). Bad options are
   * reported to `handler.onError` synchronously (and `false` returned), or
   * thrown when the handler has no `onError`.
   */
  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    return this.#send(options, handler, true)
  }

  /**
   * The request's handler unwrapped and the Agent's state checked, as
   * undici's dispatchers do; then (with `mocked`, when an undici MockAgent
   * wraps this Agent) an origin it mocks goes to its mock pool, whose
   * unmatched requests come back here with `mocked` false.
   */
  #send(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler, mocked: boolean): boolean {
    if (handler === null || typeof handler !== 'object') throw new errors.InvalidArgumentError('handler must be an object')
    const raw = unwrapHandler(handler as AnyHandler)
    const state = this[kState]
    try {
      if (options === null || typeof options !== 'object') throw new errors.InvalidArgumentError('opts must be an object.')
      if (state.destroyed || state.onDestroyed !== null) throw new errors.ClientDestroyedError()
      if (state.closed) throw new errors.ClientClosedError()
      const mock = mocked ? state.mocks?.mockFor(options.origin) : undefined
      if (mock !== undefined) return mock.dispatch(options, raw as Dispatcher.DispatchHandler)
      const checked = checkDispatch(options as DispatchOptionsInput)
      const upgrade = checked.request.upgrade !== null || checked.request.method === 'CONNECT'
      assertRawHandler(raw, upgrade)
      if (channels.create.hasSubscribers) channels.create.publish({ request: checked.request })
      if (upgrade) new Upgrade(state, checked, raw).start()
      else new Flight(state, checked, raw).start()
      return true
    } catch (err) {
      if (typeof raw.onError !== 'function') throw err
      raw.onError(err as Error)
      return false
    }
  }

  /**
   * Refuse new requests, wait for those in flight, then destroy (and shut
   * down the Pool, unless it was given as `pool`). A Promise without a
   * callback; the callback gets `(err, null)`.
   */
  override close(): Promise<void>
  override close(callback: Callback): void
  override close(callback?: Callback): Promise<void> | void {
    if (callback === undefined) {
      return new Promise((resolve, reject) => this.close((err) => (err ? reject(err) : resolve())))
    }
    if (typeof callback !== 'function') throw new errors.InvalidArgumentError('invalid callback')
    const state = this[kState]
    if (state.destroyed) {
      const err = new errors.ClientDestroyedError()
      queueMicrotask(() => callback(err, null))
      return
    }
    if (state.closed) {
      if (state.onClosed !== null) state.onClosed.push(callback)
      else queueMicrotask(() => callback(null, null))
      return
    }
    state.closed = true
    state.onClosed = [callback]
    const idle = new Promise<void>((resolve) => {
      if (state.inflight.size === 0) resolve()
      else state.idle.push(resolve)
    })
    idle
      .then(() => this.destroy())
      .then(() =>
        queueMicrotask(() => {
          const callbacks = state.onClosed ?? []
          state.onClosed = null
          for (const cb of callbacks) cb(null, null)
        }),
      )
  }

  /**
   * Fail every request in flight with `err` (default `ClientDestroyedError`),
   * closing their connections, and shut down the Pool unless it was given
   * as `pool`. A Promise without a callback.
   */
  override destroy(): Promise<void>
  override destroy(err: Error | null): Promise<void>
  override destroy(callback: Callback): void
  override destroy(err: Error | null, callback: Callback): void
  override destroy(errOrCallback?: Error | null | Callback, maybeCallback?: Callback): Promise<void> | void {
    let err: Error | null | undefined
    let callback: Callback | undefined
    if (typeof errOrCallback === 'function') callback = errOrCallback
    else {
      err = errOrCallback
      callback = maybeCallback
    }
    if (callback === undefined) {
      return new Promise((resolve, reject) => this.destroy(err ?? null, (e) => (e ? reject(e) : resolve())))
    }
    if (typeof callback !== 'function') throw new errors.InvalidArgumentError('invalid callback')
    const state = this[kState]
    if (state.destroyed) {
      if (state.onDestroyed !== null) state.onDestroyed.push(callback)
      else queueMicrotask(() => callback(null, null))
      return
    }
    const reason = err ?? new errors.ClientDestroyedError()
    state.destroyed = true
    state.onDestroyed = [callback]
    for (const flight of [...state.inflight]) flight.fail(reason)
    const shutdown = state.ownsPool ? state.pool.shutdownAll() : Promise.resolve()
    shutdown
      .catch(() => {})
      .then(() =>
        queueMicrotask(() => {
          const callbacks = state.onDestroyed ?? []
          state.onDestroyed = null
          for (const cb of callbacks) cb(null, null)
        }),
      )
  }

  /** `await using agent = new Agent()` closes it at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this[kState].closed && !this[kState].destroyed) await this.close()
  }
}
