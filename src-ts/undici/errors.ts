/**
 * pconn's errors as undici reports them, so undici's interceptors (retry
 * decides by `code`), fetch and user code see what an undici Agent gives.
 *
 * | pconn                                   | undici                                        |
 * |-----------------------------------------|-----------------------------------------------|
 * | `PCONN_SOCKET_CLOSED`                   | `SocketError('other side closed')`, `UND_ERR_SOCKET` |
 * | `PCONN_SOCKET_CLOSED`, reason `chunked-eof` | `HTTPParserError`, `HPE_INVALID_EOF_STATE` (a chunked body cut short) |
 * | `PCONN_HEADERS_TIMEOUT`                 | `HeadersTimeoutError`, `UND_ERR_HEADERS_TIMEOUT` |
 * | `PCONN_BODY_TIMEOUT`                    | `BodyTimeoutError`, `UND_ERR_BODY_TIMEOUT`     |
 * | `PCONN_CONNECT_TIMEOUT`                 | `ConnectTimeoutError`, `UND_ERR_CONNECT_TIMEOUT` |
 * | `PCONN_POOL_CLOSED`                     | `ClientDestroyedError`, `UND_ERR_DESTROYED`    |
 * | `ABORT_ERR`                             | `RequestAbortedError`, `UND_ERR_ABORTED`       |
 * | `ERR_INVALID_ARG_*`                     | `InvalidArgumentError`, `UND_ERR_INVALID_ARG` (a body stream of the wrong length: `RequestContentLengthMismatchError`) |
 * | `PCONN_HTTP_PARSE`, head too large      | `HeadersOverflowError`, `UND_ERR_HEADERS_OVERFLOW` |
 * | `PCONN_TLS` of a certificate             | an `Error` with Node's code (`DEPTH_ZERO_SELF_SIGNED_CERT`...), pconn's as `cause` |
 * | errno names (`ECONNREFUSED`...), other `PCONN_TLS`, other `PCONN_HTTP_PARSE`, `PCONN_QUEUE_FULL`, `PCONN_ACQUIRE_TIMEOUT` | unchanged (undici passes connect errors through too) |
 *
 * A mapped error keeps pconn's as its `cause`.
 */
import { nodeTlsError } from '../errors.js'
import { errors } from './peer.js'

/** What undici's `SocketError.socket` and the channels' `socket` carry. */
export interface SocketInfo {
  localAddress: string | undefined
  localPort: number | undefined
  remoteAddress: string | undefined
  remotePort: number | undefined
  remoteFamily: string | undefined
  timeout: number | undefined
  bytesWritten: number | undefined
  bytesRead: number | undefined
  /** As a TLS socket has it (OpenTelemetry reads it); pconn offers no ALPN unless configured. */
  alpnProtocol: string | false
}

function withCause<E extends Error>(err: E, cause: unknown): E {
  Object.defineProperty(err, 'cause', { value: cause, writable: true, configurable: true, enumerable: false })
  return err
}

/** Codes of failures that happen while connecting (DNS, TCP, TLS). */
const CONNECT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EAI_FAIL',
  'EAI_NONAME',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'EADDRNOTAVAIL',
  'ENOENT',
  'EACCES',
  'PCONN_CONNECT_TIMEOUT',
  'PCONN_TLS',
])

/** Whether `err` (pconn's, before mapping) is a failure to connect. */
export function isConnectFailure(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && CONNECT_CODES.has(code)
}

/**
 * The error undici would report for `err`, a failure of pconn's exchange.
 * `socket` describes the peer for a `SocketError`.
 */
export function toUndiciError(err: unknown, socket: () => SocketInfo): Error {
  if (!(err instanceof Error)) return new errors.UndiciError(String(err))
  const code = (err as { code?: unknown }).code
  switch (code) {
    case 'PCONN_SOCKET_CLOSED': {
      if ((err as { reason?: unknown }).reason === 'chunked-eof') {
        // llhttp's verdict on a chunked body cut by EOF, as undici reports it.
        const parserError = new errors.HTTPParserError('Response does not match the HTTP/1.1 protocol (Invalid EOF state)')
        return withCause(Object.assign(parserError, { code: 'HPE_INVALID_EOF_STATE' }), err)
      }
      const mapped = withCause(new errors.SocketError('other side closed'), err)
      mapped.socket = socket()
      return mapped
    }
    case 'PCONN_HEADERS_TIMEOUT':
      return withCause(new errors.HeadersTimeoutError('Headers Timeout Error'), err)
    case 'PCONN_BODY_TIMEOUT':
      return withCause(new errors.BodyTimeoutError('Body Timeout Error'), err)
    case 'PCONN_CONNECT_TIMEOUT':
      return withCause(new errors.ConnectTimeoutError(`Connect Timeout Error (${err.message})`), err)
    case 'PCONN_POOL_CLOSED':
      return withCause(new errors.ClientDestroyedError('The client is destroyed'), err)
    case 'ABORT_ERR':
      return withCause(new errors.RequestAbortedError('Request aborted'), err)
    case 'ERR_INVALID_ARG_VALUE':
    case 'ERR_INVALID_ARG_TYPE':
      if (/than its content-length/.test(err.message)) {
        return withCause(new errors.RequestContentLengthMismatchError(err.message), err)
      }
      return withCause(new errors.InvalidArgumentError(err.message), err)
    case 'PCONN_TLS':
      // As undici passes node:tls' error through: Node's code for it.
      return nodeTlsError(err) ?? err
    case 'PCONN_HTTP_PARSE':
      if (/maxHeaderSize|more than \d+ headers/.test(err.message)) {
        return withCause(new errors.HeadersOverflowError(err.message), err)
      }
      return err
    default:
      return err
  }
}
