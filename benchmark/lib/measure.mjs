// Load generation: `concurrency` loops each sending one request at a time
// for `durationMs`, recording every latency, and the CPU time each thread
// of this process spent meanwhile (from /proc/self/task/*/stat on Linux).
import { readdirSync, readFileSync } from 'node:fs'

const TICKS_PER_SECOND = 100 // USER_HZ on Linux

/** CPU seconds per thread id, or undefined where /proc is not available. */
function threadCpu() {
  try {
    const out = new Map()
    for (const tid of readdirSync('/proc/self/task')) {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      out.set(tid, (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND)
    }
    return out
  } catch {
    return undefined
  }
}

/**
 * CPU µs per request on the JavaScript thread (this process's main thread)
 * and on all its other threads (pconn's I/O thread, V8's helpers, libuv's
 * pool), between two `threadCpu()` readings.
 */
function cpuPerRequest(before, after, requests) {
  if (before === undefined || after === undefined || requests === 0) return { js: NaN, other: NaN }
  let js = 0
  let other = 0
  for (const [tid, cpu] of after) {
    const spent = cpu - (before.get(tid) ?? 0)
    if (tid === String(process.pid)) js += spent
    else other += spent
  }
  return { js: (js * 1e6) / requests, other: (other * 1e6) / requests }
}

/** Run the load; returns { requests, errors, seconds, rps, p50, p99, cpu: { js, other } } (latencies and CPU in µs). */
export async function measure(request, { concurrency, durationMs }) {
  const latencies = []
  const deadline = performance.now() + durationMs
  let errors = 0
  const cpuBefore = threadCpu()
  const started = performance.now()
  async function loop() {
    while (performance.now() < deadline) {
      const t0 = performance.now()
      try {
        await request()
        latencies.push((performance.now() - t0) * 1000)
      } catch {
        errors++
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, loop))
  const seconds = (performance.now() - started) / 1000
  const cpu = cpuPerRequest(cpuBefore, threadCpu(), latencies.length)
  latencies.sort((a, b) => a - b)
  const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN
  return { requests: latencies.length, errors, seconds, rps: latencies.length / seconds, p50: at(0.5), p99: at(0.99), cpu }
}

/** Time `count` sequential requests; returns milliseconds. */
export async function sequential(request, count) {
  const t0 = performance.now()
  for (let i = 0; i < count; i++) await request()
  return performance.now() - t0
}

export function median(values) {
  const s = [...values].filter(Number.isFinite).sort((a, b) => a - b)
  if (s.length === 0) return NaN
  const mid = s.length >> 1
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2
}
