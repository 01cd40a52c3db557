/**
 * The two handler styles of undici's `dispatch`. The Agent drives the older
 * callbacks (`onConnect`, `onHeaders`, `onData`, `onComplete`, `onError`),
 * as undici's own Client does; a handler of undici 7's newer style
 * (`onRequestStart`, `onResponseStart`, ... with a controller) is adapted
 * to them by {@link unwrapHandler}.
 */
import type { Duplex } from 'node:stream'
import type { Dispatcher } from 'undici'
import { errors, undici } from './peer.js'

/** The callbacks the Agent calls: undici's older handler interface. */
export interface RawHandler {
  onConnect(abort: (reason?: Error) => void, context?: unknown): void
  onResponseStarted?(): void
  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean | void
  onData(chunk: Buffer): boolean | void
  onComplete(rawTrailers: Buffer[]): void
  onError(err: Error): void
  onBodySent?(chunk: Buffer): void
  onRequestSent?(): void
  /** An upgrade or CONNECT succeeded: the connection is the handler's, as `socket`. */
  onUpgrade?(statusCode: number, rawHeaders: Buffer[], socket: Duplex): void
}

/** A handler as callers pass it: either style, every callback optional. */
export type AnyHandler = Partial<RawHandler> & Dispatcher.DispatchHandler

type NewHandler = Pick<
  Dispatcher.DispatchHandler,
  'onRequestStart' | 'onRequestUpgrade' | 'onResponseStart' | 'onResponseData' | 'onResponseEnd' | 'onResponseError' | 'onResponseStarted'
>

/*
 * UnwrapController and UnwrapHandler below are adapted from undici's
 * lib/handler/unwrap-handler.js (https://github.com/nodejs/undici, MIT
 * License, Copyright (c) Matteo Collina and Undici contributors), which
 * undici does not export. Same behaviour: `pause()` inside a callback makes
 * the adapter return false (pause reading), `resume()` calls the engine's
 * resume, `aborted` turns true only through `abort()`.
 */

const kResume = Symbol('resume')

/** The controller a new-style handler gets. */
class UnwrapController implements Dispatcher.DispatchController {
  #paused = false
  #reason: Error | null = null
  #aborted = false
  readonly #abort: (reason?: Error) => void;
  [kResume]: (() => void) | null = null
  rawHeaders: Buffer[] | null = null
  rawTrailers: Buffer[] | null = null

  constructor(abort: (reason?: Error) => void) {
    this.#abort = abort
  }

  pause(): void {
    this.#paused = true
  }

  resume(): void {
    if (this.#paused) {
      this.#paused = false
      this[kResume]?.()
    }
  }

  abort(reason: Error): void {
    if (!this.#aborted) {
      this.#aborted = true
      this.#reason = reason
      this.#abort(reason)
    }
  }

  get aborted(): boolean {
    return this.#aborted
  }

  get reason(): Error | null {
    return this.#reason
  }

  get paused(): boolean {
    return this.#paused
  }
}

function parseHeaders(raw: Buffer[]): Record<string, string | string[]> {
  return undici.util.parseHeaders(raw)
}

/** A new-style handler behind the old-style interface. */
class UnwrapHandler implements RawHandler {
  readonly #handler: NewHandler
  #controller: UnwrapController | undefined

  constructor(handler: NewHandler) {
    this.#handler = handler
  }

  #ctrl(): UnwrapController {
    // onConnect always comes first; a stray call still gets a controller.
    this.#controller ??= new UnwrapController(() => {})
    return this.#controller
  }

  onConnect(abort: (reason?: Error) => void, context?: unknown): void {
    this.#controller = new UnwrapController(abort)
    this.#handler.onRequestStart?.(this.#controller, context)
  }

  onResponseStarted(): void {
    this.#handler.onResponseStarted?.()
  }

  onUpgrade(statusCode: number, rawHeaders: Buffer[], socket: Duplex): void {
    this.#handler.onRequestUpgrade?.(this.#ctrl(), statusCode, parseHeaders(rawHeaders), socket)
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusMessage: string): boolean {
    const c = this.#ctrl()
    c[kResume] = resume
    c.rawHeaders = rawHeaders
    this.#handler.onResponseStart?.(c, statusCode, parseHeaders(rawHeaders), statusMessage)
    return !c.paused
  }

  onData(chunk: Buffer): boolean {
    const c = this.#ctrl()
    this.#handler.onResponseData?.(c, chunk)
    return !c.paused
  }

  onComplete(rawTrailers: Buffer[]): void {
    const c = this.#ctrl()
    c.rawTrailers = rawTrailers
    this.#handler.onResponseEnd?.(c, parseHeaders(rawTrailers))
  }

  onError(err: Error): void {
    if (!this.#handler.onResponseError) throw new errors.InvalidArgumentError('invalid onError method')
    // As undici: before onConnect (a request refused by dispatch) the controller is undefined.
    this.#handler.onResponseError(this.#controller as UnwrapController, err)
  }
}

/** The handler to drive: a new-style one adapted, an old-style one as it is. */
export function unwrapHandler(handler: AnyHandler): Partial<RawHandler> {
  return typeof handler.onRequestStart === 'function' ? new UnwrapHandler(handler) : handler
}

/** undici's check of an old-style handler (lib/core/util.js assertRequestHandler). */
export function assertRawHandler(handler: Partial<RawHandler>, upgrade = false): asserts handler is RawHandler {
  if (handler instanceof UnwrapHandler) return
  if (typeof handler.onConnect !== 'function') throw new errors.InvalidArgumentError('invalid onConnect method')
  if (typeof handler.onError !== 'function') throw new errors.InvalidArgumentError('invalid onError method')
  if (typeof handler.onBodySent !== 'function' && handler.onBodySent !== undefined) {
    throw new errors.InvalidArgumentError('invalid onBodySent method')
  }
  if (upgrade) {
    // An upgrade or CONNECT ends in onUpgrade, not in a response body.
    if (typeof handler.onUpgrade !== 'function') throw new errors.InvalidArgumentError('invalid onUpgrade method')
    return
  }
  if (typeof handler.onHeaders !== 'function') throw new errors.InvalidArgumentError('invalid onHeaders method')
  if (typeof handler.onData !== 'function') throw new errors.InvalidArgumentError('invalid onData method')
  if (typeof handler.onComplete !== 'function') throw new errors.InvalidArgumentError('invalid onComplete method')
}
