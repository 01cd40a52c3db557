// What a service sees of its requests without wrapping pconn: the
// pconn:request:* channels with each stage's time, and per-host counters
// that outlive a host going quiet.
import test from 'ava'
import diagnostics from 'node:diagnostics_channel'
import { Pool } from '../dist/index.js'
import { record } from './helpers/channels.mjs'
import { makeCa, makeLeaf } from './helpers/certs.mjs'
import { httpServer, ok } from './helpers/http-server.mjs'
import { closedPort, eventually, tlsEchoServer, useServer, usePool } from './helpers/servers.mjs'
import https from 'node:https'
import { once } from 'node:events'

test.serial('pconn:request:start and :end carry the key, the connection and each stage', async (t) => {
  const starts = record(t, 'pconn:request:start')
  const ends = record(t, 'pconn:request:end')
  const server = await useServer(t, httpServer, (req, s) => s.write(ok(req.path === '/big' ? 'b'.repeat(200_000) : 'ok')))
  const pool = usePool(t, Pool)
  await (await pool.request(server.url('/a?x=1'))).body.text()
  await (await pool.request(server.url('/a?x=1'))).body.text()
  const big = await pool.request(server.url('/big'))
  t.is(ends.length, 2, 'a streamed body ends later')
  await big.body.text()
  await eventually(() => ends.length === 3, 3000, 'the end of the streamed body')
  const key = `http://127.0.0.1:${server.port}`
  t.deepEqual(starts[0], { key, method: 'GET', path: '/a?x=1' })
  const [first, second, third] = ends
  t.like(first, { key, method: 'GET', path: '/a?x=1', reused: false, tlsMs: 0, retried: false })
  t.like(second, { reused: true, connectMs: 0, tlsMs: 0 })
  t.is(second.connectionId, first.connectionId)
  t.true(first.connectMs > 0, 'the first request opened the connection')
  for (const e of ends) {
    t.true(e.ttfbMs > 0 && e.ttfbMs <= e.totalMs, JSON.stringify(e))
    t.true(e.queuedMs >= 0)
  }
  t.is(third.path, '/big')
})

test.serial('pconn:request:end over TLS reports the handshake; :error reports failures', async (t) => {
  const ends = record(t, 'pconn:request:end')
  const errors = record(t, 'pconn:request:error')
  const ca = makeCa()
  const leaf = makeLeaf(ca, ['localhost'])
  const server = https.createServer({ ...leaf }, (req, res) => res.end('secure'))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  const pool = usePool(t, Pool, { tls: { ca: ca.cert } })
  await (await pool.request(`https://localhost:${server.address().port}/`)).body.text()
  t.true(ends[0].tlsMs > 0, JSON.stringify(ends[0]))
  const port = await closedPort()
  await t.throwsAsync(pool.request(`http://127.0.0.1:${port}/nowhere`))
  t.like(errors[0], { key: `http://127.0.0.1:${port}`, method: 'GET', path: '/nowhere' })
  t.is(errors[0].error.code, 'ECONNREFUSED')
  t.true(errors[0].totalMs >= 0)
})

test.serial('without subscribers nothing is measured: a request that started unobserved publishes no end, even to a later subscriber', async (t) => {
  let answer
  const server = await useServer(t, httpServer, (req, s) => {
    if (req.path === '/unobserved') answer = () => s.write(ok())
    else s.write(ok())
  })
  const pool = usePool(t, Pool)
  t.false(diagnostics.channel('pconn:request:end').hasSubscribers)
  const unobserved = pool.request(server.url('/unobserved'))
  await eventually(() => answer !== undefined, 3000, 'the request reached the server')
  const ends = record(t, 'pconn:request:end')
  answer()
  t.is(await (await unobserved).body.text(), 'ok')
  await (await pool.request(server.url('/observed'))).body.text()
  t.deepEqual(
    ends.map((e) => e.path),
    ['/observed'],
  )
})

test('per-host counters survive a host going quiet', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => s.write(ok()))
  const pool = usePool(t, Pool)
  const key = `http://127.0.0.1:${server.port}`
  for (let i = 0; i < 3; i++) await (await pool.request(server.url())).body.text()
  t.is(pool.flushForHost('127.0.0.1'), 1)
  await eventually(() => pool.stats().connections === 0, 3000, 'the flush')
  t.like(pool.stats().hosts[key], { connections: 0, created: 1, reused: 2, closed: 1, closedBy: { flush: 1 } })
  await (await pool.request(server.url())).body.text()
  t.like(pool.stats().hosts[key], { connections: 1, created: 2, reused: 2 }, 'counting goes on from there')
})
