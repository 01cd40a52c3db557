import test from 'ava'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import * as pconn from '../dist/index.js'
import { eventually, tcpEchoServer, useServer } from './helpers/servers.mjs'

const entry = fileURLToPath(new URL('../dist/index.js', import.meta.url))

test('a script that uses the default pool and returns exits by itself; its idle connections are closed', async (t) => {
  const server = await useServer(t, tcpEchoServer)
  const script = `
    const { acquire, release, stats } = require(${JSON.stringify(entry)})
    ;(async () => {
      const conn = await acquire('tcp://127.0.0.1:${server.port}')
      await conn.write('hi')
      await conn.read()
      release(conn)
      console.log(JSON.stringify(stats()))
    })()
  `
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (d) => (out += d))
  const started = Date.now()
  const [code] = await once(child, 'exit')
  t.is(code, 0)
  t.true(Date.now() - started < 3000, 'exits well before the 4 s idle timeout')
  t.like(JSON.parse(out), { idle: 1, created: 1 })
  await eventually(() => server.closed === 1, 3000, 'server to see the connection closed')
})

test('a pending acquire keeps the process alive until it completes', async (t) => {
  const server = await useServer(t, tcpEchoServer)
  const script = `
    const { acquire, release } = require(${JSON.stringify(entry)})
    acquire('tcp://127.0.0.1:${server.port}').then((c) => { console.log('got', c.id); release(c) })
  `
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (d) => (out += d))
  const [code] = await once(child, 'exit')
  t.is(code, 0)
  t.regex(out, /got \d+/)
})

test('the top-level functions act on one default pool', async (t) => {
  const server = await useServer(t, tcpEchoServer)
  const url = `tcp://127.0.0.1:${server.port}`
  const a = await pconn.acquire(url)
  pconn.release(a)
  const b = await pconn.acquire(url)
  t.true(b.reused)
  t.is(pconn.getDefaultPool().stats().active, 1)
  pconn.release(b)
  t.is(pconn.stats().hosts[url].idle, 1)
  t.is(pconn.flushForHost('127.0.0.1'), 1)
  await pconn.shutdownAll()
  await t.throwsAsync(pconn.acquire(url), { code: 'PCONN_POOL_CLOSED' })
})
