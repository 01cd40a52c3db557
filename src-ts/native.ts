/**
 * The native binding and the one channel its async results come back on.
 *
 * Native operations are started with a numeric id and report back through
 * a single completion callback (see src-rs/node/src/bridge.rs); this module
 * turns that into Promises, and keeps the event loop alive exactly while
 * some operation is pending (an idle pool never holds the process open).
 */
import { fromInfo, fromNative, type NativeErrorInfo } from './errors.js'
import binding = require('../native/index.js')

export const native = binding
export type NativePool = binding.NativePool
export type NativeKey = binding.NativeKey
export type NativeConnection = binding.NativeConnection
export type NativeBody = binding.NativeBody
export type NativeUpload = binding.NativeUpload

interface Pending {
  resolve(value: unknown, status?: number, head?: string, stream?: NativeBody): void
  reject(error: Error): void
}

const pending = new Map<number, Pending>()
let nextId = 1

// A timer that never fires, referenced only while operations are pending.
const keepAlive = setInterval(() => {}, 2 ** 31 - 1)
keepAlive.unref()

function onComplete(
  id: number,
  error: NativeErrorInfo | null | undefined,
  value: unknown,
  status?: number | null,
  head?: string | null,
  stream?: NativeBody | null,
): void {
  const op = pending.get(id)
  if (op === undefined) return
  pending.delete(id)
  if (pending.size === 0) keepAlive.unref()
  if (error) op.reject(fromInfo(error))
  else op.resolve(value, status ?? undefined, head ?? undefined, stream ?? undefined)
}

native.initBridge(onComplete)

/** A fresh id for a native operation. */
export function nextOperationId(): number {
  const id = nextId
  nextId = nextId >= 0xfffffffe ? 1 : nextId + 1
  return id
}

/**
 * Wait for the completion of operation `id`, already started. Completions
 * arrive through the threadsafe function, never synchronously, so
 * registering after the start is safe.
 */
export function completionOf<T>(id: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
    if (pending.size === 1) keepAlive.ref()
  })
}

/** An HTTP response as the bridge delivers it (see src-rs/node/src/http.rs). */
export interface ResponseParts {
  body: Buffer
  /** Status code; bit 10: HTTP/1.1, bit 11: reused, bit 12: body complete. */
  statusFlags: number
  /** Reason phrase, then `name: value` lines; trailers after an empty line. */
  head: string
  stream: NativeBody | undefined
}

/** Like `completionOf`, for an HTTP request: resolves with the response parts. */
export function responseOf(id: number): Promise<ResponseParts> {
  return new Promise<ResponseParts>((resolve, reject) => {
    pending.set(id, {
      resolve: (body, statusFlags, head, stream) =>
        resolve({ body: body as Buffer, statusFlags: statusFlags ?? 0, head: head ?? '', stream }),
      reject,
    })
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
