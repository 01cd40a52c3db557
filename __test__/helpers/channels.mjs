// Recording node:diagnostics_channel messages for one test.
import diagnostics from 'node:diagnostics_channel'

/** Every message published on channel `name` until the test ends. */
export function record(t, name) {
  const events = []
  const listener = (message) => events.push(message)
  diagnostics.subscribe(name, listener)
  t.teardown(() => diagnostics.unsubscribe(name, listener))
  return events
}
