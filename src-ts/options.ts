/**
 * Pool options: what each one means, its default, and its validation.
 * The defaults come from the native core (its `PoolConfig::default()`), so
 * they have one home; only `leakDetectionMs` is the façade's own.
 */
import http from 'node:http'
import { invalidArgType, invalidArgValue } from './errors.js'
import { native } from './native.js'

/** A PEM string or buffer, or a list of them. */
export type Pem = string | Uint8Array | ReadonlyArray<string | Uint8Array>

/** TLS settings for every `https` and `tls` connection of a pool. */
export interface TlsOptions {
  /**
   * Which certificates to trust. PEM certificates: these only (a server
   * certificate that is exactly one of them is trusted even when it is a
   * self-signed CA certificate, as `openssl req -x509` makes; its name is
   * still checked). `'system'`: the operating system's store. Default: the
   * Mozilla roots (webpki-roots) plus the file named by `NODE_EXTRA_CA_CERTS`,
   * as Node does (a self-signed certificate in that file is trusted when
   * served as is).
   */
  ca?: Pem | 'system'
  /** Client certificate chain (PEM), for mutual TLS. Needs `key`. */
  cert?: Pem
  /** Private key (PEM) of `cert`. */
  key?: Pem
  /**
   * Verify the server's certificate and hostname. Default `true`.
   * `false` accepts any certificate: anyone on the path can read and change
   * the traffic. Only for tests against self-signed servers.
   */
  rejectUnauthorized?: boolean
  /** Name sent in SNI and verified, instead of the URL's host. Becomes part of the pool key. */
  servername?: string
  /** ALPN protocols to offer, e.g. `['http/1.1']`. Default: none. */
  alpn?: readonly string[]
}

/** `circuitBreaker`: when a key's circuit opens, and for how long. */
export interface CircuitBreakerOptions {
  /** Connect failures in a row that open the circuit (an integer ≥ 1). */
  failures: number
  /** How long (ms) the circuit stays open before a trial connect. */
  cooldownMs: number
}

/**
 * `lookup`: resolves a host name to IP addresses (strings, IPv4 or IPv6),
 * at once or through a Promise. A throw or rejection fails the connect
 * with `ENOTFOUND` and the error's message as `cause`.
 */
export type LookupFunction = (hostname: string) => readonly string[] | Promise<readonly string[]>

/** Options of `new Pool(options)`. Every field is optional. */
export interface PoolOptions {
  /** Idle connections kept per key; more are closed on release. Default 256. */
  maxIdlePerHost?: number
  /**
   * Idle connections kept ready for every key in use: when a key has fewer
   * idle (after its first connection opens, when a request takes one, or
   * when the idle timeout or the server closes one), pconn opens more in
   * the background, within every limit and never while the key's circuit
   * breaker is not closed. At most `maxIdlePerHost`. See also
   * `pool.warm(key, count)`. Default 0 (none).
   */
  minIdlePerHost?: number
  /** Idle + active + connecting connections per key. Default Infinity. */
  maxConnectionsPerHost?: number
  /** Idle + active + connecting connections over all keys. Default Infinity. */
  maxConnections?: number
  /** Acquires allowed to wait at the limits before `PCONN_QUEUE_FULL`. Default Infinity. */
  maxPending?: number
  /** Close a connection idle this long (ms); a server's `Keep-Alive: timeout` may lower it. Default 4000. */
  idleTimeoutMs?: number
  /** Retire connections this old (ms), less up to 10% (at most 10 s) of random jitter; 0 = never. Default 0. */
  maxLifetimeMs?: number
  /** Retire a connection after this many checkouts/requests; 0 = unlimited. Default 0. */
  maxUses?: number
  /** Which idle connection to hand out first: most recent (`'lifo'`) or oldest (`'fifo'`). Default `'lifo'`. */
  scheduling?: 'lifo' | 'fifo'
  /** Give up a connect (DNS + TCP + TLS) after this long (ms): `PCONN_CONNECT_TIMEOUT`. Default 10000. */
  connectTimeoutMs?: number
  /** Give up waiting at a limit after this long (ms): `PCONN_ACQUIRE_TIMEOUT`; 0 = wait forever. Default 0. */
  acquireTimeoutMs?: number
  /** Warn (with the acquirer's stack) when a connection is held longer (ms); 0 = off. Default 0. */
  leakDetectionMs?: number
  /** Reuse DNS answers this long (ms); 0 = resolve on every connect. Default 0. */
  dnsCacheMs?: number
  /** TLS settings. */
  tls?: TlsOptions
  /** Disable Nagle's algorithm (TCP_NODELAY). Default true. */
  noDelay?: boolean
  /** TCP keep-alive probe delay (ms); 0 = TCP keep-alive off. Default 1000. */
  keepAliveInitialDelayMs?: number
  /**
   * Largest response head `request()` accepts, in bytes (status line,
   * headers and the blank line), as node's `maxHeaderSize`. A larger head
   * fails with `PCONN_HTTP_PARSE`. Default: node's `http.maxHeaderSize`
   * (16384 unless node runs with `--max-http-header-size`).
   */
  maxHeaderSize?: number
  /**
   * HTTPS requests (`request()`, `fetch`, the Agent) offer HTTP/2 by ALPN
   * (`h2`, then `http/1.1`) and the server chooses; an HTTP/2 connection
   * carries many requests at once, up to the server's limit of concurrent
   * streams. `false` offers only HTTP/1.1. Raw `acquire()` of an `https`
   * key always gets HTTP/1.1 (its bytes are the caller's). Default true,
   * as undici 8's `allowH2`.
   */
  allowH2?: boolean
  /**
   * Learn each key's server idle timeout: when the server closes a
   * connection that sat idle in the pool, pconn keeps the shortest such
   * idle time seen in the last ten minutes and from then on retires that
   * key's idle connections before it (at 80 % of it or 500 ms before it,
   * whichever is sooner, but not before half of it), so a request never
   * lands on a connection the server is closing. Shown as
   * `stats().hosts[key].learnedIdleTimeoutMs`, published on
   * `pconn:idle-timeout-learned`. A lower `Keep-Alive: timeout=` hint or
   * `idleTimeoutMs` still wins. Default true.
   */
  learnIdleTimeout?: boolean
  /**
   * When a host name resolves to several addresses, open each new
   * connection of a key to the address with the fewest of its connections
   * (open or being opened; DNS order on a tie, IPv6/IPv4 racing kept); an
   * address that failed to connect is tried last for 10 s. Connections
   * already open stay where they are. Shown as
   * `stats().hosts[key].addresses`. `false` always tries the addresses in
   * DNS order. Default true.
   */
  spreadAddresses?: boolean
  /**
   * Resolve host names with this function instead of the system resolver
   * (service discovery, tests). Its answers are cached like the system's
   * (`dnsCacheMs`) and shared by concurrent connects. A `shared` pool uses
   * the function of the thread that made it (while that thread lives);
   * other threads must pass one too. Default: none (the system resolver).
   */
  lookup?: LookupFunction
  /**
   * Per-key circuit breaker: after `failures` connect failures in a row
   * for a key (refused, timed out, TLS handshake or DNS failure), its
   * requests and acquires fail at once with `PCONN_CIRCUIT_OPEN` (the last
   * failure is the error's `cause`) and its queued acquires fail too;
   * after `cooldownMs` one trial connect is let through (half-open): its
   * success closes the circuit, its failure opens it again. Other keys are
   * unaffected. Shown as `stats().hosts[key].circuit`, published on
   * `pconn:circuit`. Default: none (off).
   */
  circuitBreaker?: CircuitBreakerOptions
  /**
   * Send connections through a proxy: `'http://[user:pass@]host:port'`
   * (every key: HTTP, HTTPS and raw TCP/TLS, through a `CONNECT` tunnel),
   * `'https://...'` (the same over TLS to the proxy, checked with `tls`),
   * `'socks5h://[user:pass@]host[:1080]'` (SOCKS5, the proxy resolves the
   * target's name) or `'socks5://...'` (pconn resolves it first), or `'env'` for `HTTP_PROXY` / `HTTPS_PROXY` / `NO_PROXY` (and their
   * lower-case forms, which win) as undici's `EnvHttpProxyAgent` reads
   * them, for HTTP and HTTPS keys only, read once when the pool is made.
   * Proxied connections are keyed with their proxy and never serve direct
   * requests. A refused tunnel fails with `PCONN_PROXY` and the proxy's
   * `statusCode`. Default: none (every connection direct).
   */
  proxy?: string
  /**
   * Open a handle onto the process-wide pool of this name instead of a new
   * pool: every thread (main or worker_threads) that passes the same name
   * shares its connections and its limits (`maxConnectionsPerHost` holds
   * across all of them). The first thread's options make the pool; later
   * ones must pass the same options (else `ERR_INVALID_ARG_VALUE`).
   * `shutdownAll()` closes only the calling handle; the pool closes with
   * its last handle. Default: none (a pool of this thread's own).
   */
  shared?: string
}

/** Options after defaults and validation. */
export interface ResolvedOptions {
  maxIdlePerHost: number
  minIdlePerHost: number
  maxConnectionsPerHost: number
  maxConnections: number
  maxPending: number
  idleTimeoutMs: number
  maxLifetimeMs: number
  maxUses: number
  scheduling: 'lifo' | 'fifo'
  connectTimeoutMs: number
  acquireTimeoutMs: number
  leakDetectionMs: number
  dnsCacheMs: number
  tls: Required<Pick<TlsOptions, 'rejectUnauthorized'>> & Omit<TlsOptions, 'rejectUnauthorized'>
  noDelay: boolean
  keepAliveInitialDelayMs: number
  maxHeaderSize: number
  allowH2: boolean
  learnIdleTimeout: boolean
  circuitBreaker: CircuitBreakerOptions | undefined
  spreadAddresses: boolean
  lookup: LookupFunction | undefined
  proxy: string | undefined
  shared: string | undefined
}

const core = native.defaultPoolOptions()
const unlimited = (n: number | null | undefined): number => n ?? Infinity

/** Every default, as the native core defines it. */
export const DEFAULTS: Readonly<Omit<ResolvedOptions, 'tls'>> = Object.freeze({
  maxIdlePerHost: core.maxIdlePerHost,
  minIdlePerHost: core.minIdlePerHost,
  maxConnectionsPerHost: unlimited(core.maxConnectionsPerHost),
  maxConnections: unlimited(core.maxConnections),
  maxPending: unlimited(core.maxPending),
  idleTimeoutMs: core.idleTimeoutMs,
  maxLifetimeMs: core.maxLifetimeMs,
  maxUses: core.maxUses,
  scheduling: core.fifo ? 'fifo' : 'lifo',
  connectTimeoutMs: core.connectTimeoutMs,
  acquireTimeoutMs: core.acquireTimeoutMs,
  leakDetectionMs: 0,
  dnsCacheMs: core.dnsCacheMs,
  noDelay: core.noDelay,
  keepAliveInitialDelayMs: core.keepAliveInitialDelayMs,
  maxHeaderSize: http.maxHeaderSize,
  allowH2: core.allowH2,
  learnIdleTimeout: core.learnIdleTimeout,
  circuitBreaker: undefined,
  spreadAddresses: core.spreadAddresses,
  lookup: undefined,
  proxy: undefined,
  shared: undefined,
})

/** Largest value a count or duration may take (fits u32 / a timer). */
const MAX_COUNT = 0xffff_ffff
const MAX_MS = 2 ** 31 - 1

type Limit = 'count' | 'cap' | 'limit' | 'ms' | 'size'
const NUMERIC: Record<string, Limit> = {
  maxIdlePerHost: 'cap',
  minIdlePerHost: 'count',
  maxConnectionsPerHost: 'limit',
  maxConnections: 'limit',
  maxPending: 'limit',
  idleTimeoutMs: 'ms',
  maxLifetimeMs: 'ms',
  maxUses: 'count',
  connectTimeoutMs: 'ms',
  acquireTimeoutMs: 'ms',
  leakDetectionMs: 'ms',
  dnsCacheMs: 'ms',
  keepAliveInitialDelayMs: 'ms',
  maxHeaderSize: 'size',
}
const BOOLEAN = ['noDelay', 'allowH2', 'learnIdleTimeout', 'spreadAddresses'] as const
const KNOWN = new Set([...Object.keys(NUMERIC), ...BOOLEAN, 'scheduling', 'tls', 'proxy', 'shared', 'circuitBreaker', 'lookup'])

/**
 * Check a number option: a non-negative integer; `cap`s and `limit`s may be
 * Infinity; `limit`s and `size`s must be at least 1.
 */
export function checkNumber(name: string, value: unknown, kind: Limit): number {
  if (typeof value !== 'number' || Number.isNaN(value)) throw invalidArgType(name, 'of type number', value)
  if ((kind === 'limit' || kind === 'cap') && value === Infinity) return value
  if (!Number.isInteger(value) || value < 0) throw invalidArgValue(name, 'must be a non-negative integer', value)
  if (kind === 'limit' && value < 1) throw invalidArgValue(name, 'must be at least 1 (or Infinity)', value)
  if (kind === 'size' && value < 1) throw invalidArgValue(name, 'must be at least 1', value)
  if (value > (kind === 'ms' ? MAX_MS : MAX_COUNT)) throw invalidArgValue(name, 'is too large', value)
  return value
}

function checkCircuitBreaker(value: unknown): CircuitBreakerOptions {
  if (typeof value !== 'object' || value === null) throw invalidArgType('options.circuitBreaker', 'an object { failures, cooldownMs }', value)
  const given = value as Record<string, unknown>
  for (const k of Object.keys(given)) {
    if (k !== 'failures' && k !== 'cooldownMs') throw invalidArgValue(`options.circuitBreaker.${k}`, 'is not a known circuitBreaker option (failures, cooldownMs)')
  }
  if (given.failures === undefined || given.cooldownMs === undefined) {
    throw invalidArgValue('options.circuitBreaker', 'needs both failures and cooldownMs', value)
  }
  const failures = checkNumber('options.circuitBreaker.failures', given.failures, 'size')
  return { failures, cooldownMs: checkNumber('options.circuitBreaker.cooldownMs', given.cooldownMs, 'ms') }
}

function checkPem(name: string, value: unknown): Buffer | undefined {
  if (value === undefined) return undefined
  const parts = Array.isArray(value) ? value : [value]
  const buffers = parts.map((p: unknown) => {
    if (typeof p === 'string') return Buffer.from(p)
    if (p instanceof Uint8Array) return Buffer.from(p.buffer, p.byteOffset, p.byteLength)
    throw invalidArgType(name, 'a PEM string, Buffer or an array of them', p)
  })
  return Buffer.concat(buffers.flatMap((b) => [b, Buffer.from('\n')]))
}

function checkTls(value: unknown): ResolvedOptions['tls'] {
  if (value === undefined) return { rejectUnauthorized: core.tls.rejectUnauthorized }
  if (typeof value !== 'object' || value === null) throw invalidArgType('options.tls', 'of type object', value)
  const tls = value as Record<string, unknown>
  for (const k of Object.keys(tls)) {
    if (!['ca', 'cert', 'key', 'rejectUnauthorized', 'servername', 'alpn'].includes(k)) {
      throw invalidArgValue(`options.tls.${k}`, 'is not a known TLS option (ca, cert, key, rejectUnauthorized, servername, alpn)')
    }
  }
  const rejectUnauthorized = tls.rejectUnauthorized ?? core.tls.rejectUnauthorized
  if (typeof rejectUnauthorized !== 'boolean') throw invalidArgType('options.tls.rejectUnauthorized', 'of type boolean', rejectUnauthorized)
  if (tls.servername !== undefined && (typeof tls.servername !== 'string' || tls.servername === '')) {
    throw invalidArgType('options.tls.servername', 'a non-empty string', tls.servername)
  }
  if (tls.alpn !== undefined && (!Array.isArray(tls.alpn) || !tls.alpn.every((p) => typeof p === 'string' && p.length > 0 && p.length < 256))) {
    throw invalidArgType('options.tls.alpn', 'an array of non-empty strings', tls.alpn)
  }
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    throw invalidArgValue('options.tls', 'must set cert and key together')
  }
  if (tls.ca !== 'system') checkPem('options.tls.ca', tls.ca)
  checkPem('options.tls.cert', tls.cert)
  checkPem('options.tls.key', tls.key)
  return { ...(tls as TlsOptions), rejectUnauthorized }
}

/** Validate options and fill in defaults. Throws before anything is created. */
export function resolveOptions(options: unknown): ResolvedOptions {
  if (options === undefined) return { ...DEFAULTS, tls: { rejectUnauthorized: core.tls.rejectUnauthorized } }
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw invalidArgType('options', 'of type object', options)
  }
  const given = options as Record<string, unknown>
  for (const k of Object.keys(given)) {
    if (!KNOWN.has(k)) throw invalidArgValue(`options.${k}`, 'is not a known Pool option; see the PoolOptions type for the list')
  }
  const out: Record<string, unknown> = { ...DEFAULTS }
  for (const [name, kind] of Object.entries(NUMERIC)) {
    if (given[name] !== undefined) out[name] = checkNumber(`options.${name}`, given[name], kind)
  }
  if (given.scheduling !== undefined) {
    if (typeof given.scheduling !== 'string') throw invalidArgType('options.scheduling', 'of type string', given.scheduling)
    if (given.scheduling !== 'lifo' && given.scheduling !== 'fifo') {
      throw invalidArgValue('options.scheduling', "must be 'lifo' or 'fifo'", given.scheduling)
    }
    out.scheduling = given.scheduling
  }
  for (const name of BOOLEAN) {
    if (given[name] === undefined) continue
    if (typeof given[name] !== 'boolean') throw invalidArgType(`options.${name}`, 'of type boolean', given[name])
    out[name] = given[name]
  }
  if (given.proxy !== undefined) {
    // The URL itself is checked natively, where it is parsed.
    if (typeof given.proxy !== 'string') throw invalidArgType('options.proxy', "a proxy URL or 'env'", given.proxy)
    out.proxy = given.proxy
  }
  if (given.shared !== undefined) {
    if (typeof given.shared !== 'string') throw invalidArgType('options.shared', 'of type string', given.shared)
    if (given.shared === '') throw invalidArgValue('options.shared', 'must not be empty', given.shared)
    out.shared = given.shared
  }
  if ((out.minIdlePerHost as number) > (out.maxIdlePerHost as number)) {
    throw invalidArgValue('options.minIdlePerHost', `must not exceed maxIdlePerHost (${String(out.maxIdlePerHost)})`, out.minIdlePerHost)
  }
  if (given.circuitBreaker !== undefined) out.circuitBreaker = checkCircuitBreaker(given.circuitBreaker)
  if (given.lookup !== undefined) {
    if (typeof given.lookup !== 'function') throw invalidArgType('options.lookup', 'of type function', given.lookup)
    out.lookup = given.lookup
  }
  out.tls = checkTls(given.tls)
  return out as unknown as ResolvedOptions
}

const finite = (n: number): number | undefined => (n === Infinity ? undefined : n)

/** The shape the native pool takes. */
export function toNative(o: ResolvedOptions) {
  return {
    maxIdlePerHost: Math.min(o.maxIdlePerHost, MAX_COUNT),
    minIdlePerHost: o.minIdlePerHost,
    maxConnectionsPerHost: finite(o.maxConnectionsPerHost),
    maxConnections: finite(o.maxConnections),
    maxPending: finite(o.maxPending),
    idleTimeoutMs: o.idleTimeoutMs,
    maxLifetimeMs: o.maxLifetimeMs,
    maxUses: o.maxUses,
    fifo: o.scheduling === 'fifo',
    connectTimeoutMs: o.connectTimeoutMs,
    acquireTimeoutMs: o.acquireTimeoutMs,
    dnsCacheMs: o.dnsCacheMs,
    noDelay: o.noDelay,
    keepAliveInitialDelayMs: o.keepAliveInitialDelayMs,
    maxHeaderSize: o.maxHeaderSize,
    allowH2: o.allowH2,
    learnIdleTimeout: o.learnIdleTimeout,
    spreadAddresses: o.spreadAddresses,
    circuitBreaker: o.circuitBreaker && { failures: o.circuitBreaker.failures, cooldownMs: o.circuitBreaker.cooldownMs },
    proxy: o.proxy,
    // This thread's view: a worker's process.env is its own copy.
    proxyEnv: o.proxy === 'env' ? definedOnly(process.env) : undefined,
    tls: {
      ca: o.tls.ca === 'system' ? undefined : checkPem('options.tls.ca', o.tls.ca),
      caSystem: o.tls.ca === 'system',
      cert: checkPem('options.tls.cert', o.tls.cert),
      key: checkPem('options.tls.key', o.tls.key),
      rejectUnauthorized: o.tls.rejectUnauthorized,
      servername: o.tls.servername,
      alpn: [...(o.tls.alpn ?? [])],
    },
  }
}

function definedOnly(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(env)) if (value !== undefined) out[name] = value
  return out
}
