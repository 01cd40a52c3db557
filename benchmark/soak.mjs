#!/usr/bin/env node
// Soak: many requests over many keys while the servers misbehave at random.
// Reports open file descriptors and RSS before, during and after, checks
// that stats() stays consistent, and that nothing is left pending.
//
//   node --expose-gc benchmark/soak.mjs [--requests 200000] [--keys 50] [--concurrency 32]
// Exit code 1 if an invariant fails.
import { spawn } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { Pool } from '../dist/index.js'

const argv = process.argv.slice(2)
const option = (name, fallback) => (argv.includes(name) ? Number(argv[argv.indexOf(name) + 1]) : fallback)
const total = option('--requests', 200_000)
const keys = option('--keys', 50)
const concurrency = option('--concurrency', 32)

const fds = () => readdirSync('/proc/self/fd').length
const rssMiB = () => process.memoryUsage().rss / 1024 / 1024
const settle = async () => {
  for (let i = 0; i < 3; i++) {
    global.gc?.()
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** Paths and the outcomes each may legitimately have. */
const plan = [
  { path: '/ok', weight: 80, ok: [200], errors: [] },
  { path: '/close', weight: 6, ok: [200], errors: [] },
  { path: '/big', weight: 5, ok: [200], errors: [] },
  { path: '/reset', weight: 3, ok: [], errors: ['ECONNRESET', 'PCONN_SOCKET_CLOSED'] },
  // The server's idle timer may close a stalled exchange before the head timeout.
  { path: '/stall', weight: 1, ok: [], errors: ['PCONN_HEADERS_TIMEOUT', 'PCONN_SOCKET_CLOSED'] },
  { path: '/bad', weight: 2, ok: [], errors: ['PCONN_HTTP_PARSE'] },
  { path: '/ok?abort', weight: 3, ok: [200], errors: ['ABORT_ERR'] },
]
const weights = plan.reduce((a, p) => a + p.weight, 0)
function pick() {
  let r = Math.random() * weights
  for (const p of plan) if ((r -= p.weight) < 0) return p
  return plan[0]
}

async function main() {
  const server = spawn(process.execPath, [fileURLToPath(new URL('./lib/faulty-server.mjs', import.meta.url)), String(keys)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const line = await new Promise((r) => createInterface({ input: server.stdout }).once('line', r))
  const ports = line.split(' ')[1].split(',').map(Number)
  const pool = new Pool({ maxConnectionsPerHost: 4, idleTimeoutMs: 1000 })
  await settle()
  const before = { fds: fds(), rss: rssMiB() }
  const outcomes = new Map()
  const unexpected = []
  let sent = 0
  let peakFds = before.fds
  let peakRss = before.rss
  const started = performance.now()

  async function worker() {
    while (sent < total) {
      const n = ++sent
      const p = pick()
      const port = ports[Math.floor(Math.random() * ports.length)]
      const ac = p.path.includes('abort') ? new AbortController() : undefined
      if (ac) setTimeout(() => ac.abort(), Math.random() * 2)
      const method = Math.random() < 0.2 ? 'POST' : 'GET'
      let outcome
      try {
        const res = await pool.request(`http://127.0.0.1:${port}${p.path}`, { method, body: method === 'POST' ? 'x' : undefined, headersTimeoutMs: 200, signal: ac?.signal })
        await res.body.text()
        outcome = res.statusCode
        if (!p.ok.includes(outcome)) unexpected.push(`${p.path}: status ${outcome}`)
      } catch (err) {
        outcome = err.code
        // A POST on a reused connection the server closed fails cleanly (never resent).
        const allowed = p.errors.includes(err.code) || (method === 'POST' && err.code === 'PCONN_SOCKET_CLOSED')
        if (!allowed) unexpected.push(`${method} ${p.path}: ${err.code} ${err.message}`)
      }
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
      if (n % 10_000 === 0) {
        peakFds = Math.max(peakFds, fds())
        peakRss = Math.max(peakRss, rssMiB())
        const s = pool.stats()
        process.stderr.write(`  ${n.toLocaleString('en-US')} requests, ${s.connections} open, fds ${fds()}, rss ${rssMiB().toFixed(1)} MiB\n`)
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  const seconds = (performance.now() - started) / 1000
  const during = pool.stats()
  await pool.shutdownAll()
  await settle()
  const after = { fds: fds(), rss: rssMiB() }
  server.kill()

  const s = pool.stats()
  const checks = {
    'active back to 0': s.active === 0,
    'nothing pending': s.pending === 0 && s.connecting === 0,
    'created - closed = open (0 after shutdown)': s.created - s.closed === s.connections && s.connections === 0,
    'closedBy adds up to closed': Object.values(s.closedBy).reduce((a, b) => a + b, 0) === s.closed,
    'file descriptors back to the start': after.fds <= before.fds,
    'no unexpected outcome': unexpected.length === 0,
  }
  const report = {
    requests: total,
    keys,
    concurrency,
    seconds: Number(seconds.toFixed(1)),
    outcomes: Object.fromEntries([...outcomes].sort((a, b) => b[1] - a[1])),
    connections: { created: s.created, reused: s.reused, closed: s.closed, closedBy: s.closedBy, openAtEnd: during.connections },
    fds: { before: before.fds, peak: peakFds, after: after.fds },
    rssMiB: { before: before.rss.toFixed(1), peak: peakRss.toFixed(1), after: after.rss.toFixed(1) },
    checks,
    unexpected: unexpected.slice(0, 10),
  }
  console.log(JSON.stringify(report, null, 2))
  if (Object.values(checks).some((v) => !v)) process.exit(1)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
