// Routes other than straight TCP: Unix domain sockets and HTTP proxies,
// each against a real server (node:http on a socket in a temp directory,
// the `proxy` package's CONNECT proxy) that counts what it saw.
import test from 'ava'
import http from 'node:http'
import net from 'node:net'
import { Worker } from 'node:worker_threads'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createProxy } from 'proxy'
import { Pool } from '../dist/index.js'
import { makeCa, makeLeaf } from './helpers/certs.mjs'
import { httpServer, ok } from './helpers/http-server.mjs'
import { closedPort, eventually, tlsEchoServer, useServer, usePool } from './helpers/servers.mjs'

/** A node:http server on a Unix socket in a fresh temp directory. */
async function unixHttpServer(t) {
  const dir = mkdtempSync(join(tmpdir(), 'pconn-unix-'))
  const path = join(dir, 'http.sock')
  const seen = { connections: 0, hosts: [] }
  const server = http.createServer((req, res) => {
    seen.hosts.push(req.headers.host)
    res.end(`over the socket: ${req.url}`)
  })
  server.on('connection', () => seen.connections++)
  server.listen(path)
  await once(server, 'listening')
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
    rmSync(dir, { recursive: true, force: true })
  })
  return { path, seen }
}

test('request() over a Unix socket: socketPath, the URL host in Host, one connection reused', async (t) => {
  const { path, seen } = await unixHttpServer(t)
  const pool = usePool(t, Pool)
  for (let i = 0; i < 3; i++) {
    const res = await pool.request(`http://api.local/item/${i}`, { socketPath: path })
    t.is(await res.body.text(), `over the socket: /item/${i}`)
  }
  t.is(seen.connections, 1)
  t.deepEqual(seen.hosts, ['api.local', 'api.local', 'api.local'])
  const keys = Object.keys(pool.stats().hosts)
  t.deepEqual(keys, [`http://api.local:80#socket=${path}`], 'keyed by the path, not shared with TCP')
})

test('acquire({ scheme: "unix", path }) gives raw bytes over the socket', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pconn-unix-'))
  const path = join(dir, 'echo.sock')
  let connections = 0
  const server = net.createServer((s) => {
    connections++
    s.pipe(s)
  })
  server.listen(path)
  await once(server, 'listening')
  t.teardown(() => {
    server.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const pool = usePool(t, Pool)
  for (let i = 0; i < 2; i++) {
    const conn = await pool.acquire({ scheme: 'unix', path })
    t.is(conn.key, `unix:${path}`)
    t.is(conn.remoteAddress, undefined)
    await conn.write(`ping ${i}`)
    t.is(String(await conn.read()), `ping ${i}`)
    pool.release(conn)
  }
  t.is(connections, 1)
})

test('bad Unix socket paths are refused; a missing socket is ENOENT', async (t) => {
  const pool = usePool(t, Pool)
  await t.throwsAsync(pool.acquire({ scheme: 'unix', path: '' }), { code: 'ERR_INVALID_ARG_VALUE' })
  await t.throwsAsync(pool.acquire({ scheme: 'unix', path: '/x'.repeat(60) }), { code: 'ERR_INVALID_ARG_VALUE' })
  await t.throwsAsync(pool.acquire({ scheme: 'unix' }), { code: 'ERR_INVALID_ARG_TYPE' })
  await t.throwsAsync(pool.request('http://h/', { socketPath: 7 }), { code: 'ERR_INVALID_ARG_TYPE' })
  const err = await t.throwsAsync(pool.request('http://h/', { socketPath: join(tmpdir(), 'pconn-no-such.sock') }))
  t.is(err.code, 'ENOENT')
})

/** The `proxy` package's proxy, counting tunnels and who asked for them. */
async function realProxy(t, { user } = {}) {
  const proxy = createProxy(http.createServer())
  const seen = { tunnels: [], authorizations: [] }
  proxy.on('connect', (req) => {
    seen.tunnels.push(req.url)
    seen.authorizations.push(req.headers['proxy-authorization'])
  })
  if (user) proxy.authenticate = (req) => req.headers['proxy-authorization'] === `Basic ${Buffer.from(user).toString('base64')}`
  proxy.listen(0, '127.0.0.1')
  await once(proxy, 'listening')
  t.teardown(() => {
    proxy.closeAllConnections?.()
    proxy.close()
  })
  return Object.assign(seen, { url: `http://127.0.0.1:${proxy.address().port}`, port: proxy.address().port })
}

test('proxy: HTTP through a CONNECT tunnel, reused; direct and proxied connections never mix', async (t) => {
  const proxy = await realProxy(t)
  const server = await useServer(t, httpServer, (req, s) => s.write(ok(req.path)))
  const proxied = usePool(t, Pool, { proxy: proxy.url })
  for (let i = 0; i < 3; i++) t.is(await (await proxied.request(server.url(`/p${i}`))).body.text(), `/p${i}`)
  t.deepEqual(proxy.tunnels, [`127.0.0.1:${server.port}`], 'one tunnel, reused')
  t.is(server.opened, 1)
  const [key] = Object.keys(proxied.stats().hosts)
  t.is(key, `http://127.0.0.1:${server.port}#proxy=${proxy.url}`)
  const direct = usePool(t, Pool)
  await (await direct.request(server.url('/direct'))).body.text()
  t.is(proxy.tunnels.length, 1, 'a pool without a proxy goes direct')
})

test('proxy: TLS end to end through the tunnel (raw tls and https)', async (t) => {
  const ca = makeCa()
  const leaf = makeLeaf(ca, ['localhost'])
  const proxy = await realProxy(t)
  const server = await useServer(t, tlsEchoServer, { ...leaf })
  const pool = usePool(t, Pool, { proxy: proxy.url, tls: { ca: ca.cert } })
  const conn = await pool.acquire(`tls://localhost:${server.port}`)
  await conn.write('through the tunnel')
  t.is(String(await conn.read()), 'through the tunnel')
  t.is(conn.remotePort, proxy.port, 'the socket is the proxy one')
  pool.release(conn)
  t.deepEqual(proxy.tunnels, [`localhost:${server.port}`])
})

test('proxy: credentials go as Proxy-Authorization; a refusal is PCONN_PROXY with the status', async (t) => {
  const proxy = await realProxy(t, { user: 'ann:s3cret' })
  const server = await useServer(t, httpServer, (req, s) => s.write(ok()))
  const port = proxy.url.split(':').at(-1)
  const good = usePool(t, Pool, { proxy: `http://ann:s3cret@127.0.0.1:${port}` })
  t.is((await good.request(server.url())).statusCode, 200)
  t.is(proxy.authorizations[0], `Basic ${Buffer.from('ann:s3cret').toString('base64')}`)
  const bad = usePool(t, Pool, { proxy: `http://ann:wrong@127.0.0.1:${port}` })
  const err = await t.throwsAsync(bad.request(server.url()))
  t.is(err.code, 'PCONN_PROXY')
  t.is(err.statusCode, 407)
  t.false(err.message.includes('wrong'), 'credentials are never shown')
  t.regex(err.message, /407/)
  t.like(bad.stats(), { connections: 0, connecting: 0 })
})

test('proxy: an unreachable proxy or target fails cleanly, naming the key', async (t) => {
  const proxy = await realProxy(t)
  const pool = usePool(t, Pool, { proxy: proxy.url })
  const port = await closedPort()
  const err = await t.throwsAsync(pool.request(`http://127.0.0.1:${port}/`))
  t.is(err.code, 'PCONN_PROXY')
  t.true(err.statusCode >= 400, `proxy answered ${err.statusCode}`)
  const nowhere = usePool(t, Pool, { proxy: `http://127.0.0.1:${port}` })
  const refused = await t.throwsAsync(nowhere.request('http://example.invalid/'))
  t.is(refused.code, 'ECONNREFUSED')
  t.true(refused.message.includes('example.invalid'), refused.message)
  for (const bad of ['gopher://p:1', 'ftp://p:1', 'not a url', 42]) {
    t.throws(() => new Pool({ proxy: bad }), { code: typeof bad === 'string' ? 'ERR_INVALID_ARG_VALUE' : 'ERR_INVALID_ARG_TYPE' })
  }
})

/** A proxy that reads the CONNECT request and then misbehaves with `answer(socket)`. */
async function brokenProxy(t, answer) {
  const seen = { connections: 0, closed: 0 }
  const server = net.createServer((socket) => {
    seen.connections++
    socket.on('close', () => seen.closed++)
    socket.on('error', () => {})
    socket.once('data', () => answer(socket))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  return { url: `http://127.0.0.1:${server.address().port}`, seen }
}

test('proxy: an answer cut short, malformed, missing or stalled fails cleanly and leaves nothing open', async (t) => {
  const cases = [
    ['cut short', (s) => s.end('HTTP/1.1 200 Connection est'), { code: 'PCONN_PROXY', message: /closed the connection before answering/ }],
    ['malformed', (s) => s.write('SOMETHING ELSE\r\n\r\n'), { code: 'PCONN_PROXY', message: /malformed/ }],
    ['missing', (s) => s.end(), { code: 'PCONN_PROXY', message: /closed the connection before answering/ }],
    ['stalled', () => {}, { code: 'PCONN_CONNECT_TIMEOUT' }],
  ]
  for (const [what, answer, expected] of cases) {
    const proxy = await brokenProxy(t, answer)
    const pool = usePool(t, Pool, { proxy: proxy.url, connectTimeoutMs: 500 })
    const started = Date.now()
    const err = await t.throwsAsync(pool.request('http://upstream.test/'), expected, what)
    t.true(Date.now() - started < 5000, `${what}: failed in time`)
    if (expected.code === 'PCONN_PROXY') t.is(err.statusCode, undefined, what)
    t.like(pool.stats(), { connections: 0, connecting: 0 }, what)
    await eventually(() => proxy.seen.closed === proxy.seen.connections, 2000, `${what}: the proxy saw the close`)
  }
})

test("proxy: 'env' reads the calling thread's process.env (a worker's own copy)", async (t) => {
  const proxy = await realProxy(t)
  const server = await useServer(t, httpServer, (req, s) => s.write(ok()))
  const worker = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads')
    const { Pool } = require(workerData.pconn)
    const pool = new Pool({ proxy: 'env' })
    pool.request(workerData.url).then((r) => r.body.text()).then(() => pool.shutdownAll()).then(() => parentPort.postMessage('done'), (e) => parentPort.postMessage(String(e)))`,
    {
      eval: true,
      workerData: { pconn: new URL('../dist/index.js', import.meta.url).pathname, url: server.url() },
      env: { ...process.env, HTTP_PROXY: proxy.url, http_proxy: proxy.url, NO_PROXY: '', no_proxy: '' },
    },
  )
  const [message] = await once(worker, 'message')
  await worker.terminate()
  t.is(message, 'done')
  t.deepEqual(proxy.tunnels, [`127.0.0.1:${server.port}`], 'the worker went through the proxy its env names')
})

test.serial("proxy: 'env' follows HTTP_PROXY and NO_PROXY as undici's EnvHttpProxyAgent does", async (t) => {
  const proxy = await realProxy(t)
  const server = await useServer(t, httpServer, (req, s) => s.write(ok()))
  const saved = { ...process.env }
  t.teardown(() => {
    for (const name of ['http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'no_proxy', 'NO_PROXY']) {
      if (saved[name] === undefined) delete process.env[name]
      else process.env[name] = saved[name]
    }
  })
  process.env.HTTP_PROXY = proxy.url
  process.env.NO_PROXY = `localhost,127.0.0.1:${server.port + 1}`
  const viaEnv = usePool(t, Pool, { proxy: 'env' })
  await (await viaEnv.request(server.url())).body.text()
  t.deepEqual(proxy.tunnels, [`127.0.0.1:${server.port}`], 'proxied: NO_PROXY names another port')
  await (await viaEnv.request(`http://localhost:${server.port}/`)).body.text()
  t.is(proxy.tunnels.length, 1, 'localhost is exempt')
  process.env.NO_PROXY = '*'
  const exempt = usePool(t, Pool, { proxy: 'env' })
  await (await exempt.request(server.url())).body.text()
  t.is(proxy.tunnels.length, 1, 'NO_PROXY=* exempts everything')
  await eventually(() => server.opened >= 2, 3000, 'direct connections at the server')
})
