import test from 'ava'
import { Pool } from '../dist/index.js'
import { tcpEchoServer, eventually, sleep, useServer, usePool } from './helpers/servers.mjs'

test('an idle connection the server closed is dropped promptly, and the next acquire opens a fresh one', async (t) => {
  const server = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool)
  const url = `tcp://127.0.0.1:${server.port}`
  pool.release(await pool.acquire(url))
  await eventually(() => server.open === 1, 3000, 'server to see the connection')
  server.destroyAll()
  await eventually(() => pool.stats().idle === 0, 2000, 'the pool to drop the dead idle connection')
  t.is(pool.stats().closedBy.peer, 1)
  const conn = await pool.acquire(url)
  t.false(conn.reused)
  await conn.write('fresh')
  t.is(String(await conn.read()), 'fresh')
  pool.release(conn)
})

test('checkout skips a connection whose peer closed an instant before', async (t) => {
  const server = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool)
  const url = `tcp://127.0.0.1:${server.port}`
  const conns = await Promise.all([pool.acquire(url), pool.acquire(url)])
  for (const c of conns) pool.release(c)
  await eventually(() => server.open === 2, 3000, 'server to see both connections')
  // Close one server-side socket and acquire at once: whichever the pool
  // offers must be alive (the dead one is detected by the checkout probe or
  // the watcher, never handed out).
  server.sockets.values().next().value.destroy()
  for (let i = 0; i < 3; i++) {
    const c = await pool.acquire(url)
    await c.write('alive?')
    t.is(String(await c.read()), 'alive?')
    pool.release(c)
  }
})

test('stray bytes from the server on an idle connection close it (the stream is out of sync)', async (t) => {
  const server = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool)
  pool.release(await pool.acquire(`tcp://127.0.0.1:${server.port}`))
  await eventually(() => server.open === 1, 3000, 'server to see the connection')
  server.writeAll('unsolicited')
  await eventually(() => pool.stats().idle === 0, 2000, 'the pool to drop the desynchronized connection')
  t.is(pool.stats().closedBy.broken, 1)
  await eventually(() => server.closed === 1, 3000, 'server to see the close')
})

test('idleTimeoutMs closes connections parked too long', async (t) => {
  const server = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool, { idleTimeoutMs: 100 })
  pool.release(await pool.acquire(`tcp://127.0.0.1:${server.port}`))
  t.is(pool.stats().idle, 1)
  await eventually(() => server.closed === 1, 3000, 'server to see the idle close')
  t.like(pool.stats(), { idle: 0, connections: 0 })
  t.is(pool.stats().closedBy.idle, 1)
})

test('a connection in use is not touched by the idle timeout', async (t) => {
  const server = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool, { idleTimeoutMs: 50 })
  const conn = await pool.acquire(`tcp://127.0.0.1:${server.port}`)
  await sleep(200)
  await conn.write('still mine')
  t.is(String(await conn.read()), 'still mine')
  pool.release(conn)
  t.is(server.closed, 0)
})

test('maxUses retires a connection after that many checkouts', async (t) => {
  const server = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool, { maxUses: 3 })
  const url = `tcp://127.0.0.1:${server.port}`
  const ids = []
  for (let i = 0; i < 6; i++) {
    const c = await pool.acquire(url)
    ids.push(c.id)
    pool.release(c)
  }
  t.is(new Set(ids).size, 2)
  t.is(pool.stats().closedBy.lifetime, 2)
  await eventually(() => server.opened === 2 && server.closed === 2, 3000, 'server to see two retirements')
})

test('maxLifetimeMs retires connections (idle ones by the reaper, active ones on release)', async (t) => {
  const server = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool, { maxLifetimeMs: 150 })
  const url = `tcp://127.0.0.1:${server.port}`
  const a = await pool.acquire(url)
  const b = await pool.acquire(url)
  pool.release(a)
  await sleep(250)
  pool.release(b)
  await eventually(() => pool.stats().closedBy.lifetime === 2, 2000, 'both to retire')
  t.is(pool.stats().connections, 0)
  await eventually(() => server.closed === 2, 3000, 'server to see both closes')
})
