// spreadAddresses and lookup: a name with several addresses gets its
// connections spread over all of them, counted by the servers.
import test from 'ava'
import http from 'node:http'
import { once } from 'node:events'
import { Pool } from '../dist/index.js'
import { useServer, usePool } from './helpers/servers.mjs'
import { startWorker } from './helpers/worker-driver.mjs'

/**
 * Holds answers until `want` requests wait, over every server sharing it,
 * so that a batch of `want` concurrent requests needs `want` connections
 * however slowly the test submits them (none can reuse another's).
 */
class Gate {
  want = 1
  #held = []
  hold(answer) {
    this.#held.push(answer)
    if (this.#held.length < this.want) return
    for (const release of this.#held.splice(0)) release()
  }
}

/** A node:http server on `host:port` that answers its name and counts connections. */
async function namedServer(name, host, port = 0, gate = new Gate()) {
  const seen = { name, opened: 0, sockets: new Set() }
  const server = http.createServer((req, res) => {
    req.resume()
    req.on('end', () => gate.hold(() => res.end(name)))
  })
  server.on('connection', (socket) => {
    seen.opened++
    seen.sockets.add(socket)
    socket.on('close', () => seen.sockets.delete(socket))
  })
  server.listen(port, host)
  await once(server, 'listening')
  return Object.assign(seen, {
    port: server.address().port,
    async close() {
      for (const s of seen.sockets) s.destroy()
      server.close()
      await once(server, 'close')
    },
  })
}

/** Two servers on one port, on 127.0.0.1 and 127.0.0.2, sharing a gate. */
async function twoAddresses(t) {
  const gate = new Gate()
  const a = await useServer(t, namedServer, 'A', '127.0.0.1', 0, gate)
  const b = await useServer(t, namedServer, 'B', '127.0.0.2', a.port, gate)
  return { a, b, gate, url: `http://svc.pconn.test:${a.port}/` }
}

/** `count` requests to `url` at once, each answered only when all wait. */
function batch(pool, gate, url, count) {
  gate.want = count
  return Promise.all(Array.from({ length: count }, () => pool.request(url).then((r) => r.body.text())))
}

const twoAnswers = () => ['127.0.0.1', '127.0.0.2']

test('8 concurrent requests to a name with two addresses open 4 connections on each; stats show them', async (t) => {
  const { a, b, gate, url } = await twoAddresses(t)
  const pool = usePool(t, Pool, { lookup: twoAnswers })
  const bodies = await batch(pool, gate, url, 8)
  t.is(bodies.filter((x) => x === 'A').length, 4)
  t.is(bodies.filter((x) => x === 'B').length, 4)
  t.is(a.opened, 4)
  t.is(b.opened, 4)
  const { addresses } = pool.stats().hosts[`http://svc.pconn.test:${a.port}`]
  t.deepEqual(
    addresses.sort((x, y) => x.address.localeCompare(y.address)),
    [
      { address: '127.0.0.1', connections: 4 },
      { address: '127.0.0.2', connections: 4 },
    ],
  )
})

test('stopping one server moves new connections to the other without a failed idempotent request', async (t) => {
  const { a, b, gate, url } = await twoAddresses(t)
  const pool = usePool(t, Pool, { lookup: twoAnswers })
  await batch(pool, gate, url, 8)
  await b.close()
  t.deepEqual(await batch(pool, gate, url, 8), Array(8).fill('A'))
  t.is(a.opened, 8, 'four more connections on A')
  const { addresses } = pool.stats().hosts[`http://svc.pconn.test:${a.port}`]
  t.deepEqual(addresses.filter((x) => x.connections > 0), [{ address: '127.0.0.1', connections: 8 }], 'none left on the stopped address')
  t.deepEqual(await batch(pool, gate, url, 4), Array(4).fill('A'))
})

test('spreadAddresses: false keeps DNS order: every connection on the first address', async (t) => {
  const { a, b, gate, url } = await twoAddresses(t)
  const pool = usePool(t, Pool, { lookup: twoAnswers, spreadAddresses: false })
  await batch(pool, gate, url, 8)
  t.is(a.opened, 8)
  t.is(b.opened, 0)
  t.deepEqual(pool.stats().hosts[`http://svc.pconn.test:${a.port}`].addresses, [])
})

test('lookup: its answers are cached for dnsCacheMs and shared by concurrent connects; a Promise works too', async (t) => {
  const { url } = await twoAddresses(t)
  let calls = 0
  const pool = usePool(t, Pool, {
    dnsCacheMs: 60_000,
    lookup: async (hostname) => {
      calls++
      t.is(hostname, 'svc.pconn.test')
      return ['127.0.0.1']
    },
  })
  await Promise.all(Array.from({ length: 4 }, () => pool.request(url).then((r) => r.body.text())))
  await pool.request(url, { headers: { connection: 'close' } }).then((r) => r.body.text())
  await (await pool.request(url)).body.text()
  t.is(calls, 1)
})

test('lookup failures fail the connect with ENOTFOUND and the reason as cause; bad options are refused', async (t) => {
  const url = 'http://svc.pconn.test:1/'
  const cases = [
    [() => { throw new Error('no such service') }, /no such service/],
    [() => Promise.reject(new Error('registry down')), /registry down/],
    [() => 'not-an-array', /array of IP address strings/],
    [() => ['not-an-ip'], /not an IP address/],
    [() => [], /no addresses/],
  ]
  for (const [lookup, cause] of cases) {
    const pool = usePool(t, Pool, { lookup })
    const err = await t.throwsAsync(pool.request(url), { code: 'ENOTFOUND' })
    t.regex(err.cause?.message ?? '', cause)
    t.is(pool.stats().connections, 0)
  }
  t.throws(() => new Pool({ lookup: 'dns' }), { code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => new Pool({ spreadAddresses: 1 }), { code: 'ERR_INVALID_ARG_TYPE' })
})

test('a lookup that never answers: the connect timeout and an abort end the connect, and nothing stays waiting for the answer', async (t) => {
  const pool = usePool(t, Pool, { lookup: () => new Promise(() => {}), connectTimeoutMs: 100 })
  await t.throwsAsync(pool.request('http://svc.pconn.test:1/'), { code: 'PCONN_CONNECT_TIMEOUT' })
  await t.throwsAsync(pool.request('http://other.pconn.test:1/', { signal: AbortSignal.timeout(50) }), { name: 'TimeoutError' })
  t.is(pool.stats().connections, 0)
  t.is(pool.debugLookupsWaiting(), 0)
})

test('a shared pool spreads the connections of two threads over both addresses', async (t) => {
  const { a, b, url } = await twoAddresses(t)
  const options = { shared: `spread-${a.port}` }
  const pool = usePool(t, Pool, { ...options, lookup: twoAnswers })
  const { call } = startWorker(t)
  await call('open', { options, lookup: twoAnswers() })
  const [mine, theirs] = await Promise.all([
    Promise.all(Array.from({ length: 4 }, () => pool.request(url).then((r) => r.body.text()))),
    call('get', { urls: Array(4).fill(url) }),
  ])
  t.is([...mine, ...theirs].length, 8)
  // However the two threads' requests overlapped, their connections (one
  // pool's) are spread evenly over the two addresses.
  t.true(a.opened >= 2 && Math.abs(a.opened - b.opened) <= 1, `A ${a.opened}, B ${b.opened}`)
  t.deepEqual(
    (await call('stats')).hosts[`http://svc.pconn.test:${a.port}`].addresses.map((x) => x.connections).sort(),
    pool.stats().hosts[`http://svc.pconn.test:${a.port}`].addresses.map((x) => x.connections).sort(),
  )
  await call('shutdown')
})
