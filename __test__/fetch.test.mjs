// pconn's fetch: the WHATWG signature over the native exchange, against
// node:http servers that record what they saw (connections, requests,
// bodies, headers).
import test from 'ava'
import http from 'node:http'
import zlib from 'node:zlib'
import { getEventListeners, once } from 'node:events'
import { Readable } from 'node:stream'
import { createHash } from 'node:crypto'
import * as undici from 'undici'
import { fetch, Pool } from '../dist/index.js'
import { closedPort, eventually, usePool } from './helpers/servers.mjs'
import { httpServer, ok } from './helpers/http-server.mjs'

/** A node:http server running `handler`, counting connections and keeping each request (with its body). */
async function useServer(t, handler) {
  const seen = { opened: 0, requests: [] }
  const server = http.createServer(async (req, res) => {
    const chunks = []
    for await (const c of req) chunks.push(c)
    const record = { method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks) }
    seen.requests.push(record)
    handler(req, res, record)
  })
  server.on('connection', () => seen.opened++)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  const base = `http://127.0.0.1:${server.address().port}`
  return Object.assign(seen, { base, url: (path = '/') => base + path })
}

const text = (res, body, headers = {}) => {
  res.writeHead(200, { 'content-type': 'text/plain', ...headers })
  res.end(body)
}

test('a Response of Node’s own class: status, statusText, ok, Headers, url, type; connections reused', async (t) => {
  const server = await useServer(t, (req, res) => text(res, 'hello', { 'x-multi': ['a', 'b'] }))
  const pool = usePool(t, Pool)
  const res = await pool.fetch(server.url('/a?b=1#frag'))
  t.true(res instanceof Response)
  t.true(res.headers instanceof Headers)
  t.is(res.status, 200)
  t.is(res.statusText, 'OK')
  t.true(res.ok)
  t.is(res.type, 'basic')
  t.is(res.url, server.url('/a?b=1'), 'no fragment')
  t.false(res.redirected)
  t.is(res.headers.get('content-type'), 'text/plain')
  t.is(res.headers.get('x-multi'), 'a, b')
  t.is(await res.text(), 'hello')
  await (await pool.fetch(new URL(server.url('/again')))).text()
  t.is(server.opened, 1, 'one connection for both')
  const sent = server.requests[0].headers
  t.is(sent.accept, '*/*')
  t.is(sent['user-agent'], 'node')
  t.regex(sent['accept-encoding'], /gzip/)
})

test('input as a Request, with init overriding it; methods normalised as fetch does', async (t) => {
  const server = await useServer(t, (req, res, r) => text(res, `${r.method} ${r.body}`))
  const pool = usePool(t, Pool)
  const request = new Request(server.url('/r'), { method: 'post', body: 'from request', headers: { 'x-from': 'request' } })
  t.is(await (await pool.fetch(request)).text(), 'POST from request')
  t.is(server.requests[0].headers['x-from'], 'request')
  t.is(await (await pool.fetch(server.url(), { method: 'delete' })).text(), 'DELETE ')
  await t.throwsAsync(pool.fetch(server.url(), { method: 'CONNECT' }), { instanceOf: TypeError })
  await t.throwsAsync(pool.fetch(server.url(), { method: 'GET', body: 'x' }), { instanceOf: TypeError, message: /GET\/HEAD/ })
  await t.throwsAsync(pool.fetch(server.url(), { headers: { 'x-bad': 'a\r\nb' } }), { instanceOf: TypeError })
})

test('a method outside the six fetch normalises keeps its case on the wire, as Node’s fetch sends it', async (t) => {
  // node:http refuses a lower-case method, so a raw server records it.
  const server = await httpServer((req, socket) => socket.write(ok(`${req.method} ${req.body}`)))
  t.teardown(() => server.close())
  const pool = usePool(t, Pool)
  t.is(await (await pool.fetch(server.url(), { method: 'patch', body: 'p' })).text(), 'patch p')
  t.is(await (await pool.fetch(server.url(), { method: 'get' })).text(), 'GET ')
  t.deepEqual(server.requests.map((r) => r.method), ['patch', 'GET'])
})

test('every body kind arrives intact, with the Content-Type fetch gives it', async (t) => {
  const server = await useServer(t, (req, res) => text(res, 'ok'))
  const pool = usePool(t, Pool)
  const form = new FormData()
  form.append('field', 'value')
  form.append('file', new Blob(['file bytes'], { type: 'text/plain' }), 'f.txt')
  async function* chunks() {
    yield 'async '
    yield Buffer.from('iterable')
  }
  const bodies = [
    ['string', 'a string', 'text/plain;charset=UTF-8'],
    ['ArrayBuffer', new TextEncoder().encode('array buffer').buffer, undefined],
    ['Uint8Array', new TextEncoder().encode('a view'), undefined],
    ['Blob', new Blob(['a blob'], { type: 'application/x-blob' }), 'application/x-blob'],
    ['URLSearchParams', new URLSearchParams({ a: '1', b: 'x y' }), 'application/x-www-form-urlencoded;charset=UTF-8'],
    ['ReadableStream', new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode('a web stream')); c.close() } }), undefined],
    ['async iterable', chunks(), undefined],
    ['Readable', Readable.from(['a node ', 'readable']), undefined],
  ]
  for (const [, body] of bodies) await (await pool.fetch(server.url(), { method: 'POST', body, duplex: 'half' })).text()
  const got = server.requests.map((r) => [r.body.toString(), r.headers['content-type']])
  t.deepEqual(got, [
    ['a string', 'text/plain;charset=UTF-8'],
    ['array buffer', undefined],
    ['a view', undefined],
    ['a blob', 'application/x-blob'],
    ['a=1&b=x+y', 'application/x-www-form-urlencoded;charset=UTF-8'],
    ['a web stream', undefined],
    ['async iterable', undefined],
    ['a node readable', undefined],
  ])
  await (await pool.fetch(server.url(), { method: 'POST', body: form })).text()
  const multipart = server.requests.at(-1)
  t.regex(multipart.headers['content-type'], /^multipart\/form-data; boundary=/)
  t.regex(multipart.body.toString(), /name="field"\r\n\r\nvalue/)
  t.regex(multipart.body.toString(), /filename="f.txt"\r\nContent-Type: text\/plain\r\n\r\nfile bytes/)
  await t.throwsAsync(pool.fetch(server.url(), { method: 'POST', body: new ReadableStream() }), { instanceOf: TypeError, message: /duplex/ })
})

test('every way to read a body, once; HEAD and 204 have none', async (t) => {
  const server = await useServer(t, (req, res) => {
    if (req.url === '/json') return text(res, '{"a":[1,2]}', { 'content-type': 'application/json' })
    if (req.url === '/form') return text(res, 'a=1&b=2', { 'content-type': 'application/x-www-form-urlencoded' })
    if (req.url === '/empty') return res.writeHead(204).end()
    if (req.url === '/zero') return text(res, '')
    text(res, 'body bytes')
  })
  const pool = usePool(t, Pool)
  t.deepEqual(await (await pool.fetch(server.url('/json'))).json(), { a: [1, 2] })
  t.is(Buffer.from(await (await pool.fetch(server.url())).arrayBuffer()).toString(), 'body bytes')
  t.is(Buffer.from(await (await pool.fetch(server.url())).bytes()).toString(), 'body bytes')
  const blob = await (await pool.fetch(server.url('/json'))).blob()
  t.is(blob.type, 'application/json')
  t.is(await blob.text(), '{"a":[1,2]}')
  t.is((await (await pool.fetch(server.url('/form'))).formData()).get('b'), '2')
  const res = await pool.fetch(server.url())
  t.false(res.bodyUsed)
  t.is(await res.text(), 'body bytes')
  t.true(res.bodyUsed)
  await t.throwsAsync(res.text(), { instanceOf: TypeError, message: /unusable/ })
  const streamed = await pool.fetch(server.url())
  const parts = []
  for await (const chunk of streamed.body) parts.push(Buffer.from(chunk))
  t.is(Buffer.concat(parts).toString(), 'body bytes')
  t.true(streamed.bodyUsed)
  const cloned = await pool.fetch(server.url())
  const copy = cloned.clone()
  t.deepEqual(await Promise.all([cloned.text(), copy.text()]), ['body bytes', 'body bytes'])
  const head = await pool.fetch(server.url(), { method: 'HEAD' })
  t.is(head.body, null)
  const empty = await pool.fetch(server.url('/empty'))
  t.is(empty.status, 204)
  t.is(empty.body, null)
  t.is(await empty.text(), '')
  const zero = await pool.fetch(server.url('/zero'))
  t.not(zero.body, null, 'an empty 200 body is an empty stream, as in Node’s fetch')
  const reader = zero.body.getReader()
  await t.throwsAsync(zero.blob(), { instanceOf: TypeError, message: 'Body is unusable: Body has already been read' })
  t.true((await reader.read()).done)
})

test('gzip, deflate (zlib and raw) and br bodies are decoded in Rust; a corrupt one fails its read', async (t) => {
  const payload = 'compressed body '.repeat(1000)
  const server = await useServer(t, (req, res) => {
    const encodings = {
      '/gzip': ['gzip', zlib.gzipSync(payload)],
      '/deflate': ['deflate', zlib.deflateSync(payload)],
      '/raw-deflate': ['deflate', zlib.deflateRawSync(payload)],
      '/br': ['br', zlib.brotliCompressSync(payload)],
      '/both': ['gzip, br', zlib.brotliCompressSync(zlib.gzipSync(payload))],
      '/corrupt': ['gzip', Buffer.from('certainly not gzip')],
    }
    const [coding, body] = encodings[req.url]
    res.writeHead(200, { 'content-encoding': coding, 'content-length': body.length })
    res.end(body)
  })
  const pool = usePool(t, Pool)
  for (const path of ['/gzip', '/deflate', '/raw-deflate', '/br', '/both']) {
    const res = await pool.fetch(server.url(path))
    t.is(await res.text(), payload, path)
    t.truthy(res.headers.get('content-encoding'), 'the header stays, as in Node’s fetch')
  }
  const corrupt = await pool.fetch(server.url('/corrupt')).then((r) => r.text()).catch((e) => e)
  t.true(corrupt instanceof Error)
})

test('more than five content codings fail the response (identity counts), as undici’s fetch', async (t) => {
  const server = await useServer(t, (req, res) => {
    res.writeHead(200, { 'content-encoding': Array(Number(req.url.slice(1))).fill('identity').join(', ') })
    res.end('test')
  })
  const pool = usePool(t, Pool)
  t.is(await (await pool.fetch(server.url('/5'))).text(), 'test')
  const err = await t.throwsAsync(pool.fetch(server.url('/6')), { instanceOf: TypeError, message: 'fetch failed' })
  t.is(err.cause.code, 'PCONN_HTTP_PARSE')
  t.regex(err.cause.message, /content-encoding/)
})

test('integrity: the body must match the strongest hash given, or fetch fails with "integrity mismatch"', async (t) => {
  const body = 'Hello world!'
  const server = await useServer(t, (req, res) => {
    if (req.url === '/gzip') {
      res.writeHead(200, { 'content-encoding': 'gzip' })
      return res.end(zlib.gzipSync(body))
    }
    text(res, body)
  })
  const pool = usePool(t, Pool)
  const digest = (alg) => createHash(alg).update(body).digest('base64')
  const good = `sha256-${digest('sha256')}`
  t.is(await (await pool.fetch(server.url(), { integrity: good })).text(), body)
  t.is(await (await pool.fetch(server.url('/gzip'), { integrity: good })).text(), body, 'checked after decoding')
  t.is(await (await pool.fetch(server.url(), { integrity: `sha256-wrong sha512-${digest('sha512')}` })).text(), body, 'only the strongest counts')
  t.is(await (await pool.fetch(server.url(), { integrity: 'md5-whatever' })).text(), body, 'no known algorithm: nothing to check')
  const url64 = (b64) => b64.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
  t.is(await (await pool.fetch(server.url(), { integrity: `sha256-${url64(digest('sha256'))}` })).text(), body, 'base64url, unpadded')
  for (const integrity of [`sha512-${digest('sha256')} ${good}`, `sha256-${url64(createHash('sha256').update('other').digest('base64'))}`]) {
    const err = await t.throwsAsync(pool.fetch(server.url(), { integrity }), { instanceOf: TypeError, message: 'fetch failed' })
    t.is(err.cause.message, 'integrity mismatch', integrity)
  }
})

test('redirects: followed (301/302/303 become GET, 307/308 keep method and body), manual, error, and at most 20', async (t) => {
  const server = await useServer(t, (req, res, r) => {
    const m = /^\/to\/(\d+)\/(.*)$/.exec(req.url)
    if (m) return res.writeHead(Number(m[1]), { location: `/${m[2]}` }).end()
    if (req.url.startsWith('/loop')) return res.writeHead(302, { location: '/loop' }).end()
    if (req.url === '/bare') return res.writeHead(302).end()
    text(res, `${r.method} ${r.url} ${r.body}`)
  })
  const pool = usePool(t, Pool)
  for (const [status, expected] of [
    [301, 'GET /end '],
    [302, 'GET /end '],
    [303, 'GET /end '],
    [307, 'POST /end data'],
    [308, 'POST /end data'],
  ]) {
    const res = await pool.fetch(server.url(`/to/${status}/end`), { method: 'POST', body: 'data' })
    t.is(await res.text(), expected, String(status))
    t.true(res.redirected)
    t.is(res.url, server.url('/end'))
  }
  const manual = await pool.fetch(server.url('/to/302/end'), { redirect: 'manual' })
  t.is(manual.status, 302)
  t.is(manual.headers.get('location'), '/end')
  const refused = await t.throwsAsync(pool.fetch(server.url('/to/302/end'), { redirect: 'error' }), { instanceOf: TypeError, message: 'fetch failed' })
  t.is(refused.cause.message, 'unexpected redirect')
  t.is((await pool.fetch(server.url('/bare'))).status, 302, 'a redirect without Location is the response')
  const bare = await t.throwsAsync(pool.fetch(server.url('/bare'), { redirect: 'error' }), { instanceOf: TypeError, message: 'fetch failed' })
  t.is(bare.cause.message, 'unexpected redirect', 'with or without a Location')
  const loop = await t.throwsAsync(pool.fetch(server.url('/loop')), { instanceOf: TypeError, message: 'fetch failed' })
  t.regex(loop.cause.message, /redirect count/)
  t.is(server.requests.filter((r) => r.url === '/loop').length, 21, 'the first and 20 redirects')
})

test('a Location with UTF-8 bytes is followed to its percent-encoded URL', async (t) => {
  const server = await useServer(t, (req, res) => {
    if (req.url === '/redirect') return res.writeHead(302, { location: `/${Buffer.from('안녕').toString('binary')}` }).end()
    text(res, req.url)
  })
  const pool = usePool(t, Pool)
  const res = await pool.fetch(server.url('/redirect'))
  t.is(res.url, server.url(`/${encodeURIComponent('안녕')}`))
  t.is(await res.text(), `/${encodeURIComponent('안녕')}`)
})

test('referrer and referrerPolicy set Referer by the Referrer Policy rules; a redirect’s Referrer-Policy changes them', async (t) => {
  const other = await useServer(t, (req, res) => text(res, String(req.headers.referer)))
  const server = await useServer(t, (req, res) => {
    const policy = new URL(req.url, 'http://x').searchParams.get('policy')
    if (req.url.startsWith('/hop')) return res.writeHead(302, { location: `${other.url('/landed')}`, ...(policy ? { 'referrer-policy': policy } : {}) }).end()
    text(res, String(req.headers.referer))
  })
  const pool = usePool(t, Pool)
  const page = `${server.base}/page.html?q=1#frag`
  const sent = async (url, init) => (await pool.fetch(url, init)).text()
  t.is(await sent(server.url()), 'undefined', 'no referrer given: none sent')
  t.is(await sent(server.url(), { referrer: page }), `${server.base}/page.html?q=1`, 'same origin: the whole URL, without its fragment')
  t.is(await sent(other.url(), { referrer: page }), `${server.base}/`, 'cross-origin: the origin only (the default policy)')
  t.is(await sent(other.url(), { referrer: page, referrerPolicy: 'unsafe-url' }), `${server.base}/page.html?q=1`)
  t.is(await sent(server.url(), { referrer: page, referrerPolicy: 'no-referrer' }), 'undefined')
  t.is(await sent(server.url(), { referrer: page, referrerPolicy: 'origin' }), `${server.base}/`)
  t.is(await sent(other.url(), { referrer: page, referrerPolicy: 'same-origin' }), 'undefined')
  t.is(await sent(server.url('/hop'), { referrer: page }), `${server.base}/`, 'recomputed for the next hop')
  t.is(await sent(server.url('/hop?policy=unsafe-url'), { referrer: page }), `${server.base}/page.html?q=1`)
  t.is(await sent(server.url('/hop?policy=bogus,%20no-referrer,%20bogus'), { referrer: page }), 'undefined', 'the last valid token')
  // Loopback counts as trustworthy, so https to 127.0.0.1 is no downgrade.
  t.is(await sent(other.url(), { referrer: 'https://secure.example/a', referrerPolicy: 'strict-origin' }), 'https://secure.example/')
  await t.throwsAsync(pool.fetch(server.url(), { referrerPolicy: 'sometimes' }), { instanceOf: TypeError })
})

test('a redirect to another origin drops authorization and cookie', async (t) => {
  const other = await useServer(t, (req, res) => text(res, 'elsewhere'))
  const server = await useServer(t, (req, res) => res.writeHead(302, { location: other.url('/landed') }).end())
  const pool = usePool(t, Pool)
  const res = await pool.fetch(server.url(), { headers: { authorization: 'Bearer secret', cookie: 'a=b', 'x-keep': 'kept' } })
  t.is(await res.text(), 'elsewhere')
  t.is(server.requests[0].headers.authorization, 'Bearer secret')
  const landed = other.requests[0].headers
  t.is(landed.authorization, undefined)
  t.is(landed.cookie, undefined)
  t.is(landed['x-keep'], 'kept')
})

test('abort at every stage rejects with the signal’s reason: before, while waiting for the head, mid-body', async (t) => {
  let release
  const server = await useServer(t, (req, res) => {
    if (req.url === '/stall') return
    if (req.url === '/slow-body') {
      res.writeHead(200, { 'content-length': 1_000_000 })
      res.write('x'.repeat(100_000))
      release = () => res.destroy()
      return
    }
    text(res, 'ok')
  })
  const pool = usePool(t, Pool)
  const ac = new AbortController()
  ac.abort()
  // The reasons are DOMExceptions, which ava's throwsAsync does not take.
  const before = await pool.fetch(server.url(), { signal: ac.signal }).then(() => undefined, (err) => err)
  t.is(before, ac.signal.reason)
  t.is(before?.name, 'AbortError')
  const stall = AbortSignal.timeout(100)
  const timeout = await pool.fetch(server.url('/stall'), { signal: stall }).then(() => undefined, (err) => err)
  t.is(timeout, stall.reason)
  t.is(timeout?.name, 'TimeoutError')
  const mid = new AbortController()
  const res = await pool.fetch(server.url('/slow-body'), { signal: mid.signal })
  const reading = res.text()
  const reason = new Error('my reason')
  mid.abort(reason)
  t.is(await t.throwsAsync(reading), reason)
  release?.()
  await eventually(() => pool.stats().active === 0, 3000, 'the connection closed')
  // A body that arrived whole with its head still fails when the abort comes before it is read.
  for (const read of [(r) => r.arrayBuffer(), (r) => new Response(r.body).text()]) {
    const late = new AbortController()
    const whole = await pool.fetch(server.url('/small'), { signal: late.signal })
    const reading = read(whole)
    late.abort()
    t.is(await reading.catch((e) => e), late.signal.reason)
  }
})

test('a Host header set by the caller gives way to the URL’s, as in Node’s fetch', async (t) => {
  const server = await useServer(t, (req, res) => text(res, req.headers.host))
  const pool = usePool(t, Pool)
  t.is(await (await pool.fetch(server.url(), { headers: { Host: 'www.elsewhere.example' } })).text(), new URL(server.base).host)
})

test('a pre-aborted request cancels its stream body with the reason', async (t) => {
  const server = await useServer(t, (req, res) => text(res, 'never'))
  const pool = usePool(t, Pool)
  let cancelled
  const body = new ReadableStream({ cancel: (reason) => void (cancelled = reason) })
  const ac = new AbortController()
  ac.abort()
  const err = await pool.fetch(server.url(), { method: 'POST', body, duplex: 'half', signal: ac.signal }).catch((e) => e)
  t.is(err, ac.signal.reason)
  t.is(cancelled, ac.signal.reason)
  t.is(server.requests.length, 0)
})

test('window: null makes a 407 a network error; any other window is a TypeError', async (t) => {
  const server = await useServer(t, (req, res) => res.writeHead(407).end())
  const pool = usePool(t, Pool)
  t.is((await pool.fetch(server.url())).status, 407)
  await t.throwsAsync(pool.fetch(server.url(), { window: null }), { instanceOf: TypeError, message: 'fetch failed' })
  await t.throwsAsync(pool.fetch(server.url(), { window: {} }), { instanceOf: TypeError, message: /window/ })
})

test('undici’s own Request, Headers and FormData classes are taken as Node’s are', async (t) => {
  const server = await useServer(t, (req, res, r) => text(res, `${r.method} ${r.headers['x-from']} ${r.body.includes('asd1')}`))
  const pool = usePool(t, Pool)
  const request = new undici.Request(server.url(), { method: 'POST', body: 'asd1', headers: new undici.Headers({ 'x-from': 'undici' }) })
  t.is(await (await pool.fetch(request)).text(), 'POST undici true')
  const form = new undici.FormData()
  form.append('field1', new Blob(['asd1']), 'f.txt')
  t.is(await (await pool.fetch(server.url(), { method: 'PUT', body: form, headers: new undici.Headers({ 'x-from': 'form' }) })).text(), 'PUT form true')
  t.regex(server.requests[1].headers['content-type'], /^multipart\/form-data; boundary=/)
})

test('with an undici dispatcher (here a MockAgent) the request is Node’s fetch’s, on that dispatcher', async (t) => {
  const pool = usePool(t, Pool)
  const mock = new undici.MockAgent()
  mock.disableNetConnect()
  mock.get('http://example.test').intercept({ path: '/mocked' }).reply(200, 'from the mock')
  t.teardown(() => mock.close())
  const res = await fetch('http://example.test/mocked', { pool, dispatcher: mock })
  t.is(await res.text(), 'from the mock')
  t.is(pool.stats().created, 0)
})

test('one signal reused for many fetches whose bodies stay unread: no listener left behind, no leak warning', async (t) => {
  const server = await useServer(t, (req, res) => text(res, req.url === '/big' ? 'x'.repeat(200_000) : 'small'))
  const pool = usePool(t, Pool, { maxConnectionsPerHost: 32 })
  const warnings = []
  const onWarning = (w) => warnings.push(w)
  process.on('warning', onWarning)
  t.teardown(() => process.off('warning', onWarning))
  const signal = new AbortController().signal
  const kept = []
  for (let i = 0; i < 15; i++) kept.push(await pool.fetch(server.url('/small'), { signal }))
  t.is(getEventListeners(signal, 'abort').length, 0, 'bodies already here need no listener')
  for (let i = 0; i < 15; i++) kept.push(await pool.fetch(server.url('/big'), { signal }))
  t.is(getEventListeners(signal, 'abort').length, 15, 'one per body still on the network')
  await Promise.all(kept.map((r) => r.arrayBuffer()))
  t.is(getEventListeners(signal, 'abort').length, 0, 'gone once read')
  await new Promise((resolve) => setImmediate(resolve))
  t.deepEqual(warnings, [])
})

test('network errors are TypeError("fetch failed") with the pconn error as cause', async (t) => {
  const pool = usePool(t, Pool)
  const port = await closedPort()
  const err = await t.throwsAsync(pool.fetch(`http://127.0.0.1:${port}/`), { instanceOf: TypeError, message: 'fetch failed' })
  t.is(err.cause.code, 'ECONNREFUSED')
  const parse = await useServer(t, (req, res) => res.socket.end('HTTP/1.1 bogus\r\n\r\n'))
  const bad = await t.throwsAsync(pool.fetch(parse.url()), { instanceOf: TypeError, message: 'fetch failed' })
  t.is(bad.cause.code, 'PCONN_HTTP_PARSE')
})

test('top-level fetch uses the default pool or init.pool; data: URLs go to Node’s fetch', async (t) => {
  const server = await useServer(t, (req, res) => text(res, 'via default'))
  t.is(await (await fetch(server.url())).text(), 'via default')
  const pool = usePool(t, Pool)
  await (await fetch(server.url(), { pool })).text()
  t.is(pool.stats().created, 1)
  t.is(await (await fetch('data:text/plain,hi%20there')).text(), 'hi there')
  t.not(globalThis.fetch, fetch, 'never replaces the global fetch by itself')
  t.is(fetch.name, 'fetch')
  t.is(fetch.length, 1, 'as Node’s fetch')
})

test('as globalThis.fetch (the README’s one line), it still hands data: URLs to Node’s own fetch', async (t) => {
  const own = globalThis.fetch
  globalThis.fetch = fetch
  t.teardown(() => {
    globalThis.fetch = own
  })
  t.is(await (await globalThis.fetch('data:text/plain,no%20loop')).text(), 'no loop')
})
