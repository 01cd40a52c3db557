#!/usr/bin/env node
// Requests for counting system calls per request under strace:
//
//   strace -f -c -o out.txt node benchmark/syscalls.mjs CLIENT URL N
//
// CLIENT is `pconn` (pool.request + body.text()), `undici` (Pool.request)
// or `dispatch` (undici's Pool.dispatch); 16 concurrent loops make N
// requests after a warm-up of 1,000. Run once with N and once with 0 and
// divide the difference of the totals by N (BENCHMARKS.md shows the
// figures and the exact commands).
import { Pool as UndiciPool } from 'undici'
import { Pool } from '../dist/index.js'

const [client = 'pconn', url = 'http://127.0.0.1:8080/', count = '20000'] = process.argv.slice(2)
const concurrency = 16
const origin = new URL(url).origin
const path = new URL(url).pathname

function makeClient() {
  if (client === 'pconn') {
    const pool = new Pool({ maxConnectionsPerHost: concurrency })
    return { request: () => pool.request(url).then((r) => r.body.text()), close: () => pool.shutdownAll() }
  }
  const pool = new UndiciPool(origin, { connections: concurrency })
  if (client === 'undici') return { request: () => pool.request({ path, method: 'GET' }).then((r) => r.body.text()), close: () => pool.close() }
  if (client !== 'dispatch') throw new Error(`unknown client ${client}: pconn, undici or dispatch`)
  const request = () =>
    new Promise((resolve, reject) => {
      pool.dispatch({ origin, path, method: 'GET' }, {
        onConnect() {},
        onHeaders: () => true,
        onData: () => true,
        onComplete: resolve,
        onError: reject,
      })
    })
  return { request, close: () => pool.close() }
}

async function run(c, n) {
  let left = n
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (left-- > 0) await c.request()
  }))
}

const c = makeClient()
await run(c, 1000)
await run(c, Number(count))
await c.close()
