#!/usr/bin/env node
// `npm run bench`: pconn against undici, node:http and fetch on the same
// loopback server, side by side in one run. See BENCHMARKS.md.
//
//   node benchmark/run.mjs [--quick] [--rounds N] [--duration MS] [--out DIR]
//
// --quick: one short round of a few scenarios (the smoke test uses it).
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { createRequire } from 'node:module'
import { contestants, freshContestants } from './lib/contestants.mjs'
import { measure, median, sequential } from './lib/measure.mjs'
import { printTable, svgChart } from './lib/report.mjs'
import { ensureServerBinary, makeCertificates, startServer } from './lib/server.mjs'

const argv = process.argv.slice(2)
const flag = (name) => argv.includes(name)
const option = (name, fallback) => {
  const i = argv.indexOf(name)
  return i >= 0 ? argv[i + 1] : fallback
}
const quick = flag('--quick')
const rounds = Number(option('--rounds', quick ? 1 : 3))
const durationMs = Number(option('--duration', quick ? 300 : 2000))
const warmupMs = quick ? 100 : 500
const outDir = option('--out', join(process.cwd(), '.bench'))
const log = (msg) => process.stderr.write(`${msg}\n`)

const scenarios = [
  { name: 'GET 11 B, 1 connection', path: '/', concurrency: 1 },
  { name: 'GET 11 B, 16 concurrent', path: '/', concurrency: 16 },
  { name: 'GET 11 B, 64 concurrent', path: '/', concurrency: 64 },
  { name: 'GET 64 KiB, 16 concurrent', path: '/64k', concurrency: 16 },
  { name: 'HTTPS GET 11 B, 16 concurrent', path: '/', concurrency: 16, tls: true },
].filter((s, i) => !quick || i === 1 || i === 4)

function which(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0
}

function wrkRps(url, concurrency, ms) {
  const out = execFileSync('wrk', ['-t1', `-c${concurrency}`, `-d${Math.max(1, Math.round(ms / 1000))}s`, url], { encoding: 'utf8' })
  return Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1])
}

async function main() {
  ensureServerBinary(log)
  const certs = makeCertificates()
  const plain = await startServer()
  const secure = await startServer({ tls: certs })
  const require = createRequire(import.meta.url)
  const versions = {
    node: process.version,
    undici: require('undici/package.json').version,
    pconn: require('../package.json').version,
    cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown'}`,
    platform: `${os.platform()} ${os.release()}`,
    server: plain.name,
    // `wrk -v` prints its version and exits non-zero.
    wrk: which('wrk') ? spawnSync('wrk', ['-v'], { encoding: 'utf8' }).stdout.split('\n')[0] : 'not installed',
  }
  log(`server: ${plain.name} on 127.0.0.1:${plain.port} (https on ${secure.port})`)
  log(`${rounds} round(s) × ${durationMs} ms per contestant, contestants interleaved\n`)
  const rows = []
  try {
    for (const scenario of scenarios) {
      const server = scenario.tls ? secure : plain
      const url = `${scenario.tls ? 'https' : 'http'}://127.0.0.1:${server.port}${scenario.path}`
      const entrants = contestants.filter((c) => !(scenario.tls && c.plainOnly))
      const runs = new Map(entrants.map((c) => [c.name, []]))
      for (let round = 1; round <= rounds; round++) {
        for (const c of entrants) {
          const client = c.make({ url, connections: scenario.concurrency, ca: scenario.tls ? certs.ca : undefined })
          await measure(client.request, { concurrency: scenario.concurrency, durationMs: warmupMs })
          const r = await measure(client.request, { concurrency: scenario.concurrency, durationMs })
          await client.close()
          runs.get(c.name).push(r)
          log(`  [${scenario.name}] round ${round}/${rounds} ${c.name.padEnd(14)} ${Math.round(r.rps).toLocaleString('en-US').padStart(8)} req/s  p50 ${r.p50.toFixed(0)} µs  p99 ${r.p99.toFixed(0)} µs${r.errors ? `  errors ${r.errors}` : ''}`)
        }
      }
      const wrk = !scenario.tls && which('wrk') ? wrkRps(url, scenario.concurrency, durationMs) : undefined
      for (const [contestant, rs] of runs) {
        const rps = rs.map((r) => r.rps)
        rows.push({
          scenario: scenario.name,
          contestant,
          rps: { median: median(rps), min: Math.min(...rps), max: Math.max(...rps) },
          p50: median(rs.map((r) => r.p50)),
          p99: median(rs.map((r) => r.p99)),
          errors: rs.reduce((a, r) => a + r.errors, 0),
          wrk,
        })
      }
    }

    const count = quick ? 100 : 1000
    log(`\n${count} sequential HTTPS requests, pooled vs a new connection each time`)
    const url = `https://127.0.0.1:${secure.port}/`
    const sequentialRows = []
    for (const c of [contestants[0], contestants[2], contestants[3], ...freshContestants]) {
      const client = c.make({ url, connections: 1, ca: certs.ca })
      await sequential(client.request, Math.min(50, count))
      const ms = await sequential(client.request, count)
      await client.close()
      sequentialRows.push({ contestant: c.name, ms })
      log(`  ${c.name.padEnd(32)} ${ms.toFixed(0).padStart(6)} ms`)
    }

    printTable(rows)
    const pooled = sequentialRows[0].ms
    const fresh = sequentialRows.find((r) => r.contestant === 'pconn, new connection each').ms
    console.log(`\n${count} sequential HTTPS requests`)
    for (const r of sequentialRows) console.log(`  ${r.contestant.padEnd(32)} ${r.ms.toFixed(0).padStart(6)} ms`)
    console.log(`  pconn pooled is ${(fresh / pooled).toFixed(1)}x faster than a new connection each time`)

    mkdirSync(outDir, { recursive: true })
    const result = { date: new Date().toISOString(), versions, rounds, durationMs, rows, sequential: sequentialRows }
    writeFileSync(join(outDir, 'results.json'), JSON.stringify(result, null, 2))
    writeFileSync(join(outDir, 'chart.svg'), svgChart(rows, `req/s by scenario (median of ${rounds}), ${versions.node}, undici ${versions.undici}`))
    console.log(`\nresults: ${join(outDir, 'results.json')}, chart: ${join(outDir, 'chart.svg')}`)
    console.log(`machine: ${versions.cpus}, ${versions.platform}; node ${versions.node}, undici ${versions.undici}; wrk: ${versions.wrk}`)
  } finally {
    plain.stop()
    secure.stop()
    certs.cleanup()
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
