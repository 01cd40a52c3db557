// worker_threads: every JavaScript thread gets its own completions, a thread
// that ends takes its operations and sockets with it, and a pool can be
// shared by name across threads.
import test from 'ava'
import http from 'node:http'
import { once } from 'node:events'
import { execFile } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { Worker } from 'node:worker_threads'
import { promisify } from 'node:util'
import { Pool } from '../dist/index.js'
import { eventually, silentServer, useServer, usePool } from './helpers/servers.mjs'
import { startWorker } from './helpers/worker-driver.mjs'

const openFds = () => readdirSync('/proc/self/fd').length

/**
 * An HTTP server that answers `/echo/<tag>` with `<tag>` (after `?delay=`
 * ms), stalls `/stall-head`, `/stall-body` and `/upload` on purpose, and
 * records per connection which thread (`x-who`) it served.
 */
async function taggingServer() {
  const seen = { opened: 0, closed: 0, open: 0, maxOpen: 0, stalled: 0, whoBySocket: new Map() }
  const server = http.createServer((req, res) => {
    const served = seen.whoBySocket.get(req.socket)
    if (served && req.headers['x-who']) served.add(req.headers['x-who'])
    const url = new URL(req.url, 'http://x')
    if (url.pathname.startsWith('/echo/')) {
      const tag = url.pathname.slice('/echo/'.length)
      setTimeout(() => res.end(tag), Number(url.searchParams.get('delay') ?? 0))
    } else if (url.pathname === '/stall-body') {
      seen.stalled++
      res.writeHead(200, { 'content-length': String(1 << 20) })
      res.write('x'.repeat(100 * 1024))
    } else {
      seen.stalled++ // /stall-head and /upload: never answered
      req.resume()
    }
  })
  server.keepAliveTimeout = 60_000
  server.on('connection', (socket) => {
    seen.opened++
    seen.open++
    seen.maxOpen = Math.max(seen.maxOpen, seen.open)
    seen.whoBySocket.set(socket, new Set())
    socket.on('close', () => {
      seen.closed++
      seen.open--
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const base = `http://127.0.0.1:${server.address().port}`
  return Object.assign(seen, {
    url: (path) => base + path,
    async close() {
      server.closeAllConnections()
      server.close()
      await once(server, 'close')
    },
  })
}

const tagged = (server, who, n) => Array.from({ length: n }, (_, i) => server.url(`/echo/${who}-${i}?delay=${(i * 7) % 40}`))

test('each thread gets only its own completions: main thread and two workers, 20 tagged requests each', async (t) => {
  t.timeout(15_000)
  const server = await useServer(t, taggingServer)
  const workers = [startWorker(t), startWorker(t)]
  await Promise.all(workers.map((w) => w.call('open', { options: {} })))
  const pool = usePool(t, Pool)
  const main = tagged(server, 'main', 20)
  const [mine, first, second] = await Promise.all([
    Promise.all(main.map((url) => pool.request(url).then((r) => r.body.text()))),
    workers[0].call('get', { urls: tagged(server, 'w1', 20) }),
    workers[1].call('get', { urls: tagged(server, 'w2', 20) }),
  ])
  const expected = (who) => Array.from({ length: 20 }, (_, i) => `${who}-${i}`)
  t.deepEqual(mine, expected('main'))
  t.deepEqual(first, expected('w1'))
  t.deepEqual(second, expected('w2'))
})

test('a worker that used pconn and exited leaves the next worker and the main thread working', async (t) => {
  const server = await useServer(t, taggingServer)
  const first = startWorker(t)
  await first.call('open', { options: {} })
  t.deepEqual(await first.call('get', { urls: tagged(server, 'first', 3) }), ['first-0', 'first-1', 'first-2'])
  await first.worker.terminate()
  const second = startWorker(t)
  await second.call('open', { options: {} })
  t.deepEqual(await second.call('get', { urls: tagged(server, 'second', 3) }), ['second-0', 'second-1', 'second-2'])
  const pool = usePool(t, Pool)
  t.is(await (await pool.request(server.url('/echo/main'))).body.text(), 'main')
})

test('when only workers load pconn, the I/O runtime outlives the first one to exit', async (t) => {
  t.timeout(20_000)
  const server = await useServer(t, taggingServer)
  // The main thread of this child never loads pconn: each worker is the
  // only user while it lives.
  const script = `
    const { Worker } = require('node:worker_threads')
    const body = \`
      const { parentPort, workerData } = require('node:worker_threads')
      const { Pool } = require(workerData.pconn)
      const pool = new Pool()
      pool.request(workerData.url).then((r) => r.body.text()).then((b) => parentPort.postMessage(b), (e) => parentPort.postMessage('error ' + e.code))
    \`
    async function one(tag) {
      const w = new Worker(body, { eval: true, workerData: { pconn: ${JSON.stringify(new URL('../dist/index.js', import.meta.url).pathname)}, url: ${JSON.stringify(server.url('/echo/'))} + tag } })
      const [answer] = await require('node:events').once(w, 'message')
      await w.terminate()
      return answer
    }
    ;(async () => { for (const tag of ['one', 'two', 'three']) console.log(await one(tag)) })()
  `
  const { stdout } = await promisify(execFile)(process.execPath, ['-e', script], { timeout: 15_000 })
  t.deepEqual(stdout.trim().split('\n'), ['one', 'two', 'three'])
})

test('20 workers terminated with operations in flight (waiting, connecting, mid-head, mid-body, mid-upload): no crash, nothing left open', async (t) => {
  t.timeout(60_000)
  const server = await useServer(t, taggingServer)
  const silent = await useServer(t, silentServer)
  const pool = usePool(t, Pool)
  t.is(await (await pool.request(server.url('/echo/warm'))).body.text(), 'warm')
  const baseline = openFds()
  const servers = {
    stallHead: server.url('/stall-head'),
    stallBody: server.url('/stall-body'),
    upload: server.url('/upload'),
    silentTls: `tls://127.0.0.1:${silent.port}`,
  }
  const stages = ['waiting', 'connecting', 'mid-head', 'mid-body', 'mid-upload']
  for (let round = 0; round < 20; round++) {
    const { worker, call } = startWorker(t)
    await call('open', { options: {} })
    const [stalled, silentOpened] = [server.stalled, silent.opened]
    await call('stall', { stages, servers })
    // Everything reached the stage it stalls in, as the servers see it.
    await eventually(() => server.stalled === stalled + 4 && silent.opened === silentOpened + 1, 5000, `round ${round} to stall`)
    await worker.terminate()
  }
  // The main thread never noticed.
  t.is(await (await pool.request(server.url('/echo/after'))).body.text(), 'after')
  await eventually(() => server.open <= 1 && silent.open === 0, 5000, 'the servers to see every worker connection closed')
  await eventually(() => openFds() <= baseline, 5000, `descriptors back to ${baseline} (now ${openFds()})`)
  t.pass()
})

test('a shared pool: two workers stay within maxConnectionsPerHost together and reuse each other’s connections', async (t) => {
  t.timeout(20_000)
  const server = await useServer(t, taggingServer)
  const options = { shared: `upstream-${process.pid}-${Date.now()}`, maxConnectionsPerHost: 2 }
  const [a, b] = [startWorker(t), startWorker(t)]
  await a.call('open', { options })
  await b.call('open', { options })
  // One request in each worker, one after the other: the second reuses the
  // connection the first released.
  await a.call('get', { urls: [server.url('/echo/a')], headers: { 'x-who': 'a' } })
  await b.call('get', { urls: [server.url('/echo/b')], headers: { 'x-who': 'b' } })
  t.is(server.opened, 1)
  t.deepEqual([...[...server.whoBySocket.values()][0]].sort(), ['a', 'b'])
  // Both at once, many requests: never more than two connections in all.
  await Promise.all([
    a.call('get', { urls: tagged(server, 'a', 30), headers: { 'x-who': 'a' } }),
    b.call('get', { urls: tagged(server, 'b', 30), headers: { 'x-who': 'b' } }),
  ])
  t.true(server.maxOpen <= 2, `the server saw ${server.maxOpen} connections at once`)
  t.true(server.opened <= 2, `opened ${server.opened}, closed ${server.closed}, stats ${JSON.stringify(await a.call('stats'))}`)
  // Same name, other options: refused.
  t.throws(() => new Pool({ ...options, maxConnectionsPerHost: 3 }), { code: 'ERR_INVALID_ARG_VALUE' })
  // Shutting one handle down leaves the other working.
  await a.call('shutdown')
  await t.throwsAsync(a.call('get', { urls: [server.url('/echo/a')] }), { code: 'PCONN_POOL_CLOSED' })
  t.deepEqual(await b.call('get', { urls: [server.url('/echo/b2')] }), ['b2'])
  t.true(server.opened <= 2)
})
