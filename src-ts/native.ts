/**
 * The native binding and the channel its async results come back on.
 *
 * Every JavaScript thread that loads pconn (the main thread, each worker)
 * runs this module once and gets its own channel: native operations are
 * started with an id from this thread's counter and complete here, in
 * batches (one call carries every completion that was ready; see
 * src-rs/node/src/bridge.rs for the layout). This module turns them into
 * Promises and keeps the event loop alive exactly while some operation is
 * pending (an idle pool never holds the process open).
 */
import { fromInfo, fromNative, type NativeErrorInfo } from './errors.js'
import { publishClose } from './diagnostics.js'
import type * as Binding from '../native/index.js'
import { Completion } from '../native/index.js'

/**
 * Load the prebuilt binary for this platform (a local build in ./native,
 * else the optional package `pconn-<platform>`), or explain what to do.
 */
function load(): typeof Binding {
  try {
    return require('../native/index.js') as typeof Binding
  } catch (err) {
    const target = `${process.platform}-${process.arch}${libcSuffix()}`
    throw new Error(
      `pconn: no native binding could be loaded for ${target}. Tried ./native/pconn.${target}.node ` +
        `and the optional package pconn-${target}. Reinstall without --no-optional (or --omit=optional), ` +
        `or build from source in a clone: \`npm ci && npm run build\` (needs a Rust toolchain). Cause: ${(err as Error).message}`,
      { cause: err },
    )
  }
}

/** `-gnu` or `-musl` on Linux (as napi-rs names its packages), else nothing. */
function libcSuffix(): string {
  if (process.platform !== 'linux') return ''
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined
  return report?.header?.glibcVersionRuntime ? '-gnu' : '-musl'
}

export const native = load()
export type NativePool = Binding.NativePool
export type NativeKey = Binding.NativeKey
export type NativeConnection = Binding.NativeConnection
export type NativeBody = Binding.NativeBody
export type NativeUpload = Binding.NativeUpload

/** An HTTP response as the bridge delivers it. */
export interface ResponseParts {
  /** Status code; bit 10: HTTP/1.1, bit 11: reused, bit 12: body complete. */
  statusFlags: number
  /** The connection that carried the exchange. */
  connectionId: number
  /** Reason phrase, then `name: value` lines; trailers after an empty line. */
  head: string
  body: Buffer
  stream: NativeBody | undefined
}

interface Pending {
  resolve(value: unknown): void
  reject(error: Error): void
}

const pending = new Map<number, Pending>()
let nextId = 1

// A timer that never fires, referenced only while operations are pending.
const keepAlive = setInterval(() => {}, 2 ** 31 - 1)
keepAlive.unref()

function settle(id: number, value: unknown, failed: boolean): void {
  const op = pending.get(id)
  if (op === undefined) return
  pending.delete(id)
  if (pending.size === 0) keepAlive.unref()
  if (failed) op.reject(fromInfo(value as NativeErrorInfo))
  else op.resolve(value)
}

/** Every completion that was ready, flattened: `[id, kind, ...values]` in the first `length` slots. */
function onBatch(batch: unknown[], length: number): void {
  let i = 0
  while (i < length) {
    const id = batch[i++] as number
    const kind = batch[i++] as Completion
    switch (kind) {
      case Completion.Done:
        settle(id, undefined, false)
        break
      case Completion.Failed:
        settle(id, batch[i++], true)
        break
      case Completion.Connection:
      case Completion.Bytes:
      case Completion.End:
        settle(id, batch[i++], false)
        break
      case Completion.Response: {
        const parts: ResponseParts = {
          statusFlags: batch[i] as number,
          connectionId: batch[i + 1] as number,
          head: batch[i + 2] as string,
          body: batch[i + 3] as Buffer,
          stream: batch[i + 4] as NativeBody | undefined,
        }
        i += 5
        settle(id, parts, false)
        break
      }
      case Completion.Closed:
        publishClose(batch[i] as number, batch[i + 1] as string, batch[i + 2] as string)
        i += 3
        break
      default:
        throw new Error(`pconn: unknown completion kind ${String(kind)}`)
    }
  }
}

native.initBridge(onBatch)

/** How many native operations are in flight on this thread. */
export function inFlight(): number {
  return pending.size
}

/** A fresh id for a native operation. */
export function nextOperationId(): number {
  const id = nextId
  nextId = nextId >= 0xfffffffe ? 1 : nextId + 1
  return id
}

/**
 * Wait for the completion of operation `id`, already started. Completions
 * never arrive synchronously, so registering after the start is safe.
 */
export function completionOf<T>(id: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
    if (pending.size === 1) keepAlive.ref()
  })
}

/**
 * Start a native operation and wait for its completion. `start` receives
 * the id to report under; if it throws, the Promise rejects and nothing is
 * left pending.
 */
export function run<T>(start: (id: number) => void): Promise<T> {
  const id = nextOperationId()
  try {
    start(id)
  } catch (err) {
    return Promise.reject(fromNative(err))
  }
  return completionOf<T>(id)
}
