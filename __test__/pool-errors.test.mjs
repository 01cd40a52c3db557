import test from 'ava'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { Pool, PconnError } from '../dist/index.js'
import { closedPort, silentServer, tcpEchoServer, useServer, usePool } from './helpers/servers.mjs'

test('connection refused keeps its errno code and frees the slot', async (t) => {
  const port = await closedPort()
  const pool = usePool(t, Pool, { maxConnectionsPerHost: 1 })
  for (let i = 0; i < 3; i++) {
    const err = await t.throwsAsync(pool.acquire(`tcp://127.0.0.1:${port}`))
    t.is(err.code, 'ECONNREFUSED')
    t.true(err instanceof PconnError)
  }
  t.like(pool.stats(), { connections: 0, connecting: 0, pending: 0, created: 0 })
})

test('an unknown host fails with ENOTFOUND', async (t) => {
  const pool = usePool(t, Pool)
  const err = await t.throwsAsync(pool.acquire('tcp://no-such-host.invalid:80'))
  t.true(['ENOTFOUND', 'EAI_AGAIN'].includes(err.code), err.code)
})

test('connectTimeoutMs bounds the whole connect, TLS handshake included: PCONN_CONNECT_TIMEOUT', async (t) => {
  const server = await useServer(t, silentServer)
  const pool = usePool(t, Pool, { connectTimeoutMs: 100 })
  const started = Date.now()
  const err = await t.throwsAsync(pool.acquire(`tls://127.0.0.1:${server.port}`))
  t.is(err.code, 'PCONN_CONNECT_TIMEOUT')
  t.true(Date.now() - started < 2000)
  t.like(pool.stats(), { connecting: 0, connections: 0 })
})

test('an AbortSignal cancels a connect in progress', async (t) => {
  const server = await useServer(t, silentServer)
  const pool = usePool(t, Pool)
  const ac = new AbortController()
  const p = pool.acquire(`tls://127.0.0.1:${server.port}`, { signal: ac.signal })
  setTimeout(() => ac.abort(), 30)
  await t.throwsAsync(p, { code: 'ABORT_ERR' })
  t.like(pool.stats(), { connecting: 0, connections: 0 })
})

const badKeys = [
  [42, 'ERR_INVALID_ARG_TYPE'],
  [null, 'ERR_INVALID_ARG_TYPE'],
  [undefined, 'ERR_INVALID_ARG_TYPE'],
  ['not a url', 'ERR_INVALID_ARG_VALUE'],
  ['ftp://host:21', 'ERR_INVALID_ARG_VALUE'],
  ['http://', 'ERR_INVALID_ARG_VALUE'],
  ['http://host:0/', 'ERR_INVALID_ARG_VALUE'],
  ['http://host:70000/', 'ERR_INVALID_ARG_VALUE'],
  ['tcp://host', 'ERR_INVALID_ARG_VALUE'],
  ['http://bad\r\nhost/', 'ERR_INVALID_ARG_VALUE'],
  ['http://[::1/', 'ERR_INVALID_ARG_VALUE'],
  [{ scheme: 'tcp', host: 'h' }, 'ERR_INVALID_ARG_VALUE'],
  [{ scheme: 'gopher', host: 'h', port: 70 }, 'ERR_INVALID_ARG_VALUE'],
  [{ scheme: 'tcp', host: 'h', port: 0 }, 'ERR_INVALID_ARG_VALUE'],
  [{ scheme: 'tcp', host: 'h', port: 1.5 }, 'ERR_INVALID_ARG_VALUE'],
  [{ scheme: 'tcp', host: 'h', port: '80' }, 'ERR_INVALID_ARG_TYPE'],
  [{ scheme: 'tcp', host: 42, port: 80 }, 'ERR_INVALID_ARG_TYPE'],
  [{ scheme: 'tcp', host: '', port: 80 }, 'ERR_INVALID_ARG_VALUE'],
  [{ scheme: 'tcp', host: 'h', port: 80, servername: 'x' }, 'ERR_INVALID_ARG_VALUE'],
]

for (const [key, code] of badKeys) {
  test(`acquire(${JSON.stringify(key) ?? String(key)}) rejects with ${code}, never throws, and changes nothing`, async (t) => {
    const pool = usePool(t, Pool)
    const before = pool.stats()
    let pending
    t.notThrows(() => {
      pending = pool.acquire(key)
    })
    const err = await t.throwsAsync(pending)
    t.is(err.code, code)
    t.true(code === 'ERR_INVALID_ARG_TYPE' ? err instanceof TypeError : err instanceof RangeError || err instanceof TypeError)
    t.deepEqual(pool.stats(), before)
  })
}

const badOptions = [
  [{ maxIdlePerHost: -1 }, 'ERR_INVALID_ARG_VALUE'],
  [{ maxIdlePerHost: '1' }, 'ERR_INVALID_ARG_TYPE'],
  [{ maxConnectionsPerHost: 0 }, 'ERR_INVALID_ARG_VALUE'],
  [{ maxConnections: 1.5 }, 'ERR_INVALID_ARG_VALUE'],
  [{ maxPending: NaN }, 'ERR_INVALID_ARG_TYPE'],
  [{ idleTimeoutMs: -5 }, 'ERR_INVALID_ARG_VALUE'],
  [{ idleTimeoutMs: Infinity }, 'ERR_INVALID_ARG_VALUE'],
  [{ scheduling: 'random' }, 'ERR_INVALID_ARG_VALUE'],
  [{ scheduling: 1 }, 'ERR_INVALID_ARG_TYPE'],
  [{ noDelay: 'yes' }, 'ERR_INVALID_ARG_TYPE'],
  [{ allowH2: 1 }, 'ERR_INVALID_ARG_TYPE'],
  [{ learnIdleTimeout: 'no' }, 'ERR_INVALID_ARG_TYPE'],
  [{ spreadAddresses: 0 }, 'ERR_INVALID_ARG_TYPE'],
  [{ minIdlePerHost: -1 }, 'ERR_INVALID_ARG_VALUE'],
  [{ tls: 'on' }, 'ERR_INVALID_ARG_TYPE'],
  [{ tls: { rejectUnauthorized: 'no' } }, 'ERR_INVALID_ARG_TYPE'],
  [{ tls: { ca: 'not a pem' } }, 'ERR_INVALID_ARG_VALUE'],
  [{ tls: { cert: 'x' } }, 'ERR_INVALID_ARG_VALUE'],
  [{ tls: { alpn: 'h2' } }, 'ERR_INVALID_ARG_TYPE'],
  [{ maxIdle: 3 }, 'ERR_INVALID_ARG_VALUE'],
  ['fast', 'ERR_INVALID_ARG_TYPE'],
]

for (const [options, code] of badOptions) {
  test(`new Pool(${JSON.stringify(options)}) throws ${code}`, (t) => {
    const err = t.throws(() => new Pool(options))
    t.is(err.code, code)
  })
}

test('defaults match the contract', (t) => {
  const pool = usePool(t, Pool)
  t.like(pool.options, {
    maxIdlePerHost: 256,
    maxConnectionsPerHost: Infinity,
    maxConnections: Infinity,
    maxPending: Infinity,
    idleTimeoutMs: 4000,
    maxLifetimeMs: 0,
    maxUses: 0,
    scheduling: 'lifo',
    connectTimeoutMs: 10000,
    acquireTimeoutMs: 0,
    leakDetectionMs: 0,
    dnsCacheMs: 0,
    noDelay: true,
    keepAliveInitialDelayMs: 1000,
    allowH2: true,
    minIdlePerHost: 0,
    learnIdleTimeout: true,
    spreadAddresses: true,
  })
  t.is(pool.options.circuitBreaker, undefined, 'off unless given')
  t.true(pool.options.tls.rejectUnauthorized)
})

test('bad arguments: synchronous functions throw, Promise-returning ones reject; nothing changes', async (t) => {
  const server = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool)
  const conn = await pool.acquire(`tcp://127.0.0.1:${server.port}`)
  const before = pool.stats()
  t.throws(() => pool.release({ id: conn.id }), { code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => pool.release(conn, 'yes'), { code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => pool.flushForHost(42), { code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => pool.flushForHost(''), { code: 'ERR_INVALID_ARG_VALUE' })
  // The callback form returns nothing: a missing onError can only throw.
  t.throws(() => pool.acquire(`tcp://127.0.0.1:${server.port}`, () => {}), { code: 'ERR_INVALID_ARG_TYPE' })
  await t.throwsAsync(pool.acquire(`tcp://127.0.0.1:${server.port}`, { signal: 'abort' }), { code: 'ERR_INVALID_ARG_TYPE' })
  await t.throwsAsync(pool.acquire(`tcp://127.0.0.1:${server.port}`, { acquireTimeoutMs: -1 }), { code: 'ERR_INVALID_ARG_VALUE' })
  await t.throwsAsync(conn.write(42), { code: 'ERR_INVALID_ARG_TYPE' })
  t.deepEqual(pool.stats(), before)
  pool.release(conn)
})

test('a Rust panic inside native code rejects the Promise and leaves the pool usable', async (t) => {
  const server = await useServer(t, tcpEchoServer)
  const pool = usePool(t, Pool)
  for (const where of ['async', 'sync', 'background']) {
    const err = await t.throwsAsync(pool.debugPanic(where))
    t.regex(err.message, /panic/)
  }
  const conn = await pool.acquire(`tcp://127.0.0.1:${server.port}`)
  await conn.write('after panic')
  t.is(String(await conn.read()), 'after panic')
  pool.release(conn)
})

test('running out of file descriptors is EMFILE, not EIO (ulimit -n 64 in a child process)', async (t) => {
  const server = await useServer(t, tcpEchoServer)
  const script = `
    const { Pool } = require(${JSON.stringify(new URL('../dist/index.js', import.meta.url).pathname)})
    const pool = new Pool()
    const held = []
    ;(async () => {
      for (let i = 0; i < 1000; i++) {
        try { held.push(await pool.acquire('tcp://127.0.0.1:${server.port}')) }
        catch (e) { console.log(e.code); process.exit(0) }
      }
      console.log('no error')
    })()
  `
  const { stdout } = await promisify(execFile)('sh', ['-c', `ulimit -n 64 && exec "${process.execPath}" -e "$0"`, script], { timeout: 20_000 })
  t.is(stdout.trim(), 'EMFILE')
})
