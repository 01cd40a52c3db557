// pconn/undici's Agent with real clients (Node's global fetch, undici 7's
// request/stream/fetch, undici's interceptors) against node:http servers
// on 127.0.0.1 that record what they saw: connections, requests, bodies.
import test from 'ava'
import http from 'node:http'
import https from 'node:https'
import zlib from 'node:zlib'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable, Writable } from 'node:stream'
import * as undici from 'undici'
import { Agent } from 'pconn/undici'
import { Agent as AgentCjs } from '../dist/undici/index.js'
import { Pool } from '../dist/index.js'
import { makeCa, makeLeaf } from './helpers/certs.mjs'
import { closedPort, eventually } from './helpers/servers.mjs'

const { interceptors, errors } = undici

/**
 * A node:http(s) server that counts connections (opened, closed) and
 * records each request: method, url, headers, raw headers, body.
 */
async function useHttpServer(t, handler, { listen = ['0', '127.0.0.1'], tls } = {}) {
  const seen = { opened: 0, closed: 0, requests: [] }
  const server = tls ? https.createServer(tls) : http.createServer()
  server.on(tls ? 'secureConnection' : 'connection', (socket) => {
    seen.opened++
    socket.on('close', () => seen.closed++)
  })
  server.on('request', async (req, res) => {
    const chunks = []
    try {
      for await (const c of req) chunks.push(c)
    } catch {
      return
    }
    const record = { method: req.method, url: req.url, headers: req.headers, rawHeaders: req.rawHeaders, body: Buffer.concat(chunks) }
    seen.requests.push(record)
    await handler(req, res, record)
  })
  server.listen(...(listen.length === 1 ? listen : [Number(listen[0]), listen[1]]))
  await once(server, 'listening')
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  const address = server.address()
  const origin = typeof address === 'string' ? undefined : `${tls ? 'https' : 'http'}://127.0.0.1:${address.port}`
  return { server, seen, origin, port: typeof address === 'string' ? undefined : address.port }
}

/** What `promise` rejects with (a DOMException too, which t.throwsAsync refuses); fails if it resolves. */
async function rejection(promise) {
  try {
    await promise
  } catch (err) {
    return err
  }
  throw new Error('expected a rejection')
}

/** An Agent for one test, destroyed at its end. */
function useAgent(t, options) {
  const agent = new Agent(options)
  t.teardown(() => agent.destroy())
  return agent
}

const echo = (req, res, record) => {
  res.setHeader('content-type', 'application/json')
  res.end(
    JSON.stringify({
      method: req.method,
      url: req.url,
      length: record.body.length,
      sha: createHash('sha256').update(record.body).digest('hex'),
      text: record.body.length < 2000 ? record.body.toString('latin1') : undefined,
      contentLength: req.headers['content-length'],
      transferEncoding: req.headers['transfer-encoding'],
      contentType: req.headers['content-type'],
    }),
  )
}

test('the entry points: ESM and CommonJS give the same Agent, an undici Dispatcher', (t) => {
  t.is(Agent, AgentCjs)
  const agent = new Agent()
  t.true(agent instanceof undici.Dispatcher)
  t.false(agent.closed)
  t.false(agent.destroyed)
  t.true(agent.pool instanceof Pool)
  return agent.close()
})

test("Node's global fetch with the Agent: one connection for every request, headers and set-cookie intact", async (t) => {
  const { seen, origin } = await useHttpServer(t, (req, res) => {
    res.setHeader('set-cookie', ['a=1', 'b=2'])
    res.setHeader('x-echo', req.headers['x-hello'] ?? '')
    res.end(`you asked ${req.url}`)
  })
  const agent = useAgent(t)
  for (let i = 0; i < 5; i++) {
    const res = await fetch(`${origin}/item/${i}?q=${i}`, { dispatcher: agent, headers: { 'x-hello': `world ${i}` } })
    t.is(res.status, 200)
    t.is(res.statusText, 'OK')
    t.is(await res.text(), `you asked /item/${i}?q=${i}`)
    t.deepEqual(res.headers.getSetCookie(), ['a=1', 'b=2'])
    t.is(res.headers.get('x-echo'), `world ${i}`)
  }
  t.is(seen.opened, 1, 'the server saw one connection')
  t.is(seen.requests.length, 5)
  t.is(seen.requests[0].headers.host, `127.0.0.1:${new URL(origin).port}`)
  t.like(agent.pool.stats(), { created: 1, reused: 4 })
})

test('undici 7 request, stream and fetch with the Agent as dispatcher share one connection', async (t) => {
  const { seen, origin } = await useHttpServer(t, (req, res) => {
    if (req.url === '/big-trailers') {
      // Larger than what arrives with the head: the trailers come at the end of the stream.
      res.writeHead(200, { trailer: 'x-sum' })
      res.write(Buffer.alloc(200_000, 'b'))
      res.addTrailers({ 'x-sum': 'big' })
      res.end()
      return
    }
    if (req.url === '/trailers') {
      res.writeHead(200, { trailer: 'x-sum' })
      res.write('part 1, ')
      res.addTrailers({ 'x-sum': '42' })
      res.end('part 2')
      return
    }
    res.setHeader('x-multi', ['one', 'two'])
    res.end(`${req.method} ${req.url}`)
  })
  const agent = useAgent(t)

  const r = await undici.request(`${origin}/req`, { dispatcher: agent })
  t.is(r.statusCode, 200)
  t.deepEqual(r.headers['x-multi'], ['one', 'two'])
  t.is(await r.body.text(), 'GET /req')

  const trailered = await undici.request(`${origin}/trailers`, { dispatcher: agent })
  t.is(await trailered.body.text(), 'part 1, part 2')
  t.deepEqual({ ...trailered.trailers }, { 'x-sum': '42' })
  const big = await undici.request(`${origin}/big-trailers`, { dispatcher: agent })
  t.is((await big.body.text()).length, 200_000)
  t.deepEqual({ ...big.trailers }, { 'x-sum': 'big' })

  const chunks = []
  const streamed = await undici.stream(`${origin}/stream`, { dispatcher: agent, opaque: chunks }, ({ statusCode, opaque }) => {
    t.is(statusCode, 200)
    return new Writable({
      write(chunk, _enc, cb) {
        opaque.push(chunk)
        cb()
      },
    })
  })
  t.is(streamed.opaque, chunks)
  t.is(Buffer.concat(chunks).toString(), 'GET /stream')

  const f = await undici.fetch(`${origin}/fetch`, { dispatcher: agent, method: 'DELETE' })
  t.is(await f.text(), 'DELETE /fetch')

  t.is(seen.opened, 1)
  t.deepEqual(
    seen.requests.map((r) => r.url),
    ['/req', '/trailers', '/big-trailers', '/stream', '/fetch'],
  )
})

test.serial('setGlobalDispatcher(new Agent()) makes plain fetch() and undici.request run on pconn', async (t) => {
  const { seen, origin } = await useHttpServer(t, (req, res) => res.end(`global ${req.url}`))
  const agent = useAgent(t)
  const previous = undici.getGlobalDispatcher()
  undici.setGlobalDispatcher(agent)
  t.teardown(() => undici.setGlobalDispatcher(previous))
  t.is(await (await fetch(`${origin}/node-fetch`)).text(), 'global /node-fetch')
  t.is(await (await undici.fetch(`${origin}/undici-fetch`)).text(), 'global /undici-fetch')
  t.is(await (await undici.request(`${origin}/undici-request`)).body.text(), 'global /undici-request')
  t.is(seen.opened, 1)
  t.like(agent.pool.stats(), { created: 1, reused: 2 }, 'all three went through the Agent')
})

test('compose(): redirect, retry, decompress and dns interceptors from undici run over the Agent', async (t) => {
  let flaky = 0
  const { seen, origin, port } = await useHttpServer(t, (req, res) => {
    res.setHeader('x-host', req.headers.host)
    switch (req.url) {
      case '/redirect':
        res.writeHead(302, { location: '/hello' })
        return res.end()
      case '/flaky':
        if (flaky++ < 2) {
          res.writeHead(503)
          return res.end('not yet')
        }
        return res.end('finally')
      case '/gzip':
        res.writeHead(200, { 'content-encoding': 'gzip' })
        return res.end(zlib.gzipSync('zipped!'.repeat(100)))
      default:
        return res.end(`hello from ${req.url}`)
    }
  })
  const agent = useAgent(t)
  const composed = agent.compose(
    interceptors.redirect({ maxRedirections: 3 }),
    interceptors.retry({ minTimeout: 1, maxTimeout: 10, maxRetries: 3 }),
    interceptors.decompress(),
    interceptors.dns({ affinity: 4 }),
  )

  let r = await undici.request(`${origin}/redirect`, { dispatcher: composed })
  t.is(await r.body.text(), 'hello from /hello')
  t.deepEqual(
    seen.requests.map((q) => q.url),
    ['/redirect', '/hello'],
  )

  r = await undici.request(`${origin}/flaky`, { dispatcher: composed })
  t.is(r.statusCode, 200)
  t.is(await r.body.text(), 'finally')
  t.is(seen.requests.filter((q) => q.url === '/flaky').length, 3, 'two 503s retried')

  r = await undici.request(`${origin}/gzip`, { dispatcher: composed })
  t.is(await r.body.text(), 'zipped!'.repeat(100))

  // dns: the origin's name is resolved by the interceptor; the Host header keeps the name.
  r = await undici.request(`http://localhost:${port}/named`, { dispatcher: composed })
  t.is(r.headers['x-host'], `localhost:${port}`)
  t.is(await r.body.text(), 'hello from /named')

  // fetch over the composed dispatcher too (fetch follows and decodes by itself).
  const f = await undici.fetch(`${origin}/redirect`, { dispatcher: composed })
  t.is(await f.text(), 'hello from /hello')
  const nodeFetch = await fetch(`${origin}/gzip`, { dispatcher: composed })
  t.is(await nodeFetch.text(), 'zipped!'.repeat(100), "Node's fetch through the chain")

  t.is(seen.opened, 1, 'every request, retry and redirect on one connection')
  // The Proxy compose() returns reaches the Agent's state.
  t.false(composed.closed)
  await composed.close()
  t.true(agent.closed)
  t.true(composed.destroyed)
})

test('backpressure: a paused handler gets no data and the server blocks until it resumes', async (t) => {
  const total = 32 * 1024 * 1024
  const piece = Buffer.alloc(64 * 1024, 'z')
  const server = { written: 0, blocked: false }
  const { origin } = await useHttpServer(t, async (req, res) => {
    res.writeHead(200, { 'content-length': String(total) })
    while (server.written < total) {
      server.written += piece.length
      if (!res.write(piece)) {
        server.blocked = true
        await once(res, 'drain')
        server.blocked = false
      }
    }
    res.end()
  })
  const agent = useAgent(t)
  let received = 0
  let whilePaused = 0
  let paused = false
  let resume
  const hash = createHash('sha256')
  const done = new Promise((resolve, reject) => {
    agent.dispatch(
      { origin, path: '/big', method: 'GET' },
      {
        onConnect() {},
        onHeaders(status, raw, res) {
          resume = res
          return true
        },
        onData(chunk) {
          if (paused) whilePaused++
          received += chunk.length
          hash.update(chunk)
          // Pause after the first chunk.
          if (received === chunk.length) {
            paused = true
            return false
          }
          return true
        },
        onComplete: resolve,
        onError: reject,
      },
    )
  })
  await eventually(() => paused && server.blocked, 10_000, 'the server to block on a paused reader')
  t.true(server.written < total, 'the server could not write everything')
  t.is(whilePaused, 0, 'no data delivered while paused')
  const before = received
  paused = false
  resume()
  resume() // idempotent
  await done
  t.true(received > before)
  t.is(received, total)
  const expected = createHash('sha256')
  for (let i = 0; i < total / piece.length; i++) expected.update(piece)
  t.is(hash.digest('hex'), expected.digest('hex'))
})

test('a body read slowly through undici.request arrives whole (the Readable pauses and resumes the Agent)', async (t) => {
  const total = 4 * 1024 * 1024
  const { origin } = await useHttpServer(t, (req, res) => {
    res.writeHead(200)
    let sent = 0
    const more = () => {
      while (sent < total) {
        const chunk = Buffer.alloc(16 * 1024, sent % 251)
        sent += chunk.length
        if (!res.write(chunk)) return res.once('drain', more)
      }
      res.end()
    }
    more()
  })
  const agent = useAgent(t)
  const r = await undici.request(`${origin}/slow`, { dispatcher: agent, highWaterMark: 16 * 1024 })
  let received = 0
  let reads = 0
  for await (const chunk of r.body) {
    received += chunk.length
    if (++reads % 16 === 0) await new Promise((resolve) => setImmediate(resolve))
  }
  t.is(received, total)
})

test('abort through an AbortSignal mid-body: the request rejects and the server sees its connection close', async (t) => {
  let release
  const { seen, origin } = await useHttpServer(t, (req, res) => {
    res.writeHead(200, { 'content-length': '1000000' })
    res.write('first part')
    release = () => res.end()
  })
  const agent = useAgent(t)

  const ac = new AbortController()
  const r = await undici.request(`${origin}/a`, { dispatcher: agent, signal: ac.signal })
  const it = r.body[Symbol.asyncIterator]()
  t.is((await it.next()).value.toString(), 'first part')
  ac.abort()
  t.is((await rejection(it.next())).name, 'AbortError')
  await eventually(() => seen.closed === 1, 5000, 'the server to see the close')

  // Node's fetch, the same.
  const ac2 = new AbortController()
  const res = await fetch(`${origin}/b`, { dispatcher: agent, signal: ac2.signal })
  const reader = res.body.getReader()
  t.is(Buffer.from((await reader.read()).value).toString(), 'first part')
  ac2.abort()
  t.is((await rejection(reader.read())).name, 'AbortError')
  await eventually(() => seen.closed === 2, 5000, 'the server to see the second close')
  t.is(seen.opened, 2)
  t.is(agent.pool.stats().idle, 0)
  release?.()
})

test('an abort before the response rejects with the reason and sends nothing more', async (t) => {
  const { origin, seen } = await useHttpServer(t, () => {})
  const agent = useAgent(t)
  const ac = new AbortController()
  ac.abort(new Error('changed my mind'))
  await t.throwsAsync(undici.request(`${origin}/x`, { dispatcher: agent, signal: ac.signal }), { message: 'changed my mind' })
  t.is((await rejection(fetch(`${origin}/x`, { dispatcher: agent, signal: AbortSignal.abort() }))).name, 'AbortError')
  await agent.close()
  t.is(seen.opened, 0, 'the server saw no connection')
})

test('a Blob-like body with only stream() is sent; one that cannot be read fails its request, and close() still resolves', async (t) => {
  const { origin, seen } = await useHttpServer(t, echo)
  const agent = useAgent(t)
  const streamOnly = { [Symbol.toStringTag]: 'Blob', type: 'text/x-only', stream: () => new Blob(['via stream()']).stream() }
  const r = await undici.request(`${origin}/p`, { dispatcher: agent, method: 'POST', body: streamOnly })
  t.like(await r.body.json(), { text: 'via stream()', contentType: 'text/x-only' })
  const unreadable = {
    [Symbol.toStringTag]: 'Blob',
    arrayBuffer() {
      throw new Error('cannot read this blob')
    },
  }
  await t.throwsAsync(undici.request(`${origin}/p`, { dispatcher: agent, method: 'POST', body: unreadable }), { message: 'cannot read this blob' })
  await agent.close()
  t.is(seen.requests.length, 1, 'the failed request sent nothing')
})

test('POST bodies of every kind arrive intact, framed as undici frames them', async (t) => {
  const { origin } = await useHttpServer(t, echo)
  const agent = useAgent(t)
  const bytes = Buffer.from('binary \x00\xff body', 'latin1')
  const post = async (body, extra = {}) => {
    const r = await undici.request(`${origin}/p`, { dispatcher: agent, method: 'POST', body, ...extra })
    return r.body.json()
  }

  t.like(await post('a string ✓'), { text: Buffer.from('a string ✓').toString('latin1'), contentLength: String(Buffer.byteLength('a string ✓')) })
  t.like(await post(bytes), { text: bytes.toString('latin1'), contentLength: String(bytes.length) })
  const view = new Uint8Array(Buffer.from('xxviewxx')).subarray(2, 6)
  t.like(await post(view), { text: 'view', contentLength: '4' })
  t.like(await post(new DataView(new TextEncoder().encode('xdataview').buffer, 1)), { text: 'dataview' })
  t.like(await post(new TextEncoder().encode('arraybuffer').buffer), { text: 'arraybuffer', contentLength: '11' })
  t.like(await post(Readable.from([Buffer.from('read'), Buffer.from('able')])), { text: 'readable', transferEncoding: 'chunked' })
  t.like(
    await post(
      (async function* () {
        yield 'async '
        yield Buffer.from('gen')
      })(),
    ),
    { text: 'async gen', transferEncoding: 'chunked' },
  )
  t.like(await post([Buffer.from('sync '), Buffer.from('iterable')]), { text: 'sync iterable' })
  t.like(await post(Readable.from(['sized']), { headers: { 'content-length': '5' } }), { text: 'sized', contentLength: '5', transferEncoding: undefined })
  t.like(await post(new Blob(['blob body'], { type: 'text/x-blob' })), { text: 'blob body', contentType: 'text/x-blob', contentLength: '9' })
  t.like(await post(null), { length: 0, contentLength: '0' }, 'POST without a body says content-length: 0')
  t.like(await post(''), { length: 0, contentLength: '0' })

  const form = new FormData()
  form.set('field', 'value 1')
  form.set('file', new Blob(['file contents']), 'f.txt')
  const echoed = await post(form)
  t.regex(echoed.contentType, /^multipart\/form-data; boundary=/)
  t.regex(echoed.text, /name="field"\r\n\r\nvalue 1\r\n/)
  t.regex(echoed.text, /filename="f.txt"[\s\S]*file contents/)
  const undiciForm = new undici.FormData()
  undiciForm.set('u', 'undici form')
  t.regex((await post(undiciForm)).text, /name="u"\r\n\r\nundici form\r\n/)

  // 1 MiB through a stream, hashed at the server.
  const big = Buffer.alloc(1024 * 1024)
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) % 256
  const bigEcho = await post(Readable.from((function* () {
    for (let i = 0; i < big.length; i += 10_000) yield big.subarray(i, i + 10_000)
  })()))
  t.is(bigEcho.length, big.length)
  t.is(bigEcho.sha, createHash('sha256').update(big).digest('hex'))

  // fetch: Node's and undici's, with a string and a ReadableStream.
  const f1 = await fetch(`${origin}/p`, { dispatcher: agent, method: 'PUT', body: 'from fetch' })
  t.like(await f1.json(), { method: 'PUT', text: 'from fetch', contentLength: '10' })
  const f2 = await undici.fetch(`${origin}/p`, {
    dispatcher: agent,
    method: 'POST',
    body: new Blob(['web']).stream(),
    duplex: 'half',
  })
  t.like(await f2.json(), { text: 'web', transferEncoding: 'chunked' })
})

test('a body stream that fails fails the request with its error; a wrong content-length is refused', async (t) => {
  const { seen, origin } = await useHttpServer(t, echo)
  const agent = useAgent(t)
  const failing = new Readable({
    read() {
      this.push('partial')
      this.destroy(new Error('source broke'))
    },
  })
  await t.throwsAsync(undici.request(`${origin}/f`, { dispatcher: agent, method: 'POST', body: failing }), { message: 'source broke' })
  const mismatch = await t.throwsAsync(
    undici.request(`${origin}/f`, { dispatcher: agent, method: 'POST', body: 'four', headers: { 'content-length': '3' } }),
  )
  t.is(mismatch.code, 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH')
  t.is(seen.requests.filter((r) => r.url === '/f').length, 0, 'neither request reached the server complete')
})

test('request headers in every undici shape, query and reset reach the server', async (t) => {
  const { seen, origin } = await useHttpServer(t, (req, res) => res.end('ok'))
  const agent = useAgent(t)
  const send = async (headers, extra) => {
    const r = await undici.request(`${origin}/h`, { dispatcher: agent, headers, ...extra })
    await r.body.dump()
    return seen.requests.at(-1)
  }
  let got = await send({ 'X-Obj': 'a', 'x-multi': ['1', '2'], 'x-num': 3, 'x-null': null, 'x-undef': undefined })
  t.is(got.headers['x-obj'], 'a')
  t.is(got.headers['x-multi'], '1, 2')
  t.is(got.headers['x-num'], '3')
  t.is(got.headers['x-null'], '')
  t.false('x-undef' in got.headers)
  t.true(got.rawHeaders.includes('X-Obj'), 'request header names keep their case')
  got = await send(['x-flat', 'b', 'x-flat-multi', ['c', 'd']])
  t.is(got.headers['x-flat'], 'b')
  t.is(got.headers['x-flat-multi'], 'c, d')
  got = await send(new Map([['x-map', 'm']]))
  t.is(got.headers['x-map'], 'm')
  got = await send(new Headers({ 'x-headers': 'h' }))
  t.is(got.headers['x-headers'], 'h')
  got = await send([['x-pairs', 'p']])
  t.is(got.headers['x-pairs'], 'p')
  got = await send({ host: 'virtual.example:8080' })
  t.is(got.headers.host, 'virtual.example:8080')

  const r = await undici.request(`${origin}/q`, { dispatcher: agent, query: { a: 1, b: ['x', 'y'], c: 'é' } })
  await r.body.dump()
  t.is(seen.requests.at(-1).url, '/q?a=1&b=x&b=y&c=%C3%A9')

  t.is(seen.opened, 1)
  const closeSeen = seen.closed
  got = await send({}, { reset: true })
  t.is(got.headers.connection, 'close')
  await eventually(() => seen.closed === closeSeen + 1, 5000, 'the reset connection to close')
  got = await send({ connection: 'close' })
  t.is(got.headers.connection, 'close')
})

test('invalid options are refused as undici refuses them, before anything is sent', async (t) => {
  const { seen, origin } = await useHttpServer(t, (req, res) => res.end('ok'))
  const agent = useAgent(t)
  const refused = async (opts, code, message) => {
    const err = await t.throwsAsync(undici.request(`${origin}/bad`, { dispatcher: agent, ...opts }))
    t.is(err.code, code, message)
    return err
  }
  await refused({ headers: { 'transfer-encoding': 'chunked' } }, 'UND_ERR_INVALID_ARG')
  await refused({ headers: { expect: '100-continue' } }, 'UND_ERR_NOT_SUPPORTED')
  await refused({ headers: { 'x-bad': 'a\r\nb' } }, 'UND_ERR_INVALID_ARG')
  await refused({ headers: ['odd'] }, 'UND_ERR_INVALID_ARG')
  await refused({ maxRedirections: 2 }, 'UND_ERR_INVALID_ARG')
  await refused({ headersTimeout: -1 }, 'UND_ERR_INVALID_ARG')
  await refused({ method: 'BAD METHOD' }, 'UND_ERR_INVALID_ARG')
  await refused({ body: 42, method: 'POST' }, 'UND_ERR_INVALID_ARG')
  const query = await t.throwsAsync(undici.request(`${origin}/already?x=1`, { dispatcher: agent, query: { a: 1 } }))
  t.is(query.code, 'UND_ERR_INVALID_ARG')
  // A raw dispatch without onError throws.
  t.throws(() => agent.dispatch({ origin, path: 'no-slash', method: 'GET' }, {}), { code: 'UND_ERR_INVALID_ARG' })
  t.throws(() => agent.dispatch({ origin, path: '/', method: 'GET' }, null), { message: 'handler must be an object' })
  t.is(seen.requests.length, 0)
})

test('upgrade and CONNECT to a server that does not take them fail with undici’s SocketError; the connections close', async (t) => {
  const { seen, origin } = await useHttpServer(t, (req, res) => res.end('ok'))
  const agent = useAgent(t)
  const up = await t.throwsAsync(undici.upgrade({ origin, path: '/ws', dispatcher: agent, protocol: 'websocket' }))
  t.is(up.code, 'UND_ERR_SOCKET')
  const conn = await t.throwsAsync(undici.connect({ origin, path: 'example.test:443', dispatcher: agent }))
  t.is(conn.code, 'UND_ERR_SOCKET')
  await eventually(() => seen.closed === seen.opened && agent.pool.stats().connections === 0, 3000, 'the connections to close')
  t.true(seen.opened >= 1)
})

test('errors: ECONNREFUSED passes through with its code, as undici reports it', async (t) => {
  const port = await closedPort()
  const agent = useAgent(t)
  const err = await t.throwsAsync(undici.request(`http://127.0.0.1:${port}/`, { dispatcher: agent }))
  t.is(err.code, 'ECONNREFUSED')
  const failed = await t.throwsAsync(fetch(`http://127.0.0.1:${port}/`, { dispatcher: agent }), { instanceOf: TypeError, message: 'fetch failed' })
  t.is(failed.cause.code, 'ECONNREFUSED')
})

test('errors: headers timeout is UND_ERR_HEADERS_TIMEOUT, a peer close mid-body UND_ERR_SOCKET', async (t) => {
  const { origin } = await useHttpServer(t, (req, res) => {
    if (req.url === '/cut') {
      res.writeHead(200, { 'content-length': '100000' })
      res.write('some', () => res.socket.destroy())
    }
    // '/hang': never answers
  })
  const agent = useAgent(t, { headersTimeout: 60_000 })
  const timeout = await t.throwsAsync(undici.request(`${origin}/hang`, { dispatcher: agent, headersTimeout: 50 }))
  t.is(timeout.code, 'UND_ERR_HEADERS_TIMEOUT')
  t.true(timeout instanceof errors.HeadersTimeoutError)
  t.is(timeout.cause?.code, 'PCONN_HEADERS_TIMEOUT')

  const agentTimeout = useAgent(t, { headersTimeout: 50 })
  t.is((await t.throwsAsync(undici.request(`${origin}/hang`, { dispatcher: agentTimeout }))).code, 'UND_ERR_HEADERS_TIMEOUT')

  const r = await undici.request(`${origin}/cut`, { dispatcher: agent })
  const cut = await t.throwsAsync(r.body.text())
  t.is(cut.code, 'UND_ERR_SOCKET')
  t.true(cut instanceof errors.SocketError)
  t.is(cut.message, 'other side closed')
})

test('handler exceptions go to onError once; new-style handlers pause and resume through their controller', async (t) => {
  const { origin } = await useHttpServer(t, (req, res) => res.end('x'.repeat(200_000)))
  const agent = useAgent(t)

  const calls = []
  await new Promise((resolve) => {
    agent.dispatch(
      { origin, path: '/throw', method: 'GET' },
      {
        onConnect: () => calls.push('connect'),
        onHeaders() {
          calls.push('headers')
          throw new Error('handler broke')
        },
        onData: () => calls.push('data'),
        onComplete: () => calls.push('complete'),
        onError(err) {
          calls.push(`error: ${err.message}`)
          setImmediate(resolve)
        },
      },
    )
  })
  t.deepEqual(calls, ['connect', 'headers', 'error: handler broke'])

  const events = []
  let received = 0
  let pausedOnce = false
  const result = await new Promise((resolve, reject) => {
    agent.dispatch(
      { origin, path: '/new', method: 'GET' },
      {
        onRequestStart: () => events.push('start'),
        onResponseStart(controller, status, headers, message) {
          events.push(`response ${status} ${message} ${headers['content-length']}`)
        },
        onResponseData(controller, chunk) {
          received += chunk.length
          if (!pausedOnce) {
            pausedOnce = true
            controller.pause()
            t.true(controller.paused)
            setImmediate(() => controller.resume())
          }
        },
        onResponseEnd(controller, trailers) {
          events.push('end')
          resolve(trailers)
        },
        onResponseError: (controller, err) => reject(err),
      },
    )
  })
  t.deepEqual(result, {})
  t.deepEqual(events, ['start', 'response 200 OK 200000', 'end'])
  t.is(received, 200_000)
})

test('close() waits for requests in flight, then later dispatches fail with UND_ERR_DESTROYED; destroy() fails them', async (t) => {
  let release
  const { seen, origin } = await useHttpServer(t, (req, res) => {
    if (req.url === '/slow') release = () => res.end('slow done')
    else res.end('quick')
  })
  const agent = new Agent()
  const inFlight = undici.request(`${origin}/slow`, { dispatcher: agent })
  await eventually(() => release !== undefined, 5000, 'the request to reach the server')
  let closed = false
  const closing = agent.close().then(() => (closed = true))
  t.true(agent.closed)
  const refused = await t.throwsAsync(undici.request(`${origin}/late`, { dispatcher: agent }))
  t.is(refused.code, 'UND_ERR_CLOSED')
  t.false(closed)
  release()
  t.is(await (await inFlight).body.text(), 'slow done')
  await closing
  t.true(agent.destroyed)
  const after = await t.throwsAsync(undici.request(`${origin}/later`, { dispatcher: agent }))
  t.is(after.code, 'UND_ERR_DESTROYED')
  await new Promise((resolve) => agent.close((err) => {
    t.is(err?.code, 'UND_ERR_DESTROYED')
    resolve()
  }))
  await eventually(() => seen.closed === seen.opened, 5000, 'the pool to close its connections')

  // destroy(): requests in flight fail.
  const other = new Agent()
  release = undefined
  const doomed = undici.request(`${origin}/slow`, { dispatcher: other })
  await eventually(() => release !== undefined, 5000, 'the request to reach the server')
  await other.destroy()
  t.is((await t.throwsAsync(doomed)).code, 'UND_ERR_DESTROYED')
  t.true(other.pool.closed, 'the Agent shut down the Pool it made')
  await new Promise((resolve) => other.destroy(resolve))
})

test('Agent({ pool }) shares a Pool and leaves it open on close', async (t) => {
  const { seen, origin } = await useHttpServer(t, (req, res) => res.end(`shared ${req.url}`))
  const pool = new Pool()
  t.teardown(() => pool.shutdownAll())
  const agent = new Agent({ pool })
  t.is(agent.pool, pool)
  t.is(await (await fetch(`${origin}/agent`, { dispatcher: agent })).text(), 'shared /agent')
  await agent.close()
  t.false(pool.closed)
  const res = await pool.request(`${origin}/pool`)
  t.is(await res.body.text(), 'shared /pool')
  t.true(res.reused, "the Agent's connection, reused by the pool")
  t.is(seen.opened, 1)
  t.throws(() => new Agent({ pool, maxIdlePerHost: 1 }), { code: 'UND_ERR_INVALID_ARG' })
  t.throws(() => new Agent({ pool: {} }), { code: 'UND_ERR_INVALID_ARG' })
  t.throws(() => new Agent({ connect: () => {} }), { code: 'UND_ERR_INVALID_ARG' })
})

test('https: servername from the dispatch options or connect.servername names the certificate to check', async (t) => {
  const ca = makeCa()
  const leaf = makeLeaf(ca, ['api.example.test'])
  const { seen, origin } = await useHttpServer(t, (req, res) => res.end(`tls ${req.url}`), { tls: leaf })
  const agent = useAgent(t, { tls: { ca: ca.cert } })
  const wrong = await t.throwsAsync(undici.request(`${origin}/x`, { dispatcher: agent }))
  t.is(wrong.code, 'ERR_TLS_CERT_ALTNAME_INVALID', 'the IP is not the certificate name (Node’s code, as undici reports it)')
  t.is(wrong.cause.code, 'PCONN_TLS')
  const r = await agent.request({ origin, path: '/named', method: 'GET', servername: 'api.example.test' })
  t.is(await r.body.text(), 'tls /named')
  const named = useAgent(t, { connect: { servername: 'api.example.test', ca: ca.cert } })
  t.is(await (await fetch(`${origin}/fetch`, { dispatcher: named })).text(), 'tls /fetch')
  t.is(seen.requests.length, 2)
})

test('connect.socketPath: requests go over a Unix socket, with the URL host in Host', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pconn-undici-unix-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'http.sock')
  const { seen } = await useHttpServer(t, (req, res) => res.end(`over the socket: ${req.url}`), { listen: [path] })
  const agent = useAgent(t, { connect: { socketPath: path } })
  for (let i = 0; i < 3; i++) {
    const res = await fetch(`http://api.local/item/${i}`, { dispatcher: agent })
    t.is(await res.text(), `over the socket: /item/${i}`)
  }
  const r = await undici.request('http://api.local/undici', { dispatcher: agent })
  t.is(await r.body.text(), 'over the socket: /undici')
  t.is(seen.opened, 1)
  t.deepEqual(
    seen.requests.map((q) => q.headers.host),
    ['api.local', 'api.local', 'api.local', 'api.local'],
  )
})
