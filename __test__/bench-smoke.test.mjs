import test from 'ava'
import { execFile } from 'node:child_process'
import { readFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const runner = fileURLToPath(new URL('../benchmark/run.mjs', import.meta.url))

test('npm run bench still runs: a short round prints the table and writes JSON and SVG', async (t) => {
  t.timeout(120_000)
  const out = mkdtempSync(join(tmpdir(), 'pconn-bench-smoke-'))
  t.teardown(() => rmSync(out, { recursive: true, force: true }))
  const stdout = await new Promise((resolve, reject) =>
    execFile(process.execPath, [runner, '--quick', '--out', out], { timeout: 110_000 }, (err, so, se) =>
      err ? reject(new Error(`${err.message}\n${se}`)) : resolve(so),
    ),
  )
  t.regex(stdout, /\| pconn request +\| [\d,]+/)
  t.regex(stdout, /vs undici dispatch/)
  t.regex(stdout, /CPU µs\/req JS/)
  const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'))
  const contestants = new Set(results.rows.map((r) => r.contestant))
  for (const name of ['pconn request', 'pconn raw', 'undici request', 'undici dispatch', 'node:http']) t.true(contestants.has(name), name)
  t.true(results.rows.every((r) => r.rps.median > 0 && r.errors === 0))
  // HTTPS ran against a self-signed certificate pinned with tls.ca.
  t.true(results.rows.some((r) => r.scenario.startsWith('HTTPS') && r.contestant === 'pconn request' && r.rps.median > 0))
  t.regex(readFileSync(join(out, 'chart.svg'), 'utf8'), /^<svg/)
})
