// HTTP/2 against node:http2 servers that count what they saw: sessions
// (connections), streams, how many were open at once, resets.
import test from 'ava'
import http2 from 'node:http2'
import net from 'node:net'
import tls from 'node:tls'
import { once } from 'node:events'
import { Readable } from 'node:stream'
import { request as undiciRequest } from 'undici'
import { Pool } from '../dist/index.js'
import { Agent } from '../dist/undici/index.js'
import { bodyOf, certFor127, http2Server } from './helpers/http2-server.mjs'
import { eventually, sleep, useServer, usePool } from './helpers/servers.mjs'
import { startWorker } from './helpers/worker-driver.mjs'

const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM, NGHTTP2_INTERNAL_ERROR } = http2.constants

/** Answer 200 with `body` and the headers given (unless the stream is gone). */
function answer(stream, body, headers = {}) {
  if (stream.destroyed) return
  stream.respond({ ':status': 200, 'content-type': 'text/plain', ...headers })
  stream.end(body)
}

test('100 concurrent requests share one session: 100 streams, every body intact; allowH2 false gets HTTP/1.1', async (t) => {
  const server = await useServer(t, http2Server, async (stream, headers) => {
    const body = await bodyOf(stream)
    answer(stream, `${headers[':method']} ${headers[':path']} ${body.length} ${headers['x-id']}`)
  }, { allowHTTP1: true })
  const pool = usePool(t, Pool, { tls: { ca: server.cert } })
  const responses = await Promise.all(
    Array.from({ length: 100 }, (_, i) =>
      pool.request(server.url(`/r${i}`), { method: 'POST', body: Buffer.alloc(i * 997, 'a'), headers: { 'x-id': String(i) } }).then(async (r) => ({
        version: r.httpVersion,
        text: await r.body.text(),
      })),
    ),
  )
  responses.forEach((r, i) => {
    t.is(r.version, '2.0')
    t.is(r.text, `POST /r${i} ${i * 997} ${i}`)
  })
  t.is(server.sessions, 1)
  t.is(server.streams, 100)
  const stats = pool.stats().hosts[`https://127.0.0.1:${server.port}`]
  t.is(stats.connections, 1)
  t.is(stats.http2, 1)
  t.is(stats.streams, 0, 'no stream left open')
  const h1 = usePool(t, Pool, { tls: { ca: server.cert }, allowH2: false })
  const res = await h1.request(server.url('/old'))
  t.is(res.httpVersion, '1.1')
  t.is(await res.body.text(), 'http/1.1 /old')
  t.is(server.http1, 1)
  t.is(server.sessions, 1, 'no new HTTP/2 session')
})

test('the server’s SETTINGS_MAX_CONCURRENT_STREAMS holds: 10 a connection, more connections up to maxConnectionsPerHost', async (t) => {
  const server = await useServer(t, http2Server, (stream) => setTimeout(() => answer(stream, 'ok'), 30), { settings: { maxConcurrentStreams: 10 } })
  const pool = usePool(t, Pool, { tls: { ca: server.cert }, maxConnectionsPerHost: 3 })
  const bodies = await Promise.all(Array.from({ length: 50 }, () => pool.request(server.url()).then((r) => r.body.text())))
  t.true(bodies.every((b) => b === 'ok'))
  t.is(server.maxOpen, 10, 'never more than 10 streams at once on a session')
  t.is(server.sessions, 3, 'connections opened up to the per-host limit')
  t.is(server.streams, 50)
})

test('GOAWAY mid-load: nothing lost or done twice; streams above the last one kept go again, POSTs included', async (t) => {
  const processed = new Map()
  let goneAway = false
  let lastSeen = 0
  const server = await useServer(t, http2Server, async (stream, headers, { session, id }) => {
    const rid = headers['x-id']
    lastSeen = Math.max(lastSeen, id)
    await bodyOf(stream)
    processed.set(rid, (processed.get(rid) ?? 0) + 1)
    if (!goneAway && processed.size === 20) {
      goneAway = true
      // An honest GOAWAY: every stream that reached the server is kept
      // (and answered); the server refuses those above it.
      session.goaway(NGHTTP2_NO_ERROR, lastSeen)
      setTimeout(() => session.close(), 200)
    }
    setTimeout(() => answer(stream, `done ${rid}`), 20)
  }, { settings: { maxConcurrentStreams: 30 } })
  const pool = usePool(t, Pool, { tls: { ca: server.cert } })
  const ids = Array.from({ length: 60 }, (_, i) => String(i))
  const results = await Promise.all(
    ids.map((id) => pool.request(server.url('/work'), { method: 'POST', body: `job ${id}`, headers: { 'x-id': id } }).then((r) => r.body.text())),
  )
  t.deepEqual(results, ids.map((id) => `done ${id}`))
  t.true(goneAway)
  t.deepEqual([...processed.keys()].sort(), [...ids].sort(), 'every request processed')
  t.true([...processed.values()].every((n) => n === 1), 'none twice')
  t.true(server.sessions >= 2, 'the refused ones went on a new connection')
})

test('a stream the server resets fails alone; the others on the connection finish', async (t) => {
  const server = await useServer(t, http2Server, (stream, headers) => {
    if (headers[':path'] === '/reset') return stream.close(NGHTTP2_INTERNAL_ERROR)
    setTimeout(() => answer(stream, 'fine'), 20)
  })
  const pool = usePool(t, Pool, { tls: { ca: server.cert } })
  const outcomes = await Promise.allSettled(['/a', '/reset', '/b', '/c'].map((p) => pool.request(server.url(p)).then((r) => r.body.text())))
  t.deepEqual(outcomes.map((o) => o.status), ['fulfilled', 'rejected', 'fulfilled', 'fulfilled'])
  t.is(outcomes[1].reason.code, 'PCONN_SOCKET_CLOSED')
  t.regex(outcomes[1].reason.message, /reset the HTTP\/2 stream/)
  t.is(server.sessions, 1)
})

test('REFUSED_STREAM goes again, whatever the method', async (t) => {
  let refused = 0
  const server = await useServer(t, http2Server, async (stream) => {
    if (refused < 2) {
      refused++
      return stream.close(NGHTTP2_REFUSED_STREAM)
    }
    answer(stream, `took ${(await bodyOf(stream)).toString()}`)
  })
  const pool = usePool(t, Pool, { tls: { ca: server.cert } })
  const res = await pool.request(server.url(), { method: 'POST', body: 'payload' })
  t.is(await res.body.text(), 'took payload')
  t.is(refused, 2)
})

test('an abort mid-body resets that stream only: the server sees CANCEL, the connection keeps serving', async (t) => {
  const server = await useServer(t, http2Server, (stream, headers) => {
    if (headers[':path'] === '/slow') {
      stream.respond({ ':status': 200 })
      stream.write('x'.repeat(1000))
      return
    }
    answer(stream, 'next')
  })
  const pool = usePool(t, Pool, { tls: { ca: server.cert } })
  const ac = new AbortController()
  const res = await pool.request(server.url('/slow'), { signal: ac.signal })
  const reading = res.body.text()
  ac.abort()
  await t.throwsAsync(reading)
  await eventually(() => server.resets.includes(NGHTTP2_CANCEL), 3000, 'the server to see RST_STREAM(CANCEL)')
  t.is(await (await pool.request(server.url('/next'))).body.text(), 'next')
  t.is(server.sessions, 1)
})

test('flow control bounds memory: a 50 MB download to a slow reader, a 50 MB upload to a slow server', async (t) => {
  const MB = 1024 * 1024
  let written = 0
  let read = 0
  const server = await useServer(t, http2Server, async (stream, headers) => {
    if (headers[':path'] === '/down') {
      stream.respond({ ':status': 200 })
      const piece = Buffer.alloc(64 * 1024, 'd')
      while (written < 50 * MB) {
        written += piece.length
        if (!stream.write(piece)) await new Promise((r) => stream.once('drain', r))
      }
      return stream.end()
    }
    // The upload: read nothing for a while, then all of it.
    stream.pause()
    await sleep(500)
    for await (const chunk of stream) read += chunk.length
    answer(stream, `got ${read}`)
  })
  const pool = usePool(t, Pool, { tls: { ca: server.cert } })
  const res = await pool.request(server.url('/down'))
  const body = res.body
  let received = 0
  let paused = false
  for await (const chunk of body) {
    received += chunk.length
    if (!paused && received > 2 * MB) {
      paused = true
      // Stop reading a while: the server must stall, not buffer 50 MB here.
      body.pause()
      await sleep(300)
      t.true(written - received < 16 * MB, `the server ran ${((written - received) / MB).toFixed(1)} MB ahead of the reader`)
      body.resume()
    }
  }
  t.is(received, 50 * MB)
  let pulled = 0
  async function* source() {
    for (let i = 0; i < 800; i++) {
      pulled += 64 * 1024
      yield Buffer.alloc(64 * 1024, 'u')
    }
  }
  const upload = pool.request(server.url('/up'), { method: 'POST', body: Readable.from(source()) })
  await sleep(300)
  t.true(pulled - read < 16 * MB, `the source ran ${((pulled - read) / MB).toFixed(1)} MB ahead of the server`)
  t.is(await (await upload).body.text(), `got ${50 * MB}`)
})

test('a server that vanished without a FIN is found by PING and replaced: the next request succeeds', async (t) => {
  const server = await useServer(t, http2Server, (stream) => answer(stream, 'alive'))
  // A TCP relay in front of the server that can go silent: no bytes either
  // way, no FIN, as a host that vanished from the network.
  const relays = []
  const relay = net.createServer((client) => {
    const upstream = net.connect(server.port, '127.0.0.1')
    relays.push({ client, upstream })
    client.pipe(upstream).pipe(client)
    for (const s of [client, upstream]) s.on('error', () => {})
  })
  relay.listen(0, '127.0.0.1')
  await once(relay, 'listening')
  t.teardown(() => {
    for (const { client, upstream } of relays) {
      client.destroy()
      upstream.destroy()
    }
    relay.close()
  })
  const url = `https://127.0.0.1:${relay.address().port}/`
  const pool = usePool(t, Pool, { tls: { ca: server.cert } })
  t.is(await (await pool.request(url)).body.text(), 'alive')
  const silenced = relays[0]
  silenced.client.unpipe(silenced.upstream)
  silenced.upstream.unpipe(silenced.client)
  silenced.client.pause()
  silenced.upstream.pause()
  await sleep(1200)
  const started = Date.now()
  const res = await pool.request(url, { method: 'POST', body: 'not lost' })
  t.is(await res.body.text(), 'alive')
  t.is(relays.length, 2, 'a new connection')
  t.is(server.sessions, 2)
  t.true(Date.now() - started < 5000)
})

test('the headers timeout is per stream: a stalled one fails alone', async (t) => {
  const server = await useServer(t, http2Server, (stream, headers) => {
    if (headers[':path'] !== '/stall') answer(stream, 'quick')
  })
  const pool = usePool(t, Pool, { tls: { ca: server.cert } })
  const stalled = pool.request(server.url('/stall'), { headersTimeoutMs: 200 })
  t.is(await (await pool.request(server.url('/quick'))).body.text(), 'quick')
  await t.throwsAsync(stalled, { code: 'PCONN_HEADERS_TIMEOUT' })
  t.is(await (await pool.request(server.url('/again'))).body.text(), 'quick')
  t.is(server.sessions, 1)
})

test('trailers, fetch and the undici Agent (allowH2) ride HTTP/2 too', async (t) => {
  const server = await useServer(t, http2Server, (stream, headers) => {
    if (headers[':path'] === '/trailers') {
      stream.respond({ ':status': 200 }, { waitForTrailers: true })
      stream.on('wantTrailers', () => stream.sendTrailers({ 'x-checksum': 'abc' }))
      return stream.end('with trailers')
    }
    answer(stream, `${headers[':path']} via ${headers['user-agent'] ?? 'none'}`)
  })
  const pool = usePool(t, Pool, { tls: { ca: server.cert } })
  const res = await pool.request(server.url('/trailers'))
  t.is(await res.body.text(), 'with trailers')
  t.deepEqual({ ...res.trailers }, { 'x-checksum': 'abc' })
  t.is(await (await pool.fetch(server.url('/fetch'))).text(), '/fetch via node')
  const agent = new Agent({ tls: { ca: server.cert }, allowH2: true })
  t.teardown(() => agent.close())
  const viaAgent = await undiciRequest(server.url('/agent'), { dispatcher: agent })
  t.is(await viaAgent.body.text(), '/agent via none')
  t.is(agent.pool.stats().http2, 1)
  t.is(server.sessions, 2, 'one session per pool')
})

test('raw acquire of an https key never gets HTTP/2; stats show one origin', async (t) => {
  const server = await useServer(t, http2Server, (stream) => answer(stream, 'h2'), { allowHTTP1: true })
  const pool = usePool(t, Pool, { tls: { ca: server.cert } })
  await (await pool.request(server.url('/a'))).body.text()
  const conn = await pool.acquire(server.url())
  t.is(conn.alpnProtocol, null, 'no ALPN offered: HTTP/1.1 by default')
  await conn.write(`GET /raw HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n`)
  const head = (await conn.read()).toString()
  t.regex(head, /^HTTP\/1\.1 200/)
  pool.release(conn, false)
  const hosts = Object.keys(pool.stats().hosts)
  t.deepEqual(hosts, [`https://127.0.0.1:${server.port}`], 'HTTP/2 and raw connections of an origin show as one key')
  t.is(pool.stats().hosts[hosts[0]].created, 2)
})

test('a shared pool: streams of one HTTP/2 connection serve two worker threads, each getting only its own answers', async (t) => {
  t.timeout(20_000)
  const server = await useServer(t, http2Server, (stream, headers) => setTimeout(() => answer(stream, headers[':path'].slice(1)), 10))
  const options = { shared: `h2-${process.pid}-${Date.now()}`, tls: { ca: server.cert } }
  const [a, b] = [startWorker(t), startWorker(t)]
  await a.call('open', { options })
  await b.call('open', { options })
  const urls = (who) => Array.from({ length: 30 }, (_, i) => server.url(`/${who}-${i}`))
  const [fromA, fromB] = await Promise.all([a.call('get', { urls: urls('a') }), b.call('get', { urls: urls('b') })])
  t.deepEqual(fromA, urls('a').map((u) => new URL(u).pathname.slice(1)))
  t.deepEqual(fromB, urls('b').map((u) => new URL(u).pathname.slice(1)))
  t.is(server.sessions, 1, 'one connection for both threads')
  t.is(server.streams, 60)
})

test('an idle HTTP/2 connection closes on the idle timeout, as an HTTP/1.1 one does', async (t) => {
  let closed = 0
  const server = await useServer(t, http2Server, (stream) => answer(stream, 'ok'), { onSession: (s) => s.on('close', () => closed++) })
  const pool = usePool(t, Pool, { tls: { ca: server.cert }, idleTimeoutMs: 200 })
  await (await pool.request(server.url())).body.text()
  t.is(pool.stats().http2, 1)
  await eventually(() => closed === 1, 3000, 'the server to see the session close')
  t.is(pool.stats().connections, 0)
  t.is(pool.stats().closedBy.idle, 1)
})

test('a connection that dies takes only its own streams: an idempotent one goes again on a fresh connection, a POST fails clearly', async (t) => {
  let killed = false
  const server = await useServer(t, http2Server, async (stream, headers) => {
    await bodyOf(stream)
    if (headers[':path'] === '/die' && !killed) {
      killed = true
      // Both requests are on the first connection now: drop its socket, no GOAWAY.
      setTimeout(() => server.sockets[0].destroy(), 50)
      return
    }
    if (headers[':path'] === '/post') return
    answer(stream, `ok ${headers[':method']}`)
  })
  const pool = usePool(t, Pool, { tls: { ca: server.cert } })
  t.is(await (await pool.request(server.url('/warm'))).body.text(), 'ok GET')
  const [get, post] = await Promise.allSettled([
    pool.request(server.url('/die')).then((r) => r.body.text()),
    pool.request(server.url('/post'), { method: 'POST', body: 'once' }),
  ])
  t.is(post.status, 'rejected')
  t.true(['PCONN_SOCKET_CLOSED', 'ECONNRESET', 'EPIPE'].includes(post.reason.code), post.reason.code)
  t.is(get.status, 'fulfilled', get.reason?.message)
  t.is(server.sessions, 2, 'the GET went again on a new connection')
})

test('a server that breaks the HTTP/2 protocol fails the request with PCONN_HTTP_PARSE and closes the connection', async (t) => {
  const { cert, key } = certFor127()
  const frame = (type, flags, stream, payload = Buffer.alloc(0)) => {
    const head = Buffer.alloc(9)
    head.writeUIntBE(payload.length, 0, 3)
    head.writeUInt8(type, 3)
    head.writeUInt8(flags, 4)
    head.writeUInt32BE(stream, 5)
    return Buffer.concat([head, payload])
  }
  // Speaks enough h2 to take the request (SETTINGS, their ACK, PING's
  // answer), then answers it with a header block HPACK cannot decode (an
  // index beyond every table), which the h2 crate answers with GOAWAY.
  const server = tls.createServer({ cert, key, ALPNProtocols: ['h2'] }, (socket) => {
    socket.on('error', () => {})
    let buf = Buffer.alloc(0)
    let preface = false
    socket.write(frame(4, 0, 0))
    socket.on('data', (d) => {
      buf = Buffer.concat([buf, d])
      if (!preface) {
        if (buf.length < 24) return
        buf = buf.subarray(24)
        preface = true
      }
      while (buf.length >= 9 && buf.length >= 9 + buf.readUIntBE(0, 3)) {
        const length = buf.readUIntBE(0, 3)
        const [type, flags, stream] = [buf[3], buf[4], buf.readUInt32BE(5) & 0x7fffffff]
        const payload = buf.subarray(9, 9 + length)
        buf = buf.subarray(9 + length)
        if (type === 4 && !(flags & 1)) socket.write(frame(4, 1, 0))
        if (type === 6 && !(flags & 1)) socket.write(frame(6, 1, 0, payload))
        if (type === 1) socket.write(frame(1, 4, stream, Buffer.from([0xff, 0xff, 0xff, 0x7f])))
      }
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const pool = usePool(t, Pool, { tls: { ca: cert } })
  const err = await t.throwsAsync(pool.request(`https://127.0.0.1:${server.address().port}/`, { headersTimeoutMs: 5000 }))
  t.is(err.code, 'PCONN_HTTP_PARSE', err.message)
  await eventually(() => pool.stats().connections === 0, 3000, 'the connection to close')
})
