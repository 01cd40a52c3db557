/**
 * One HTTP exchange as the native core runs it: the part `request()` and
 * the undici Agent (`pconn/undici`) share. The response arrives as the
 * bridge delivers it (`ResponseParts`); each caller shapes it its own way.
 */
import { fromNative } from '../errors.js'
import { completionOf, nextOperationId, run, type NativeRequest, type NativeRequestOptions, type ResponseParts } from '../native.js'
import type { Target } from '../key.js'
import type { Pool } from '../pool.js'
import { chunkBytes, type OutgoingBody } from './body.js'
import { hasHeader } from './headers.js'

/** What to send. */
export interface ExchangeInit {
  target: Target
  /** A method token, as it goes on the wire. */
  method: string
  /** `[name, value, ...]`. */
  headers: string[] | undefined
  body: OutgoingBody
  /** Per-request settings; absent ones take the native defaults. */
  options: NativeRequestOptions | undefined
}

/** An exchange in flight. */
export interface Exchange {
  /** The response head (and what arrived of the body), or the failure. */
  readonly response: Promise<ResponseParts>
  /** Abort at whatever stage it is (`ABORT_ERR`); nothing once settled. */
  cancel(): void
}

const noCancel = (): void => {}

/**
 * Start an exchange. Bad input (a header with CR or LF, a bad method)
 * throws here, before anything is sent. Pass `options.cancellable` to be
 * able to cancel; a stream body always can.
 */
export function startExchange(pool: Pool, init: ExchangeInit): Exchange {
  const { body } = init
  let { headers, options } = init
  if (body.contentType !== undefined && !hasHeader(headers, 'content-type')) {
    headers = [...(headers ?? []), 'content-type', body.contentType]
  }
  if (body.stream !== undefined) options = { ...options, streamBody: true }
  const id = nextOperationId()
  let handle: NativeRequest | null
  try {
    handle = pool.native.request(id, init.target.native, init.method, headers, body.bytes, options)
  } catch (err) {
    throw fromNative(err)
  }
  const response = completionOf<ResponseParts>(id)
  if (handle === null) return { response, cancel: noCancel }
  const cancel = handle.cancel.bind(handle)
  if (body.stream === undefined) return { response, cancel }
  let sourceError: unknown
  pump(body.stream, handle).catch((err: unknown) => {
    // The exchange stopped taking the body (an early error response, or
    // the exchange failed): the response, if any, is still read.
    if ((err as { code?: unknown }).code === 'PCONN_SOCKET_CLOSED') return
    // The source failed: the request is incomplete and must not look
    // complete to the server.
    sourceError = err
    cancel()
  })
  return {
    response: response.catch((err: unknown) => {
      throw sourceError instanceof Error ? sourceError : err
    }),
    cancel,
  }
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
