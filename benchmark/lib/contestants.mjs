// The clients under test. Each gets the same server, the same request and
// the same number of connections; `request()` resolves once the whole body
// has been read. HTTPS contestants trust the server's self-signed
// certificate by pinning it (`ca`).
import diagnostics from 'node:diagnostics_channel'
import http from 'node:http'
import https from 'node:https'
import { Pool as UndiciPool } from 'undici'
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

/** `pool.request(url)` then the body as text, with the `Pool` of any pconn build (`--baseline` runs older ones). */
export function pconnRequest(name, PoolClass) {
  return {
    name,
    make({ url, connections, ca }) {
      const pool = new PoolClass({ maxConnectionsPerHost: connections, tls: ca ? { ca } : undefined })
      return { request: () => pool.request(url).then((r) => r.body.text()), close: () => pool.shutdownAll() }
    },
  }
}

/** Every contestant, as `{ name, make({ url, connections, ca }) }`. */
export const contestants = [
  pconnRequest('pconn request', Pool),
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
      const opts = { path: u.pathname, method: 'GET', origin: u.origin }
      const request = () =>
        new Promise((resolve, reject) => {
          const chunks = []
          pool.dispatch(opts, {
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
      return { request, close: () => pool.close() }
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
  {
    name: 'fetch',
    plainOnly: true,
    make({ url }) {
      return { request: () => fetch(url).then((r) => r.text()), close: async () => {} }
    },
  },
  {
    // Node's global fetch with pconn's undici Agent as its dispatcher.
    name: 'fetch + pconn Agent',
    plainOnly: true,
    make({ url, connections }) {
      const dispatcher = new Agent({ maxConnectionsPerHost: connections })
      return { request: () => fetch(url, { dispatcher }).then((r) => r.text()), close: () => dispatcher.close() }
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
