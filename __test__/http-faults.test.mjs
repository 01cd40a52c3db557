import test from 'ava'
import { Pool } from '../dist/index.js'
import { httpServer, ok } from './helpers/http-server.mjs'
import { eventually, silentServer, useServer, usePool } from './helpers/servers.mjs'

const parseErrors = {
  'an oversized head (over 16 KiB)': `HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(17_000)}\r\ncontent-length: 0\r\n\r\n`,
  'a malformed status line': 'HTTP/1.1 OK 200\r\n\r\n',
  'differing duplicate Content-Length': 'HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd',
  'a bad chunk size': 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n',
  'obsolete line folding': 'HTTP/1.1 200 OK\r\nx-a: 1\r\n folded\r\ncontent-length: 0\r\n\r\n',
  'a bare CR in a header': 'HTTP/1.1 200 OK\r\nx-a: 1\r2\r\ncontent-length: 0\r\n\r\n',
  'more than 2,000 headers': `HTTP/1.1 200 OK\r\n${'x: y\r\n'.repeat(2001)}content-length: 0\r\n\r\n`,
}

for (const [what, bytes] of Object.entries(parseErrors)) {
  test(`${what} is PCONN_HTTP_PARSE and the connection is closed`, async (t) => {
    const server = await useServer(t, httpServer, (req, s) => s.write(bytes))
    const pool = usePool(t, Pool)
    const err = await t.throwsAsync(pool.request(server.url()).then((r) => r.body.text()))
    t.is(err.code, 'PCONN_HTTP_PARSE')
    await eventually(() => server.closed === 1, 3000, 'the close')
    t.like(pool.stats(), { idle: 0, active: 0 })
  })
}

test('a reset in the middle of the body is an error and the connection is gone', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => {
    s.write('HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n' + 'x'.repeat(70_000))
    setTimeout(() => s.resetAndDestroy(), 20)
  })
  const pool = usePool(t, Pool)
  const res = await pool.request(server.url())
  const err = await t.throwsAsync(res.body.text())
  t.true(['ECONNRESET', 'PCONN_SOCKET_CLOSED'].includes(err.code), err.code)
  t.like(pool.stats(), { idle: 0, active: 0, connections: 0 })
})

test('a server that closes before the body is complete: PCONN_SOCKET_CLOSED', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => s.end('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this'))
  const pool = usePool(t, Pool)
  const err = await t.throwsAsync(pool.request(server.url()).then((r) => r.body.text()))
  t.is(err.code, 'PCONN_SOCKET_CLOSED')
})

test('a stalled head: PCONN_HEADERS_TIMEOUT, connection closed', async (t) => {
  const server = await useServer(t, httpServer, () => {})
  const pool = usePool(t, Pool)
  const err = await t.throwsAsync(pool.request(server.url(), { headersTimeoutMs: 100 }))
  t.is(err.code, 'PCONN_HEADERS_TIMEOUT')
  await eventually(() => server.closed === 1, 3000, 'the close')
})

test('a stalled body: PCONN_BODY_TIMEOUT, connection closed', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\nstart'))
  const pool = usePool(t, Pool)
  const res = await pool.request(server.url(), { bodyTimeoutMs: 100 })
  const err = await t.throwsAsync(res.body.text())
  t.is(err.code, 'PCONN_BODY_TIMEOUT')
  await eventually(() => server.closed === 1, 3000, 'the close')
})

test('abort while waiting for a connection', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => setTimeout(() => s.write(ok()), 100))
  const pool = usePool(t, Pool, { maxConnectionsPerHost: 1 })
  const first = pool.request(server.url())
  const ac = new AbortController()
  const second = pool.request(server.url(), { signal: ac.signal })
  setTimeout(() => ac.abort(), 20)
  await t.throwsAsync(second, { code: 'ABORT_ERR', name: 'AbortError' })
  await (await first).body.text()
  t.is(server.requests.length, 1)
  t.is(pool.stats().pending, 0)
})

test('abort while connecting (a TLS handshake that never completes)', async (t) => {
  const server = await useServer(t, silentServer)
  const pool = usePool(t, Pool)
  const ac = new AbortController()
  setTimeout(() => ac.abort(), 50)
  await t.throwsAsync(pool.request(`https://127.0.0.1:${server.port}/`, { signal: ac.signal }), { code: 'ABORT_ERR' })
  await eventually(() => server.closed === 1, 3000, 'the abandoned connection to close')
  t.like(pool.stats(), { connecting: 0, connections: 0 })
})

test('abort while sending a streamed body', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => s.write(ok()))
  const pool = usePool(t, Pool)
  const ac = new AbortController()
  async function* slow() {
    yield 'first'
    await new Promise((r) => setTimeout(r, 1000))
    yield 'never'
  }
  setTimeout(() => ac.abort(), 50)
  await t.throwsAsync(pool.request(server.url(), { method: 'POST', body: slow(), signal: ac.signal }), { code: 'ABORT_ERR' })
  await eventually(() => server.closed === 1, 3000, 'the interrupted connection to close')
  t.is(server.requests.length, 0)
})

test('abort while waiting for the head', async (t) => {
  const server = await useServer(t, httpServer, () => {})
  const pool = usePool(t, Pool)
  const ac = new AbortController()
  setTimeout(() => ac.abort(), 50)
  await t.throwsAsync(pool.request(server.url(), { signal: ac.signal }), { code: 'ABORT_ERR' })
  await eventually(() => server.closed === 1, 3000, 'the close')
})

test('abort while reading the body', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n' + 'a'.repeat(100_000)))
  const pool = usePool(t, Pool)
  const ac = new AbortController()
  const res = await pool.request(server.url(), { signal: ac.signal })
  setTimeout(() => ac.abort(), 30)
  await t.throwsAsync(res.body.text(), { code: 'ABORT_ERR' })
  await eventually(() => server.closed === 1, 3000, 'the close')
  t.like(pool.stats(), { active: 0, idle: 0 })
})

test('an already-aborted signal rejects without sending anything', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => s.write(ok()))
  const pool = usePool(t, Pool)
  await t.throwsAsync(pool.request(server.url(), { signal: AbortSignal.abort() }), { code: 'ABORT_ERR' })
  t.is(server.opened, 0)
})

const injections = [
  ['method', { method: 'GET /x HTTP/1.1\r\nX: y' }],
  ['method with NUL', { method: 'GE\0T' }],
  ['header name', { headers: { 'x-a\r\nx-b': '1' } }],
  ['header value CRLF', { headers: { 'x-a': 'ok\r\nx-injected: 1' } }],
  ['header value LF', { headers: { 'x-a': 'ok\nx' } }],
  ['header value NUL', { headers: { 'x-a': 'ok\0' } }],
  ['transfer-encoding header', { headers: { 'transfer-encoding': 'chunked' } }],
  ['mismatched content-length', { method: 'POST', headers: { 'content-length': '10' }, body: 'abc' }],
]

for (const [what, options] of injections) {
  test(`CR, LF or NUL in the ${what} is refused with ERR_INVALID_ARG_VALUE before anything is sent`, async (t) => {
    const server = await useServer(t, httpServer, (req, s) => s.write(ok()))
    const pool = usePool(t, Pool)
    const before = pool.stats()
    await t.throwsAsync(pool.request(server.url(), options), { code: 'ERR_INVALID_ARG_VALUE' })
    t.deepEqual(pool.stats(), before)
    t.is(server.opened, 0)
  })
}

test('a path with CR, LF, NUL or tab is refused', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => s.write(ok()))
  const pool = usePool(t, Pool)
  for (const path of ['/a\r\nHost: evil', '/a\0b', '/a\tb', '/a\nb']) {
    await t.throwsAsync(pool.request(`http://127.0.0.1:${server.port}${path}`), { code: 'ERR_INVALID_ARG_VALUE' }, JSON.stringify(path))
  }
  t.is(server.opened, 0)
})

test('spaces and non-ASCII in a path are percent-encoded as a WHATWG URL encodes them', async (t) => {
  const seen = []
  const server = await useServer(t, httpServer, (req, s) => {
    seen.push(req.path)
    s.write(ok())
  })
  const pool = usePool(t, Pool)
  for (const url of [`${server.url()}a b/ü?q=é x#frag`, new URL(`${server.url()}café`)]) {
    const res = await pool.request(url)
    await res.body.dump()
  }
  t.deepEqual(seen, ['/a%20b/%C3%BC?q=%C3%A9%20x', '/caf%C3%A9'])
})

test('bad arguments reject (never throw) with ERR_INVALID_ARG_TYPE or ERR_INVALID_ARG_VALUE', async (t) => {
  const pool = usePool(t, Pool)
  const cases = [
    [() => pool.request(42), 'ERR_INVALID_ARG_TYPE'],
    [() => pool.request('http://h/', { method: 1 }), 'ERR_INVALID_ARG_TYPE'],
    [() => pool.request('http://h/', { headers: 'x' }), 'ERR_INVALID_ARG_TYPE'],
    [() => pool.request('http://h/', { headers: { a: {} } }), 'ERR_INVALID_ARG_TYPE'],
    [() => pool.request('http://h/', { body: 42 }), 'ERR_INVALID_ARG_TYPE'],
    [() => pool.request('http://h/', { headersTimeoutMs: -1 }), 'ERR_INVALID_ARG_VALUE'],
    [() => pool.request('tcp://h:1/'), 'ERR_INVALID_ARG_VALUE'],
  ]
  for (const [call, code] of cases) {
    let pending
    t.notThrows(() => {
      pending = call()
    })
    await t.throwsAsync(pending, { code })
  }
})

test('an abort rejects with the signal’s reason: AbortError, TimeoutError, or your own error', async (t) => {
  const server = await useServer(t, httpServer, () => {}) // never answers
  const pool = usePool(t, Pool)
  const ac = new AbortController()
  setTimeout(() => ac.abort(), 20)
  const plain = await t.throwsAsync(pool.request(server.url(), { signal: ac.signal }))
  t.like(plain, { code: 'ABORT_ERR', name: 'AbortError' })
  t.is(plain.cause, ac.signal.reason)
  const timeout = await t.throwsAsync(pool.request(server.url(), { signal: AbortSignal.timeout(30) }))
  t.like(timeout, { code: 'ABORT_ERR', name: 'TimeoutError' })
  t.is(timeout.cause.name, 'TimeoutError')
  const mine = new Error('shutting down')
  const custom = new AbortController()
  setTimeout(() => custom.abort(mine), 20)
  t.is(await t.throwsAsync(pool.request(server.url(), { signal: custom.signal })), mine)
  t.is(await t.throwsAsync(pool.request(server.url(), { signal: AbortSignal.abort(mine) })), mine)
})
