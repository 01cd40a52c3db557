/**
 * `node:diagnostics_channel` events. Publishing is skipped when nobody
 * subscribes, so they cost one property read when unused.
 *
 * - `pconn:connect`  `{ id, key, ... }`: a new connection was handed out (by `acquire`,
 *   with `uses`, `remoteAddress`, `remotePort`) or carried a `request()` response
 * - `pconn:reuse`    `{ id, key, ... }`: the same, for a connection that served before
 * - `pconn:close`    `{ id, key, reason }`: a connection closed; `reason` is a key of `stats().closedBy`
 * - `pconn:idle-timeout-learned` `{ key, timeoutMs }`: the server of `key` was seen to close an
 *   idle connection sooner than known (`learnIdleTimeout`)
 * - `pconn:circuit`  `{ key, state }`: a key's circuit breaker changed state (`circuitBreaker`)
 * - `pconn:leak`     `{ id, key, heldMs, stack }`: a connection outlived `leakDetectionMs`
 * - `pconn:request:start` `{ key, method, path }`: `request()` was called
 * - `pconn:request:end`   {@link RequestEndEvent}: its response body ended
 * - `pconn:request:error` `{ key, method, path, error, totalMs }`: it failed (before or during the body)
 *
 * A request is measured only while one of the three `pconn:request:*`
 * channels has a subscriber: otherwise no clock is read.
 */
import diagnostics from 'node:diagnostics_channel'
import { PoolEventKind } from '../native/index.js'
import type { CircuitState } from './stats.js'

export const connectChannel = diagnostics.channel('pconn:connect')
export const reuseChannel = diagnostics.channel('pconn:reuse')
export const closeChannel = diagnostics.channel('pconn:close')
export const leakChannel = diagnostics.channel('pconn:leak')
export const idleTimeoutLearnedChannel = diagnostics.channel('pconn:idle-timeout-learned')
export const circuitChannel = diagnostics.channel('pconn:circuit')
export const requestStartChannel = diagnostics.channel('pconn:request:start')
export const requestEndChannel = diagnostics.channel('pconn:request:end')
export const requestErrorChannel = diagnostics.channel('pconn:request:error')

/**
 * A response arrived on connection `id` of `key`: `pconn:connect` when
 * the connection is new, `pconn:reuse` when it served before (for
 * `request()`, `fetch` and the undici Agent alike).
 */
export function publishLoan(id: number, key: string, reused: boolean): void {
  if (connectChannel.hasSubscribers || reuseChannel.hasSubscribers) (reused ? reuseChannel : connectChannel).publish({ id, key })
}

/** Whether anyone listens to the request channels (then requests are timed). */
export function requestsObserved(): boolean {
  return requestStartChannel.hasSubscribers || requestEndChannel.hasSubscribers || requestErrorChannel.hasSubscribers
}

/** What `pconn:request:start` carries; the other two add to it. */
export interface RequestStartEvent {
  /** The pool key, e.g. `'https://api.example.com:443'`. */
  key: string
  method: string
  /** Path and query as sent. */
  path: string
}

/** What `pconn:request:end` carries; durations in milliseconds from the `request()` call. */
export interface RequestEndEvent extends RequestStartEvent {
  connectionId: number
  /** The connection served an earlier request. */
  reused: boolean
  /** Waiting for a connection at a limit. */
  queuedMs: number
  /** Opening the connection (DNS and TCP), when this request was its first; else 0. */
  connectMs: number
  /** Its TLS handshake; else 0. */
  tlsMs: number
  /** Until the response head arrived. */
  ttfbMs: number
  /** Until the body ended. */
  totalMs: number
  /** A stale keep-alive connection made the request go again on a fresh one. */
  retried: boolean
}

/** What `pconn:request:error` carries. */
export interface RequestErrorEvent extends RequestStartEvent {
  error: unknown
  totalMs: number
}

/** Why a connection was closed (the keys of `stats().closedBy`). */
export type CloseReason = 'idle' | 'lifetime' | 'broken' | 'peer' | 'flush' | 'shutdown' | 'evicted'

export interface CloseEvent {
  id: number
  key: string
  reason: CloseReason
}

/** What `pconn:idle-timeout-learned` carries. */
export interface IdleTimeoutLearnedEvent {
  key: string
  /** The shortest idle time after which the server closed a connection; pconn retires idle ones before it. */
  timeoutMs: number
}

/** What `pconn:circuit` carries. */
export interface CircuitEvent {
  key: string
  state: CircuitState
}

/**
 * Publish an event of the pool (see `PoolEventKind` in the binding); its
 * key and detail are read only when the channel has subscribers.
 */
export function publishPoolEvent(kind: PoolEventKind, value: number, key: () => string, detail: () => string): void {
  switch (kind) {
    case PoolEventKind.Closed:
      if (closeChannel.hasSubscribers) closeChannel.publish({ id: value, key: key(), reason: detail() as CloseReason } satisfies CloseEvent)
      break
    case PoolEventKind.IdleTimeoutLearned:
      if (idleTimeoutLearnedChannel.hasSubscribers) idleTimeoutLearnedChannel.publish({ key: key(), timeoutMs: value } satisfies IdleTimeoutLearnedEvent)
      break
    case PoolEventKind.Circuit:
      if (circuitChannel.hasSubscribers) circuitChannel.publish({ key: key(), state: detail() as CircuitState } satisfies CircuitEvent)
      break
  }
}
