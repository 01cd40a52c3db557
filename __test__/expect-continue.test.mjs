// expectContinue over HTTP/1.1: the head goes with `Expect: 100-continue`
// and the body only once the server says 100; a final answer instead is the
// response, and the body never leaves. Asserted on the bytes servers saw.
import test from 'ava'
import http from 'node:http'
import net from 'node:net'
import { once } from 'node:events'
import * as undici from 'undici'
import { Agent } from '../dist/undici/index.js'
import { Pool } from '../dist/index.js'
import { eventually, useServer, usePool } from './helpers/servers.mjs'

/** A node:http server that answers `Expect: 100-continue` with 100, then echoes the body's length. */
async function continuingServer() {
  const seen = { expects: [], bodies: [] }
  const server = http.createServer((req, res) => {
    seen.expects.push(req.headers.expect)
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      seen.bodies.push(Buffer.concat(chunks).length)
      res.end(`got ${Buffer.concat(chunks).length}`)
    })
  })
  server.on('checkContinue', (req, res) => {
    res.writeContinue()
    server.emit('request', req, res)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return Object.assign(seen, {
    url: `http://127.0.0.1:${server.address().port}/`,
    async close() {
      server.closeAllConnections()
      server.close()
    },
  })
}

/**
 * A raw server that reads a head and answers it at once: 413 when the head
 * expects 100-continue (never a 100), counting every byte that arrives
 * after the head; or, `ignoring`, waits for a Content-Length body and says 200.
 */
async function rawServer({ ignoring = false } = {}) {
  const seen = { afterHead: 0, closed: 0, heads: [] }
  const server = net.createServer((socket) => {
    socket.on('error', () => {})
    socket.on('close', () => seen.closed++)
    let buf = Buffer.alloc(0)
    let headDone = false
    let length = 0
    socket.on('data', (data) => {
      if (headDone) {
        seen.afterHead += data.length
      } else {
        buf = Buffer.concat([buf, data])
        const end = buf.indexOf('\r\n\r\n')
        if (end < 0) return
        headDone = true
        const head = buf.subarray(0, end).toString('latin1')
        seen.heads.push(head)
        length = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0)
        seen.afterHead += buf.length - end - 4
        if (!ignoring) socket.write('HTTP/1.1 413 Payload Too Large\r\ncontent-length: 4\r\n\r\nbig!')
      }
      if (ignoring && headDone && seen.afterHead >= length) socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok')
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return Object.assign(seen, {
    url: `http://127.0.0.1:${server.address().port}/`,
    async close() {
      server.close()
    },
  })
}

test('expectContinue: the body goes after the server’s 100; without it no Expect header is sent', async (t) => {
  const server = await useServer(t, continuingServer)
  const pool = usePool(t, Pool)
  const body = 'x'.repeat(100_000)
  const res = await pool.request(server.url, { method: 'POST', body, expectContinue: true })
  t.is(await res.body.text(), 'got 100000')
  const plain = await pool.request(server.url, { method: 'POST', body: 'small' })
  t.is(await plain.body.text(), 'got 5')
  t.deepEqual(server.expects, ['100-continue', undefined])
  await t.throwsAsync(pool.request(server.url, { method: 'POST', body, expectContinue: 'yes' }), { code: 'ERR_INVALID_ARG_TYPE' })
})

test('a final answer instead of 100 is the response: the body is never sent and the connection is closed', async (t) => {
  const server = await useServer(t, rawServer)
  const pool = usePool(t, Pool)
  const res = await pool.request(server.url, { method: 'PUT', body: 'y'.repeat(50_000), expectContinue: true })
  t.is(res.statusCode, 413)
  t.is(await res.body.text(), 'big!')
  t.regex(server.heads[0], /\r\nexpect: 100-continue/i)
  await eventually(() => server.closed === 1, 3000, 'the connection to close')
  t.is(server.afterHead, 0, 'no body byte reached the server')
  t.is(pool.stats().connections, 0)
})

test('a server that ignores Expect gets the body after a second; the undici Agent honours expectContinue over HTTP/1.1 too', async (t) => {
  const ignoring = await useServer(t, rawServer, { ignoring: true })
  const pool = usePool(t, Pool)
  const res = await pool.request(ignoring.url, { method: 'POST', body: 'z'.repeat(1000), expectContinue: true })
  t.is(await res.body.text(), 'ok')
  t.is(ignoring.afterHead, 1000)
  const server = await useServer(t, continuingServer)
  const agent = new Agent()
  t.teardown(() => agent.close())
  const viaAgent = await undici.request(server.url, { dispatcher: agent, method: 'POST', body: 'agent body', expectContinue: true })
  t.is(await viaAgent.body.text(), 'got 10')
  t.deepEqual(server.expects, ['100-continue'])
})
