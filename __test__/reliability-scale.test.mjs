// Load and shutdown under pressure: no deadlock, FIFO service, nothing left
// pending, every socket closed.
import test from 'ava'
import { readdirSync } from 'node:fs'
import { Pool } from '../dist/index.js'
import { httpServer, ok } from './helpers/http-server.mjs'
import { eventually, sleep, tcpEchoServer, useServer, usePool } from './helpers/servers.mjs'

const openFds = () => readdirSync('/proc/self/fd').length

test('10,000 concurrent acquires against maxConnectionsPerHost: 8 all complete, served in FIFO order', async (t) => {
  t.timeout(120_000)
  const server = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool, { maxConnectionsPerHost: 8 })
  const url = `tcp://127.0.0.1:${server.port}`
  const served = []
  const all = Array.from({ length: 10_000 }, (_, i) =>
    pool.acquire(url).then((conn) => {
      served.push(i)
      queueMicrotask(() => pool.release(conn))
    }),
  )
  t.is(pool.stats().pending, 10_000 - 8)
  await Promise.all(all)
  t.is(served.length, 10_000)
  // The first 8 connect concurrently (any order); every waiter after them
  // is served in call order.
  const waiters = served.filter((i) => i >= 8)
  t.deepEqual(waiters, Array.from({ length: 10_000 - 8 }, (_, k) => k + 8))
  t.like(pool.stats(), { pending: 0, active: 0, created: 8 })
  await eventually(() => server.opened === 8, 3000, 'server to count 8 connections')
})

test('with one connection, 10,000 waiters are served strictly in call order', async (t) => {
  t.timeout(120_000)
  const server = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool, { maxConnectionsPerHost: 1 })
  const url = `tcp://127.0.0.1:${server.port}`
  const served = []
  await Promise.all(
    Array.from({ length: 10_000 }, (_, i) =>
      pool.acquire(url).then((conn) => {
        served.push(i)
        pool.release(conn)
      }),
    ),
  )
  t.deepEqual(served, Array.from({ length: 10_000 }, (_, i) => i))
  t.like(pool.stats(), { pending: 0, created: 1, reused: 9_999 })
})

test('an abort storm over 10,000 waiters leaves stats().pending at 0 and loses no connection', async (t) => {
  t.timeout(120_000)
  const server = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool, { maxConnectionsPerHost: 8 })
  const url = `tcp://127.0.0.1:${server.port}`
  const held = await Promise.all(Array.from({ length: 8 }, () => pool.acquire(url)))
  const controllers = Array.from({ length: 10_000 }, () => new AbortController())
  const acquires = controllers.map((ac) => pool.acquire(url, { signal: ac.signal }).then((c) => queueMicrotask(() => pool.release(c))))
  for (const ac of controllers) if (Math.random() < 0.5) ac.abort()
  for (const c of held) pool.release(c)
  const results = await Promise.allSettled(acquires)
  const aborted = controllers.filter((ac) => ac.signal.aborted).length
  t.is(results.filter((r) => r.status === 'rejected').length, aborted)
  t.true(results.filter((r) => r.status === 'rejected').every((r) => r.reason.code === 'ABORT_ERR'))
  t.like(pool.stats(), { pending: 0, active: 0, idle: 8, created: 8 })
})

test('shutdownAll with requests in flight and waiters queued: everything settles and every socket closes', async (t) => {
  t.timeout(60_000)
  const server = await useServer(t, httpServer, (req, s) => setTimeout(() => s.write(ok('late')), 50))
  const pool = usePool(t, Pool, { maxConnectionsPerHost: 4 })
  const before = openFds()
  const requests = Array.from({ length: 40 }, (_, i) => pool.request(server.url(`/${i}`)).then((r) => r.body.text()))
  // Four connections open and carry requests; the other 36 wait for them.
  await eventually(() => pool.stats().active === 4 && pool.stats().pending === 36, 3000, 'four active, 36 waiting')
  const done = pool.shutdownAll()
  const results = await Promise.allSettled(requests)
  await done
  const rejected = results.filter((r) => r.status === 'rejected')
  t.is(rejected.length, 36)
  t.true(rejected.every((r) => r.reason.code === 'PCONN_POOL_CLOSED'))
  t.true(results.filter((r) => r.status === 'fulfilled').every((r) => r.value === 'late'))
  t.like(pool.stats(), { connections: 0, active: 0, pending: 0 })
  await eventually(() => server.closed === server.opened, 3000, 'the server to see every connection closed')
  await eventually(() => openFds() <= before, 3000, 'descriptors back to where they were')
})
