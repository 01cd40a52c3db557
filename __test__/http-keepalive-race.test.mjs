import test from 'ava'
import { Pool } from '../dist/index.js'
import { httpServer, ok } from './helpers/http-server.mjs'
import { sleep, useServer, usePool } from './helpers/servers.mjs'

/**
 * A server that closes a connection once it has been idle for about
 * `idleMs`, without announcing it (no Keep-Alive header): the classic
 * keep-alive race (nodejs/node#47130).
 */
function racyServer(t, idleMs) {
  return useServer(t, httpServer, (req, s) => s.write(ok(req.method)), {
    onConnection(socket) {
      let timer
      const arm = () => {
        clearTimeout(timer)
        timer = setTimeout(() => socket.end(), idleMs)
      }
      socket.on('data', arm)
      socket.on('close', () => clearTimeout(timer))
      arm()
    },
  })
}

test('the keep-alive race: 200 GETs paced 280-320 ms against a 300 ms idle close, zero failures', async (t) => {
  t.timeout(150_000)
  const server = await racyServer(t, 300)
  const pool = usePool(t, Pool)
  let failures = 0
  let reused = 0
  for (let i = 0; i < 200; i++) {
    try {
      const res = await pool.request(server.url(`/${i}`))
      await res.body.text()
      if (res.reused) reused++
    } catch (err) {
      failures++
      t.log(`request ${i}: ${err.code} ${err.message}`)
    }
    await sleep(280 + Math.random() * 40)
  }
  t.is(failures, 0)
  t.log(`${reused} of 200 went over a reused connection; server saw ${server.opened} connections`)
  t.true(reused > 0, 'some requests must have hit the race window on a reused connection')
  t.is(new Set(server.requests.map((r) => r.path)).size, 200, 'every request reached the server')
})

test('in the race, a non-idempotent POST fails with PCONN_SOCKET_CLOSED and is never resent', async (t) => {
  t.timeout(60_000)
  const server = await racyServer(t, 100)
  const pool = usePool(t, Pool)
  const outcomes = { ok: 0, socketClosed: 0, other: 0 }
  for (let i = 0; i < 60; i++) {
    try {
      await (await pool.request(server.url(`/p${i}`), { method: 'POST', body: `n=${i}` })).body.text()
      outcomes.ok++
    } catch (err) {
      if (err.code === 'PCONN_SOCKET_CLOSED') outcomes.socketClosed++
      else outcomes.other++
    }
    await sleep(95 + Math.random() * 10)
  }
  t.log(outcomes)
  t.is(outcomes.other, 0)
  const paths = server.requests.map((r) => r.path)
  t.is(new Set(paths).size, paths.length, 'no POST reached the server twice')
})
