// The clients under test. Each gets the same server, the same request and
// the same number of connections; `request()` resolves once the whole body
// has been read. HTTPS contestants trust the server's self-signed
// certificate by pinning it (`ca`).
import diagnostics from 'node:diagnostics_channel'
import http from 'node:http'
import http2 from 'node:http2'
import https from 'node:https'
import { Agent as UndiciAgent, Pool as UndiciPool } from 'undici'
import { Pool } from '../../dist/index.js'
import { Agent } from '../../dist/undici/index.js'

function nodeGet(mod, agent, url, ca) {
  return new Promise((resolve, reject) => {
    mod
      .get(url, { agent, ca }, (res) => {
        res.on('data', () => {})
        res.on('end', resolve)
        res.on('error', reject)
      })
      .on('error', reject)
  })
}

/** Speak HTTP/1.1 by hand over pconn's raw acquire / write / read / release. */
async function rawGet(pool, origin, requestBytes) {
  const conn = await pool.acquire(origin)
  await conn.write(requestBytes)
  let buf = await conn.read()
  let headEnd = buf.indexOf('\r\n\r\n')
  while (headEnd < 0) {
    buf = Buffer.concat([buf, await conn.read()])
    headEnd = buf.indexOf('\r\n\r\n')
  }
  const head = buf.subarray(0, headEnd).toString('latin1').toLowerCase()
  const length = Number(/content-length: *(\d+)/.exec(head)[1])
  let have = buf.length - headEnd - 4
  while (have < length) have += (await conn.read()).length
  pool.release(conn)
}

/** A GET through `dispatcher.dispatch` with a bare handler, resolving with the body as text. */
function dispatchGet(dispatcher, opts) {
  return () =>
    new Promise((resolve, reject) => {
      const chunks = []
      dispatcher.dispatch(opts, {
        onConnect() {},
        onHeaders() {
          return true
        },
        onData(chunk) {
          chunks.push(chunk)
          return true
        },
        onComplete() {
          resolve(Buffer.concat(chunks).toString())
        },
        onError: reject,
      })
    })
}

/**
 * `pool.request(url)` then the body as text, with the `Pool` of any pconn
 * build (`--baseline` runs older ones) and `options` of its own.
 */
export function pconnRequest(name, PoolClass, options = {}) {
  return {
    name,
    make({ url, connections, ca }) {
      const pool = new PoolClass({ ...options, maxConnectionsPerHost: connections, tls: ca ? { ca } : undefined })
      return { request: () => pool.request(url).then((r) => r.body.text()), close: () => pool.shutdownAll() }
    },
  }
}

/** `undici.request` semantics (`Dispatcher.request`) on the `Agent` of any pconn build: the drop-in door. */
export function agentRequest(name, AgentClass) {
  return {
    name,
    make({ url, connections, ca }) {
      const u = new URL(url)
      const agent = new AgentClass({ maxConnectionsPerHost: connections, tls: ca ? { ca } : undefined })
      const opts = { origin: u.origin, path: u.pathname, method: 'GET' }
      return { request: () => agent.request(opts).then((r) => r.body.text()), close: () => agent.close() }
    },
  }
}

/** Every contestant, as `{ name, make({ url, connections, ca }) }`. */
export const contestants = [
  pconnRequest('pconn request', Pool),
  // What the connection upkeep costs: the defaults above have the learned
  // idle timeout and address spreading on; here everything is off, then
  // everything on (a circuit breaker and minIdlePerHost as well).
  pconnRequest('pconn request, upkeep off', Pool, { learnIdleTimeout: false, spreadAddresses: false }),
  pconnRequest('pconn request, all upkeep on', Pool, { circuitBreaker: { failures: 5, cooldownMs: 1000 }, minIdlePerHost: 2 }),
  {
    // The same with a subscriber on pconn:request:end: what the timings cost.
    name: 'pconn request, timed',
    make(setup) {
      const plain = pconnRequest('', Pool).make(setup)
      let total = 0
      const onEnd = (event) => {
        total += event.totalMs
      }
      diagnostics.subscribe('pconn:request:end', onEnd)
      const close = () => {
        diagnostics.unsubscribe('pconn:request:end', onEnd)
        return plain.close()
      }
      return { request: plain.request, close }
    },
  },
  {
    name: 'pconn raw',
    make({ url, connections, ca }) {
      const u = new URL(url)
      const origin = `${u.protocol === 'https:' ? 'tls' : 'tcp'}://${u.host}`
      const requestBytes = Buffer.from(`GET ${u.pathname} HTTP/1.1\r\nhost: ${u.host}\r\n\r\n`)
      const pool = new Pool({ maxConnectionsPerHost: connections, tls: ca ? { ca } : undefined })
      return { request: () => rawGet(pool, origin, requestBytes), close: () => pool.shutdownAll() }
    },
  },
  {
    name: 'undici request',
    make({ url, connections, ca }) {
      const u = new URL(url)
      const pool = new UndiciPool(u.origin, { connections, connect: ca ? { ca } : undefined })
      const path = u.pathname
      return { request: () => pool.request({ path, method: 'GET' }).then((r) => r.body.text()), close: () => pool.close() }
    },
  },
  {
    // undici's lowest-level API, its fastest: a handler object, no streams.
    name: 'undici dispatch',
    make({ url, connections, ca }) {
      const u = new URL(url)
      const pool = new UndiciPool(u.origin, { connections, connect: ca ? { ca } : undefined })
      return { request: dispatchGet(pool, { path: u.pathname, method: 'GET', origin: u.origin }), close: () => pool.close() }
    },
  },
  {
    name: 'node:http',
    make({ url, connections, ca }) {
      const secure = url.startsWith('https:')
      const mod = secure ? https : http
      const agent = new mod.Agent({ keepAlive: true, maxSockets: connections })
      return { request: () => nodeGet(mod, agent, url, ca), close: async () => agent.destroy() }
    },
  },
  agentRequest('undici request via pconn Agent', Agent),
  {
    name: 'undici dispatch via pconn Agent',
    make({ url, connections, ca }) {
      const u = new URL(url)
      const agent = new Agent({ maxConnectionsPerHost: connections, tls: ca ? { ca } : undefined })
      return { request: dispatchGet(agent, { path: u.pathname, method: 'GET', origin: u.origin }), close: () => agent.close() }
    },
  },
  {
    // Node's global fetch. Over HTTPS it needs a dispatcher that pins the
    // certificate: undici's Agent (the kind Node's fetch uses by default).
    name: 'fetch',
    make({ url, connections, ca }) {
      const dispatcher = ca ? new UndiciAgent({ connections, connect: { ca } }) : undefined
      return { request: () => fetch(url, { dispatcher }).then((r) => r.text()), close: async () => dispatcher?.close() }
    },
  },
  {
    // Node's global fetch with pconn's undici Agent as its dispatcher.
    name: 'fetch via pconn Agent',
    make({ url, connections, ca }) {
      const dispatcher = new Agent({ maxConnectionsPerHost: connections, tls: ca ? { ca } : undefined })
      return { request: () => fetch(url, { dispatcher }).then((r) => r.text()), close: () => dispatcher.close() }
    },
  },
  {
    // pconn's own fetch: WHATWG fetch on the native exchange.
    name: 'pconn fetch',
    make({ url, connections, ca }) {
      const pool = new Pool({ maxConnectionsPerHost: connections, tls: ca ? { ca } : undefined })
      return { request: () => pool.fetch(url).then((r) => r.text()), close: () => pool.shutdownAll() }
    },
  },
]

/**
 * undici over HTTP/2 on one connection with `streams` in flight: its
 * `pipelining` is the stream limit over HTTP/2 too, and without it a
 * Pool sends one request at a time.
 */
function undiciHttp2Pool(u, ca, streams) {
  return new UndiciPool(u.origin, { connections: 1, pipelining: streams, allowH2: true, connect: { ca } })
}

/**
 * The HTTP/2 contestants: each gets one connection and runs every request
 * on it as a stream (`connections` is the number of concurrent streams).
 */
export const http2Contestants = [
  {
    name: 'pconn request',
    make({ url, ca }) {
      const pool = new Pool({ maxConnectionsPerHost: 1, tls: { ca } })
      return { request: () => pool.request(url).then((r) => r.body.text()), close: () => pool.shutdownAll() }
    },
  },
  {
    name: 'pconn fetch',
    make({ url, ca }) {
      const pool = new Pool({ maxConnectionsPerHost: 1, tls: { ca } })
      return { request: () => pool.fetch(url).then((r) => r.text()), close: () => pool.shutdownAll() }
    },
  },
  {
    name: 'undici request',
    make({ url, ca, connections }) {
      const u = new URL(url)
      const pool = undiciHttp2Pool(u, ca, connections)
      const path = u.pathname
      return { request: () => pool.request({ path, method: 'GET' }).then((r) => r.body.text()), close: () => pool.close() }
    },
  },
  {
    name: 'undici dispatch',
    make({ url, ca, connections }) {
      const u = new URL(url)
      const pool = undiciHttp2Pool(u, ca, connections)
      return { request: dispatchGet(pool, { path: u.pathname, method: 'GET', origin: u.origin }), close: () => pool.close() }
    },
  },
  {
    name: 'node:http2',
    make({ url, ca }) {
      const u = new URL(url)
      const session = http2.connect(u.origin, { ca })
      const request = () =>
        new Promise((resolve, reject) => {
          const stream = session.request({ ':path': u.pathname })
          stream.on('data', () => {})
          stream.on('end', resolve)
          stream.on('error', reject)
        })
      return { request, close: async () => session.close() }
    },
  },
]

/** One-connection-per-request variants, for the pooled vs fresh scenario. */
export const freshContestants = [
  {
    name: 'pconn, new connection each',
    make({ url, ca }) {
      const pool = new Pool({ maxIdlePerHost: 0, tls: { ca } })
      return { request: () => pool.request(url).then((r) => r.body.text()), close: () => pool.shutdownAll() }
    },
  },
  {
    name: 'node:https, new connection each',
    make({ url, ca }) {
      const agent = new https.Agent({ keepAlive: false })
      return { request: () => nodeGet(https, agent, url, ca), close: async () => agent.destroy() }
    },
  },
]
