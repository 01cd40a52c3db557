// Fault injection against real loopback servers: every fault gives its
// contract error, nothing hangs past its timeout, nothing leaks.
import test from 'ava'
import net from 'node:net'
import { once } from 'node:events'
import { readdirSync } from 'node:fs'
import { Pool } from '../dist/index.js'
import { httpServer, ok } from './helpers/http-server.mjs'
import { closedPort, eventually, sleep, useServer, usePool } from './helpers/servers.mjs'

const openFds = () => readdirSync('/proc/self/fd').length

test('a server restarted under a pool full of idle connections: every one is stale, the next requests still succeed', async (t) => {
  const respond = (req, s) => s.write(ok(req.path))
  // A port outside the ephemeral range: no other test's listen(0) can take
  // it between the close and the restart.
  const first = await httpServer(respond, { port: await closedPort() })
  const pool = usePool(t, Pool)
  const url = (p) => `http://127.0.0.1:${first.port}${p}`
  await Promise.all(Array.from({ length: 20 }, (_, i) => pool.request(url(`/warm${i}`)).then((r) => r.body.text())))
  t.is(pool.stats().idle, 20)
  await first.close()
  const restarted = await useServer(t, httpServer, respond, { port: first.port })
  const results = await Promise.allSettled(Array.from({ length: 40 }, (_, i) => pool.request(url(`/after${i}`)).then((r) => r.body.text())))
  t.deepEqual(results.filter((r) => r.status === 'rejected').map((r) => r.reason.code), [])
  t.deepEqual(results.map((r) => r.value), Array.from({ length: 40 }, (_, i) => `/after${i}`))
  t.is(pool.stats().closedBy.peer + pool.stats().closedBy.broken, 20, 'every stale connection was noticed and closed')
  t.true(restarted.opened >= 1)
})

test('a reset right after accept: ECONNRESET or PCONN_SOCKET_CLOSED, no leak', async (t) => {
  const server = net.createServer((s) => s.resetAndDestroy())
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const pool = usePool(t, Pool)
  const before = openFds()
  for (let i = 0; i < 20; i++) {
    const err = await t.throwsAsync(pool.request(`http://127.0.0.1:${server.address().port}/`))
    t.true(['ECONNRESET', 'PCONN_SOCKET_CLOSED', 'EPIPE'].includes(err.code), err.code)
  }
  t.like(pool.stats(), { connections: 0, connecting: 0, active: 0 })
  await eventually(() => openFds() <= before, 3000, 'descriptors to be released')
})

test('a reset during the response head: an error, and the connection is gone', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => {
    s.write('HTTP/1.1 200 OK\r\ncontent-le')
    setTimeout(() => s.resetAndDestroy(), 10)
  })
  const pool = usePool(t, Pool)
  const err = await t.throwsAsync(pool.request(server.url()))
  t.true(['ECONNRESET', 'PCONN_SOCKET_CLOSED'].includes(err.code), err.code)
  t.like(pool.stats(), { connections: 0, active: 0 })
})

test('a reset during the TLS handshake: a clear error, nothing left behind', async (t) => {
  const server = net.createServer((s) => s.once('data', () => s.resetAndDestroy()))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const pool = usePool(t, Pool)
  const err = await t.throwsAsync(pool.acquire(`tls://127.0.0.1:${server.address().port}`))
  t.true(['ECONNRESET', 'PCONN_TLS'].includes(err.code), err.code)
  t.like(pool.stats(), { connections: 0, connecting: 0 })
})

test('a half-open peer that stops reading a large upload: PCONN_BODY_TIMEOUT on time, the connection closes', async (t) => {
  const server = net.createServer((s) => s.pause())
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const pool = usePool(t, Pool)
  const big = Buffer.alloc(32 * 1024 * 1024)
  const started = Date.now()
  const err = await t.throwsAsync(
    pool.request(`http://127.0.0.1:${server.address().port}/`, { method: 'POST', body: big, bodyTimeoutMs: 300 }),
  )
  // The headers timer starts once the request is sent; a stalled upload is
  // bounded by bodyTimeoutMs, the gap allowed between two pieces of a body.
  t.is(err.code, 'PCONN_BODY_TIMEOUT')
  t.true(Date.now() - started < 3000)
  t.like(pool.stats(), { connections: 0, active: 0 })
})

test('a slow head within headersTimeoutMs is fine; past it, the timeout fires on time', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => setTimeout(() => s.write(ok('slow')), req.path === '/late' ? 1000 : 50))
  const pool = usePool(t, Pool)
  t.is(await (await pool.request(server.url('/soon'), { headersTimeoutMs: 500 })).body.text(), 'slow')
  const started = Date.now()
  await t.throwsAsync(pool.request(server.url('/late'), { headersTimeoutMs: 200 }), { code: 'PCONN_HEADERS_TIMEOUT' })
  const took = Date.now() - started
  t.true(took >= 190 && took < 1000, `${took} ms`)
})

test('a slow body that trickles within bodyTimeoutMs completes', async (t) => {
  const server = await useServer(t, httpServer, async (req, s) => {
    s.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n')
    for (const c of 'slow!') {
      await sleep(40)
      s.write(c)
    }
  })
  const pool = usePool(t, Pool)
  t.is(await (await pool.request(server.url(), { bodyTimeoutMs: 200 })).body.text(), 'slow!')
})

test('a server that takes the ClientHello and never answers: PCONN_CONNECT_TIMEOUT on time, nothing left', async (t) => {
  const server = net.createServer((s) => s.on('data', () => {}))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const pool = usePool(t, Pool, { connectTimeoutMs: 200 })
  const before = openFds()
  const started = Date.now()
  await t.throwsAsync(pool.acquire(`tls://localhost:${server.address().port}`), { code: 'PCONN_CONNECT_TIMEOUT' })
  t.true(Date.now() - started < 1500)
  t.like(pool.stats(), { connections: 0, connecting: 0 })
  await eventually(() => openFds() <= before, 3000, 'descriptors to be released')
})

test('the keep-alive race at scale: 2,000 concurrent GETs against random idle closes, zero failures; POSTs never resent', async (t) => {
  t.timeout(120_000)
  const server = await useServer(t, httpServer, (req, s) => s.write(ok(req.path)), {
    onConnection(socket) {
      let timer
      const arm = () => {
        clearTimeout(timer)
        timer = setTimeout(() => socket.end(), 2 + Math.random() * 20)
      }
      // Idle-close only after serving: a brand-new connection is never closed
      // before its first request (no real server does that).
      socket.on('data', arm)
      socket.on('close', () => clearTimeout(timer))
    },
  })
  const pool = usePool(t, Pool, { maxConnectionsPerHost: 8 })
  let failures = 0
  let next = 0
  async function worker() {
    while (next < 2000) {
      const i = next++
      try {
        await (await pool.request(server.url(`/g${i}`))).body.text()
      } catch (err) {
        failures++
        t.log(err.code, err.message)
      }
      if (Math.random() < 0.3) await sleep(Math.random() * 25)
    }
  }
  await Promise.all(Array.from({ length: 8 }, worker))
  t.is(failures, 0)
  const posts = await Promise.allSettled(
    Array.from({ length: 200 }, (_, i) => sleep(Math.random() * 500).then(() => pool.request(server.url(`/p${i}`), { method: 'POST', body: 'x' }).then((r) => r.body.text()))),
  )
  const failed = posts.filter((p) => p.status === 'rejected')
  t.true(failed.every((p) => p.reason.code === 'PCONN_SOCKET_CLOSED'), JSON.stringify(failed.map((p) => p.reason.code)))
  const postPaths = server.requests.filter((r) => r.method === 'POST').map((r) => r.path)
  t.is(new Set(postPaths).size, postPaths.length, 'no POST reached the server twice')
  t.log(`${failed.length} of 200 POSTs failed cleanly with PCONN_SOCKET_CLOSED; server saw ${server.opened} connections`)
})
