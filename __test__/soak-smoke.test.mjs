import test from 'ava'
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const soak = fileURLToPath(new URL('../benchmark/soak.mjs', import.meta.url))

test('a short soak (10,000 requests over 50 misbehaving servers) keeps every invariant', async (t) => {
  t.timeout(120_000)
  const stdout = await new Promise((resolve, reject) =>
    execFile(process.execPath, ['--expose-gc', soak, '--requests', '10000'], { timeout: 110_000 }, (err, so, se) =>
      err ? reject(new Error(`${err.message}\n${so}\n${se}`)) : resolve(so),
    ),
  )
  const report = JSON.parse(stdout)
  for (const [check, passed] of Object.entries(report.checks)) t.true(passed, check)
  t.true(report.outcomes['200'] > 8000)
  t.true(report.connections.reused > report.connections.created, 'connections were reused despite the faults')
  t.is(report.fds.after, report.fds.before)
})
