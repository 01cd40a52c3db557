// pconn demo: an embedded local server, the same requests sent through a
// keep-alive pool and with a new connection each time, and what the server
// saw. Run with `npm run demo` (it builds first).
'use strict'
const http = require('node:http')
const https = require('node:https')
const { execFileSync } = require('node:child_process')
const { mkdtempSync, readFileSync, rmSync, writeFileSync } = require('node:fs')
const { tmpdir } = require('node:os')
const { join } = require('node:path')
const { Pool } = require('..')

const REQUESTS = 2000

/** A private CA and a certificate for 127.0.0.1 signed by it, if the openssl CLI is here. */
function certificates() {
  const dir = mkdtempSync(join(tmpdir(), 'pconn-demo-'))
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  const openssl = (args) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' })
  try {
    openssl(['req', '-x509', ...ec, '-days', '1', '-subj', '/CN=pconn demo CA', '-keyout', 'ca.key', '-out', 'ca.pem'])
    openssl(['req', ...ec, '-subj', '/CN=127.0.0.1', '-keyout', 'key.pem', '-out', 'leaf.csr'])
    writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n')
    openssl(['x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', 'ext.cnf', '-out', 'cert.pem'])
    const read = (f) => readFileSync(join(dir, f))
    return { ca: read('ca.pem'), key: read('key.pem'), cert: read('cert.pem') }
  } catch {
    return undefined
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Start a server that answers `hello` and counts the connections it accepts. */
function start(make, options) {
  return new Promise((resolve) => {
    const stats = { connections: 0 }
    const server = make(options, (req, res) => res.end('hello'))
    server.keepAliveTimeout = 10_000
    server.on(options ? 'secureConnection' : 'connection', () => stats.connections++)
    server.listen(0, '127.0.0.1', () => resolve({ server, stats, port: server.address().port }))
  })
}

async function run(label, url, poolOptions, counter) {
  const pool = new Pool(poolOptions)
  const before = counter.connections
  const started = process.hrtime.bigint()
  for (let i = 0; i < REQUESTS; i++) {
    const res = await pool.request(url)
    await res.body.text()
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  const s = pool.stats()
  await pool.shutdownAll()
  const row = {
    mode: label,
    'server saw connections': counter.connections - before,
    'pconn created': s.created,
    'pconn reused': s.reused,
    'total ms': ms.toFixed(0),
    'µs/request': ((ms * 1000) / REQUESTS).toFixed(1),
  }
  return { row, ms }
}

async function main() {
  console.log(`pconn demo: ${REQUESTS} sequential GETs per mode against an embedded server\n`)
  const rows = []
  const plain = await start(http.createServer)
  const httpUrl = `http://127.0.0.1:${plain.port}/`
  const pooled = await run('http, pooled', httpUrl, {}, plain.stats)
  const fresh = await run('http, new connection each', httpUrl, { maxIdlePerHost: 0 }, plain.stats)
  rows.push(pooled.row, fresh.row)
  plain.server.close()

  const certs = certificates()
  if (certs) {
    const secure = await start(https.createServer, { key: certs.key, cert: certs.cert })
    const httpsUrl = `https://127.0.0.1:${secure.port}/`
    const tls = { ca: certs.ca }
    const tPooled = await run('https, pooled', httpsUrl, { tls }, secure.stats)
    const tFresh = await run('https, new connection each', httpsUrl, { tls, maxIdlePerHost: 0 }, secure.stats)
    rows.push(tPooled.row, tFresh.row)
    secure.server.close()
    console.table(rows)
    console.log(`\npooling made HTTPS ${(tFresh.ms / tPooled.ms).toFixed(1)}x faster and HTTP ${(fresh.ms / pooled.ms).toFixed(1)}x faster here.`)
  } else {
    console.table(rows)
    console.log(`\npooling made HTTP ${(fresh.ms / pooled.ms).toFixed(1)}x faster here (install openssl to see HTTPS too).`)
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
