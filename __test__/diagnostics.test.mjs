import test from 'ava'
import { once } from 'node:events'
import { Pool } from '../dist/index.js'
import { record } from './helpers/channels.mjs'
import { eventually, sleep, tcpEchoServer, useServer, usePool } from './helpers/servers.mjs'

test.serial('pconn:connect, pconn:reuse and pconn:close describe each connection', async (t) => {
  const connects = record(t, 'pconn:connect')
  const reuses = record(t, 'pconn:reuse')
  const closes = record(t, 'pconn:close')
  const server = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool)
  const url = `tcp://127.0.0.1:${server.port}`
  const first = await pool.acquire(url)
  pool.release(first)
  const again = await pool.acquire(url)
  pool.release(again, false)
  const mine = (e) => e.key === `tcp://127.0.0.1:${server.port}`
  t.like(connects.filter(mine)[0], { id: first.id, key: url, remoteAddress: '127.0.0.1', remotePort: server.port })
  t.like(reuses.filter(mine)[0], { id: first.id, uses: 2 })
  await eventually(() => closes.some(mine), 2000, 'a close event')
  t.like(closes.find(mine), { id: first.id, reason: 'broken' })
})

test.serial('pconn:close reports the closes of shutdownAll(), idle and released after it began', async (t) => {
  const closes = record(t, 'pconn:close')
  const server = await useServer(t, tcpEchoServer)
  const pool = new Pool()
  const url = `tcp://127.0.0.1:${server.port}`
  const idle = await pool.acquire(url)
  const active = await pool.acquire(url)
  pool.release(idle)
  const shutdown = pool.shutdownAll()
  pool.release(active)
  await shutdown
  const mine = () => closes.filter((e) => e.key === url)
  await eventually(() => mine().length === 2, 2000, 'two close events')
  t.deepEqual(
    mine().map((e) => [e.id, e.reason]).sort(),
    [
      [idle.id, 'shutdown'],
      [active.id, 'shutdown'],
    ].sort(),
  )
  await eventually(() => server.closed === 2, 2000, 'the server saw both connections close')
})

test.serial('leakDetectionMs warns once with the stack of the acquirer, and not after release', async (t) => {
  const leaks = record(t, 'pconn:leak')
  const server = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool, { leakDetectionMs: 50 })
  const warning = once(process, 'warning')
  const held = await (async function acquireAndForget() {
    return pool.acquire(`tcp://127.0.0.1:${server.port}`)
  })()
  const [w] = await warning
  t.is(w.name, 'PconnLeakWarning')
  t.is(w.code, 'PCONN_LEAK')
  t.regex(w.message, /held for more than 50 ms/)
  t.is(leaks.length, 1)
  t.is(leaks[0].id, held.id)
  t.regex(leaks[0].stack, /acquireAndForget/)
  pool.release(held)
  const prompt = await pool.acquire(`tcp://127.0.0.1:${server.port}`)
  pool.release(prompt)
  await sleep(100)
  t.is(leaks.length, 1)
})

test.serial('request() publishes pconn:connect for a new connection and pconn:reuse after', async (t) => {
  const { httpServer, ok } = await import('./helpers/http-server.mjs')
  const connects = record(t, 'pconn:connect')
  const reuses = record(t, 'pconn:reuse')
  const server = await useServer(t, httpServer, (req, s) => s.write(ok()))
  const pool = usePool(t, Pool)
  const key = `http://127.0.0.1:${server.port}`
  await (await pool.request(server.url('/1'))).body.text()
  await (await pool.request(server.url('/2'))).body.text()
  const mine = (e) => e.key === key
  t.is(connects.filter(mine).length, 1)
  t.is(reuses.filter(mine).length, 1)
  t.is(connects.find(mine).id, reuses.find(mine).id)
})
