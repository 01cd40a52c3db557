import type { NativeErrorInfo } from './native.js'

/**
 * Errors thrown or rejected by pconn. Every error has a string `code`:
 * the contract's `PCONN_*` codes, Node's `ERR_INVALID_ARG_*`, errno names
 * such as `ECONNREFUSED`, or `ABORT_ERR`.
 */

/** Every code a pconn operation can fail with, besides errno names. */
export type PconnErrorCode =
  | 'PCONN_POOL_CLOSED'
  | 'PCONN_QUEUE_FULL'
  | 'PCONN_ACQUIRE_TIMEOUT'
  | 'PCONN_CONNECT_TIMEOUT'
  | 'PCONN_TLS'
  | 'PCONN_ALREADY_RELEASED'
  | 'PCONN_SOCKET_CLOSED'
  | 'PCONN_HEADERS_TIMEOUT'
  | 'PCONN_BODY_TIMEOUT'
  | 'PCONN_HTTP_PARSE'
  | 'PCONN_PROXY'
  | 'PCONN_CIRCUIT_OPEN'
  | 'ABORT_ERR'
  | 'ERR_INVALID_ARG_TYPE'
  | 'ERR_INVALID_ARG_VALUE'

/** Why a TLS handshake failed (`PCONN_TLS`). */
export type TlsFailureReason =
  | 'unknown-issuer'
  | 'hostname-mismatch'
  | 'expired'
  | 'not-yet-valid'
  | 'protocol'
  | 'bad-certificate'
  | 'config'
  | 'certificate-required'

/** Where a failure happened: the peer an operation was for. */
export interface PeerDetails {
  /**
   * For `PCONN_TLS`: why the handshake failed. For `PCONN_SOCKET_CLOSED`:
   * `'chunked-eof'` when the server closed in the middle of a chunked body.
   */
  reason?: TlsFailureReason | 'chunked-eof'
  /** The host of the key the operation was for. */
  host?: string
  /** Its port. */
  port?: number
  /**
   * The IP address the failure happened at: the connect attempt's, or once
   * connected the connection's peer (the proxy, through one).
   */
  address?: string
  /** For `PCONN_PROXY`: the status the proxy answered `CONNECT` with. */
  statusCode?: number
  /** For system errors, as Node's: the negated OS error number (`-111` for `ECONNREFUSED` on Linux). */
  errno?: number
  /** For system errors, as Node's: the call that failed (`connect`, `getaddrinfo`). */
  syscall?: string
}

/**
 * An error from the pool, a connection or the network. Errors of a
 * connection attempt, a request, a body or a connection's I/O name their
 * key in the message (`... (https://api.example.com:443)`), carry `host`,
 * `port` and, when known, `address`, and keep the underlying error's
 * message as `cause`.
 */
export class PconnError extends Error implements PeerDetails {
  /** Stable code to switch on: a {@link PconnErrorCode} or an errno name. */
  readonly code: PconnErrorCode | (string & {})
  readonly reason?: TlsFailureReason | 'chunked-eof'
  readonly host?: string
  readonly port?: number
  readonly address?: string
  readonly statusCode?: number
  readonly errno?: number
  readonly syscall?: string

  constructor(code: string, message: string, details?: PeerDetails, options?: ErrorOptions) {
    super(message, options)
    this.code = code
    if (details !== undefined) {
      for (const name of ['reason', 'host', 'port', 'address', 'statusCode', 'errno', 'syscall'] as const) {
        if (details[name] !== undefined) Object.defineProperty(this, name, { value: details[name], enumerable: true })
      }
    }
    this.name = code === 'ABORT_ERR' ? 'AbortError' : 'PconnError'
  }
}

/** A bad argument type: TypeError with `ERR_INVALID_ARG_TYPE`. */
export function invalidArgType(name: string, expected: string, actual: unknown): TypeError {
  const err = new TypeError(`The "${name}" argument must be ${expected}. Received ${describe(actual)}`)
  return Object.assign(err, { code: 'ERR_INVALID_ARG_TYPE' as const })
}

/** A bad argument value: RangeError (or TypeError) with `ERR_INVALID_ARG_VALUE`. */
export function invalidArgValue(name: string, why: string, actual?: unknown): RangeError {
  const shown = arguments.length > 2 ? `. Received ${describe(actual)}` : ''
  const err = new RangeError(`The "${name}" argument ${why}${shown}`)
  return Object.assign(err, { code: 'ERR_INVALID_ARG_VALUE' as const })
}

/**
 * What an aborted operation rejects with, from its signal's reason (as
 * fetch and undici do): `ac.abort()` gives an `ABORT_ERR` named
 * `AbortError`, `AbortSignal.timeout()` one named `TimeoutError` (the
 * signal's DOMException is the `cause` of both); a reason of your own is
 * rejected as it is (or as the `cause` of an `ABORT_ERR` if it is not an
 * Error).
 */
export function abortError(signal?: AbortSignal): Error {
  const reason: unknown = signal?.reason
  if (reason instanceof Error && !(reason instanceof DOMException)) return reason
  const err = new PconnError('ABORT_ERR', reason instanceof DOMException ? reason.message : 'The operation was aborted', undefined, {
    cause: reason,
  })
  if (reason instanceof DOMException && reason.name === 'TimeoutError') err.name = 'TimeoutError'
  return err
}

function describe(value: unknown): string {
  if (value === null) return 'null'
  if (typeof value === 'string') return `type string (${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)})`
  if (typeof value === 'object') return `an instance of ${(value as object).constructor?.name ?? 'Object'}`
  return `type ${typeof value} (${String(value)})`
}

/** Turn an error thrown by the native layer (its `code` is the contract's) into the error users see; a `PconnError` already made from a failure report is kept as it is. */
export function fromNative(err: unknown): Error {
  if (err instanceof PconnError) return err
  if (!(err instanceof Error)) return new PconnError('EIO', String(err))
  const { code } = err as { code?: unknown }
  if (typeof code !== 'string') return err
  // A thrown error carries only its code; a TLS one thrown (not rejected)
  // is always the configuration's: handshakes fail asynchronously.
  return fromInfo({ code, message: err.message, reason: code === 'PCONN_TLS' ? 'config' : undefined })
}

/**
 * Give a pconn error the caller's frames. It was created in the callback
 * that delivered it, whose stack says nothing about who asked; captured
 * again inside an async function of the API, it shows the awaiting
 * callers (V8's async stack traces). Other errors (an abort reason of
 * yours, a failing body source's) are left as they are.
 */
export function withCallerStack(err: unknown): unknown {
  if (err instanceof PconnError) Error.captureStackTrace(err)
  return err
}

/** An underlying error: its message, and its code when it has one (`PCONN_CIRCUIT_OPEN`'s last failure). */
function causeOf(message: string, code: string | null | undefined): Error {
  const cause = new Error(message)
  return typeof code === 'string' ? Object.assign(cause, { code }) : cause
}

/**
 * A certificate failure as Node reports it: an Error whose `code` is Node's
 * for the same failure (`DEPTH_ZERO_SELF_SIGNED_CERT`, `CERT_HAS_EXPIRED`,
 * `ERR_TLS_CERT_ALTNAME_INVALID`...), with pconn's `PCONN_TLS` error as its
 * cause; `undefined` for any other error. What the undici Agent and fetch
 * report, as undici's own do.
 */
export function nodeTlsError(err: unknown): Error | undefined {
  if (!(err instanceof Error) || (err as { code?: unknown }).code !== 'PCONN_TLS') return undefined
  const code = (err.cause as { code?: unknown } | undefined)?.code
  if (typeof code !== 'string') return undefined
  return Object.assign(new Error(err.message, { cause: err }), { code })
}

/** The error a native failure report becomes. */
export function fromInfo(info: NativeErrorInfo): Error {
  if (info.code === 'ERR_INVALID_ARG_VALUE') {
    return Object.assign(new RangeError(info.message), { code: info.code })
  }
  if (info.code === 'ABORT_ERR') return abortError()
  const details: PeerDetails = {
    reason: (info.reason ?? undefined) as PeerDetails['reason'],
    host: info.host ?? undefined,
    port: info.port ?? undefined,
    address: info.address ?? undefined,
    statusCode: info.statusCode ?? undefined,
    errno: info.errno ?? undefined,
    syscall: info.syscall ?? undefined,
  }
  const options = info.cause === undefined || info.cause === null ? undefined : { cause: causeOf(info.cause, info.causeCode) }
  return new PconnError(info.code, info.message, details, options)
}
