// Load generation: `concurrency` loops each sending one request at a time
// for `durationMs`, recording every latency.

/** Run the load; returns { requests, seconds, rps, p50, p99 } (latencies in µs). */
export async function measure(request, { concurrency, durationMs }) {
  const latencies = []
  const deadline = performance.now() + durationMs
  let errors = 0
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
  latencies.sort((a, b) => a - b)
  const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN
  return { requests: latencies.length, errors, seconds, rps: latencies.length / seconds, p50: at(0.5), p99: at(0.99) }
}

/** Time `count` sequential requests; returns milliseconds. */
export async function sequential(request, count) {
  const t0 = performance.now()
  for (let i = 0; i < count; i++) await request()
  return performance.now() - t0
}

export function median(values) {
  const s = [...values].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2
}
