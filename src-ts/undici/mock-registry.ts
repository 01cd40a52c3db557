/**
 * What lets undici's `MockAgent` wrap a pconn Agent (`new MockAgent({ agent:
 * new Agent() })`). A MockAgent keeps its mock pools in the wrapped agent's
 * clients map (undici's internal `kClients`) and dispatches through the
 * agent, which must hand each origin's requests to its mock pool. A request
 * no interceptor matches is, when net connect is enabled, sent with the
 * mock pool's own `kDispatch`: pconn points that back at itself, so the
 * request leaves through pconn, not through a connection of undici's.
 */
import type { Dispatcher } from 'undici'
import { internals } from './peer.js'

/** How a request is sent on (pconn's own path, bypassing the mocks). */
export type Send = (options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler) => boolean

/** A mock pool as the MockAgent registers it. */
interface MockDispatcher {
  dispatch: Send
  [key: symbol]: unknown
}

/** An entry of undici's clients map: `{ count, dispatcher }`. */
interface Entry {
  dispatcher?: MockDispatcher
}

export class MockRegistry extends Map<unknown, Entry> {
  readonly #send: Send

  constructor(send: Send) {
    super()
    this.#send = send
  }

  override set(origin: unknown, entry: Entry): this {
    const dispatcher = entry?.dispatcher
    if (dispatcher !== undefined && internals !== undefined) dispatcher[internals.kDispatch] = this.#send
    return super.set(origin, entry)
  }

  /** The mock pool registered for `origin` (a string, as MockAgent normalises it), if any. */
  mockFor(origin: unknown): MockDispatcher | undefined {
    return this.size === 0 ? undefined : this.get(origin)?.dispatcher
  }
}
