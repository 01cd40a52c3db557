/**
 * `pconn:request:start`, `:end` and `:error`: one request's stages, made
 * only while someone subscribes (see diagnostics.ts).
 */
import {
  requestEndChannel,
  requestErrorChannel,
  requestStartChannel,
  type RequestEndEvent,
  type RequestErrorEvent,
  type RequestStartEvent,
} from '../diagnostics.js'
import type { Target } from '../key.js'
import type { ResponseParts } from '../native.js'
import type { Response } from './response.js'

/** One observed request, from its `request()` call to its body's end. */
export class RequestObservation {
  readonly #start = performance.now()
  readonly #key: string
  readonly #method: string
  readonly #path: string

  constructor(target: Target, method: string) {
    this.#key = target.key
    this.#method = method
    this.#path = target.path
    if (requestStartChannel.hasSubscribers) {
      requestStartChannel.publish({ key: this.#key, method, path: this.#path } satisfies RequestStartEvent)
    }
  }

  /** The head arrived: `end` follows when the body has (now, if it is complete). */
  responded(parts: ResponseParts, response: Response): void {
    const ended = (): void => {
      if (!requestEndChannel.hasSubscribers) return
      const d = parts.details
      // Object literals, not spreads: a spread into a literal takes V8's
      // slow path (measured ~2 us per event against ~30 ns).
      requestEndChannel.publish({
        key: this.#key,
        method: this.#method,
        path: this.#path,
        connectionId: parts.connectionId,
        reused: response.reused,
        queuedMs: d?.queuedMs ?? 0,
        connectMs: d?.connectMs ?? 0,
        tlsMs: d?.tlsMs ?? 0,
        ttfbMs: d?.ttfbMs ?? 0,
        totalMs: performance.now() - this.#start,
        retried: d?.retried ?? false,
      } satisfies RequestEndEvent)
    }
    if (parts.stream === undefined) return ended()
    response.body.once('close', () => {
      if (response.body.readableEnded) ended()
      else this.failed(response.body.errored ?? new Error('the response body was destroyed before its end'))
    })
  }

  failed(error: unknown): void {
    if (requestErrorChannel.hasSubscribers) {
      requestErrorChannel.publish({
        key: this.#key,
        method: this.#method,
        path: this.#path,
        error,
        totalMs: performance.now() - this.#start,
      } satisfies RequestErrorEvent)
    }
  }
}
