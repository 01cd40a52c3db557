// What undici users read off a dispatcher, on the pconn Agent: the
// keep-alive header on the wire, agent.stats, pconn:connect / pconn:reuse
// for Agent and fetch traffic, and system errors shaped as Node's.
import test from 'ava'
import http from 'node:http'
import net from 'node:net'
import { once } from 'node:events'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as undici from 'undici'
import { Agent } from '../dist/undici/index.js'
import { Pool } from '../dist/index.js'
import { record } from './helpers/channels.mjs'
import { closedPort, eventually, useServer, usePool } from './helpers/servers.mjs'

/** A node:http server that records each request's raw headers; `/slow` answers when told. */
async function recordingServer() {
  const seen = { requests: [], held: [] }
  const server = http.createServer((req, res) => {
    seen.requests.push({ url: req.url, rawHeaders: req.rawHeaders })
    req.resume()
    if (req.url === '/slow') seen.held.push(() => res.end('slow'))
    else res.end('ok')
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return Object.assign(seen, {
    origin: `http://127.0.0.1:${server.address().port}`,
    async close() {
      server.closeAllConnections()
      server.close()
    },
  })
}

/** A node:net server that calls `answer(socket)` for each request's bytes; its URL. */
async function rawServer(t, answer) {
  const server = net.createServer((socket) => {
    socket.on('error', () => {})
    socket.on('data', () => answer(socket))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  return `http://127.0.0.1:${server.address().port}/`
}

const connectionHeader = (req) => {
  const at = req.rawHeaders.findIndex((h, i) => i % 2 === 0 && h.toLowerCase() === 'connection')
  return at < 0 ? undefined : req.rawHeaders[at + 1]
}

test('HTTP/1.1 requests say connection: keep-alive, as undici does, unless reset: true or a Connection header of the caller', async (t) => {
  const server = await useServer(t, recordingServer)
  const pool = usePool(t, Pool)
  const agent = new Agent()
  t.teardown(() => agent.close())
  await (await pool.request(`${server.origin}/request`)).body.text()
  await (await undici.request(`${server.origin}/agent`, { dispatcher: agent })).body.text()
  await (await undici.request(`${server.origin}/reset`, { dispatcher: agent, reset: true })).body.text()
  await (await pool.request(`${server.origin}/own`, { headers: { connection: 'close' } })).body.text()
  await (await pool.fetch(`${server.origin}/fetch`)).text()
  const byUrl = Object.fromEntries(server.requests.map((r) => [r.url, connectionHeader(r)]))
  t.deepEqual(byUrl, { '/request': 'keep-alive', '/agent': 'keep-alive', '/reset': 'close', '/own': 'close', '/fetch': 'keep-alive' })
})

test('agent.stats has undici’s shape per origin: connected, free, pending, queued, running, size', async (t) => {
  const server = await useServer(t, recordingServer)
  const agent = new Agent({ maxConnectionsPerHost: 1 })
  t.teardown(() => agent.close())
  t.deepEqual(agent.stats, {})
  const slow = undici.request(`${server.origin}/slow`, { dispatcher: agent })
  const queued = undici.request(`${server.origin}/next`, { dispatcher: agent })
  await eventually(() => server.held.length === 1, 3000, 'the first request to arrive')
  t.deepEqual(agent.stats[server.origin], { connected: 1, free: 0, pending: 1, queued: 1, running: 1, size: 2 })
  server.held[0]()
  await (await slow).body.text()
  await (await queued).body.text()
  t.deepEqual(agent.stats[server.origin], { connected: 1, free: 1, pending: 0, queued: 0, running: 0, size: 0 })
})

test('pconn:connect and pconn:reuse fire for Agent and fetch traffic as for request()', async (t) => {
  const server = await useServer(t, recordingServer)
  const connects = record(t, 'pconn:connect')
  const reuses = record(t, 'pconn:reuse')
  const agent = new Agent()
  t.teardown(() => agent.close())
  const key = server.origin
  await (await undici.request(`${server.origin}/a`, { dispatcher: agent })).body.text()
  await (await undici.request(`${server.origin}/b`, { dispatcher: agent })).body.text()
  const pool = usePool(t, Pool)
  await (await pool.fetch(`${server.origin}/c`)).text()
  await (await pool.fetch(`${server.origin}/d`)).text()
  const mine = (events) => events.filter((e) => e.key === key)
  t.is(mine(connects).length, 2, 'one new connection for the Agent, one for fetch')
  t.is(mine(reuses).length, 2)
  for (const e of [...mine(connects), ...mine(reuses)]) t.is(typeof e.id, 'number')
})

test('system errors carry errno and syscall, and their message starts as Node’s', async (t) => {
  const pool = usePool(t, Pool)
  const port = await closedPort()
  const refused = await t.throwsAsync(pool.request(`http://127.0.0.1:${port}/`))
  t.like(refused, { code: 'ECONNREFUSED', syscall: 'connect', errno: -111 })
  t.true(refused.message.startsWith(`connect ECONNREFUSED 127.0.0.1:${port}`), refused.message)
  const path = join(tmpdir(), `pconn-missing-${process.pid}.sock`)
  const missing = await t.throwsAsync(pool.request('http://h/', { socketPath: path }))
  t.like(missing, { code: 'ENOENT', syscall: 'connect', errno: -2 })
  t.true(missing.message.startsWith(`connect ENOENT ${path}`), missing.message)
  const unknown = await t.throwsAsync(pool.request('http://no-such-host.invalid/'))
  t.true(['ENOTFOUND', 'EAI_AGAIN'].includes(unknown.code))
  t.is(unknown.syscall, 'getaddrinfo')
  t.true(unknown.message.startsWith(`getaddrinfo ${unknown.code} no-such-host.invalid`), unknown.message)
  // Through the Agent, as undici passes connect errors through.
  const agent = new Agent()
  t.teardown(() => agent.close())
  const viaAgent = await t.throwsAsync(undici.request(`http://127.0.0.1:${port}/`, { dispatcher: agent }))
  t.like(viaAgent, { code: 'ECONNREFUSED', syscall: 'connect', errno: -111 })
})

test('a Blob whose type holds CR or LF is refused as undici refuses it, and nothing is sent', async (t) => {
  const server = await useServer(t, recordingServer)
  const agent = new Agent()
  t.teardown(() => agent.close())
  class MaliciousBlob extends Blob {
    get type() {
      return 'text/html\r\nX-Injected: true'
    }
  }
  const err = await t.throwsAsync(undici.request(`${server.origin}/blob`, { dispatcher: agent, method: 'POST', body: new MaliciousBlob(['hello']) }))
  t.true(err instanceof undici.errors.InvalidArgumentError)
  t.is(err.message, 'invalid content-type header')
  t.is(server.requests.length, 0)
})

test('a chunked body cut by the server’s close: HTTPParserError (Invalid EOF state) through the Agent, reason chunked-eof for request()', async (t) => {
  const url = await rawServer(t, (socket) => socket.end('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n'))
  const agent = new Agent()
  t.teardown(() => agent.close())
  const res = await undici.request(url, { dispatcher: agent })
  const viaAgent = await t.throwsAsync(res.body.text())
  t.is(viaAgent.name, 'HTTPParserError')
  t.is(viaAgent.message, 'Response does not match the HTTP/1.1 protocol (Invalid EOF state)')
  const pool = usePool(t, Pool)
  const own = await t.throwsAsync((await pool.request(url)).body.text())
  t.like(own, { code: 'PCONN_SOCKET_CLOSED', reason: 'chunked-eof' })
})

test('rawHeaders through the Agent keep the names as the server sent them; request() still lower-cases', async (t) => {
  const url = await rawServer(t, (socket) => socket.write('HTTP/1.1 200 OK\r\nX-Custom-Header: Value\r\nContent-Length: 2\r\n\r\nok'))
  const agent = new Agent()
  t.teardown(() => agent.close())
  const raw = await new Promise((resolve, reject) => {
    let names
    agent.dispatch(
      { origin: new URL(url).origin, path: '/', method: 'GET' },
      {
        onConnect() {},
        onHeaders(status, rawHeaders) {
          names = rawHeaders.filter((_, i) => i % 2 === 0).map(String)
          return true
        },
        onData() {
          return true
        },
        onComplete: () => resolve(names),
        onError: reject,
      },
    )
  })
  t.deepEqual(raw, ['X-Custom-Header', 'Content-Length'])
  const res = await undici.request(url, { dispatcher: agent })
  t.is(res.headers['x-custom-header'], 'Value', 'undici’s own headers object lower-cases')
  await res.body.text()
  const pool = usePool(t, Pool)
  const own = await pool.request(url)
  t.deepEqual(Object.keys(own.headers), ['x-custom-header', 'content-length'])
  await own.body.text()
})

test('undici’s MockAgent wraps the pconn Agent: mocks intercept, enableNetConnect sends the rest through pconn, disableNetConnect refuses it', async (t) => {
  const server = await useServer(t, recordingServer)
  const agent = new Agent()
  const mockAgent = new undici.MockAgent({ agent })
  t.teardown(() => mockAgent.close())
  mockAgent.get(server.origin).intercept({ path: '/mocked', method: 'GET' }).reply(200, 'from the mock')
  const mocked = await undici.request(`${server.origin}/mocked`, { dispatcher: mockAgent })
  t.is(await mocked.body.text(), 'from the mock')
  t.is(server.requests.length, 0, 'the server saw nothing')
  mockAgent.enableNetConnect()
  const passed = await undici.request(`${server.origin}/real`, { dispatcher: mockAgent })
  t.is(await passed.body.text(), 'ok')
  t.deepEqual(server.requests.map((r) => r.url), ['/real'])
  t.is(agent.pool.stats().created, 1, 'the unmatched request left through pconn')
  mockAgent.disableNetConnect()
  await t.throwsAsync(undici.request(`${server.origin}/refused`, { dispatcher: mockAgent }), { code: 'UND_MOCK_ERR_MOCK_NOT_MATCHED' })
  t.is(server.requests.length, 1)
  t.deepEqual(mockAgent.pendingInterceptors(), [])
})

test('through a MockAgent the Agent’s own rules hold: a new-style handler completes from a mock, an unmatched request reaches onError, a closed Agent refuses', async (t) => {
  const agent = new Agent()
  const mockAgent = new undici.MockAgent({ agent })
  // The Agent is closed below: closing the MockAgent then reports it.
  t.teardown(() => mockAgent.close().catch(() => {}))
  const origin = 'http://mocked.test'
  mockAgent.get(origin).intercept({ path: '/new', method: 'GET' }).reply(200, 'new style')
  mockAgent.disableNetConnect()
  const body = await new Promise((resolve, reject) => {
    const chunks = []
    mockAgent.dispatch(
      { origin, path: '/new', method: 'GET' },
      {
        onRequestStart() {},
        onResponseStart() {},
        onResponseData(_, chunk) {
          chunks.push(chunk)
        },
        onResponseEnd: () => resolve(Buffer.concat(chunks).toString()),
        onResponseError: (_, err) => reject(err),
      },
    )
  })
  t.is(body, 'new style')
  const unmatched = await new Promise((resolve) => {
    mockAgent.dispatch({ origin, path: '/other', method: 'GET' }, { onConnect() {}, onHeaders() {}, onData() {}, onComplete() {}, onError: resolve })
  })
  t.is(unmatched.code, 'UND_MOCK_ERR_MOCK_NOT_MATCHED')
  await agent.close()
  const refused = await new Promise((resolve) => {
    mockAgent.dispatch({ origin, path: '/new', method: 'GET' }, { onConnect() {}, onHeaders() {}, onData() {}, onComplete() {}, onError: resolve })
  })
  t.true(['UND_ERR_CLOSED', 'UND_ERR_DESTROYED'].includes(refused.code), refused.code)
})
