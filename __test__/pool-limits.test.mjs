import test from 'ava'
import { Pool } from '../dist/index.js'
import { tcpEchoServer, eventually, sleep, useServer, usePool } from './helpers/servers.mjs'

test('at maxConnectionsPerHost, acquires wait and are served in FIFO order by released connections', async (t) => {
  const server = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool, { maxConnectionsPerHost: 1 })
  const url = `tcp://127.0.0.1:${server.port}`
  const held = [await pool.acquire(url)]
  const order = []
  const waiters = [0, 1, 2, 3, 4].map((i) =>
    pool.acquire(url).then((c) => {
      order.push(i)
      setTimeout(() => pool.release(c), 5)
    }),
  )
  // The queue position is taken synchronously, in call order.
  t.like(pool.stats(), { pending: 5, active: 1, waited: 5 })
  for (const c of held) pool.release(c)
  await Promise.all(waiters)
  t.deepEqual(order, [0, 1, 2, 3, 4])
  t.is(pool.stats().pending, 0)
  await eventually(() => server.opened === 1, 3000, 'server connection count')
})

test('maxConnections limits connections across keys; idle ones of other keys are evicted to make room', async (t) => {
  const a = await useServer(t, tcpEchoServer)
  const b = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool, { maxConnections: 1 })
  pool.release(await pool.acquire(`tcp://127.0.0.1:${a.port}`))
  const conn = await pool.acquire(`tcp://127.0.0.1:${b.port}`)
  t.is(pool.stats().connections, 1)
  t.is(pool.stats().closedBy.evicted, 1)
  await eventually(() => a.closed === 1, 3000, 'a to see its connection evicted')
  // With the only connection active, another key has to wait for it to close.
  const waiting = pool.acquire(`tcp://127.0.0.1:${a.port}`)
  await sleep(20)
  t.is(pool.stats().pending, 1)
  pool.release(conn, false)
  const next = await waiting
  t.false(next.reused)
  pool.release(next)
})

test('acquireTimeoutMs rejects a waiter with PCONN_ACQUIRE_TIMEOUT and removes it', async (t) => {
  const server = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool, { maxConnectionsPerHost: 1, acquireTimeoutMs: 50 })
  const url = `tcp://127.0.0.1:${server.port}`
  const held = await pool.acquire(url)
  const started = Date.now()
  const err = await t.throwsAsync(pool.acquire(url))
  t.is(err.code, 'PCONN_ACQUIRE_TIMEOUT')
  t.true(Date.now() - started >= 45)
  t.like(pool.stats(), { pending: 0, timedOut: 1 })
  // A per-call timeout overrides the pool's.
  await t.throwsAsync(pool.acquire(url, { acquireTimeoutMs: 10 }), { code: 'PCONN_ACQUIRE_TIMEOUT' })
  pool.release(held)
  pool.release(await pool.acquire(url))
})

test('an AbortSignal cancels a waiting acquire with ABORT_ERR and removes the waiter', async (t) => {
  const server = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool, { maxConnectionsPerHost: 1 })
  const url = `tcp://127.0.0.1:${server.port}`
  const held = await pool.acquire(url)
  const ac = new AbortController()
  const waiting = pool.acquire(url, { signal: ac.signal })
  await sleep(10)
  t.is(pool.stats().pending, 1)
  ac.abort()
  const err = await t.throwsAsync(waiting)
  t.is(err.code, 'ABORT_ERR')
  t.is(err.name, 'AbortError')
  t.is(pool.stats().pending, 0)
  // An already aborted signal rejects at once and changes nothing.
  await t.throwsAsync(pool.acquire(url, { signal: AbortSignal.abort() }), { code: 'ABORT_ERR' })
  pool.release(held)
  // The released connection was not lost to the aborted waiter.
  const again = await pool.acquire(url)
  t.true(again.reused)
  pool.release(again)
  await eventually(() => server.opened === 1, 3000, 'server connection count')
})

test('an abort storm leaves no waiter behind', async (t) => {
  const server = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool, { maxConnectionsPerHost: 2 })
  const url = `tcp://127.0.0.1:${server.port}`
  const held = await Promise.all([pool.acquire(url), pool.acquire(url)])
  const controllers = Array.from({ length: 200 }, () => new AbortController())
  const acquires = controllers.map((ac) => pool.acquire(url, { signal: ac.signal }))
  controllers.forEach((ac, i) => i % 2 === 0 && ac.abort())
  for (const c of held) pool.release(c)
  const results = await Promise.allSettled(
    acquires.map((p) => p.then((c) => new Promise((r) => setTimeout(() => r(pool.release(c)), 1)))),
  )
  t.is(results.filter((r) => r.status === 'rejected').length, 100)
  t.true(results.filter((r) => r.status === 'rejected').every((r) => r.reason.code === 'ABORT_ERR'))
  t.like(pool.stats(), { pending: 0, active: 0 })
  await eventually(() => server.opened === 2, 3000, 'server connection count')
})

test('maxPending refuses extra waiters with PCONN_QUEUE_FULL', async (t) => {
  const server = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool, { maxConnectionsPerHost: 1, maxPending: 1 })
  const url = `tcp://127.0.0.1:${server.port}`
  const held = await pool.acquire(url)
  const queued = pool.acquire(url)
  await sleep(10)
  await t.throwsAsync(pool.acquire(url), { code: 'PCONN_QUEUE_FULL' })
  t.is(pool.stats().pending, 1)
  pool.release(held)
  pool.release(await queued)
})

test('shutdownAll rejects waiters and later acquires, closes active connections on release, then resolves', async (t) => {
  const server = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool, { maxConnectionsPerHost: 1 })
  const url = `tcp://127.0.0.1:${server.port}`
  const held = await pool.acquire(url)
  const idleSibling = usePool(t, Pool)
  void idleSibling
  const waiters = [pool.acquire(url), pool.acquire(url)]
  await sleep(10)
  let resolved = false
  const done = pool.shutdownAll().then(() => (resolved = true))
  for (const w of waiters) await t.throwsAsync(w, { code: 'PCONN_POOL_CLOSED' })
  await t.throwsAsync(pool.acquire(url), { code: 'PCONN_POOL_CLOSED' })
  await sleep(30)
  t.false(resolved, 'an active connection keeps shutdownAll pending')
  t.is(server.closed, 0)
  pool.release(held)
  await done
  t.is(pool.shutdownAll(), pool.shutdownAll())
  await eventually(() => server.closed === 1, 3000, 'server to see the close')
  t.like(pool.stats(), { connections: 0, pending: 0 })
  t.is(pool.stats().closedBy.shutdown, 1)
})

test('shutdownAll closes idle connections and resolves once the server saw them close', async (t) => {
  const server = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool)
  const url = `tcp://127.0.0.1:${server.port}`
  const conns = await Promise.all([1, 2, 3].map(() => pool.acquire(url)))
  for (const c of conns) pool.release(c)
  await pool.shutdownAll()
  t.is(pool.stats().connections, 0)
  await eventually(() => server.closed === 3, 3000, 'server to see three closes')
})

test('Symbol.asyncDispose shuts the pool down', async (t) => {
  const server = await useServer(t, tcpEchoServer)
  const pool = new Pool()
  pool.release(await pool.acquire(`tcp://127.0.0.1:${server.port}`))
  await pool[Symbol.asyncDispose]()
  t.true(pool.closed)
  await t.throwsAsync(pool.acquire(`tcp://127.0.0.1:${server.port}`), { code: 'PCONN_POOL_CLOSED' })
})

test('an aborted acquire rejects with the signal’s reason (TimeoutError for AbortSignal.timeout)', async (t) => {
  const server = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool, { maxConnectionsPerHost: 1 })
  const url = `tcp://127.0.0.1:${server.port}`
  const held = await pool.acquire(url)
  const timeout = await t.throwsAsync(pool.acquire(url, { signal: AbortSignal.timeout(30) }))
  t.like(timeout, { code: 'ABORT_ERR', name: 'TimeoutError' })
  const mine = new Error('no longer needed')
  const ac = new AbortController()
  setTimeout(() => ac.abort(mine), 20)
  t.is(await t.throwsAsync(pool.acquire(url, { signal: ac.signal })), mine)
  t.is(pool.stats().pending, 0)
  pool.release(held)
})
