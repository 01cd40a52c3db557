#!/usr/bin/env node
// Scale: 10,000 idle connections over 1,000 hosts (1,000 listeners on
// loopback ports). Measures, for pconn and for node:http's keep-alive Agent
// holding the same connections, user-space memory per idle connection
// (RSS delta / count) and, for pconn, the acquire + release cost with 1,000
// keys relative to one key.
//
//   node benchmark/scale.mjs [--hosts 1000] [--per-host 10]
// Each client runs in its own child process so its RSS baseline is clean.
import { spawn } from 'node:child_process'
import http from 'node:http'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { ensureBenchServer } from './lib/servers.mjs'

const argv = process.argv.slice(2)
const option = (name, fallback) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : fallback)
const hosts = Number(option('--hosts', 1000))
const perHost = Number(option('--per-host', 10))
const self = fileURLToPath(import.meta.url)

const settle = async () => {
  for (let i = 0; i < 3; i++) {
    global.gc?.()
    await new Promise((r) => setTimeout(r, 100))
  }
}
const rss = () => process.memoryUsage().rss

async function pconnClient(ports) {
  const { Pool } = await import('../dist/index.js')
  const pool = new Pool({ idleTimeoutMs: 600_000, maxIdlePerHost: perHost })
  const urls = ports.map((p) => `tcp://127.0.0.1:${p}`)
  // Warm the code paths and the key cache on one host first.
  for (let i = 0; i < 1000; i++) pool.release(await pool.acquire(urls[0]))
  pool.flushForHost('127.0.0.1')
  await settle()
  const before = rss()
  for (const url of urls) {
    const conns = await Promise.all(Array.from({ length: perHost }, () => pool.acquire(url)))
    for (const c of conns) pool.release(c)
  }
  await settle()
  const after = rss()
  const idle = pool.stats().idle
  const time = async (pick, n) => {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < n; i++) pool.release(await pool.acquire(pick(i)))
    return Number(process.hrtime.bigint() - t0) / n
  }
  await time(() => urls[0], 20_000)
  const one = await time(() => urls[0], 100_000)
  const many = await time((i) => urls[i % urls.length], 100_000)
  await pool.shutdownAll()
  return { client: 'pconn', idle, bytesPerIdle: (after - before) / idle, acquireNsOneKey: one, acquireNsManyKeys: many }
}

async function nodeHttpClient(ports) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: perHost, maxFreeSockets: perHost, timeout: 600_000 })
  const get = (port) =>
    new Promise((resolve, reject) =>
      http.get({ host: '127.0.0.1', port, path: '/', agent }, (res) => res.resume().on('end', resolve)).on('error', reject),
    )
  for (let i = 0; i < 1000; i++) await get(ports[0])
  agent.destroy()
  await settle()
  const before = rss()
  for (const port of ports) await Promise.all(Array.from({ length: perHost }, () => get(port)))
  await settle()
  const after = rss()
  const idle = Object.values(agent.freeSockets).reduce((n, list) => n + list.length, 0)
  agent.destroy()
  return { client: 'node:http Agent', idle, bytesPerIdle: (after - before) / idle }
}

async function child(kind, ports) {
  const out = kind === 'pconn' ? await pconnClient(ports) : await nodeHttpClient(ports)
  process.stdout.write(JSON.stringify(out) + '\n')
}

function runChild(kind, ports) {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, ['--expose-gc', self, '--child', kind, '--ports', ports.join(','), '--per-host', String(perHost)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let out = ''
    c.stdout.on('data', (d) => (out += d))
    c.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`${kind} client exited ${code}`))))
  })
}

async function main() {
  if (argv.includes('--child')) return child(option('--child'), option('--ports').split(',').map(Number))
  const binary = ensureBenchServer((m) => process.stderr.write(m + '\n'))
  const server = spawn(binary, ['--threads', '1', '--listeners', String(hosts)], { stdio: ['ignore', 'pipe', 'inherit'] })
  const line = await new Promise((r) => createInterface({ input: server.stdout }).once('line', r))
  const ports = line.split(' ')[1].split(',').map(Number)
  try {
    process.stderr.write(`${hosts} hosts × ${perHost} connections = ${hosts * perHost} idle connections per client\n`)
    const results = [await runChild('pconn', ports), await runChild('node', ports)]
    for (const r of results) {
      console.log(`${r.client.padEnd(16)} idle ${r.idle}  user-space memory per idle connection: ${(r.bytesPerIdle / 1024).toFixed(2)} KiB`)
    }
    const p = results[0]
    console.log(`pconn acquire+release: ${p.acquireNsOneKey.toFixed(0)} ns with 1 key, ${p.acquireNsManyKeys.toFixed(0)} ns over ${hosts} keys (${(p.acquireNsManyKeys / p.acquireNsOneKey).toFixed(2)}x)`)
  } finally {
    server.kill()
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
