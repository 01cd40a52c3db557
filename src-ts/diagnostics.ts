/**
 * `node:diagnostics_channel` events. Publishing is skipped when nobody
 * subscribes, so they cost one property read when unused.
 *
 * - `pconn:connect`  `{ id, key, ... }`: a new connection was handed out (by `acquire`,
 *   with `uses`, `remoteAddress`, `remotePort`) or carried a `request()` response
 * - `pconn:reuse`    `{ id, key, ... }`: the same, for a connection that served before
 * - `pconn:close`    `{ id, key, reason }`: a connection closed; `reason` is a key of `stats().closedBy`
 * - `pconn:leak`     `{ id, key, heldMs, stack }`: a connection outlived `leakDetectionMs`
 */
import diagnostics from 'node:diagnostics_channel'

export const connectChannel = diagnostics.channel('pconn:connect')
export const reuseChannel = diagnostics.channel('pconn:reuse')
export const closeChannel = diagnostics.channel('pconn:close')
export const leakChannel = diagnostics.channel('pconn:leak')

/** Why a connection was closed (the keys of `stats().closedBy`). */
export type CloseReason = 'idle' | 'lifetime' | 'broken' | 'peer' | 'flush' | 'shutdown' | 'evicted'

export interface CloseEvent {
  id: number
  key: string
  reason: CloseReason
}

export function publishClose(id: number, key: string, reason: string): void {
  if (closeChannel.hasSubscribers) closeChannel.publish({ id, key, reason: reason as CloseReason } satisfies CloseEvent)
}
