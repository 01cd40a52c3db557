#!/usr/bin/env node
// The pool's hit path from JavaScript: `await pool.acquire(url)` of an idle
// connection plus `pool.release(conn)`, through the binding, for three
// pools in turn (defaults; connection upkeep off; all on). Prints each
// one's median of 7 runs of 100,000 pairs.
import net from 'node:net'
import { once } from 'node:events'
import { Pool } from '../dist/index.js'
import { median } from './lib/measure.mjs'

const server = net.createServer((s) => s.resume()).listen(0, '127.0.0.1')
await once(server, 'listening')
const url = `tcp://127.0.0.1:${server.address().port}`
// The defaults, then the connection upkeep all off, then all on: the
// upkeep must cost nothing on the hit path.
const pools = {
  defaults: new Pool(),
  'upkeep off': new Pool({ learnIdleTimeout: false, spreadAddresses: false }),
  'all upkeep on': new Pool({ circuitBreaker: { failures: 5, cooldownMs: 1000 }, minIdlePerHost: 1 }),
}
const runs = Object.fromEntries(Object.keys(pools).map((name) => [name, []]))
for (const pool of Object.values(pools)) pool.release(await pool.acquire(url))

for (let run = 0; run < 8; run++) {
  for (const [name, pool] of Object.entries(pools)) {
    const n = 100_000
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < n; i++) pool.release(await pool.acquire(url))
    const ns = Number(process.hrtime.bigint() - t0) / n
    if (run > 0) runs[name].push(ns) // the first run is warm-up
    process.stderr.write(`  run ${run} ${name}: ${ns.toFixed(0)} ns\n`)
  }
}
for (const [name, ns] of Object.entries(runs)) {
  console.log(`acquire + release from JS (idle hit), ${name}: median ${median(ns).toFixed(0)} ns, min ${Math.min(...ns).toFixed(0)} ns`)
}
await Promise.all(Object.values(pools).map((pool) => pool.shutdownAll()))
server.close()
