/**
 * pconn: a persistent (keep-alive) connection pool with a Rust core.
 *
 * @packageDocumentation
 */
export { Pool, type AcquireOptions } from './pool.js'
export { Connection } from './connection.js'
export { PconnError, type PconnErrorCode, type PeerDetails, type TlsFailureReason } from './errors.js'
export type { PoolOptions, TlsOptions, Pem, CircuitBreakerOptions, LookupFunction } from './options.js'
export type { KeyInput, KeyObject, HostKeyObject, UnixKeyObject } from './key.js'
export type { PoolStats, HostStats, KeyStats, AddressStats, CircuitState, ClosedBy } from './stats.js'
export type { CloseReason, CloseEvent, IdleTimeoutLearnedEvent, CircuitEvent, RequestStartEvent, RequestEndEvent, RequestErrorEvent } from './diagnostics.js'
export type { LeakEvent } from './leak-detector.js'
export { acquire, release, flushForHost, shutdownAll, stats, request, fetch, getDefaultPool } from './default-pool.js'
export type { FetchInit } from './fetch/request.js'
export { Response, ResponseBody } from './http/response.js'
export type { RequestOptions, RequestBodyInit } from './http/request.js'
export type { OutgoingHeaders, IncomingHeaders } from './http/headers.js'
