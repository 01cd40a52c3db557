import test from 'ava'
import { createHash } from 'node:crypto'
import http from 'node:http'
import { once } from 'node:events'
import { Readable } from 'node:stream'
import { Pool } from '../dist/index.js'
import { httpServer, ok } from './helpers/http-server.mjs'
import { eventually, sleep, useServer, usePool } from './helpers/servers.mjs'

/** A node:http server that hashes what it receives, or sends a known body. */
async function hashingServer(t) {
  const seen = { uploads: [] }
  const download = Buffer.alloc(8 * 1024 * 1024)
  for (let i = 0; i < download.length; i++) download[i] = (i * 7 + (i >> 13)) & 0xff
  const server = http.createServer((req, res) => {
    if (req.url === '/download') {
      res.setHeader('content-length', download.length)
      res.end(download)
      return
    }
    const hash = createHash('sha256')
    let bytes = 0
    req.on('data', (chunk) => {
      bytes += chunk.length
      hash.update(chunk)
    })
    req.on('end', () => {
      seen.uploads.push({ bytes, sha256: hash.digest('hex'), te: req.headers['transfer-encoding'] })
      res.end('stored')
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise((r) => server.close(r)))
  server.closeIdleConnections()
  return { seen, download, url: (p) => `http://127.0.0.1:${server.address().port}${p}`, server }
}

test('a 100 MiB upload from a Readable streams with backpressure: memory stays flat', async (t) => {
  t.timeout(120_000)
  const { seen, url } = await hashingServer(t)
  const pool = usePool(t, Pool)
  const chunk = Buffer.alloc(64 * 1024, 'u')
  const total = 100 * 1024 * 1024
  const expected = createHash('sha256')
  let produced = 0
  let peakRss = 0
  global.gc?.()
  const baseline = process.memoryUsage().rss
  const source = new Readable({
    read() {
      if (produced >= total) return this.push(null)
      produced += chunk.length
      expected.update(chunk)
      peakRss = Math.max(peakRss, process.memoryUsage().rss)
      this.push(chunk)
    },
  })
  const res = await pool.request(url('/upload'), { method: 'POST', body: source })
  t.is(await res.body.text(), 'stored')
  t.deepEqual(seen.uploads[0], { bytes: total, sha256: expected.digest('hex'), te: 'chunked' })
  const growth = (peakRss - baseline) / (1024 * 1024)
  t.true(growth < 64, `RSS grew ${growth.toFixed(1)} MiB while uploading 100 MiB`)
})

test('an async iterable body is sent chunked', async (t) => {
  const { seen, url } = await hashingServer(t)
  const pool = usePool(t, Pool)
  async function* parts() {
    yield 'a'
    yield new Uint8Array([98])
    yield Buffer.from('c')
  }
  await (await pool.request(url('/it'), { method: 'PUT', body: parts() })).body.text()
  t.is(seen.uploads[0].bytes, 3)
  t.is(seen.uploads[0].sha256, createHash('sha256').update('abc').digest('hex'))
})

test('an 8 MiB download arrives intact (sha-256) and the connection is reused after', async (t) => {
  const { download, url } = await hashingServer(t)
  const pool = usePool(t, Pool)
  const res = await pool.request(url('/download'))
  const hash = createHash('sha256')
  for await (const chunk of res.body) hash.update(chunk)
  t.is(hash.digest('hex'), createHash('sha256').update(download).digest('hex'))
  t.true((await pool.request(url('/download'))).reused)
})

test('an upload source that fails rejects the request with its error and closes the connection', async (t) => {
  const server = await useServer(t, httpServer, (req, s) => s.write(ok()))
  const pool = usePool(t, Pool)
  async function* broken() {
    yield 'part'
    throw new Error('source broke')
  }
  await t.throwsAsync(pool.request(server.url(), { method: 'POST', body: broken() }), { message: 'source broke' })
  await eventually(() => server.closed === server.opened && server.opened === 1, 3000, 'the close')
  t.is(server.requests.length, 0)
})

test('a response body that is never read and garbage-collected closes its connection', async (t) => {
  t.timeout(30_000)
  if (typeof global.gc !== 'function') return t.fail('run with --expose-gc')
  const server = await useServer(t, httpServer, (req, s) => s.write(ok('w'.repeat(1_000_000))))
  const pool = usePool(t, Pool)
  await (async () => {
    await pool.request(server.url())
  })()
  t.is(pool.stats().active, 1)
  for (let i = 0; i < 50 && pool.stats().active > 0; i++) {
    global.gc()
    await sleep(20)
  }
  t.like(pool.stats(), { active: 0, idle: 0 })
  await eventually(() => server.closed === 1, 3000, 'the server to see the close')
})

test('bytes(), arrayBuffer() and text() give exactly the body, whether it came whole or in chunks, small or large', async (t) => {
  const body = (size) => Buffer.from(Array.from({ length: size }, (_, i) => 97 + ((i * 31) % 26)))
  const server = http.createServer((req, res) => {
    const size = Number(new URL(req.url, 'http://x').searchParams.get('size'))
    const bytes = body(size)
    res.setHeader('content-length', size)
    // Large bodies in pieces, so some arrive as several chunks.
    for (let at = 0; at < size; at += 16 * 1024) res.write(bytes.subarray(at, at + 16 * 1024))
    res.end()
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise((r) => server.close(r)))
  const pool = usePool(t, Pool)
  for (const size of [0, 13, 5_000, 70_000, 300_000]) {
    const url = `http://127.0.0.1:${server.address().port}/?size=${size}`
    const expected = body(size)
    t.true((await (await pool.request(url)).body.bytes()).equals(expected), `bytes() of ${size}`)
    const ab = await (await pool.request(url)).body.arrayBuffer()
    t.is(ab.byteLength, size, `arrayBuffer() of ${size} holds the body and nothing else`)
    t.true(Buffer.from(ab).equals(expected), `arrayBuffer() of ${size}`)
    t.is(await (await pool.request(url)).body.text(), expected.toString(), `text() of ${size}`)
  }
})
