import test from 'ava'
import net from 'node:net'
import tls from 'node:tls'
import { once } from 'node:events'
import { Pool } from '../dist/index.js'
import { makeCa, makeLeaf } from './helpers/certs.mjs'
import { tcpEchoServer, eventually, sleep, useServer, usePool } from './helpers/servers.mjs'

test('release(conn, false) closes the connection instead of pooling it', async (t) => {
  const server = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool)
  const url = `tcp://127.0.0.1:${server.port}`
  pool.release(await pool.acquire(url), false)
  t.like(pool.stats(), { idle: 0, connections: 0, closed: 1 })
  t.is(pool.stats().closedBy.broken, 1)
  await eventually(() => server.closed === 1, 3000, 'server to see the close')
  const next = await pool.acquire(url)
  t.false(next.reused)
  await eventually(() => server.opened === 2, 3000, 'server to count 2 connections')
  pool.release(next)
  await pool.shutdownAll()
})

test('a connection released with unread bytes is closed, never reused', async (t) => {
  const server = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool)
  const url = `tcp://127.0.0.1:${server.port}`
  const conn = await pool.acquire(url)
  await conn.write('an echo nobody reads')
  await sleep(50)
  pool.release(conn)
  t.is(pool.stats().idle, 0)
  await eventually(() => server.closed === 1, 3000, 'server to see the close')
  const next = await pool.acquire(url)
  t.false(next.reused)
  pool.release(next)
  await pool.shutdownAll()
})

test('maxIdlePerHost caps parked connections; the excess is closed', async (t) => {
  const server = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool, { maxIdlePerHost: 2 })
  const url = `tcp://127.0.0.1:${server.port}`
  const conns = await Promise.all([1, 2, 3, 4].map(() => pool.acquire(url)))
  for (const c of conns) pool.release(c)
  t.like(pool.stats(), { idle: 2, connections: 2, closed: 2 })
  await eventually(() => server.closed === 2 && server.open === 2, 3000, 'server to see two closes')
  await pool.shutdownAll()
})

test('maxIdlePerHost: 0 keeps nothing idle', async (t) => {
  const server = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool, { maxIdlePerHost: 0 })
  pool.release(await pool.acquire(`tcp://127.0.0.1:${server.port}`))
  t.is(pool.stats().idle, 0)
  await eventually(() => server.closed === 1, 3000, 'server to see the close')
  await pool.shutdownAll()
})

test('releasing twice throws PCONN_ALREADY_RELEASED and changes nothing', async (t) => {
  const server = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool)
  const conn = await pool.acquire(`tcp://127.0.0.1:${server.port}`)
  pool.release(conn)
  const before = pool.stats()
  const err = t.throws(() => pool.release(conn))
  t.is(err.code, 'PCONN_ALREADY_RELEASED')
  t.deepEqual(pool.stats(), before)
  t.is(conn.released, true)
  await t.throwsAsync(conn.write('x'), { code: 'PCONN_ALREADY_RELEASED' })
  await t.throwsAsync(conn.read(), { code: 'PCONN_ALREADY_RELEASED' })
  t.deepEqual(pool.stats(), before)
  await pool.shutdownAll()
})

test('releasing into another pool throws and changes neither pool', async (t) => {
  const server = await useServer(t, tcpEchoServer)
  const a = usePool(t, Pool)
  const b = usePool(t, Pool)
  const conn = await a.acquire(`tcp://127.0.0.1:${server.port}`)
  const beforeA = a.stats()
  const beforeB = b.stats()
  const err = t.throws(() => b.release(conn))
  t.is(err.code, 'ERR_INVALID_ARG_VALUE')
  t.deepEqual(a.stats(), beforeA)
  t.deepEqual(b.stats(), beforeB)
  a.release(conn)
  t.is(a.stats().idle, 1)
  await Promise.all([a.shutdownAll(), b.shutdownAll()])
})

test('flushForHost closes idle connections of that host on every port and returns the count', async (t) => {
  const s1 = await useServer(t, tcpEchoServer)
  const s2 = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool)
  const idle1 = await pool.acquire(`tcp://127.0.0.1:${s1.port}`)
  const idle2 = await pool.acquire(`tcp://127.0.0.1:${s2.port}`)
  const active = await pool.acquire(`tcp://127.0.0.1:${s1.port}`)
  const other = await pool.acquire(`tcp://localhost:${s1.port}`)
  pool.release(idle1)
  pool.release(idle2)
  pool.release(other)
  t.is(pool.flushForHost('127.0.0.1'), 2)
  t.like(pool.stats(), { idle: 1, active: 1 })
  t.is(pool.stats().closedBy.flush, 2)
  await eventually(() => s1.closed === 1 && s2.closed === 1, 3000, 'servers to see the closes')
  t.is(pool.flushForHost('nothing.example'), 0)
  // The active connection was untouched and still works.
  await active.write('still here')
  t.is(String(await active.read()), 'still here')
  pool.release(active)
  await pool.shutdownAll()
})

test('conn.release() is the same as pool.release(conn)', async (t) => {
  const server = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool)
  const conn = await pool.acquire(`tcp://127.0.0.1:${server.port}`)
  conn.release()
  t.is(pool.stats().idle, 1)
  t.throws(() => conn.release(), { code: 'PCONN_ALREADY_RELEASED' })
  await pool.shutdownAll()
})

/** A server that answers only once the client has ended its side (TCP or TLS). */
async function answersAfterEof(t, tlsOptions) {
  const seen = { closed: 0 }
  const onSocket = (socket) => {
    const got = []
    socket.on('error', () => {})
    socket.on('close', () => seen.closed++)
    socket.on('data', (d) => got.push(d))
    socket.on('end', () => socket.end(`after EOF: ${Buffer.concat(got)}`))
  }
  const server = tlsOptions ? tls.createServer({ ...tlsOptions, allowHalfOpen: true }, onSocket) : net.createServer({ allowHalfOpen: true }, onSocket)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  return Object.assign(seen, { port: server.address().port })
}

async function readToEnd(conn) {
  const chunks = []
  for (let chunk; (chunk = await conn.read()) !== null; ) chunks.push(chunk)
  return Buffer.concat(chunks).toString()
}

const halfClose = test.macro({
  async exec(t, scheme) {
    const ca = makeCa()
    const server = await answersAfterEof(t, scheme === 'tls' ? makeLeaf(ca, ['localhost']) : undefined)
    const pool = usePool(t, Pool, { tls: { ca: ca.cert } })
    const conn = await pool.acquire(`${scheme}://localhost:${server.port}`)
    await conn.write('the question')
    const ended = conn.end()
    t.is(conn.end(), ended, 'a second end() is the first')
    await ended
    await t.throwsAsync(conn.write('more'), { code: 'ERR_STREAM_WRITE_AFTER_END' })
    t.is(await readToEnd(conn), 'after EOF: the question', 'the server read EOF, and its answer still arrived')
    pool.release(conn)
    t.like(pool.stats(), { idle: 0, connections: 0 }, 'an ended connection is never pooled')
    await eventually(() => server.closed === 1, 3000, 'the server to see the close')
  },
  title: (_, scheme) => `conn.end() half-closes a ${scheme} connection: the peer reads EOF, its answer still arrives, and the connection is not pooled again`,
})

test(halfClose, 'tcp')
test(halfClose, 'tls')
