// What node:http, undici and fetch users rely on, each against a raw
// server that sends exactly the bytes in question: early responses during
// an upload, header safety, limits, body kinds, URL and key rules, errors
// that name their peer.
import test from 'ava'
import net from 'node:net'
import tls from 'node:tls'
import vm from 'node:vm'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { once } from 'node:events'
import { Pool, PconnError } from '../dist/index.js'
import { makeCa, makeLeaf } from './helpers/certs.mjs'
import { httpServer, ok } from './helpers/http-server.mjs'
import { closedPort, eventually, tcpEchoServer, useServer, usePool } from './helpers/servers.mjs'

/**
 * A server that answers as soon as a request head arrives and then stops
 * reading (`pause`), as a server refusing an upload does. `after(socket)`
 * runs once the answer is written; by default the server reads (and
 * drops) again 200 ms later, so that it sees the client's close.
 */
async function earlyAnswerServer(t, answer, after = (socket) => setTimeout(() => socket.resume(), 200)) {
  const seen = { opened: 0, closed: 0, received: 0 }
  const server = net.createServer((socket) => {
    seen.opened++
    socket.on('error', () => {})
    socket.on('close', () => seen.closed++)
    let head = ''
    const onData = (data) => {
      seen.received += data.length
      head += data.toString('latin1')
      if (!head.includes('\r\n\r\n')) return
      socket.off('data', onData)
      socket.pause()
      socket.write(answer, () => after(socket))
    }
    socket.on('data', onData)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  return Object.assign(seen, { url: `http://127.0.0.1:${server.address().port}/upload` })
}

/** 64 MiB in 64 KiB chunks, counting what was taken. */
function bigUpload() {
  const source = { taken: 0 }
  source[Symbol.asyncIterator] = async function* () {
    const chunk = Buffer.alloc(64 * 1024, 'x')
    for (let i = 0; i < 1024; i++) {
      source.taken += chunk.length
      yield chunk
    }
  }
  return source
}

const TOO_LARGE = 'HTTP/1.1 413 Payload Too Large\r\ncontent-length: 8\r\nconnection: close\r\n\r\ntoo big!'

test('a 413 sent while the body uploads is handed over at once; the upload stops; the connection is not reused', async (t) => {
  const server = await earlyAnswerServer(t, TOO_LARGE)
  const pool = usePool(t, Pool)
  const body = bigUpload()
  const res = await pool.request(server.url, { method: 'POST', body, headers: { 'content-length': String(64 * 1024 * 1024) } })
  t.is(res.statusCode, 413)
  t.is(await res.body.text(), 'too big!')
  t.true(body.taken < 64 * 1024 * 1024, `the upload stopped (${body.taken} bytes taken)`)
  await eventually(() => server.closed === 1, 3000, 'the connection to close')
  t.like(pool.stats(), { connections: 0, idle: 0 })
})

test('a 413 followed by a reset still reaches the caller', async (t) => {
  // The reset comes once the client has had the answer for a while; a
  // client that reads only after its upload would lose it to the reset.
  const server = await earlyAnswerServer(t, TOO_LARGE, (socket) => setTimeout(() => socket.resetAndDestroy(), 300))
  const pool = usePool(t, Pool)
  const res = await pool.request(server.url, { method: 'PUT', body: bigUpload() })
  t.is(res.statusCode, 413)
  t.is(await res.body.text(), 'too big!')
  await eventually(() => server.closed === 1, 3000, 'the connection to close')
  t.like(pool.stats(), { connections: 0 })
})

test('a 401 to a byte body larger than one write is handed over, not a timeout', async (t) => {
  const server = await earlyAnswerServer(t, 'HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n')
  const pool = usePool(t, Pool)
  const res = await pool.request(server.url, { method: 'POST', body: Buffer.alloc(32 * 1024 * 1024), headersTimeoutMs: 20_000 })
  t.is(res.statusCode, 401)
  await res.body.dump()
  await eventually(() => server.closed === 1, 3000, 'the connection to close (the body was not fully sent)')
})

test('response and trailer names such as __proto__ and constructor are plain entries', async (t) => {
  const server = await useServer(t, httpServer, (req, s) =>
    s.write(
      'HTTP/1.1 200 OK\r\n__proto__: p\r\nconstructor: c\r\ntransfer-encoding: chunked\r\n\r\n' +
        '2\r\nok\r\n0\r\n__proto__: tp\r\ntoString: ts\r\n\r\n',
    ),
  )
  const pool = usePool(t, Pool)
  const res = await pool.request(server.url())
  t.is(Object.getPrototypeOf(res.headers), null)
  t.is(res.headers['__proto__'], 'p')
  t.is(res.headers.constructor, 'c')
  t.is(await res.body.text(), 'ok')
  t.is(Object.getPrototypeOf(res.trailers), null)
  t.deepEqual({ ...res.trailers }, { __proto__: null, ['__proto__']: 'tp', tostring: 'ts' })
})

test('2,000 response headers are accepted within the head-size limit', async (t) => {
  const lines = Array.from({ length: 1999 }, (_, i) => `x: ${i % 10}\r\n`).join('')
  const server = await useServer(t, httpServer, (req, s) => s.write(`HTTP/1.1 200 OK\r\n${lines}content-length: 2\r\n\r\nok`))
  const pool = usePool(t, Pool)
  const res = await pool.request(server.url())
  t.is(res.headers.x.length, 1999)
  t.is(await res.body.text(), 'ok')
})

test('maxHeaderSize bounds the response head: over it is PCONN_HTTP_PARSE and the connection closes', async (t) => {
  const big = `x-big: ${'v'.repeat(20_000)}\r\n`
  const server = await useServer(t, httpServer, (req, s) => s.write(`HTTP/1.1 200 OK\r\n${req.path === '/big' ? big : ''}content-length: 2\r\n\r\nok`))
  const roomy = usePool(t, Pool, { maxHeaderSize: 32 * 1024 })
  t.is(roomy.options.maxHeaderSize, 32 * 1024)
  t.is((await roomy.request(server.url('/big'))).headers['x-big'].length, 20_000)
  const small = usePool(t, Pool, { maxHeaderSize: 64 })
  t.is((await small.request(server.url('/'))).statusCode, 200)
  const err = await t.throwsAsync(usePool(t, Pool).request(server.url('/big')), { code: 'PCONN_HTTP_PARSE' })
  t.regex(err.message, /16384/)
  await eventually(() => server.closed === server.opened - 2, 3000, 'the refused connection to close')
  for (const bad of [0, -1, 1.5, '16k']) {
    t.throws(() => new Pool({ maxHeaderSize: bad }), { code: typeof bad === 'string' ? 'ERR_INVALID_ARG_TYPE' : 'ERR_INVALID_ARG_VALUE' })
  }
})

test('the default maxHeaderSize is node’s, so --max-http-header-size applies as it does to node:http', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => s.write(ok('ok', `x-pad: ${'v'.repeat(200)}\r\n`)))
  const script = `
    const { Pool } = require(${JSON.stringify(new URL('../dist/index.js', import.meta.url).pathname)})
    const pool = new Pool()
    pool.request(${JSON.stringify(server.url())}).then(
      (res) => console.log(pool.options.maxHeaderSize, res.statusCode),
      (err) => console.log(pool.options.maxHeaderSize, err.code),
    ).finally(() => pool.shutdownAll())`
  // Asynchronously: the server runs in this process.
  const run = async (...flags) => (await promisify(execFile)(process.execPath, [...flags, '-e', script])).stdout.trim()
  t.is(await run('--max-http-header-size=100'), '100 PCONN_HTTP_PARSE')
  t.is(await run(), '16384 200')
})

test('request headers may be a Headers, a Map, an array or any iterable of pairs', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => s.write(ok()))
  const pool = usePool(t, Pool)
  function* pairs() {
    yield ['x-a', '1']
    yield ['x-b', '2']
  }
  const forms = [new Headers({ 'x-a': '1', 'x-b': '2' }), new Map([['x-a', '1'], ['x-b', '2']]), [['x-a', '1'], ['x-b', '2']], pairs()]
  for (const headers of forms) await (await pool.request(server.url(), { headers })).body.dump()
  for (const req of server.requests) t.like(req.headers, { 'x-a': '1', 'x-b': '2' })
  t.is(server.requests.length, forms.length)
  await t.throwsAsync(pool.request(server.url(), { headers: new Set(['x-a']) }), { code: 'ERR_INVALID_ARG_TYPE' })
})

test('two Host headers are refused before anything is sent', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => s.write(ok()))
  const pool = usePool(t, Pool)
  const headers = [['host', 'a.example'], ['Host', 'b.example']]
  await t.throwsAsync(pool.request(server.url(), { headers }), { code: 'ERR_INVALID_ARG_VALUE', message: /host/i })
  t.is(server.opened, 0)
})

test('bodies: ArrayBuffer, any view, a Uint8Array from another realm, Blob and URLSearchParams', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => s.write(ok()))
  const pool = usePool(t, Pool)
  const bytes = [1, 2, 3, 4]
  const bodies = [
    new Uint8Array(bytes).buffer,
    new DataView(new Uint8Array([0, ...bytes]).buffer, 1),
    new Uint16Array(new Uint8Array(bytes).buffer),
    vm.runInNewContext('new Uint8Array([1, 2, 3, 4])'),
    new Blob([new Uint8Array(bytes)], { type: 'application/octet-stream' }),
  ]
  for (const body of bodies) await (await pool.request(server.url(), { method: 'POST', body })).body.dump()
  for (const req of server.requests) t.deepEqual([...req.body], bytes)
  t.is(server.requests.at(-1).headers['content-type'], 'application/octet-stream')
  await (await pool.request(server.url(), { method: 'POST', body: new URLSearchParams({ a: '1 2', b: 'é' }) })).body.dump()
  const form = server.requests.at(-1)
  t.is(form.body.toString(), 'a=1+2&b=%C3%A9')
  t.is(form.headers['content-type'], 'application/x-www-form-urlencoded;charset=UTF-8')
  t.is(form.headers['content-length'], String(form.body.length))
  const typed = new Blob(['x'], { type: 'text/plain' })
  await (await pool.request(server.url(), { method: 'POST', body: typed, headers: { 'content-type': 'text/x-mine' } })).body.dump()
  t.is(server.requests.at(-1).headers['content-type'], 'text/x-mine', 'your Content-Type wins')
  await t.throwsAsync(pool.request(server.url(), { method: 'POST', body: 42 }), { code: 'ERR_INVALID_ARG_TYPE' })
})

test('a stream body with your Content-Length is sent with that length, not chunked', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => s.write(ok()))
  const pool = usePool(t, Pool)
  async function* parts() {
    yield 'hello '
    yield Buffer.from('world')
  }
  const res = await pool.request(server.url(), { method: 'POST', body: parts(), headers: { 'content-length': '11' } })
  await res.body.dump()
  const [req] = server.requests
  t.is(req.headers['content-length'], '11')
  t.is(req.headers['transfer-encoding'], undefined)
  t.is(req.body.toString(), 'hello world')
  t.true((await pool.request(server.url())).reused, 'the connection stays usable')
})

test('a stream shorter or longer than its Content-Length fails and closes the connection', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => s.write(ok()))
  const pool = usePool(t, Pool)
  async function* five() {
    yield 'fives'
  }
  for (const length of ['10', '3']) {
    const err = await t.throwsAsync(pool.request(server.url(), { method: 'POST', body: five(), headers: { 'content-length': length } }))
    t.is(err.code, 'ERR_INVALID_ARG_VALUE')
    t.regex(err.message, /content-length/)
  }
  await eventually(() => server.opened === 2 && server.closed === 2, 3000, 'both connections to close')
  t.is(server.requests.length, 0, 'the server never saw a complete request')
})

test('timeouts of 0 turn the limit off', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => {
    if (req.path === '/slow-head') setTimeout(() => s.write(ok()), 150)
    else {
      s.write('HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nab')
      setTimeout(() => s.write('cd'), 150)
    }
  })
  const pool = usePool(t, Pool)
  const res = await pool.request(server.url('/slow-head'), { headersTimeoutMs: 0, bodyTimeoutMs: 0 })
  t.is(await res.body.text(), 'ok')
  const body = await pool.request(server.url('/slow-body'), { bodyTimeoutMs: 0 })
  t.is(await body.body.text(), 'abcd')
  await t.throwsAsync(pool.request(server.url(), { headersTimeoutMs: -1 }), { code: 'ERR_INVALID_ARG_VALUE' })
})

test('the headers timer starts once the request is fully sent', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => s.write(ok(req.body.toString())))
  const pool = usePool(t, Pool)
  async function* slowly() {
    for (const part of ['a', 'b', 'c']) {
      yield part
      await new Promise((r) => setTimeout(r, 150))
    }
  }
  // The upload takes ~450 ms, longer than the 200 ms allowed for the head.
  const res = await pool.request(server.url(), { method: 'POST', body: slowly(), headersTimeoutMs: 200 })
  t.is(await res.body.text(), 'abc')
})

test('hosts are normalised as WHATWG URLs are: 127.1, 0x7f000001 and 127.0.0.1 share connections', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => s.write(ok()))
  const pool = usePool(t, Pool)
  for (const host of ['127.0.0.1', '127.1', '0x7f000001', '127.000.000.001']) {
    await (await pool.request(`http://${host}:${server.port}/`)).body.dump()
  }
  t.is(server.opened, 1)
  t.deepEqual(Object.keys(pool.stats().hosts), [`http://127.0.0.1:${server.port}`])
})

test('URLs with credentials, a signed port or no host are refused, as strings and as URL objects', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => s.write(ok()))
  const pool = usePool(t, Pool)
  const bad = [
    `http://user:secret@127.0.0.1:${server.port}/`,
    new URL(`http://user:secret@127.0.0.1:${server.port}/`),
    new URL(`http://user@127.0.0.1:${server.port}/`),
    `http://127.0.0.1:+${server.port}/`,
    'http://',
    'ftp://127.0.0.1/',
    `tcp://127.0.0.1:${server.port}`,
  ]
  for (const url of bad) {
    const err = await t.throwsAsync(pool.request(url), undefined, String(url))
    t.is(err.code, 'ERR_INVALID_ARG_VALUE', String(url))
    t.false(err.message.includes('secret'), 'a password is never echoed back')
  }
  t.is(server.opened, 0)
})

test('with allowH2: false, request() never offers HTTP/2, even when tls.alpn (for raw TLS keys) lists h2', async (t) => {
  const ca = makeCa()
  const leaf = makeLeaf(ca, ['localhost'])
  const offered = []
  const server = tls.createServer({ ...leaf, ALPNProtocols: ['h2', 'http/1.1'] }, (socket) => {
    offered.push(socket.alpnProtocol)
    socket.on('data', () => socket.write(ok()))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const pool = usePool(t, Pool, { tls: { ca: ca.cert, alpn: ['h2', 'http/1.1'] }, allowH2: false })
  const res = await pool.request(`https://localhost:${server.address().port}/`)
  t.is(res.statusCode, 200)
  t.is(await res.body.text(), 'ok')
  t.deepEqual(offered, ['http/1.1'])
})

test('errors name the peer: key in the message, host, port, address, and the cause', async (t) => {
  const port = await closedPort()
  const pool = usePool(t, Pool)
  const err = await t.throwsAsync(pool.request(`http://127.0.0.1:${port}/x`))
  t.true(err instanceof PconnError)
  t.is(err.code, 'ECONNREFUSED')
  t.true(err.message.includes(`http://127.0.0.1:${port}`), err.message)
  t.like(err, { host: '127.0.0.1', port, address: '127.0.0.1' })
  t.true(err.cause instanceof Error)
  t.regex(err.cause.message, /refused/i)
  const raw = await t.throwsAsync(pool.acquire(`tcp://127.0.0.1:${port}`))
  t.like(raw, { code: 'ECONNREFUSED', host: '127.0.0.1', port, address: '127.0.0.1' })
  t.true(raw.message.includes(`tcp://127.0.0.1:${port}`), raw.message)

  const server = await useServer(t, httpServer, (req, s) => {
    if (req.path === '/cut') s.end('HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\nabc')
  })
  // Once connected, the address is the connection's peer, for the head,
  // the body and a raw connection's I/O alike.
  const stalled = await t.throwsAsync(pool.request(server.url('/stall'), { headersTimeoutMs: 50 }))
  t.like(stalled, { code: 'PCONN_HEADERS_TIMEOUT', host: '127.0.0.1', port: server.port, address: '127.0.0.1' })
  t.true(stalled.message.includes(`http://127.0.0.1:${server.port}`), stalled.message)
  const cut = await pool.request(server.url('/cut'))
  const bodyErr = await t.throwsAsync(cut.body.text())
  t.like(bodyErr, { code: 'PCONN_SOCKET_CLOSED', host: '127.0.0.1', port: server.port, address: '127.0.0.1' })
  t.true(bodyErr.message.includes(`http://127.0.0.1:${server.port}`), bodyErr.message)

  const echo = await useServer(t, tcpEchoServer)
  const conn = await pool.acquire(`tcp://127.0.0.1:${echo.port}`)
  await eventually(() => echo.open === 1, 2000, 'the server accepted')
  for (const socket of echo.sockets) socket.resetAndDestroy()
  const ioErr = await t.throwsAsync(conn.read())
  t.like(ioErr, { code: 'ECONNRESET', host: '127.0.0.1', port: echo.port, address: '127.0.0.1' })
  t.true(ioErr.message.includes(`tcp://127.0.0.1:${echo.port}`), ioErr.message)
  // A write the socket refuses at once says the same.
  const writeErr = await t.throwsAsync(conn.write('x'))
  t.like(writeErr, { host: '127.0.0.1', port: echo.port, address: '127.0.0.1' })
  t.true(['EPIPE', 'ECONNRESET'].includes(writeErr.code), writeErr.code)
  pool.release(conn, false)
})

test('an error rejected by request() or acquire() carries the caller’s frames in its stack', async (t) => {
  const port = await closedPort()
  const pool = usePool(t, Pool)
  async function fetchUserProfile() {
    return pool.request(`http://127.0.0.1:${port}/user`)
  }
  async function handleIncomingCall() {
    return await fetchUserProfile()
  }
  const err = await t.throwsAsync(handleIncomingCall())
  t.regex(err.stack, /handleIncomingCall/)
  async function openDatabaseSession() {
    return await pool.acquire(`tcp://127.0.0.1:${port}`)
  }
  const raw = await t.throwsAsync(openDatabaseSession())
  t.regex(raw.stack, /openDatabaseSession/)
})

test('a body is consumed once: bodyUsed turns true and a second read rejects with ERR_INVALID_STATE', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => s.write(ok(req.path === '/big' ? 'b'.repeat(100_000) : 'small')))
  const pool = usePool(t, Pool)
  for (const path of ['/small', '/big']) {
    const res = await pool.request(server.url(path))
    t.false(res.body.bodyUsed)
    t.true((await res.body.text()).length > 0)
    t.true(res.body.bodyUsed)
    for (const again of ['text', 'json', 'bytes', 'arrayBuffer', 'dump']) {
      await t.throwsAsync(res.body[again](), { code: 'ERR_INVALID_STATE' }, `${path} ${again}`)
    }
  }
  const streamed = await pool.request(server.url('/big'))
  for await (const _ of streamed.body) break
  t.true(streamed.body.bodyUsed)
  await t.throwsAsync(streamed.body.text(), { code: 'ERR_INVALID_STATE' })
})
