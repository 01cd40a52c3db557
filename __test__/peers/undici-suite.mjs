#!/usr/bin/env node
// Runs undici's own tests against pconn, file by file, and prints the counts.
//
//   node __test__/peers/undici-suite.mjs --undici DIR [--mode fetch|agent] [--out FILE]
//                                        [--timeout SECONDS] [FILE...]
//
// DIR is a checkout of nodejs/undici at a v7 tag (git clone --branch v7.29.0
// https://github.com/nodejs/undici). It needs no `npm install`: the two
// packages its fetch tests require (and `ws`, for its WebSocket tests) are
// installed once into DIR/.pconn-deps.
//
// --mode fetch (default): undici's `fetch` export (what `require('../..')`
//   gives the tests) is pconn's `fetch`, and so is `globalThis.fetch`.
// --mode agent: pconn's Agent (`pconn/undici`) is the global dispatcher, so
//   undici's fetch and request() without a `dispatcher` go through pconn.
//
// --timeout: how long one file may run (default 120 s); a test whose server
//   never answers waits for pconn's 300 s headers timeout, so a file that
//   hangs is cut short and counted as such.
// FILEs are relative to DIR (default: test/fetch/*.js). Tests that make
// their own Client, Pool or Agent exercise undici, not pconn, whatever the
// mode; the README's record says which results mean something.
//
// Not part of `npm test`: it needs undici's sources, which CI does not fetch.
import { execFile, execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const argv = process.argv.slice(2)
const option = (name, fallback) => {
  const i = argv.indexOf(name)
  if (i < 0) return fallback
  const value = argv[i + 1]
  argv.splice(i, 2)
  return value
}
const undiciDir = option('--undici')
const mode = option('--mode', 'fetch')
const outFile = option('--out')
const fileTimeoutMs = Number(option('--timeout', '120')) * 1000
if (undiciDir === undefined || !existsSync(join(undiciDir, 'lib', 'web', 'fetch'))) {
  console.error('usage: node __test__/peers/undici-suite.mjs --undici DIR [--mode fetch|agent] [--out FILE] [FILE...]\nDIR: a checkout of nodejs/undici at a v7 tag.')
  process.exit(2)
}
if (mode !== 'fetch' && mode !== 'agent') {
  console.error(`--mode is fetch or agent, not ${mode}`)
  process.exit(2)
}
const root = resolve(undiciDir)
const here = fileURLToPath(new URL('.', import.meta.url))
const pconnRoot = resolve(here, '..', '..')
if (!existsSync(join(pconnRoot, 'dist', 'index.js'))) {
  console.error('pconn is not built: run npm run build first.')
  process.exit(2)
}

// The packages undici's fetch and request tests require beyond undici itself.
const deps = join(root, '.pconn-deps')
const packages = ['@metcoder95/https-pem@1', '@sinonjs/fake-timers@12', '@matteo.collina/tspl@0.2', 'abort-controller@3', 'ws@8']
if (!existsSync(join(deps, 'node_modules', 'abort-controller')) || !existsSync(join(deps, 'node_modules', 'ws'))) {
  mkdirSync(deps, { recursive: true })
  console.log('installing the tests\' own dependencies into', deps)
  execFileSync('npm', ['install', '--prefix', deps, '--no-save', '--no-audit', '--no-fund', ...packages], { stdio: 'inherit' })
}

const files = argv.length > 0 ? argv : readdirSync(join(root, 'test', 'fetch')).filter((f) => f.endsWith('.js')).map((f) => `test/fetch/${f}`)
const preload = join(here, 'undici-preload.cjs')
const env = {
  ...process.env,
  NODE_PATH: join(deps, 'node_modules'),
  PCONN_SUITE_MODE: mode,
  PCONN_SUITE_UNDICI: root,
  PCONN_SUITE_PCONN: pconnRoot,
}

/** Run one file under node:test; its TAP summary's counts. */
function runFile(file) {
  return new Promise((done) => {
    const started = Date.now()
    execFile(
      process.execPath,
      ['--expose-gc', '--require', preload, '--test', '--test-reporter=tap', '--test-concurrency=1', file],
      { cwd: root, env, timeout: fileTimeoutMs, maxBuffer: 64 << 20 },
      (err, stdout) => {
        const count = (name) => Number(stdout.match(new RegExp(`^# ${name} (\\d+)$`, 'm'))?.[1] ?? 0)
        const failed = [...stdout.matchAll(/^\s*not ok \d+ - (.*)$/gm)].map((m) => m[1]).filter((name) => !name.endsWith('.js'))
        done({
          file,
          pass: count('pass'),
          fail: count('fail'),
          skipped: count('skipped') + count('todo'),
          failed,
          timedOut: err?.killed === true,
          ms: Date.now() - started,
        })
      },
    )
  })
}

const results = []
for (const [i, file] of files.entries()) {
  const r = await runFile(file)
  results.push(r)
  const note = r.timedOut ? ' (timed out)' : ''
  console.log(`[${i + 1}/${files.length}] ${file}: ${r.pass} passed, ${r.fail} failed, ${r.skipped} skipped${note}`)
  for (const name of r.failed) console.log(`    not ok: ${name}`)
}
const total = (k) => results.reduce((sum, r) => sum + r[k], 0)
const undiciVersion = execFileSync('git', ['describe', '--tags'], { cwd: root, encoding: 'utf8' }).trim()
console.log(`\nundici ${undiciVersion}, mode ${mode}, node ${process.version}: ${results.length} files, ${total('pass')} tests passed, ${total('fail')} failed, ${total('skipped')} skipped`)
if (outFile !== undefined) writeFileSync(outFile, JSON.stringify({ undici: undiciVersion, mode, node: process.version, results }, null, 2))
