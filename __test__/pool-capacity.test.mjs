// Capacity always reaches waiters, shutdown and release never hang, and a
// connection is full duplex with writes that go out whole and in order.
// Each test reproduces a bug the pool once had.
import test from 'ava'
import net from 'node:net'
import { once } from 'node:events'
import { createHash } from 'node:crypto'
import { Pool } from '../dist/index.js'
import { eventually, silentServer, tcpEchoServer, useServer, usePool } from './helpers/servers.mjs'

/** A server that keeps every byte each connection sends, and counts connections. */
async function collector(t) {
  const received = []
  const server = net.createServer((socket) => {
    const chunks = []
    received.push(chunks)
    socket.on('data', (d) => chunks.push(d))
    socket.on('error', () => {})
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  return { port: server.address().port, received, bytes: (i) => Buffer.concat(received[i] ?? []) }
}

test('maxConnections: 1 — releasing a connection serves a waiter of another key (it used to wait forever)', async (t) => {
  const a = await useServer(t, tcpEchoServer)
  const b = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool, { maxConnections: 1 })
  const held = await pool.acquire(`tcp://127.0.0.1:${a.port}`)
  const waiting = pool.acquire(`tcp://127.0.0.1:${b.port}`)
  await eventually(() => pool.stats().pending === 1, 3000, 'the waiter to queue')
  pool.release(held, true)
  const conn = await waiting
  t.is(conn.key, `tcp://127.0.0.1:${b.port}`)
  t.like(pool.stats(), { pending: 0, connections: 1, closedBy: { evicted: 1 } })
  await eventually(() => a.closed === 1, 3000, 'the first server to see its connection closed for room')
  pool.release(conn)
})

test('shutdownAll cancels a TLS handshake in progress at once instead of waiting for connectTimeoutMs', async (t) => {
  const server = await useServer(t, silentServer)
  const pool = new Pool({ connectTimeoutMs: 10_000 })
  const connecting = pool.acquire(`tls://127.0.0.1:${server.port}`)
  await eventually(() => pool.stats().connecting === 1 && server.opened === 1, 3000, 'the handshake to start')
  const started = Date.now()
  await pool.shutdownAll()
  t.true(Date.now() - started < 2000, `shutdownAll took ${Date.now() - started} ms`)
  await t.throwsAsync(connecting, { code: 'PCONN_POOL_CLOSED' })
  await eventually(() => server.closed === 1, 3000, 'the server to see the abandoned connection close')
})

test('release() during a pending read closes the connection at once; shutdownAll then resolves', async (t) => {
  const server = await useServer(t, silentServer)
  const pool = new Pool()
  const conn = await pool.acquire(`tcp://127.0.0.1:${server.port}`)
  const reading = conn.read()
  pool.release(conn, true)
  const err = await t.throwsAsync(reading)
  t.true(['PCONN_ALREADY_RELEASED', 'PCONN_SOCKET_CLOSED'].includes(err.code), err.code)
  await eventually(() => server.closed === 1, 3000, 'the server to see the close')
  t.like(pool.stats(), { connections: 0, closedBy: { broken: 1 } })
  await pool.shutdownAll()
})

test('a pending read never holds a write back (full duplex)', async (t) => {
  const server = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool)
  const conn = await pool.acquire(`tcp://127.0.0.1:${server.port}`)
  const reading = conn.read()
  await conn.write('ping') // hung forever when one lock covered both halves
  t.is(String(await reading), 'ping')
  pool.release(conn)
})

test('writes issued back to back go out whole and in call order (4-8 MiB each)', async (t) => {
  t.timeout(60_000)
  const server = await collector(t)
  const pool = usePool(t, Pool)
  for (let run = 0; run < 5; run++) {
    const conn = await pool.acquire(`tcp://127.0.0.1:${server.port}`)
    const sizes = [4, 8, 5, 6].map((m) => m * 1024 * 1024 + run)
    const parts = sizes.map((size, i) => Buffer.alloc(size, 65 + i + run))
    await Promise.all(parts.map((p) => conn.write(p)))
    const expected = createHash('sha256').update(Buffer.concat(parts)).digest('hex')
    const total = sizes.reduce((a, b) => a + b)
    const index = server.received.length - 1
    await eventually(() => server.bytes(index).length === total, 20_000, `run ${run}: every byte at the server`)
    t.is(createHash('sha256').update(server.bytes(index)).digest('hex'), expected, `run ${run}: bytes in call order`)
    pool.release(conn, false)
  }
})

test('a connection released with a message partly written is closed, never pooled', async (t) => {
  const server = await collector(t)
  const pool = usePool(t, Pool)
  const conn = await pool.acquire(`tcp://127.0.0.1:${server.port}`)
  const writing = conn.write(Buffer.alloc(32 * 1024 * 1024, 1))
  pool.release(conn, true)
  await t.throwsAsync(writing)
  t.like(pool.stats(), { idle: 0, connections: 0, closedBy: { broken: 1 } })
  const next = await pool.acquire(`tcp://127.0.0.1:${server.port}`)
  t.false(next.reused)
  pool.release(next)
})

test('connectTimeoutMs: 0 means no connect timeout (as acquireTimeoutMs: 0 means no wait limit)', async (t) => {
  const server = await useServer(t, silentServer)
  const pool = usePool(t, Pool, { connectTimeoutMs: 0 })
  const started = Date.now()
  const err = await t.throwsAsync(pool.acquire(`tls://127.0.0.1:${server.port}`, { signal: AbortSignal.timeout(300) }))
  t.is(err.name, 'TimeoutError', `${err.code}: it must not time out at once`)
  t.true(Date.now() - started >= 280)
})
