/**
 * The native binding and the one channel its async results come back on.
 *
 * Native operations are started with a numeric id and report back through
 * a single completion callback (see src-rs/node/src/bridge.rs); this module
 * turns that into Promises, and keeps the event loop alive exactly while
 * some operation is pending (an idle pool never holds the process open).
 */
import { fromInfo, fromNative, type NativeErrorInfo } from './errors.js'
import type * as Binding from '../native/index.js'

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

/** How many native operations are in flight. */
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
 * arrive through the threadsafe function, never synchronously, so
 * registering after the start is safe.
 */
export function completionOf<T>(id: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
    if (pending.size === 1) keepAlive.ref()
  })
}

/** A connection from a waiting acquire, with its grant number if it has one. */
export interface Acquired {
  conn: NativeConnection
  grant: number | undefined
}

/** Like `completionOf`, for an acquire: also yields the hand-over's grant number. */
export function acquisitionOf(id: number): Promise<Acquired> {
  return new Promise<Acquired>((resolve, reject) => {
    pending.set(id, { resolve: (conn, grant) => resolve({ conn: conn as NativeConnection, grant }), reject })
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
  /** The connection that carried the exchange. */
  connectionId: number
}

/** Like `completionOf`, for an HTTP request: resolves with the response parts. */
export function responseOf(id: number): Promise<ResponseParts> {
  return new Promise<ResponseParts>((resolve, reject) => {
    pending.set(id, {
      resolve: (body, status = 0, head = '', stream) =>
        resolve({ body: body as Buffer, statusFlags: status % 8192, head, stream, connectionId: Math.floor(status / 8192) }),
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
