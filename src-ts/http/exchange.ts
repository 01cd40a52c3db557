/**
 * One HTTP exchange as the native core runs it: the part `request()`,
 * `fetch()` and the undici Agent (`pconn/undici`) share. The response
 * arrives as the bridge delivers it (`ResponseParts`), to a receiver each
 * caller provides (a Promise's functions, or an object that settles
 * itself); each caller shapes it its own way.
 */
import { RequestFlag } from '../../native/index.js'
import { fromNative } from '../errors.js'
import { expect, nextOperationId, run, type NativeRequest, type Pending, type ResponseParts } from '../native.js'
import type { OriginKey } from '../key.js'
import type { Pool } from '../pool.js'
import { chunkBytes, type OutgoingBody } from './body.js'
import { hasHeader } from './headers.js'

/** What to send. */
export interface ExchangeInit {
  /** The origin's key. */
  key: OriginKey
  /** The request target, as it goes on the wire (path and query). */
  path: string
  /** A method token, as it goes on the wire. */
  method: string
  /** `[name, value, ...]`. */
  headers: string[] | undefined
  body: OutgoingBody
  /** `RequestFlag` bits (a stream body adds `StreamBody` itself). */
  flags: number
  /** Milliseconds; below 0, the default (300 s); 0, no limit. */
  headersTimeoutMs: number
  bodyTimeoutMs: number
}

/**
 * Start an exchange whose result settles `receiver` (a `ResponseParts`, or
 * the failure). Bad input (a header with CR or LF, a bad method) throws
 * here, before anything is sent. Returns the operation's id: with
 * `RequestFlag.Cancellable`, `pool.native.cancel(id)` aborts it.
 */
export function startExchange(pool: Pool, init: ExchangeInit, receiver: Pending): number {
  const { body } = init
  let { headers, flags } = init
  if (body.contentType !== undefined && !hasHeader(headers, 'content-type')) {
    headers = [...(headers ?? []), 'content-type', body.contentType]
  }
  const stream = body.stream
  if (stream !== undefined) flags |= RequestFlag.StreamBody | RequestFlag.Cancellable
  const id = nextOperationId()
  let handle: NativeRequest | null
  try {
    handle = pool.native.request(id, init.key.native, init.path, init.method, headers, body.bytes, flags, init.headersTimeoutMs, init.bodyTimeoutMs)
  } catch (err) {
    throw fromNative(err)
  }
  if (stream === undefined || handle === null) {
    expect(id, receiver)
    return id
  }
  // The source's own failure, if it is what ended the exchange.
  let sourceError: unknown
  expect(id, {
    resolve: (parts) => receiver.resolve(parts),
    reject: (err) => receiver.reject(sourceError instanceof Error ? sourceError : err),
  })
  pump(stream, handle).catch((err: unknown) => {
    // The exchange stopped taking the body (an early error response, or
    // the exchange failed): the response, if any, is still read.
    if ((err as { code?: unknown }).code === 'PCONN_SOCKET_CLOSED') return
    // The source failed: the request is incomplete and must not look
    // complete to the server.
    sourceError = err
    pool.native.cancel(id)
  })
  return id
}

/** The response as a Promise (for callers that await it). */
export function exchangeResponse(pool: Pool, init: ExchangeInit): { id: number; response: Promise<ResponseParts> } {
  let id = 0
  const response = new Promise<ResponseParts>((resolve, reject) => {
    id = startExchange(pool, init, { resolve: resolve as (v: unknown) => void, reject })
  })
  return { id, response }
}

/**
 * Feed a streamed body to the exchange, one chunk in flight at a time. The
 * body is ended only when the source ends cleanly: a failing source must
 * never look like a complete request to the server.
 */
async function pump(source: AsyncIterable<unknown>, handle: NativeRequest): Promise<void> {
  for await (const chunk of source) {
    const bytes = chunkBytes(chunk)
    if (bytes.length > 0) await run<void>((id) => handle.write(id, bytes))
  }
  handle.end()
}
