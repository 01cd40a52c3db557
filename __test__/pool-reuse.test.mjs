import test from 'ava'
import { Pool } from '../dist/index.js'
import { tcpEchoServer, eventually, useServer, usePool } from './helpers/servers.mjs'

test('a released connection is reused: the server sees one connection for many acquires', async (t) => {
  const server = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool)
  const url = `tcp://127.0.0.1:${server.port}`
  for (let i = 0; i < 20; i++) {
    const conn = await pool.acquire(url)
    t.is(conn.reused, i > 0)
    await conn.write(`ping ${i}`)
    t.is(String(await conn.read()), `ping ${i}`)
    pool.release(conn)
  }
  await eventually(() => server.opened === 1, 3000, 'server to count 1 connections')
  const s = pool.stats()
  t.like(s, { created: 1, reused: 19, idle: 1, active: 0, connections: 1 })
  t.like(s.hosts[`tcp://127.0.0.1:${server.port}`], { created: 1, reused: 19, idle: 1 })
  await pool.shutdownAll()
  await eventually(() => server.closed === 1, 3000, 'server to see the close')
})

/** Open two connections, release them in order, then acquire once more. */
async function releaseTwoThenAcquire(t, options) {
  const server = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool, options)
  const url = `tcp://127.0.0.1:${server.port}`
  const a = await pool.acquire(url)
  const b = await pool.acquire(url)
  pool.release(a)
  pool.release(b)
  const next = await pool.acquire(url)
  t.not(a.id, b.id)
  t.true(next.reused)
  await eventually(() => server.opened === 2, 3000, 'server to count 2 connections')
  return { pool, a, b, next }
}

test('LIFO (default) hands out the most recently released connection', async (t) => {
  const { pool, b, next } = await releaseTwoThenAcquire(t)
  t.is(next.id, b.id)
  pool.release(next)
})

test("scheduling: 'fifo' hands out the longest-parked connection", async (t) => {
  const { pool, a, next } = await releaseTwoThenAcquire(t, { scheduling: 'fifo' })
  t.is(next.id, a.id)
  t.is(next.uses, 2)
  pool.release(next)
})

test('keys are normalized: scheme and host case, default ports, URL paths', async (t) => {
  const server = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool)
  const a = await pool.acquire(`TCP://LocalHost:${server.port}/ignored?x=1`)
  pool.release(a)
  const b = await pool.acquire({ scheme: 'tcp', host: 'localhost', port: server.port })
  t.true(b.reused)
  t.is(b.key, `tcp://localhost:${server.port}`)
  pool.release(b)
  await eventually(() => server.opened === 1, 3000, 'server to count 1 connections')
  await pool.shutdownAll()
})

test('different keys never share connections', async (t) => {
  const server = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool)
  const a = await pool.acquire(`tcp://127.0.0.1:${server.port}`)
  pool.release(a)
  const b = await pool.acquire(`tcp://localhost:${server.port}`)
  t.false(b.reused)
  pool.release(b)
  await eventually(() => server.opened === 2, 3000, 'server to count 2 connections')
  t.deepEqual(Object.keys(pool.stats().hosts).sort(), [`tcp://127.0.0.1:${server.port}`, `tcp://localhost:${server.port}`])
  await pool.shutdownAll()
})

test('the callback form of acquire calls onReady exactly once', async (t) => {
  const server = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool)
  const conn = await new Promise((resolve, reject) => {
    const ret = pool.acquire(`tcp://127.0.0.1:${server.port}`, resolve, reject)
    t.is(ret, undefined)
  })
  t.is(typeof conn.id, 'number')
  pool.release(conn)
  await pool.shutdownAll()
})

test('the callback form reports errors through onError', async (t) => {
  const pool = usePool(t, Pool)
  await pool.shutdownAll()
  const err = await new Promise((resolve) => pool.acquire('tcp://127.0.0.1:9', () => t.fail(), resolve))
  t.is(err.code, 'PCONN_POOL_CLOSED')
})
