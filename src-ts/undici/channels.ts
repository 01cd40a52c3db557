/**
 * undici's diagnostics channels, published by the pconn Agent with undici's
 * message shapes so subscribers written for undici (OpenTelemetry's
 * `@opentelemetry/instrumentation-undici`, undici's own debug log) work
 * unchanged. Each message is built only when the channel has subscribers.
 *
 * | channel                             | message                                   | when (pconn Agent) |
 * |-------------------------------------|-------------------------------------------|--------------------|
 * | `undici:request:create`             | `{ request }`                             | in `dispatch()`, synchronously, before the headers are serialised (subscribers may `request.addHeader()`) |
 * | `undici:client:beforeConnect`       | `{ connectParams, connector }`            | a new connection carried the request or failed to connect (pconn connects natively: published after the fact) |
 * | `undici:client:connected`           | `{ connectParams, connector, socket }`    | after `beforeConnect`, when a new connection carried the request |
 * | `undici:client:connectError`        | `{ connectParams, connector, error }`     | after `beforeConnect`, when connecting failed |
 * | `undici:client:sendHeaders`         | `{ request, headers, socket }`            | once the response head has arrived (the request went out) |
 * | `undici:request:bodyChunkSent`      | `{ request, chunk }`                      | each chunk of a streamed body as pconn takes it; a whole-buffer body when the response arrives |
 * | `undici:request:bodySent`           | `{ request }`                             | after the body (also when there is none) |
 * | `undici:request:headers`            | `{ request, response: { statusCode, headers, statusText } }` | before `onHeaders` |
 * | `undici:request:bodyChunkReceived`  | `{ request, chunk }`                      | before each `onData` |
 * | `undici:request:trailers`           | `{ request, trailers }`                   | before `onComplete` (`request.completed` is true) |
 * | `undici:request:error`              | `{ request, error }`                      | before `onError` |
 *
 * Every request that published `create` ends with exactly one `trailers`
 * or `error`. `socket` is not a real socket (pconn's sockets live in the
 * native core): an object with `remoteAddress`, `remotePort`,
 * `remoteFamily`, `localAddress`, `localPort` and `alpnProtocol`. The
 * remote address is the connection's own (the proxy's, through one) once
 * the response has arrived, as the native side reports it while these
 * channels are watched; before that (a failed connect), it is known only
 * when the origin's host is an IP address.
 */
import diagnostics from 'node:diagnostics_channel'
import { isIPv6 } from 'node:net'
import type { ExchangeDetails } from '../native.js'
import type { SocketInfo } from './errors.js'
import { errors } from './peer.js'
import type { DispatchRequest, ParsedOrigin } from './request-options.js'

export const channels = {
  create: diagnostics.channel('undici:request:create'),
  bodyChunkSent: diagnostics.channel('undici:request:bodyChunkSent'),
  bodySent: diagnostics.channel('undici:request:bodySent'),
  headers: diagnostics.channel('undici:request:headers'),
  bodyChunkReceived: diagnostics.channel('undici:request:bodyChunkReceived'),
  trailers: diagnostics.channel('undici:request:trailers'),
  error: diagnostics.channel('undici:request:error'),
  beforeConnect: diagnostics.channel('undici:client:beforeConnect'),
  connected: diagnostics.channel('undici:client:connected'),
  connectError: diagnostics.channel('undici:client:connectError'),
  sendHeaders: diagnostics.channel('undici:client:sendHeaders'),
}

/** `connectParams` of the connect channels, as undici's Client has them. */
export interface ConnectParams {
  /** `host:port` (the port only when the URL names one). */
  host: string
  hostname: string
  protocol: string
  /** The URL's port, `''` for the scheme's default. */
  port: string
  version: 'h1'
  servername: string | null
  localAddress: string | null
}

/** What the channels need of the Agent a request goes through. */
export interface ChannelHost {
  readonly socketPath: string | undefined
  readonly servername: string | undefined
}

/** The connect stub the connect channels carry: pconn connects natively. */
function connector(_options: unknown, callback: (err: Error | null, socket: null) => void): void {
  callback(new errors.NotSupportedError('pconn connects in its native core; this connector is a stand-in'), null)
}

/**
 * The channels' `socket`: the peer as the connection reported it once the
 * response came (`details`), else as far as the origin tells (an IP host).
 */
export function socketInfo(target: ParsedOrigin, host: ChannelHost, details?: ExchangeDetails): SocketInfo {
  const overSocket = host.socketPath !== undefined
  const address = details?.remoteAddress ?? (!overSocket && target.ipFamily !== 0 ? target.hostname : undefined)
  return {
    localAddress: undefined,
    localPort: undefined,
    remoteAddress: address,
    remotePort: details?.remotePort ?? (overSocket ? undefined : target.portNumber),
    remoteFamily: address === undefined ? undefined : isIPv6(address) ? 'IPv6' : 'IPv4',
    timeout: undefined,
    bytesWritten: undefined,
    bytesRead: undefined,
    alpnProtocol: false,
  }
}

/**
 * The connect channels, after the fact: a new connection carried the
 * request (`error` undefined) or connecting failed.
 */
export function publishConnect(
  target: ParsedOrigin,
  request: DispatchRequest,
  host: ChannelHost,
  error: Error | undefined,
  details?: ExchangeDetails,
): void {
  const after = error === undefined ? channels.connected : channels.connectError
  if (!channels.beforeConnect.hasSubscribers && !after.hasSubscribers) return
  const connectParams: ConnectParams = {
    host: target.host,
    hostname: target.hostname,
    protocol: target.protocol,
    port: target.port,
    version: 'h1',
    servername: request.servername || host.servername || null,
    localAddress: null,
  }
  if (channels.beforeConnect.hasSubscribers) channels.beforeConnect.publish({ connectParams, connector })
  if (error === undefined) {
    if (channels.connected.hasSubscribers) channels.connected.publish({ connectParams, connector, socket: socketInfo(target, host, details) })
  } else if (channels.connectError.hasSubscribers) {
    channels.connectError.publish({ connectParams, connector, error })
  }
}

/** The request head as undici's `sendHeaders` message has it. */
export function sendHeadersText(request: DispatchRequest, target: ParsedOrigin): string {
  return headText(request, target, request.reset === true ? 'close' : 'keep-alive')
}

/** A request's head lines (without the blank line), with `connection` as given. */
export function headText(request: DispatchRequest, target: ParsedOrigin, connection: string): string {
  let text = `${request.method} ${request.path} HTTP/1.1\r\nhost: ${request.host ?? target.host}\r\nconnection: ${connection}\r\n`
  const list = request.headers
  for (let i = 0; i < list.length; i += 2) {
    const value = list[i + 1]
    for (const v of Array.isArray(value) ? value : [value]) text += `${String(list[i])}: ${String(v)}\r\n`
  }
  return text
}
