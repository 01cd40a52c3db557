/**
 * `leakDetectionMs`: warn once, with the stack of the code that acquired it,
 * when a connection is held longer than allowed (like HikariCP's
 * leakDetectionThreshold). Timers are unref'd: they never keep a process up.
 */
import { leakChannel } from './diagnostics.js'

export interface LeakEvent {
  id: number
  key: string
  heldMs: number
  stack: string
}

/**
 * Start watching a loan made at `stack` (the acquirer's call site); call the
 * returned function on release.
 */
export function watchLoan(id: number, key: string, limitMs: number, stack: string): () => void {
  const timer = setTimeout(() => {
    const event: LeakEvent = { id, key, heldMs: limitMs, stack }
    process.emitWarning(`pconn: connection ${id} to ${key} has been held for more than ${limitMs} ms without release; acquired at:\n${stack}`, {
      type: 'PconnLeakWarning',
      code: 'PCONN_LEAK',
    })
    if (leakChannel.hasSubscribers) leakChannel.publish(event)
  }, limitMs)
  timer.unref()
  return () => clearTimeout(timer)
}
