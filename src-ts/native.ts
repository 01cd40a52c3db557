/**
 * The native binding and the channel its async results come back on.
 *
 * Every JavaScript thread that loads pconn (the main thread, each worker)
 * runs this module once and gets its own channel: native operations are
 * started with an id from this thread's counter and complete here, in
 * batches (one call carries every completion that was ready; see
 * src-rs/node/src/record.rs for the layout). This module turns them into
 * Promises and keeps the event loop alive exactly while some operation is
 * pending (an idle pool never holds the process open).
 */
import { fromInfo, fromNative, PconnError } from './errors.js'
import { publishPoolEvent } from './diagnostics.js'
import type * as Binding from '../native/index.js'
import { Completion, CountField, DetailsOffset, EndField, Field, PoolEventField, ResponseField } from '../native/index.js'

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
        `and the optional package pconn-${target}. Reinstall without --no-optional (or --omit=optional); ` +
        `for a local build, install the platform tarball too (\`npm run pack:local\` in the pconn clone makes both); ` +
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
export type NativeRequest = Binding.NativeRequest
export type NativeErrorInfo = Binding.ErrorInfo
/** How an exchange went: its stages' times (ms) and its peer. */
export interface ExchangeDetails {
  queuedMs: number
  connectMs: number
  tlsMs: number
  ttfbMs: number
  retried: boolean
  /** The peer (the proxy, through one); undefined over a Unix socket. */
  remoteAddress: string | undefined
  remotePort: number | undefined
}

/** A detailed response's numbers, from the slab (laid out as `DetailsOffset` says). */
function readDetails(slab: Buffer, at: number): ExchangeDetails {
  const port = slab.readDoubleLE(at + DetailsOffset.Port)
  const length = slab.readDoubleLE(at + DetailsOffset.AddressLength)
  const address = at + DetailsOffset.Address
  return {
    queuedMs: slab.readDoubleLE(at + DetailsOffset.QueuedMs),
    connectMs: slab.readDoubleLE(at + DetailsOffset.ConnectMs),
    tlsMs: slab.readDoubleLE(at + DetailsOffset.TlsMs),
    ttfbMs: slab.readDoubleLE(at + DetailsOffset.HeadMs),
    retried: slab.readDoubleLE(at + DetailsOffset.Retried) === 1,
    remotePort: port < 0 ? undefined : port,
    remoteAddress: length === 0 ? undefined : slab.toString('latin1', address, address + length),
  }
}

/** An HTTP response as the bridge delivers it (see `ResponseField` in src-rs/node/src/record.rs). */
export interface ResponseParts {
  /** Status code and flags: `RESPONSE_STATUS_BITS`, `RESPONSE_HTTP11`, `RESPONSE_HTTP2`, `RESPONSE_REUSED`. */
  statusFlags: number
  /** The connection that carried the exchange. */
  connectionId: number
  /** The batch's bytes: the head at `headStart..headEnd` (latin1: reason, CRLF, `name: value` lines, trailers after an empty line). */
  slab: Buffer
  headStart: number
  headEnd: number
  /** The body read so far: `slab[headEnd..bodyEnd]`, or `body` when it is large. */
  bodyEnd: number
  body: Buffer | undefined
  /** The rest of the body, when it is not complete. */
  stream: NativeBody | undefined
  /** Stage times and the peer (requests made with `detailed` only). */
  details: ExchangeDetails | undefined
}

/** What receives an operation's result: a Promise's two functions, or an object that settles itself (no Promise). */
export interface Pending {
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
  if (failed) op.reject(fromInfo(value as Binding.ErrorInfo))
  else op.resolve(value)
}

const STRIDE = native.COMPLETION_STRIDE
/** How a response record's `statusFlags` pack the status code and flags. */
export const { RESPONSE_STATUS_BITS, RESPONSE_HTTP11, RESPONSE_HTTP2, RESPONSE_REUSED } = native

/**
 * Every completion that was ready: `count` records of `STRIDE` numbers in
 * `meta` (`[id, kind, ...]`), with the bytes they refer to in `slab` and the
 * values that are neither in `objects` (the layout is documented on the
 * native `Completion` kinds). Each record is handled on its own: one that
 * cannot be turned into its result fails its own operation, and the rest
 * of the batch is still delivered.
 */
function onBatch(meta: Float64Array, slab: Buffer, objects: unknown[], count: number): void {
  for (let i = 0, at = 0; i < count; i++, at += STRIDE) {
    try {
      deliver(meta, at, slab, objects)
    } catch (err) {
      undeliverable(meta[at + Field.Id]!, err)
    }
  }
}

/** Settle the operation of the record at `at` (fields as `src-rs/node/src/record.rs` lays them out). */
function deliver(meta: Float64Array, at: number, slab: Buffer, objects: unknown[]): void {
  const id = meta[at + Field.Id]!
  const object = meta[at + Field.Object]!
  switch (meta[at + Field.Kind] as Completion) {
    case Completion.Done:
      settle(id, undefined, false)
      break
    case Completion.Count:
      settle(id, meta[at + CountField.Value], false)
      break
    case Completion.Failed:
      settle(id, objects[object], true)
      break
    case Completion.Connection:
      settle(id, objects[object], false)
      break
    case Completion.Bytes:
      settle(id, object < 0 ? null : objects[object], false)
      break
    case Completion.Response: {
      const bodyObject = meta[at + ResponseField.BodyObject]!
      const rest = meta[at + ResponseField.Rest]!
      const details = meta[at + ResponseField.Details]!
      const parts: ResponseParts = {
        statusFlags: meta[at + ResponseField.Flags]!,
        connectionId: meta[at + ResponseField.ConnectionId]!,
        slab,
        headStart: meta[at + ResponseField.HeadStart]!,
        headEnd: meta[at + ResponseField.HeadEnd]!,
        bodyEnd: meta[at + ResponseField.BodyEnd]!,
        body: bodyObject < 0 ? undefined : (objects[bodyObject] as Buffer),
        stream: rest < 0 ? undefined : (objects[rest] as NativeBody),
        details: details < 0 ? undefined : readDetails(slab, details),
      }
      settle(id, parts, false)
      break
    }
    case Completion.End:
      settle(id, slab.toString('latin1', meta[at + EndField.TrailersStart]!, meta[at + EndField.TrailersEnd]!), false)
      break
    case Completion.PoolEvent: {
      const text = (start: PoolEventField, end: PoolEventField): string => slab.toString('latin1', meta[at + start]!, meta[at + end]!)
      publishPoolEvent(
        meta[at + PoolEventField.Kind]!,
        meta[at + PoolEventField.Value]!,
        () => text(PoolEventField.KeyStart, PoolEventField.KeyEnd),
        () => text(PoolEventField.DetailStart, PoolEventField.DetailEnd),
      )
      break
    }
    case Completion.Lost:
      throw new Error('no error could be created for it natively')
    default:
      throw new Error(`unknown completion kind ${String(meta[at + Field.Kind])}`)
  }
}

/** Fail operation `id`, whose completion could not be turned into its result. */
function undeliverable(id: number, cause: unknown): void {
  const op = pending.get(id)
  if (op === undefined) {
    process.emitWarning(`pconn: a completion could not be delivered: ${String(cause)}`, 'PconnWarning')
    return
  }
  pending.delete(id)
  if (pending.size === 0) keepAlive.unref()
  op.reject(new PconnError('EIO', 'pconn internal error: the result of this operation could not be delivered; please report it', undefined, { cause }))
}

/**
 * This evaluation's completion channel. A test runner that evaluates this
 * module again in the same thread (module resets) gets a second channel:
 * pools made by each evaluation complete to that evaluation.
 */
export const channel = native.initBridge(onBatch)

/** A fresh id for a native operation: unique for the life of the process (53 bits). */
export function nextOperationId(): number {
  return nextId++
}

/** @internal Test hook: continue operation ids from `next`. */
export function debugSkipOperationIds(next: number): void {
  nextId = next
}

/**
 * Wait for the completion of operation `id`, already started. Completions
 * never arrive synchronously, so registering after the start is safe.
 */
export function completionOf<T>(id: number): Promise<T> {
  return new Promise<T>((resolve, reject) => expect(id, { resolve: resolve as (v: unknown) => void, reject }))
}

/** Have operation `id`, already started, settle `receiver` (called once, asynchronously). */
export function expect(id: number, receiver: Pending): void {
  pending.set(id, receiver)
  if (pending.size === 1) keepAlive.ref()
}

/**
 * Start a native operation whose completion settles `receiver`, with no
 * Promise of its own (for bodies read chunk by chunk). `start` receives
 * the id to report under; if it throws, `receiver` is rejected at once
 * and nothing is left pending.
 */
export function startInto(start: (id: number) => void, receiver: Pending): void {
  const id = nextOperationId()
  try {
    start(id)
  } catch (err) {
    receiver.reject(fromNative(err))
    return
  }
  expect(id, receiver)
}

/** Start a native operation and wait for its completion (see `startInto`). */
export function run<T>(start: (id: number) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => startInto(start, { resolve: resolve as (v: unknown) => void, reject }))
}
