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
import { contestants } from './lib/contestants.mjs'

const [client = 'pconn', url = 'http://127.0.0.1:8080/', count = '20000'] = process.argv.slice(2)
const concurrency = 16
// The bench's own contestants, by their short names here.
const names = { pconn: 'pconn request', undici: 'undici request', dispatch: 'undici dispatch' }

function makeClient() {
  const contestant = contestants.find((c) => c.name === names[client])
  if (contestant === undefined) throw new Error(`unknown client ${client}: pconn, undici or dispatch`)
  return contestant.make({ url, connections: concurrency })
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
