#!/usr/bin/env node
// `npm run bench`: pconn against undici (`request` and `dispatch`),
// node:http and fetch on the same loopback server, side by side in one
// run, with the CPU each spends per request. See BENCHMARKS.md.
//
//   node benchmark/run.mjs [--server auto|nginx|bench] [--quick] [--rounds N]
//                          [--duration MS] [--only TEXT] [--out DIR]
//                          [--baseline PATH]...
//
// --server: nginx (one worker, started and stopped here; a real server sends
//   real headers), or the workspace's own Tokio server; auto (the default)
//   picks nginx when it is installed.
// --quick: one short round of a few scenarios (the smoke test uses it).
// The HTTP/2 scenarios run one connection per contestant (pconn, undici
// with allowH2, node:http2's client) against nginx and node:http2.
// --only: run the scenarios whose name contains TEXT.
// --baseline: another build of pconn (the path of its dist/index.js, e.g. a
//   `git worktree` of an older commit, built) runs as more contestants,
//   "pconn request (DIR)" and, if it has the Agent, "undici request via
//   pconn Agent (DIR)", named after the directory that holds its dist/, so
//   a change is measured before/after in the same run. Give it more than once
//   to compare several builds.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { createRequire } from 'node:module'
import { Agent as UndiciAgent, request as undiciRequest } from 'undici'
import { agentRequest, contestants, freshContestants, http2Contestants, pconnRequest } from './lib/contestants.mjs'
import { measure, median, sequential } from './lib/measure.mjs'
import { printTable, svgChart } from './lib/report.mjs'
import { installed, startServers } from './lib/servers.mjs'

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
const serverKind = option('--server', 'auto')
const only = option('--only', '')
const baselinePaths = argv.flatMap((arg, i) => (arg === '--baseline' ? [argv[i + 1]] : []))
const log = (msg) => process.stderr.write(`${msg}\n`)

// `h2`: the HTTP/2 scenarios, one connection carrying `concurrency`
// streams, against nginx or node:http2, with the HTTP/2 contestants.
const scenarios = [
  { name: 'GET small, 1 connection', path: '/', concurrency: 1 },
  { name: 'GET small, 16 concurrent', path: '/', concurrency: 16 },
  { name: 'GET small, 64 concurrent', path: '/', concurrency: 64 },
  { name: 'GET 64 KiB, 16 concurrent', path: '/64k', concurrency: 16 },
  { name: 'HTTPS GET small, 16 concurrent', path: '/', concurrency: 16, tls: true },
  { name: 'HTTP/2 GET small, 16 streams (nginx)', path: '/', concurrency: 16, h2: 'nginx' },
  { name: 'HTTP/2 GET small, 64 streams (nginx)', path: '/', concurrency: 64, h2: 'nginx' },
  { name: 'HTTP/2 GET 64 KiB, 16 streams (nginx)', path: '/64k', concurrency: 16, h2: 'nginx' },
  { name: 'HTTP/2 GET small, 16 streams (node:http2)', path: '/', concurrency: 16, h2: 'node' },
  { name: 'HTTP/2 GET small, 64 streams (node:http2)', path: '/', concurrency: 64, h2: 'node' },
]
  .filter((s, i) => !quick || i === 1 || i === 4 || i === 8)
  .filter((s) => s.name.includes(only))

function wrkRps(url, concurrency, ms) {
  // `wrk -v` and failed runs exit non-zero; only the figure matters.
  const run = spawnSync('wrk', ['-t1', `-c${concurrency}`, `-d${Math.max(1, Math.round(ms / 1000))}s`, url], { encoding: 'utf8' })
  return Number(/Requests\/sec:\s+([\d.]+)/.exec(run.stdout)?.[1])
}

/** A `--baseline` build's contestants: `pconn request`, and its Agent's `undici request` if it has one. */
async function baselineContestants(path) {
  const name = basename(dirname(dirname(resolve(path))))
  const { Pool } = await import(pathToFileURL(resolve(path)).href)
  const agentPath = join(dirname(resolve(path)), 'undici', 'index.js')
  const built = [pconnRequest(`pconn request (${name})`, Pool)]
  if (existsSync(agentPath)) {
    const { Agent } = await import(pathToFileURL(agentPath).href)
    built.push(agentRequest(`undici request via pconn Agent (${name})`, Agent))
  }
  return built
}

/**
 * Make sure the server answers the scenario's request as it should (200, and
 * 64 KiB for `/64k`) before measuring it, with a client that is not a
 * contestant: a misconfigured server answering 403 or 404 would otherwise
 * be measured as if it served the file.
 */
async function checkServer(scenario, url, ca) {
  const dispatcher = new UndiciAgent({ connect: ca ? { ca } : undefined, allowH2: scenario.h2 !== undefined })
  try {
    const res = await undiciRequest(url, { dispatcher })
    const bytes = (await res.body.arrayBuffer()).byteLength
    if (res.statusCode !== 200 || (scenario.path === '/64k' && bytes !== 64 * 1024)) {
      throw new Error(`${url} answered ${res.statusCode} with ${bytes} bytes: the server is misconfigured, nothing was measured`)
    }
  } finally {
    await dispatcher.close()
  }
}

async function main() {
  const everyone = [...contestants, ...(await Promise.all(baselinePaths.map(baselineContestants))).flat()]
  const servers = await startServers(serverKind, log)
  const require = createRequire(import.meta.url)
  const versions = {
    node: process.version,
    undici: require('undici/package.json').version,
    pconn: require('../package.json').version,
    cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown'}`,
    platform: `${os.platform()} ${os.release()}`,
    server: servers.name,
    wrk: installed('wrk') ? spawnSync('wrk', ['-v'], { encoding: 'utf8' }).stdout.split('\n')[0] : 'not installed',
  }
  const h2 = servers.h2 === undefined ? '' : `, HTTP/2 on ${servers.h2}`
  log(`server: ${servers.name} on 127.0.0.1:${servers.http} (https on ${servers.https}${h2}; node:http2 on ${servers.nodeH2}; self-signed certificate pinned by every client)`)
  log(`${rounds} round(s) × ${durationMs} ms per contestant, contestants interleaved; CPU µs per request on the JavaScript thread and on the others\n`)
  const rows = []
  try {
    for (const scenario of scenarios) {
      const h2Port = scenario.h2 === 'nginx' ? servers.h2 : servers.nodeH2
      if (scenario.h2 && h2Port === undefined) {
        log(`  [${scenario.name}] skipped: no nginx`)
        continue
      }
      const url = scenario.h2
        ? `https://127.0.0.1:${h2Port}${scenario.path}`
        : scenario.tls
          ? `https://127.0.0.1:${servers.https}${scenario.path}`
          : `http://127.0.0.1:${servers.http}${scenario.path}`
      const ca = scenario.tls || scenario.h2 ? servers.ca : undefined
      const entrants = scenario.h2 ? http2Contestants : everyone
      await checkServer(scenario, url, ca)
      const runs = new Map(entrants.map((c) => [c.name, []]))
      for (let round = 1; round <= rounds; round++) {
        for (const c of entrants) {
          const client = c.make({ url, connections: scenario.concurrency, ca })
          await measure(client.request, { concurrency: scenario.concurrency, durationMs: warmupMs })
          const r = await measure(client.request, { concurrency: scenario.concurrency, durationMs })
          await client.close()
          runs.get(c.name).push(r)
          log(
            `  [${scenario.name}] round ${round}/${rounds} ${c.name.padEnd(16)} ${Math.round(r.rps).toLocaleString('en-US').padStart(8)} req/s` +
              `  p50 ${r.p50.toFixed(0)} µs  p99 ${r.p99.toFixed(0)} µs  CPU ${r.cpu.js.toFixed(1)} + ${r.cpu.other.toFixed(1)} µs/req` +
              (r.errors ? `  errors ${r.errors}` : ''),
          )
        }
      }
      const wrk = !scenario.tls && !scenario.h2 && installed('wrk') ? wrkRps(url, scenario.concurrency, durationMs) : undefined
      for (const [contestant, rs] of runs) {
        const rps = rs.map((r) => r.rps)
        rows.push({
          scenario: scenario.name,
          contestant,
          rps: { median: median(rps), min: Math.min(...rps), max: Math.max(...rps) },
          p50: median(rs.map((r) => r.p50)),
          p99: median(rs.map((r) => r.p99)),
          cpu: { js: median(rs.map((r) => r.cpu.js)), other: median(rs.map((r) => r.cpu.other)) },
          errors: rs.reduce((a, r) => a + r.errors, 0),
          wrk,
        })
      }
    }

    const count = quick ? 100 : 1000
    log(`\n${count} sequential HTTPS requests, pooled vs a new connection each time`)
    const url = `https://127.0.0.1:${servers.https}/`
    const sequentialRows = []
    const pooled = contestants.filter((c) => ['pconn request', 'undici request', 'node:http'].includes(c.name))
    for (const c of [...pooled, ...freshContestants]) {
      const client = c.make({ url, connections: 1, ca: servers.ca })
      await sequential(client.request, Math.min(50, count))
      const ms = await sequential(client.request, count)
      await client.close()
      sequentialRows.push({ contestant: c.name, ms })
      log(`  ${c.name.padEnd(32)} ${ms.toFixed(0).padStart(6)} ms`)
    }

    console.log(`server: ${servers.name}`)
    printTable(rows)
    const pooledMs = sequentialRows[0].ms
    const fresh = sequentialRows.find((r) => r.contestant === 'pconn, new connection each').ms
    console.log(`\n${count} sequential HTTPS requests`)
    for (const r of sequentialRows) console.log(`  ${r.contestant.padEnd(32)} ${r.ms.toFixed(0).padStart(6)} ms`)
    console.log(`  pconn pooled is ${(fresh / pooledMs).toFixed(1)}x faster than a new connection each time`)

    mkdirSync(outDir, { recursive: true })
    const result = { date: new Date().toISOString(), versions, rounds, durationMs, rows, sequential: sequentialRows }
    writeFileSync(join(outDir, 'results.json'), JSON.stringify(result, null, 2))
    writeFileSync(join(outDir, 'chart.svg'), svgChart(rows, `req/s by scenario (median of ${rounds}), ${versions.server}, ${versions.node}, undici ${versions.undici}`))
    console.log(`\nresults: ${join(outDir, 'results.json')}, chart: ${join(outDir, 'chart.svg')}`)
    console.log(`machine: ${versions.cpus}, ${versions.platform}; node ${versions.node}, undici ${versions.undici}; wrk: ${versions.wrk}`)
  } finally {
    servers.stop()
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
