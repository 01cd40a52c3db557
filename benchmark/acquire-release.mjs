#!/usr/bin/env node
// The pool's hit path from JavaScript: `await pool.acquire(url)` of an idle
// connection plus `pool.release(conn)`, through the binding. Prints the
// median of 7 runs of 100,000 pairs.
import net from 'node:net'
import { once } from 'node:events'
import { Pool } from '../dist/index.js'
import { median } from './lib/measure.mjs'

const server = net.createServer((s) => s.resume()).listen(0, '127.0.0.1')
await once(server, 'listening')
const pool = new Pool()
const url = `tcp://127.0.0.1:${server.address().port}`
pool.release(await pool.acquire(url))

const runs = []
for (let run = 0; run < 8; run++) {
  const n = 100_000
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < n; i++) pool.release(await pool.acquire(url))
  const ns = Number(process.hrtime.bigint() - t0) / n
  if (run > 0) runs.push(ns) // the first run is warm-up
  process.stderr.write(`  run ${run}: ${ns.toFixed(0)} ns\n`)
}
console.log(`acquire + release from JS (idle hit): median ${median(runs).toFixed(0)} ns, min ${Math.min(...runs).toFixed(0)} ns`)
await pool.shutdownAll()
server.close()
