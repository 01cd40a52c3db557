// learnIdleTimeout: a server that closes idle keep-alive connections
// sooner than pconn's idle timeout, without saying so, is learned from its
// first close, and pconn retires idle connections before it from then on.
import test from 'ava'
import { Pool } from '../dist/index.js'
import { httpServer, ok } from './helpers/http-server.mjs'
import { record } from './helpers/channels.mjs'
import { eventually, sleep, useServer, usePool } from './helpers/servers.mjs'
import { startWorker } from './helpers/worker-driver.mjs'

/**
 * A server that closes a keep-alive connection `idleMs` after its last
 * response, without a Keep-Alive header; it records, for every request,
 * how long its connection had been idle (from the server's view) and
 * whether it arrived on a socket the server had already closed.
 */
async function silentlyClosingServer(t, idleMs) {
  const idleAtArrival = []
  let lateRequests = 0
  const server = await useServer(t, httpServer, (req, socket) => {
    if (socket.closedByServer) lateRequests++
    if (socket.lastAnswer !== undefined) idleAtArrival.push(Date.now() - socket.lastAnswer)
    clearTimeout(socket.idleTimer)
    socket.write(ok(req.method))
    socket.lastAnswer = Date.now()
    socket.idleTimer = setTimeout(() => {
      socket.closedByServer = true
      socket.end()
    }, idleMs)
  })
  return Object.assign(server, {
    idleAtArrival,
    get lateRequests() {
      return lateRequests
    },
  })
}

test('the server’s idle timeout is learned from its first close: stats, the pconn:idle-timeout-learned event, and idle connections retired before it', async (t) => {
  const server = await silentlyClosingServer(t, 800)
  const pool = usePool(t, Pool)
  const key = `http://127.0.0.1:${server.port}`
  const events = record(t, 'pconn:idle-timeout-learned')
  const learned = () => events.filter((e) => e.key === key)
  t.is(await (await pool.request(server.url())).body.text(), 'GET')
  await eventually(() => pool.stats().closedBy.peer === 1, 3000, 'the server to close the idle connection')
  const ms = pool.stats().hosts[key].learnedIdleTimeoutMs
  t.true(ms >= 780 && ms < 1500, `learned ${ms} ms`)
  t.deepEqual(learned(), [{ key, timeoutMs: ms }])
  // The next idle connection is retired by pconn (closedBy.idle), not by the server.
  t.is(await (await pool.request(server.url())).body.text(), 'GET')
  await eventually(() => pool.stats().connections === 0, 3000, 'the idle connection to close')
  t.is(pool.stats().closedBy.idle, 1)
  t.is(pool.stats().closedBy.peer, 1)
})

test('after the first close, a POST sent at 780 ms of idle never lands on a connection the server is closing (200 rounds over 8 servers)', async (t) => {
  const rounds = 25
  const servers = await Promise.all(Array.from({ length: 8 }, () => silentlyClosingServer(t, 800)))
  const pool = usePool(t, Pool)
  const errors = []
  await Promise.all(
    servers.map(async (server) => {
      // Learn: one request, then let the server close the connection.
      await (await pool.request(server.url())).body.text()
      const key = `http://127.0.0.1:${server.port}`
      await eventually(() => pool.stats().hosts[key]?.learnedIdleTimeoutMs !== undefined, 3000, 'the first close')
      for (let i = 0; i < rounds; i++) {
        await (await pool.request(server.url())).body.text()
        await sleep(780)
        try {
          t.is(await (await pool.request(server.url(), { method: 'POST', body: 'once' })).body.text(), 'POST')
        } catch (err) {
          errors.push(err)
        }
      }
    }),
  )
  t.deepEqual(errors, [])
  for (const server of servers) {
    t.is(server.lateRequests, 0)
    t.true(Math.max(0, ...server.idleAtArrival) < 700, `a request arrived after ${Math.max(...server.idleAtArrival)} ms of idle`)
  }
})

test('learnIdleTimeout: false keeps the configured idle timeout', async (t) => {
  const server = await silentlyClosingServer(t, 300)
  const pool = usePool(t, Pool, { learnIdleTimeout: false })
  const key = `http://127.0.0.1:${server.port}`
  await (await pool.request(server.url())).body.text()
  await eventually(() => pool.stats().closedBy.peer === 1, 3000, 'the server to close the idle connection')
  t.is(pool.stats().hosts[key].learnedIdleTimeoutMs, undefined)
  t.throws(() => new Pool({ learnIdleTimeout: 'yes' }), { code: 'ERR_INVALID_ARG_TYPE' })
})

test('a shared pool: what one thread’s connection taught holds for the other thread’s', async (t) => {
  const server = await silentlyClosingServer(t, 800)
  const options = { shared: `learn-${server.port}` }
  const pool = usePool(t, Pool, options)
  const { call } = startWorker(t)
  await call('open', { options })
  const key = `http://127.0.0.1:${server.port}`
  t.deepEqual(await call('get', { urls: [server.url()] }), ['GET'])
  await eventually(() => pool.stats().hosts[key]?.learnedIdleTimeoutMs !== undefined, 3000, 'the close to be learned')
  t.is((await call('stats')).hosts[key].learnedIdleTimeoutMs, pool.stats().hosts[key].learnedIdleTimeoutMs)
  // The main thread's next connection is retired by pconn before the server closes it.
  t.is(await (await pool.request(server.url())).body.text(), 'GET')
  await eventually(() => pool.stats().connections === 0, 3000, 'the idle connection to close')
  t.is(pool.stats().closedBy.idle, 1)
  await call('shutdown')
})
