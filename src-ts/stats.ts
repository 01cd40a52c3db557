/** The shape of `pool.stats()`. */
import type { CloseReason } from './diagnostics.js'

/** Connections closed, by reason. */
export type ClosedBy = Record<CloseReason, number>

/** Gauges (now) and totals (since the pool was made) for one key. */
export interface HostStats {
  /** Open connections: idle + active. */
  connections: number
  idle: number
  /** On loan (acquired, not yet released). */
  active: number
  /** Being opened (DNS, TCP, TLS). */
  connecting: number
  /** Acquires waiting at a limit. */
  pending: number
  /** Of the open connections, those speaking HTTP/2 (each carries many requests at once). */
  http2: number
  /** Requests in flight on HTTP/2 connections, one stream each (counted in `active` as their connections are). */
  streams: number
  /** Connections opened. */
  created: number
  /** Acquires served by an existing connection. */
  reused: number
  /** Connections closed. */
  closed: number
  /** Acquires that had to wait. */
  waited: number
  /** Acquires that failed with `PCONN_ACQUIRE_TIMEOUT`. */
  timedOut: number
  closedBy: ClosedBy
}

/** A key's circuit breaker (`circuitBreaker`); always `'closed'` without one. */
export type CircuitState = 'closed' | 'open' | 'half-open'

/** `HostStats` of one key, with what the pool learned of its server. */
export interface KeyStats extends HostStats {
  /**
   * How long the server lets a connection idle before it closes it, as
   * learned from its closes (`learnIdleTimeout`); absent until it closed
   * one, or when forgotten (ten minutes after the last such close).
   */
  learnedIdleTimeoutMs?: number
  circuit: CircuitState
  /** With `spreadAddresses`: the addresses its connections are open to, and how many on each. */
  addresses: AddressStats[]
}

/** An address a key's connections are open to. */
export interface AddressStats {
  /** An IPv4 or IPv6 address. */
  address: string
  connections: number
}

/** `HostStats` for the whole pool, plus one entry per key in use. */
export interface PoolStats extends HostStats {
  /** Keyed by `scheme://host:port`: keys in use, and up to 1,024 quiet ones. */
  hosts: Record<string, KeyStats>
}

interface NativeKeyStats extends HostStats {
  learnedIdleTimeoutMs?: number | null
  circuit?: string | null
  addresses?: AddressStats[] | null
}

interface NativeStats extends HostStats {
  hosts?: Record<string, NativeKeyStats> | null
}

function host(s: HostStats): HostStats {
  const { connections, idle, active, connecting, pending, http2, streams, created, reused, closed, waited, timedOut, closedBy } = s
  return { connections, idle, active, connecting, pending, http2, streams, created, reused, closed, waited, timedOut, closedBy: { ...closedBy } }
}

function keyStats(s: NativeKeyStats): KeyStats {
  const addresses = (s.addresses ?? []).map(({ address, connections }) => ({ address, connections }))
  const stats: KeyStats = { ...host(s), circuit: (s.circuit ?? 'closed') as CircuitState, addresses }
  if (typeof s.learnedIdleTimeoutMs === 'number') stats.learnedIdleTimeoutMs = s.learnedIdleTimeoutMs
  return stats
}

export function toPoolStats(s: NativeStats): PoolStats {
  const hosts: Record<string, KeyStats> = {}
  for (const [k, v] of Object.entries(s.hosts ?? {})) hosts[k] = keyStats(v)
  return { ...host(s), hosts }
}
