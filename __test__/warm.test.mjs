// Pre-warming: pool.warm(key, count) and minIdlePerHost, asserted on what
// the server saw (connections opened).
import test from 'ava'
import { Pool } from '../dist/index.js'
import { httpServer, ok } from './helpers/http-server.mjs'
import { closedPort, eventually, useServer, usePool } from './helpers/servers.mjs'
import { startWorker } from './helpers/worker-driver.mjs'

const answer = (req, socket) => socket.write(ok('warm'))

test('warm(key, 8) opens 8 connections at once; 8 concurrent requests then open none', async (t) => {
  const server = await useServer(t, httpServer, answer)
  const pool = usePool(t, Pool)
  t.is(await pool.warm(server.url(), 8), 8)
  t.is(pool.stats().idle, 8)
  await eventually(() => server.opened === 8, 1000, 'the server to see 8 connections')
  const bodies = await Promise.all(Array.from({ length: 8 }, () => pool.request(server.url()).then((r) => r.body.text())))
  t.deepEqual(bodies, Array(8).fill('warm'))
  t.is(server.opened, 8, 'no new connection')
  t.is(pool.stats().reused, 8)
  t.is(await pool.warm(server.url(), 8), 8, 'already warm: nothing opened')
  t.is(server.opened, 8)
})

test('warm stays within the limits and says how many are idle', async (t) => {
  const server = await useServer(t, httpServer, answer)
  const pool = usePool(t, Pool, { maxConnectionsPerHost: 3 })
  t.is(await pool.warm(server.url(), 8), 3)
  await eventually(() => server.opened === 3, 1000, 'the server to see 3 connections')
  const capped = usePool(t, Pool, { maxConnections: 2 })
  t.is(await capped.warm(server.url(), 5), 2)
})

test('warm rejects only when nothing could be opened, with the connect error; bad arguments are refused', async (t) => {
  const pool = usePool(t, Pool)
  const port = await closedPort()
  await t.throwsAsync(pool.warm(`http://127.0.0.1:${port}`, 2), { code: 'ECONNREFUSED' })
  t.is(pool.stats().connections, 0)
  await t.throwsAsync(pool.warm('http://127.0.0.1:1', 0), { code: 'ERR_INVALID_ARG_VALUE' })
  await t.throwsAsync(pool.warm('http://127.0.0.1:1', 1.5), { code: 'ERR_INVALID_ARG_VALUE' })
  await t.throwsAsync(pool.warm('not a url', 1), { code: 'ERR_INVALID_ARG_VALUE' })
  const breaker = usePool(t, Pool, { circuitBreaker: { failures: 1, cooldownMs: 60_000 } })
  await t.throwsAsync(breaker.warm(`http://127.0.0.1:${port}`, 1), { code: 'ECONNREFUSED' })
  await t.throwsAsync(breaker.warm(`http://127.0.0.1:${port}`, 1), { code: 'PCONN_CIRCUIT_OPEN' })
  await pool.shutdownAll()
  await t.throwsAsync(pool.warm('http://127.0.0.1:1', 1), { code: 'PCONN_POOL_CLOSED' })
})

test('minIdlePerHost: 2 keeps two idle connections: after first use, beside those on loan, and again when the server closes them', async (t) => {
  const server = await useServer(t, httpServer, answer)
  const pool = usePool(t, Pool, { minIdlePerHost: 2 })
  t.is(await (await pool.request(server.url())).body.text(), 'warm')
  await eventually(() => pool.stats().idle >= 2 && server.opened === pool.stats().connections, 3000, 'two idle connections')
  // A connection on loan: two stay idle beside it.
  const held = await pool.acquire(server.url())
  await eventually(() => pool.stats().idle >= 2, 3000, 'a replacement for the one on loan')
  pool.release(held)
  // The server closes every idle connection: two new ones at once (a
  // generous deadline: the machine may be busy with other test files).
  const before = server.opened
  const idle = pool.stats().idle
  for (const socket of server.sockets) socket.destroy()
  await eventually(() => server.opened === before + 2 && pool.stats().idle === 2, 3000, 'two new idle connections')
  t.is(pool.stats().closedBy.peer, idle)
  t.is(server.sockets.size, 2)
  t.throws(() => new Pool({ minIdlePerHost: 3, maxIdlePerHost: 2 }), { code: 'ERR_INVALID_ARG_VALUE' })
})

test('minIdlePerHost does not connect for a key whose circuit is open', async (t) => {
  const port = await closedPort()
  const pool = usePool(t, Pool, { minIdlePerHost: 2, circuitBreaker: { failures: 1, cooldownMs: 60_000 } })
  await t.throwsAsync(pool.request(`http://127.0.0.1:${port}/`), { code: 'ECONNREFUSED' })
  const server = await useServer(t, httpServer, answer, { port })
  await new Promise((r) => setTimeout(r, 200))
  t.is(server.opened, 0)
  t.is(pool.stats().hosts[`http://127.0.0.1:${port}`].circuit, 'open')
})

test('a shared pool warmed on one thread serves another thread’s requests without a handshake', async (t) => {
  const server = await useServer(t, httpServer, answer)
  const options = { shared: `warm-${server.port}` }
  const pool = usePool(t, Pool, options)
  const { call } = startWorker(t)
  await call('open', { options })
  t.is(await pool.warm(server.url(), 4), 4)
  await eventually(() => server.opened === 4, 1000, 'the server to see 4 connections')
  t.deepEqual(await call('get', { urls: Array(4).fill(server.url()) }), Array(4).fill('warm'))
  t.is(server.opened, 4)
  await call('shutdown')
})
