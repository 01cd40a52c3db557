/**
 * `pconn/undici`: an undici-compatible Dispatcher over pconn's pool, for
 * Node's `fetch`, undici's APIs and interceptors, and OpenTelemetry's
 * undici instrumentation. Needs the peer dependency `undici` (version 7);
 * the main `pconn` entry never loads it.
 *
 * @packageDocumentation
 */
export { Agent, type AgentOptions, type AgentConnectOptions, type AgentOriginStats } from './agent.js'
export type { DispatchRequest } from './request-options.js'
export type { SocketInfo } from './errors.js'
export type { ConnectParams } from './channels.js'
