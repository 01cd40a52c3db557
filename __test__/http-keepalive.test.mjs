import test from 'ava'
import { Pool } from '../dist/index.js'
import { httpServer, ok } from './helpers/http-server.mjs'
import { eventually, sleep, useServer, usePool } from './helpers/servers.mjs'

test('keep-alive GETs reuse one connection, counted at the server', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => s.write(ok(`you asked ${req.path}`)))
  const pool = usePool(t, Pool)
  for (let i = 0; i < 10; i++) {
    const res = await pool.request(server.url(`/item/${i}?q=1#frag`))
    t.is(res.statusCode, 200)
    t.is(res.reused, i > 0)
    t.is(await res.body.text(), `you asked /item/${i}?q=1`)
  }
  t.is(server.opened, 1)
  t.is(server.requests.length, 10)
  t.is(server.requests[0].headers.host, `127.0.0.1:${server.port}`)
  t.like(pool.stats(), { created: 1, reused: 9, idle: 1 })
})

test('a small body is read eagerly: the connection is back in the pool before the body is touched', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => s.write(ok('x'.repeat(60_000))))
  const pool = usePool(t, Pool)
  const res = await pool.request(server.url())
  t.like(pool.stats(), { idle: 1, active: 0 })
  t.is((await res.body.text()).length, 60_000)
})

test('Connection: close from the server closes the connection instead of pooling it', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => s.write(ok('bye', 'connection: close\r\n')))
  const pool = usePool(t, Pool)
  for (let i = 0; i < 2; i++) {
    const res = await pool.request(server.url())
    t.false(res.reused)
    t.is(await res.body.text(), 'bye')
  }
  await eventually(() => server.opened === 2 && server.closed === 2, 3000, 'two connections opened and closed')
  t.is(pool.stats().idle, 0)
})

test('a request with Connection: close is not pooled', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => s.write(ok()))
  const pool = usePool(t, Pool)
  await (await pool.request(server.url(), { headers: { connection: 'close' } })).body.text()
  t.is(pool.stats().idle, 0)
  await eventually(() => server.closed === 1, 3000, 'the close')
})

test('HTTP/1.0 is reused only with Connection: keep-alive', async (t) => {
  const plain = await useServer(t, httpServer, (req, s) => s.write('HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nhi'))
  const kept = await useServer(t, httpServer, (req, s) => s.write('HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nhi'))
  const pool = usePool(t, Pool)
  for (let i = 0; i < 2; i++) {
    t.is(await (await pool.request(plain.url())).body.text(), 'hi')
    const res = await pool.request(kept.url())
    t.is(res.httpVersion, '1.0')
    t.is(await res.body.text(), 'hi')
  }
  t.is(plain.opened, 2)
  t.is(kept.opened, 1)
})

test('Content-Length together with Transfer-Encoding: chunked decoding wins, the connection is closed', async (t) => {
  const server = await useServer(t, httpServer, (req, s) =>
    s.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'),
  )
  const pool = usePool(t, Pool)
  t.is(await (await pool.request(server.url())).body.text(), 'hello')
  t.is(pool.stats().idle, 0)
  await eventually(() => server.closed === 1, 3000, 'the close')
})

test('chunked bodies keep their trailers and the connection', async (t) => {
  const server = await useServer(t, httpServer, (req, s) =>
    s.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-checksum\r\n\r\n3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nx-checksum: 42\r\n\r\n'),
  )
  const pool = usePool(t, Pool)
  const res = await pool.request(server.url())
  t.is(await res.body.text(), 'abcdefg')
  t.deepEqual(res.trailers, { 'x-checksum': '42' })
  t.is((await pool.request(server.url())).reused, true)
})

test('a close-delimited body is read to the end and its connection is not reused', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => s.end('HTTP/1.1 200 OK\r\n\r\nuntil the end'))
  const pool = usePool(t, Pool)
  t.is(await (await pool.request(server.url())).body.text(), 'until the end')
  const again = await pool.request(server.url())
  t.false(again.reused)
  await again.body.dump()
  t.is(server.opened, 2)
})

test('HEAD, 204 and 304 responses have no body and keep the connection', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => {
    if (req.method === 'HEAD') s.write('HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n')
    else if (req.path === '/204') s.write('HTTP/1.1 204 No Content\r\n\r\n')
    else s.write('HTTP/1.1 304 Not Modified\r\ncontent-length: 50\r\n\r\n')
  })
  const pool = usePool(t, Pool)
  const head = await pool.request(server.url(), { method: 'HEAD' })
  t.is(head.headers['content-length'], '1000')
  t.is(await head.body.text(), '')
  t.is((await pool.request(server.url('/204'))).statusCode, 204)
  const notModified = await pool.request(server.url('/304'))
  t.is(notModified.statusCode, 304)
  t.is(await notModified.body.text(), '')
  t.is(server.opened, 1)
  t.is(pool.stats().reused, 2)
})

test('1xx interim responses (100 Continue) are skipped', async (t) => {
  const server = await useServer(t, httpServer, (req, s) =>
    s.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n' + ok('final')),
  )
  const pool = usePool(t, Pool)
  const res = await pool.request(server.url(), { method: 'POST', body: 'x' })
  t.is(res.statusCode, 200)
  t.is(await res.body.text(), 'final')
  t.is((await pool.request(server.url())).reused, true)
})

test('repeated response headers become arrays; names are lower-cased', async (t) => {
  const server = await useServer(t, httpServer, (req, s) =>
    s.write('HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Single: v\r\ncontent-length: 0\r\n\r\n'),
  )
  const pool = usePool(t, Pool)
  const res = await pool.request(server.url())
  t.deepEqual(res.headers['set-cookie'], ['a=1', 'b=2'])
  t.is(res.headers['x-single'], 'v')
})

test('request headers, Host override and bodies reach the server as sent', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => s.write(ok()))
  const pool = usePool(t, Pool)
  await pool.request(server.url('/a'), { method: 'post', headers: { 'x-list': ['1', '2'], 'x-n': 5, host: 'example.test' }, body: 'héllo' })
  await pool.request(server.url('/b'), { method: 'PUT', headers: [['x-pair', 'p']], body: new Uint8Array([1, 2, 3]) })
  await pool.request(server.url('/c'), { method: 'POST' })
  const [a, b, c] = server.requests
  t.like(a, { method: 'POST', path: '/a' })
  t.like(a.headers, { 'x-list': '1, 2', 'x-n': '5', host: 'example.test', 'content-length': String(Buffer.byteLength('héllo')) })
  t.is(a.body.toString(), 'héllo')
  t.deepEqual([...b.body], [1, 2, 3])
  t.is(b.headers['x-pair'], 'p')
  t.is(c.headers['content-length'], '0')
})

test("Keep-Alive: timeout=N from the server lowers the connection's idle deadline (with a 1 s margin)", async (t) => {
  const server = await useServer(t, httpServer, (req, s) => s.write(ok('k', 'keep-alive: timeout=2\r\n')))
  const pool = usePool(t, Pool, { idleTimeoutMs: 10_000 })
  const started = Date.now()
  await (await pool.request(server.url())).body.text()
  await eventually(() => server.closed === 1, 4000, 'the pool to close the connection')
  const after = Date.now() - started
  t.true(after >= 900 && after < 2500, `closed after ${after} ms`)
  t.is(pool.stats().closedBy.idle, 1)
})

test('a body larger than 64 KiB streams; the connection returns once it is read', async (t) => {
  const big = Buffer.alloc(300_000, 'z')
  const server = await useServer(t, httpServer, (req, s) => s.write(ok(big.toString())))
  const pool = usePool(t, Pool)
  const res = await pool.request(server.url())
  t.is(pool.stats().active, 1)
  let total = 0
  for await (const chunk of res.body) total += chunk.length
  t.is(total, big.length)
  t.like(pool.stats(), { active: 0, idle: 1 })
  t.true((await pool.request(server.url())).reused)
})

test('a streamed body that is destroyed closes its connection', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => s.write(ok('y'.repeat(500_000))))
  const pool = usePool(t, Pool)
  const res = await pool.request(server.url())
  res.body.destroy()
  await eventually(() => server.closed === 1, 3000, 'the close')
  t.like(pool.stats(), { active: 0, idle: 0 })
})

test('many concurrent requests share a bounded set of connections', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => setTimeout(() => s.write(ok(req.path)), 2))
  const pool = usePool(t, Pool, { maxConnectionsPerHost: 4 })
  const bodies = await Promise.all(
    Array.from({ length: 100 }, (_, i) => pool.request(server.url(`/${i}`)).then((r) => r.body.text())),
  )
  t.deepEqual(bodies, Array.from({ length: 100 }, (_, i) => `/${i}`))
  t.true(server.opened <= 4)
  await sleep(10)
  t.is(pool.stats().pending, 0)
})
