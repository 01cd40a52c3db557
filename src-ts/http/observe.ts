/**
 * `pconn:request:start`, `:end` and `:error`: one request's stages, made
 * only while someone subscribes (see diagnostics.ts).
 */
import {
  requestEndChannel,
  requestErrorChannel,
  requestStartChannel,
  type RequestEndEvent,
  type RequestStartEvent,
} from '../diagnostics.js'
import type { NativeTarget, ResponseParts } from '../native.js'
import type { Response } from './response.js'

/** One observed request, from its `request()` call to its body's end. */
export class RequestObservation {
  readonly #start = performance.now()
  readonly #event: RequestStartEvent

  constructor(target: NativeTarget, method: string) {
    this.#event = { key: target.key, method, path: target.path }
    if (requestStartChannel.hasSubscribers) requestStartChannel.publish(this.#event)
  }

  /** The head arrived: `end` follows when the body has (now, if it is complete). */
  responded(parts: ResponseParts, response: Response): void {
    const t = parts.details
    const ended = (): void => {
      if (!requestEndChannel.hasSubscribers) return
      requestEndChannel.publish({
        ...this.#event,
        connectionId: parts.connectionId,
        reused: response.reused,
        queuedMs: t?.queuedMs ?? 0,
        connectMs: t?.connectMs ?? 0,
        tlsMs: t?.tlsMs ?? 0,
        ttfbMs: t?.ttfbMs ?? 0,
        totalMs: performance.now() - this.#start,
        retried: t?.retried ?? false,
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
      requestErrorChannel.publish({ ...this.#event, error, totalMs: performance.now() - this.#start })
    }
  }
}
