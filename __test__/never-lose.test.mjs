// No request is lost, stalled or held back: odd but legal bytes from real
// servers (no reason phrase, early answers, informational responses,
// trickled bodies), completions that cannot be delivered, and a module
// evaluated twice. Each test asserts what the server saw as well as what
// the caller got.
import test from 'ava'
import http from 'node:http'
import net from 'node:net'
import { createRequire } from 'node:module'
import { once } from 'node:events'
import { Readable } from 'node:stream'
import * as undici from 'undici'
import { Agent } from 'pconn/undici'
import { Pool } from '../dist/index.js'
import { httpServer, ok } from './helpers/http-server.mjs'
import { eventually, useServer, usePool } from './helpers/servers.mjs'

const require = createRequire(import.meta.url)

/** A node:http echo server: it answers at once and streams the request body back (`req.pipe(res)`). */
async function echoServer(t) {
  const seen = { opened: 0, closed: 0, received: [] }
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' })
    res.flushHeaders()
    let bytes = 0
    req.on('data', (c) => (bytes += c.length))
    req.on('end', () => seen.received.push(bytes))
    req.pipe(res)
  })
  server.on('connection', (s) => {
    seen.opened++
    s.on('close', () => seen.closed++)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return Object.assign(seen, { url: `http://127.0.0.1:${server.address().port}/echo` })
}

/** `count` chunks of `size` bytes, produced slowly enough that the answer comes first. */
async function* slowChunks(count, size) {
  for (let i = 0; i < count; i++) {
    await new Promise((r) => setImmediate(r))
    yield Buffer.alloc(size, 97 + (i % 26))
  }
}

test('a status line without a reason phrase is valid: statusMessage is empty, and the requests beside it all settle', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => {
    s.write(req.path === '/bare' ? 'HTTP/1.1 200\r\ncontent-length: 2\r\n\r\nok' : ok('fine'))
  })
  const pool = usePool(t, Pool)
  const paths = Array.from({ length: 21 }, (_, i) => (i === 10 ? '/bare' : `/n${i}`))
  const results = await Promise.all(paths.map(async (p) => {
    const res = await pool.request(server.url(p), { headersTimeoutMs: 5000 })
    return [res.statusCode, res.statusMessage, await res.body.text()]
  }))
  t.deepEqual(results[10], [200, '', 'ok'])
  t.is(results.filter(([status, , body]) => status === 200 && body === 'fine').length, 20)
  t.is(server.requests.length, 21)
})

test('no reason phrase through the Agent: undici.request and fetch get the response', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => s.write('HTTP/1.1 204\r\n\r\n'))
  const agent = new Agent()
  t.teardown(() => agent.close())
  const viaRequest = await undici.request(server.url(), { dispatcher: agent })
  t.is(viaRequest.statusCode, 204)
  await viaRequest.body.dump()
  const viaFetch = await fetch(server.url(), { dispatcher: agent })
  t.is(viaFetch.status, 204)
  t.is(viaFetch.statusText, '')
})

/** A raw CONNECT proxy that answers every CONNECT with `answer` and then holds the socket. */
async function rawProxy(t, answer) {
  const seen = { connects: 0 }
  const server = net.createServer((socket) => {
    socket.on('error', () => {})
    socket.once('data', () => {
      seen.connects++
      socket.write(answer)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  return Object.assign(seen, { url: `http://127.0.0.1:${server.address().port}` })
}

test('a proxy answering 407 without a reason phrase is PCONN_PROXY with its status, not an internal error', async (t) => {
  const proxy = await rawProxy(t, 'HTTP/1.1 407\r\ncontent-length: 0\r\n\r\n')
  const pool = usePool(t, Pool, { proxy: proxy.url, connectTimeoutMs: 5000 })
  const err = await t.throwsAsync(pool.request('http://example.invalid/'))
  t.is(err.code, 'PCONN_PROXY')
  t.is(err.statusCode, 407)
  t.is(proxy.connects, 1)
})

test('a proxy answering CONNECT with bare LF line ends is a malformed answer at once, not a connect timeout', async (t) => {
  const proxy = await rawProxy(t, 'HTTP/1.1 200 Connection established\n\n')
  const pool = usePool(t, Pool, { proxy: proxy.url, connectTimeoutMs: 20_000 })
  const started = Date.now()
  const err = await t.throwsAsync(pool.request('http://example.invalid/'))
  t.is(err.code, 'PCONN_PROXY')
  t.regex(err.message, /malformed/)
  t.true(Date.now() - started < 10_000, 'long before the connect timeout')
})

test('one completion that cannot be delivered fails its own operation only; the rest of its batch is delivered', async (t) => {
  const pool = usePool(t, Pool)
  const faults = ['done', 'panic', 'done', 'unknown-kind', 'done', 'done']
  const settled = await Promise.allSettled(pool.debugBatch(faults))
  t.deepEqual(settled.map((s) => s.status), ['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled'])
  for (const failed of [settled[1], settled[3]]) {
    t.is(failed.reason.code, 'EIO')
    t.regex(failed.reason.message, /internal error/)
  }
  t.regex(settled[1].reason.message, /panic/, 'the panic is named')
})

test('an early 2xx does not stop the upload: request() streams 1 MiB to an echo server and reads it all back', async (t) => {
  const server = await echoServer(t)
  const pool = usePool(t, Pool)
  const res = await pool.request(server.url, { method: 'POST', body: Readable.from(slowChunks(64, 16 * 1024)) })
  t.is(res.statusCode, 200)
  const echoed = await res.body.arrayBuffer()
  t.is(echoed.byteLength, 64 * 16 * 1024)
  t.deepEqual(server.received, [64 * 16 * 1024])
  // Both directions finished cleanly: the connection is reused.
  await eventually(() => pool.stats().idle === 1, 3000, 'the connection parked')
  const again = await pool.request(server.url, { method: 'POST', body: 'x' })
  t.true(again.reused)
  t.is(await again.body.text(), 'x')
  t.is(server.opened, 1)
})

test('an early 2xx through the Agent: undici.request with a stream body, and fetch with FormData, to an echo server', async (t) => {
  const server = await echoServer(t)
  const agent = new Agent()
  t.teardown(() => agent.close())
  const res = await undici.request(server.url, { method: 'POST', body: Readable.from(slowChunks(32, 8 * 1024)), dispatcher: agent })
  t.is((await res.body.arrayBuffer()).byteLength, 32 * 8 * 1024)
  const form = new FormData()
  form.append('field', 'value\r\n')
  form.append('file', new Blob([Buffer.alloc(300_000, 98)]), 'f.bin')
  const echoed = await fetch(server.url, { method: 'POST', body: form, dispatcher: agent })
  const text = await echoed.text()
  t.true(text.includes('value\r\n'))
  t.true(text.length > 300_000)
  t.is(server.received.length, 2)
})

test('an early 4xx stops the upload, the answer is still read, and the connection is not reused', async (t) => {
  let answered = 0
  const server = await useServer(t, () => {
    const seen = { opened: 0, closed: 0 }
    const srv = net.createServer((socket) => {
      seen.opened++
      socket.on('error', () => {})
      socket.on('close', () => seen.closed++)
      socket.once('data', () => {
        answered++
        socket.write('HTTP/1.1 413 Payload Too Large\r\ncontent-length: 8\r\n\r\ntoo big!')
        // Stop reading for a while: the client must not wait for the server
        // to take the body; then drain, so that the client's close is seen.
        socket.pause()
        setTimeout(() => socket.resume(), 300)
      })
    })
    srv.listen(0, '127.0.0.1')
    return once(srv, 'listening').then(() => Object.assign(seen, {
      url: `http://127.0.0.1:${srv.address().port}/`,
      close: () => srv.close(),
    }))
  })
  const pool = usePool(t, Pool)
  const res = await pool.request(server.url, { method: 'POST', body: Readable.from(slowChunks(4096, 64 * 1024)) })
  t.is(res.statusCode, 413)
  t.is(await res.body.text(), 'too big!')
  t.is(answered, 1)
  await eventually(() => server.closed === 1, 3000, 'the connection closed')
  t.like(pool.stats(), { idle: 0, active: 0 })
})

test('the head is never held back for body bytes: a 6-byte body whose end comes later', async (t) => {
  let finish
  const server = await useServer(t, httpServer, (req, s) => {
    s.write('HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nabc')
    finish = () => s.write('def')
  })
  const pool = usePool(t, Pool)
  const pending = pool.request(server.url())
  const first = await Promise.race([pending, new Promise((r) => setTimeout(() => r('held back'), 5000))])
  t.not(first, 'held back', 'the head arrives while the body is incomplete')
  finish()
  t.is(await first.body.text(), 'abcdef')
})

test('a body cut short after the head: the response arrives, then reading the body fails', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => {
    s.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial')
    setTimeout(() => s.destroy(), 50)
  })
  const pool = usePool(t, Pool)
  const res = await pool.request(server.url())
  t.is(res.statusCode, 200)
  const err = await t.throwsAsync(res.body.text())
  t.is(err.code, 'PCONN_SOCKET_CLOSED')
  // Through the Agent, fetch resolves too and its body read fails.
  const agent = new Agent()
  t.teardown(() => agent.close())
  const viaFetch = await fetch(server.url(), { dispatcher: agent })
  t.is(viaFetch.status, 200)
  await t.throwsAsync(viaFetch.text())
})

test('informational responses are skipped: 100, 102 and 103 before the final answer', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => {
    s.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n')
    s.write(ok('final'))
  })
  const pool = usePool(t, Pool)
  const res = await pool.request(server.url())
  t.is(res.statusCode, 200)
  t.is(await res.body.text(), 'final')
  const agent = new Agent()
  t.teardown(() => agent.close())
  const viaFetch = await fetch(server.url(), { dispatcher: agent })
  t.is(await viaFetch.text(), 'final')
})

for (const [what, bytes] of [
  ['an unrequested 101', 'HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n'],
  ['status 000', 'HTTP/1.1 000 Zero\r\ncontent-length: 0\r\n\r\n'],
  ['status 099', 'HTTP/1.1 099 Low\r\ncontent-length: 0\r\n\r\n'],
]) {
  test(`${what} is PCONN_HTTP_PARSE, closes the connection, and fails (never hangs) undici.request and fetch`, async (t) => {
    const server = await useServer(t, httpServer, (req, s) => s.write(bytes))
    const pool = usePool(t, Pool)
    const err = await t.throwsAsync(pool.request(server.url()))
    t.is(err.code, 'PCONN_HTTP_PARSE')
    await eventually(() => server.closed === 1, 3000, 'the close')
    const agent = new Agent()
    t.teardown(() => agent.close())
    const viaRequest = await t.throwsAsync(undici.request(server.url(), { dispatcher: agent }))
    t.false(viaRequest instanceof TypeError, String(viaRequest))
    await t.throwsAsync(fetch(server.url(), { dispatcher: agent, signal: AbortSignal.timeout(10_000) }), { message: 'fetch failed' })
  })
}

test('the module evaluated again in the same thread (a test runner’s module reset): both instances keep working', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => s.write(ok(req.path)))
  const first = require('../dist/index.js')
  const distFiles = Object.keys(require.cache).filter((f) => /[/\\](dist|native)[/\\].*\.js$/.test(f))
  t.true(distFiles.length > 3)
  const saved = distFiles.map((f) => [f, require.cache[f]])
  for (const f of distFiles) delete require.cache[f]
  const second = require('../dist/index.js')
  for (const [f, m] of saved) require.cache[f] = m
  t.not(first.Pool, second.Pool, 'a second evaluation')
  const a = new first.Pool()
  const b = new second.Pool()
  t.teardown(() => Promise.all([a.shutdownAll(), b.shutdownAll()]))
  const bodies = await Promise.all([
    ...[1, 2, 3].map((i) => a.request(server.url(`/a${i}`)).then((r) => r.body.text())),
    ...[1, 2, 3].map((i) => b.request(server.url(`/b${i}`)).then((r) => r.body.text())),
  ])
  t.deepEqual(bodies, ['/a1', '/a2', '/a3', '/b1', '/b2', '/b3'])
})

test('operation ids above 2^32 complete (ids are unique for the life of the process)', async (t) => {
  const native = require('../dist/native.js')
  native.debugSkipOperationIds(2 ** 32 + 7)
  const server = await useServer(t, httpServer, (req, s) => s.write(ok('big id')))
  const pool = usePool(t, Pool)
  t.is(await (await pool.request(server.url())).body.text(), 'big id')
  t.true(native.nextOperationId() > 2 ** 32)
})

test('flushForHost normalises its argument as keys are: 127.1 and LOCALHOST', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => s.write(ok()))
  const pool = usePool(t, Pool)
  await (await pool.request(`http://127.0.0.1:${server.port}/`)).body.text()
  await (await pool.request(`http://localhost:${server.port}/`)).body.text()
  t.is(pool.stats().idle, 2)
  t.is(pool.flushForHost('127.1'), 1)
  t.is(pool.flushForHost('LOCALHOST'), 1)
  await eventually(() => server.closed === 2, 3000, 'both closes')
  t.throws(() => pool.flushForHost('a b'), { code: 'ERR_INVALID_ARG_VALUE' })
})

test('a TLS servername with a NUL is refused when the pool is made, not at its first request', (t) => {
  t.throws(() => new Pool({ tls: { servername: 'a\u0000b' } }), { code: 'ERR_INVALID_ARG_VALUE' })
})

test('header values are Latin-1: é goes out as one byte, a wider character is refused before anything is sent', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => s.write(ok()))
  const pool = usePool(t, Pool)
  await (await pool.request(server.url(), { headers: { 'x-name': 'café' } })).body.text()
  t.is(server.requests[0].headers['x-name'], 'café', 'latin1 on the wire')
  const err = await t.throwsAsync(pool.request(server.url(), { headers: { 'x-name': 'price €' } }))
  t.is(err.code, 'ERR_INVALID_ARG_VALUE')
  t.is(server.requests.length, 1)
})
