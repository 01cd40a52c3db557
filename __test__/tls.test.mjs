import test from 'ava'
import https from 'node:https'
import { once } from 'node:events'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Pool } from '../dist/index.js'
import { makeCa, makeLeaf, makeSelfSigned } from './helpers/certs.mjs'
import { eventually, tlsEchoServer, useServer, usePool } from './helpers/servers.mjs'

const ca = makeCa()
const leaf = makeLeaf(ca, ['localhost', '127.0.0.1'])
const otherCa = makeCa('another CA')

test('TLS with the test CA: handshake, echo, reuse of the same session', async (t) => {
  const server = await useServer(t, tlsEchoServer, { ...leaf })
  const pool = usePool(t, Pool, { tls: { ca: ca.cert } })
  const url = `tls://localhost:${server.port}`
  for (let i = 0; i < 5; i++) {
    const conn = await pool.acquire(url)
    t.is(conn.reused, i > 0)
    await conn.write(`secret ${i}`)
    t.is(String(await conn.read()), `secret ${i}`)
    pool.release(conn)
  }
  await eventually(() => server.opened === 1, 3000, 'one TCP connection at the server')
})

test('an unknown CA fails with PCONN_TLS, reason unknown-issuer, and leaks nothing', async (t) => {
  const server = await useServer(t, tlsEchoServer, { ...leaf })
  const pool = usePool(t, Pool, { tls: { ca: otherCa.cert } })
  const err = await t.throwsAsync(pool.acquire(`tls://localhost:${server.port}`))
  t.is(err.code, 'PCONN_TLS')
  t.is(err.reason, 'unknown-issuer')
  t.like(pool.stats(), { connections: 0, connecting: 0 })
  await eventually(() => server.closed === server.opened, 3000, 'server to see the connection closed')
})

test('the default trust store (webpki roots) rejects a private CA', async (t) => {
  const server = await useServer(t, tlsEchoServer, { ...leaf })
  const pool = usePool(t, Pool)
  const err = await t.throwsAsync(pool.acquire(`https://localhost:${server.port}`))
  t.is(err.code, 'PCONN_TLS')
  t.is(err.reason, 'unknown-issuer')
})

test('a certificate for another name fails with reason hostname-mismatch', async (t) => {
  const server = await useServer(t, tlsEchoServer, { ...makeLeaf(ca, ['api.example.test']) })
  const pool = usePool(t, Pool, { tls: { ca: ca.cert } })
  const err = await t.throwsAsync(pool.acquire(`tls://localhost:${server.port}`))
  t.is(err.code, 'PCONN_TLS')
  t.is(err.reason, 'hostname-mismatch')
})

test('servername overrides the name sent and checked, and keys connections apart', async (t) => {
  const server = await useServer(t, tlsEchoServer, { ...makeLeaf(ca, ['api.example.test']) })
  const pool = usePool(t, Pool, { tls: { ca: ca.cert } })
  const conn = await pool.acquire({ scheme: 'tls', host: '127.0.0.1', port: server.port, servername: 'api.example.test' })
  t.is(conn.key, `tls://127.0.0.1:${server.port}#servername=api.example.test`)
  pool.release(conn)
  await t.throwsAsync(pool.acquire(`tls://127.0.0.1:${server.port}`), { code: 'PCONN_TLS' })
  // A pool-wide servername applies to every TLS key of that pool.
  const named = usePool(t, Pool, { tls: { ca: ca.cert, servername: 'api.example.test' } })
  named.release(await named.acquire(`tls://127.0.0.1:${server.port}`))
})

test('rejectUnauthorized: false connects to an untrusted server (explicitly dangerous)', async (t) => {
  const server = await useServer(t, tlsEchoServer, { ...makeLeaf(otherCa, ['elsewhere.test']) })
  const pool = usePool(t, Pool, { tls: { rejectUnauthorized: false } })
  const conn = await pool.acquire(`tls://localhost:${server.port}`)
  await conn.write('insecure')
  t.is(String(await conn.read()), 'insecure')
  pool.release(conn)
})

test('a plaintext connection never serves a TLS key, and a TLS one never serves plaintext', async (t) => {
  const server = await useServer(t, tlsEchoServer, { ...leaf })
  const pool = usePool(t, Pool, { tls: { ca: ca.cert } })
  const plain = await pool.acquire(`tcp://localhost:${server.port}`)
  pool.release(plain)
  const secure = await pool.acquire(`tls://localhost:${server.port}`)
  t.false(secure.reused)
  t.not(secure.id, plain.id)
  pool.release(secure)
  const plainAgain = await pool.acquire(`tcp://localhost:${server.port}`)
  t.is(plainAgain.id, plain.id)
  t.is(Object.keys(pool.stats().hosts).length, 2)
  pool.release(plainAgain, false)
})

test('client certificates (mutual TLS) are presented when configured', async (t) => {
  const client = makeLeaf(ca, ['pconn-client'], { client: true })
  const server = await useServer(t, tlsEchoServer, { ...leaf, ca: ca.cert, requestCert: true })
  const withCert = usePool(t, Pool, { tls: { ca: ca.cert, cert: client.cert, key: client.key } })
  const conn = await withCert.acquire(`tls://localhost:${server.port}`)
  await conn.write('mtls')
  t.is(String(await conn.read()), 'mtls')
  withCert.release(conn)
  // The server refuses a missing or untrusted client certificate. Under
  // TLS 1.3 its alert comes after our handshake is done, so it shows at the
  // first read: PCONN_TLS with the reason, not an anonymous EIO.
  const exchange = async (pool) => {
    const c = await pool.acquire(`tls://localhost:${server.port}`)
    await c.write('refused?')
    return c.read()
  }
  const without = usePool(t, Pool, { tls: { ca: ca.cert } })
  const missing = await t.throwsAsync(exchange(without), { code: 'PCONN_TLS' })
  t.is(missing.reason, 'certificate-required')
  const stranger = makeLeaf(otherCa, ['pconn-client'], { client: true })
  const untrusted = usePool(t, Pool, { tls: { ca: ca.cert, cert: stranger.cert, key: stranger.key } })
  // node:tls hangs up on an untrusted certificate without an alert (it
  // checks in JavaScript and destroys the socket): all we can know.
  const refused = await t.throwsAsync(exchange(untrusted))
  t.true(['PCONN_TLS', 'PCONN_SOCKET_CLOSED'].includes(refused.code), refused.code)
})

test('ALPN: the protocol the server picked is reported', async (t) => {
  const server = await useServer(t, tlsEchoServer, { ...leaf, ALPNProtocols: ['http/1.1'] })
  const pool = usePool(t, Pool, { tls: { ca: ca.cert, alpn: ['h2', 'http/1.1'] } })
  const conn = await pool.acquire(`tls://localhost:${server.port}`)
  t.is(conn.alpnProtocol, 'http/1.1')
  pool.release(conn)
})

test('HTTPS request(): verified, reused, and never sent over a connection made for another name', async (t) => {
  const https = await import('node:https')
  const { once } = await import('node:events')
  const server = https.createServer({ ...makeLeaf(ca, ['localhost', 'alias.test', '127.0.0.1']) }, (req, res) => res.end(`${req.headers.host} ${req.url}`))
  let connections = 0
  server.on('secureConnection', () => connections++)
  server.keepAliveTimeout = 10_000
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  server.unref()
  const port = server.address().port
  const pool = usePool(t, Pool, { tls: { ca: ca.cert } })
  for (let i = 0; i < 3; i++) {
    const res = await pool.request(`https://localhost:${port}/a${i}`)
    t.is(await res.body.text(), `localhost:${port} /a${i}`)
    t.is(res.reused, i > 0)
  }
  // Same address, other TLS identity: a separate connection, never a shared one.
  const conn = await pool.acquire({ scheme: 'https', host: 'localhost', port, servername: 'alias.test' })
  t.false(conn.reused)
  pool.release(conn)
  const plain = await pool.acquire({ scheme: 'tls', host: 'localhost', port })
  t.false(plain.reused, 'raw tls and https keys are distinct too')
  pool.release(plain)
  await eventually(() => connections === 3, 3000, 'three TLS connections at the server')
  t.deepEqual(
    Object.keys(pool.stats().hosts).sort(),
    [`https://localhost:${port}`, `https://localhost:${port}#servername=alias.test`, `tls://localhost:${port}`].sort(),
  )
})

test('connections of pools with different CA sets or client certificates are never shared', async (t) => {
  const server = await useServer(t, tlsEchoServer, { ...leaf })
  const a = usePool(t, Pool, { tls: { ca: ca.cert } })
  const b = usePool(t, Pool, { tls: { ca: [ca.cert, otherCa.cert] } })
  const url = `tls://localhost:${server.port}`
  const c1 = await a.acquire(url)
  a.release(c1)
  const c2 = await b.acquire(url)
  t.false(c2.reused)
  t.not(c2.id, c1.id)
  t.throws(() => a.release(c2), { code: 'ERR_INVALID_ARG_VALUE' })
  b.release(c2)
  await eventually(() => server.opened === 2, 3000, 'two TLS connections at the server')
})

/** An HTTPS server answering 'hello' with this certificate. */
async function httpsServer(t, { cert, key }) {
  const server = https.createServer({ cert, key }, (req, res) => res.end('hello'))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return server.address().port
}

test('a self-signed certificate made with openssl req -x509 is trusted when pinned in tls.ca, for its name only', async (t) => {
  const self = makeSelfSigned(['localhost'])
  t.regex(self.cert, /BEGIN CERTIFICATE/)
  const port = await httpsServer(t, self)
  const pool = usePool(t, Pool, { tls: { ca: self.cert } })
  const res = await pool.request(`https://localhost:${port}/`)
  t.is(await res.body.text(), 'hello')
  // Pinned, but not for this name: still refused.
  const err = await t.throwsAsync(pool.request(`https://127.0.0.1:${port}/`), { code: 'PCONN_TLS' })
  t.is(err.reason, 'hostname-mismatch')
  // Not pinned: an unknown issuer, as node:https says.
  const unpinned = usePool(t, Pool, { tls: { ca: ca.cert } })
  const refused = await t.throwsAsync(unpinned.request(`https://localhost:${port}/`), { code: 'PCONN_TLS' })
  t.is(refused.reason, 'unknown-issuer')
})

test('NODE_EXTRA_CA_CERTS adds its certificates to the default roots, as Node does', async (t) => {
  const port = await httpsServer(t, leaf)
  const dir = mkdtempSync(join(tmpdir(), 'pconn-extra-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const caFile = join(dir, 'extra.pem')
  writeFileSync(caFile, ca.cert)
  const script = `
    const { request } = require(${JSON.stringify(new URL('../dist/index.js', import.meta.url).pathname)})
    request('https://localhost:${port}/').then((r) => r.body.text()).then(console.log, (e) => console.log(e.code, e.reason))
  `
  const run = (env) => promisify(execFile)(process.execPath, ['-e', script], { env: { ...process.env, ...env }, timeout: 10_000 })
  t.is((await run({ NODE_EXTRA_CA_CERTS: caFile })).stdout.trim(), 'hello')
  t.is((await run({ NODE_EXTRA_CA_CERTS: '' })).stdout.trim(), 'PCONN_TLS unknown-issuer')
})

test('NODE_EXTRA_CA_CERTS trusts a self-signed certificate served as is, as Node does', async (t) => {
  const self = makeSelfSigned(['localhost'])
  const port = await httpsServer(t, self)
  const dir = mkdtempSync(join(tmpdir(), 'pconn-extra-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const certFile = join(dir, 'self.pem')
  writeFileSync(certFile, self.cert)
  const viaPconn = `const { request } = require(${JSON.stringify(new URL('../dist/index.js', import.meta.url).pathname)})
    request('https://localhost:${port}/').then((r) => r.body.text()).then(console.log, (e) => console.log(e.code, e.reason))`
  const run = (script) =>
    promisify(execFile)(process.execPath, ['-e', script], { env: { ...process.env, NODE_EXTRA_CA_CERTS: certFile }, timeout: 10_000 })
  t.is((await run(viaPconn)).stdout.trim(), 'hello')
  // node:https agrees, which is the point.
  const viaNode = `const https = require('node:https');
    https.get('https://localhost:${port}/', (r) => { let b = ''; r.on('data', (d) => (b += d)); r.on('end', () => console.log(b)) })`
  t.is((await run(viaNode)).stdout.trim(), 'hello')
})

test("tls.ca: 'system' with no readable store throws PCONN_TLS with reason config", async (t) => {
  const script = `
    const { Pool } = require(${JSON.stringify(new URL('../dist/index.js', import.meta.url).pathname)})
    try { new Pool({ tls: { ca: 'system' } }); console.log('made') } catch (e) { console.log(e.code, e.reason) }
  `
  // rustls-native-certs reads the store these variables name, as OpenSSL does.
  const env = { ...process.env, SSL_CERT_FILE: '/nonexistent/pconn.pem', SSL_CERT_DIR: '/nonexistent/pconn' }
  const { stdout } = await promisify(execFile)(process.execPath, ['-e', script], { env, timeout: 10_000 })
  t.is(stdout.trim(), 'PCONN_TLS config')
})

test("tls.ca: 'system' uses the operating system's store (which does not know a private CA)", async (t) => {
  const port = await httpsServer(t, leaf)
  const pool = usePool(t, Pool, { tls: { ca: 'system' } })
  const err = await t.throwsAsync(pool.request(`https://localhost:${port}/`), { code: 'PCONN_TLS' })
  t.is(err.reason, 'unknown-issuer')
})

test('certificate failures say what is wrong with whose certificate, with Node’s code: on the cause for pconn, as the code through the Agent and on fetch’s cause', async (t) => {
  const { Agent } = await import('../dist/undici/index.js')
  const undici = await import('undici')
  const selfSigned = makeSelfSigned(['127.0.0.1'])
  const cases = [
    // [server certificate (chain), pool's trust, Node's code]
    [selfSigned, undefined, 'DEPTH_ZERO_SELF_SIGNED_CERT', 'CN=127.0.0.1'],
    [leaf, otherCa.cert, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'CN=localhost'],
    [{ key: leaf.key, cert: leaf.cert + ca.cert }, otherCa.cert, 'SELF_SIGNED_CERT_IN_CHAIN', 'CN=localhost'],
    [makeLeaf(ca, ['api.example.test']), ca.cert, 'ERR_TLS_CERT_ALTNAME_INVALID', 'CN=api.example.test'],
  ]
  for (const [served, trust, nodeCode, subject] of cases) {
    const server = await useServer(t, tlsEchoServer, served)
    const url = `https://127.0.0.1:${server.port}/`
    const tls = trust === undefined ? undefined : { ca: trust }
    const pool = usePool(t, Pool, { tls })
    const own = await t.throwsAsync(pool.request(url))
    t.is(own.code, 'PCONN_TLS', nodeCode)
    t.is(own.cause?.code, nodeCode)
    t.true(own.message.includes(subject), own.message)
    t.false(/Other\(|OtherError|\(UNIX\)/.test(own.message), own.message)
    t.regex(own.cause.message, /^invalid peer certificate: /)
    t.false(/Other\(|OtherError|Verdict|\(UNIX\)/.test(own.cause.message), own.cause.message)
    const fetched = await t.throwsAsync(pool.fetch(url), { instanceOf: TypeError, message: 'fetch failed' })
    t.is(fetched.cause.code, nodeCode)
    t.is(fetched.cause.cause.code, 'PCONN_TLS')
    const agent = new Agent({ tls })
    t.teardown(() => agent.close())
    const viaAgent = await t.throwsAsync(undici.request(url, { dispatcher: agent }))
    t.is(viaAgent.code, nodeCode)
  }
})
