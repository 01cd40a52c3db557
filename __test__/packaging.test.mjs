// The package as users get it: pack the main package and the linux-x64-gnu
// binary package, install both tarballs into a fresh project with cargo and
// rustc off the PATH, then make a real pooled request with require() and
// import(), and type-check a consumer with tsc.
import test from 'ava'
import { execFile } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import { packLocal } from '../npm/pack-local.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const binary = join(root, 'native', 'pconn.linux-x64-gnu.node')

/** PATH without any directory that holds cargo or rustc. */
function pathWithoutRust() {
  return process.env.PATH.split(delimiter)
    .filter((dir) => !existsSync(join(dir, 'cargo')) && !existsSync(join(dir, 'rustc')))
    .join(delimiter)
}

function run(cmd, args, options = {}) {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { timeout: 120_000, maxBuffer: 16 << 20, ...options }, (err, stdout, stderr) =>
      err ? reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`)) : resolve(stdout),
    ),
  )
}

const consumerCjs = `
const http = require('node:http')
const { Pool, request, shutdownAll } = require('pconn')
const server = http.createServer((req, res) => res.end('hello from ' + req.url))
server.listen(0, '127.0.0.1', async () => {
  const url = 'http://127.0.0.1:' + server.address().port
  const pool = new Pool()
  const a = await pool.request(url + '/cjs')
  const b = await pool.request(url + '/again')
  console.log(JSON.stringify({ status: a.statusCode, body: await a.body.text(), reused: b.reused, viaDefault: await (await request(url + '/d')).body.text() }))
  await b.body.dump()
  await pool.shutdownAll()
  await shutdownAll()
  server.close()
})
`

const consumerEsm = `
import http from 'node:http'
import { once } from 'node:events'
import pconnDefault, { Pool, PconnError } from 'pconn'
const server = http.createServer((req, res) => res.end('esm ' + req.url))
server.listen(0, '127.0.0.1')
await once(server, 'listening')
const pool = new Pool({ maxConnectionsPerHost: 2 })
const res = await pool.request('http://127.0.0.1:' + server.address().port + '/x')
console.log(JSON.stringify({ body: await res.body.text(), same: pconnDefault.Pool === Pool, error: typeof PconnError }))
await pool.shutdownAll()
server.close()
`

const consumerTs = `
import { Pool, request, type PoolOptions, type PoolStats, PconnError } from 'pconn'
const options: PoolOptions = { maxIdlePerHost: 8, scheduling: 'fifo', tls: { rejectUnauthorized: true } }
export async function main(): Promise<number> {
  const pool = new Pool(options)
  const res = await pool.request('http://127.0.0.1:1/', { method: 'GET', headers: { a: 'b' } })
  const text: string = await res.body.text()
  const conn = await pool.acquire({ scheme: 'tls', host: 'db', port: 5433 })
  pool.release(conn, true)
  const stats: PoolStats = pool.stats()
  const err = new PconnError('PCONN_TLS', 'x')
  void request
  return text.length + stats.closedBy.idle + err.code.length
}
`

// pconn/undici, the subpath whose peer dependency (undici) the app installs itself.
const consumerUndiciCjs = `
const http = require('node:http')
const { Agent } = require('pconn/undici')
const { request } = require('undici')
const server = http.createServer((req, res) => res.end('undici ' + req.url))
server.listen(0, '127.0.0.1', async () => {
  const url = 'http://127.0.0.1:' + server.address().port
  const agent = new Agent({ maxConnectionsPerHost: 2 })
  const a = await request(url + '/request', { dispatcher: agent })
  const b = await fetch(url + '/fetch', { dispatcher: agent })
  console.log(JSON.stringify({ a: await a.body.text(), b: await b.text(), created: agent.pool.stats().created }))
  await agent.close()
  server.close()
})
`

const consumerUndiciEsm = `
import http from 'node:http'
import { once } from 'node:events'
import { createRequire } from 'node:module'
import entry, { Agent } from 'pconn/undici'
import { Dispatcher } from 'undici'
const server = http.createServer((req, res) => res.end('esm ' + req.url))
server.listen(0, '127.0.0.1')
await once(server, 'listening')
const agent = new Agent()
const res = await fetch('http://127.0.0.1:' + server.address().port + '/x', { dispatcher: agent })
console.log(JSON.stringify({
  body: await res.text(),
  same: createRequire(import.meta.url)('pconn/undici').Agent === Agent && entry.Agent === Agent,
  dispatcher: agent instanceof Dispatcher,
}))
await agent.close()
server.close()
`

const consumerUndiciTs = `
import { Agent, type AgentOptions } from 'pconn/undici'
import { Pool } from 'pconn'
import { request, interceptors, type Dispatcher } from 'undici'
const options: AgentOptions = { maxConnectionsPerHost: 4, headersTimeout: 1000, bodyTimeout: 0, connect: { socketPath: '/tmp/x.sock' } }
export async function main(): Promise<string> {
  const agent = new Agent(options)
  const shared = new Agent({ pool: new Pool() })
  const composed: Dispatcher = agent.compose(interceptors.retry())
  const res = await request('http://x/', { dispatcher: composed })
  await shared.destroy()
  await agent.close()
  const closed: boolean = agent.closed && agent.destroyed
  return (await res.body.text()) + String(closed) + String(shared.pool.closed)
}
`

test.serial('npm install of the packed tarballs works without Rust: require, import and types', async (t) => {
  t.timeout(300_000)
  t.true(existsSync(binary), 'the release binary is built (npm run build)')
  const work = mkdtempSync(join(tmpdir(), 'pconn-pack-'))
  t.teardown(() => rmSync(work, { recursive: true, force: true }))

  packLocal(work)
  const tarballs = readdirSync(work).filter((f) => f.endsWith('.tgz'))
  t.deepEqual(tarballs.sort(), [`pconn-${pkg.version}.tgz`, `pconn-linux-x64-gnu-${pkg.version}.tgz`])

  const listing = await run('tar', ['-tzf', join(work, `pconn-${pkg.version}.tgz`)])
  t.false(/\.node$/m.test(listing), 'the main package ships no binary')
  t.false(/src-rs|__test__|\.rs$/m.test(listing), 'the main package ships no sources or tests')
  t.regex(listing, /package\/esm\/index\.mjs/)
  t.regex(listing, /package\/esm\/undici\.mjs/)
  t.regex(listing, /package\/dist\/undici\/index\.js/)
  t.regex(listing, /package\/dist\/undici\/index\.d\.ts/)

  const app = join(work, 'app')
  mkdirSync(app)
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }))
  const env = { ...process.env, PATH: pathWithoutRust(), npm_config_offline: 'true' }
  await t.throwsAsync(run('cargo', ['--version'], { env }), undefined, 'cargo is really gone from PATH')
  await run('npm', ['install', '--no-audit', '--no-fund', '--offline', join(work, `pconn-${pkg.version}.tgz`), join(work, `pconn-linux-x64-gnu-${pkg.version}.tgz`)], { cwd: app, env })

  writeFileSync(join(app, 'cjs.js'), consumerCjs)
  writeFileSync(join(app, 'esm.mjs'), consumerEsm)
  const cjs = JSON.parse(await run(process.execPath, ['cjs.js'], { cwd: app, env }))
  t.deepEqual(cjs, { status: 200, body: 'hello from /cjs', reused: true, viaDefault: 'hello from /d' })
  const esm = JSON.parse(await run(process.execPath, ['esm.mjs'], { cwd: app, env }))
  t.deepEqual(esm, { body: 'esm /x', same: true, error: 'function' })

  // undici is an optional peer of pconn/undici only: pconn installs and runs
  // without it, and pconn/undici says what is missing...
  t.false(existsSync(join(app, 'node_modules', 'undici')), 'installing pconn does not install undici')
  const missing = await t.throwsAsync(run(process.execPath, ['-e', "require('pconn/undici')"], { cwd: app, env }))
  t.regex(missing.message, /needs the 'undici' package/)
  // ...and once the app has undici (the copy this repository tests with), the subpath works from both module systems.
  await run('cp', ['-r', join(root, 'node_modules', 'undici'), join(app, 'node_modules', 'undici')])
  writeFileSync(join(app, 'undici-cjs.js'), consumerUndiciCjs)
  writeFileSync(join(app, 'undici-esm.mjs'), consumerUndiciEsm)
  const viaUndici = JSON.parse(await run(process.execPath, ['undici-cjs.js'], { cwd: app, env }))
  t.deepEqual(viaUndici, { a: 'undici /request', b: 'undici /fetch', created: 1 })
  const viaUndiciEsm = JSON.parse(await run(process.execPath, ['undici-esm.mjs'], { cwd: app, env }))
  t.deepEqual(viaUndiciEsm, { body: 'esm /x', same: true, dispatcher: true })

  writeFileSync(join(app, 'consumer.ts'), consumerTs)
  writeFileSync(join(app, 'consumer.mts'), consumerTs)
  writeFileSync(join(app, 'undici-consumer.ts'), consumerUndiciTs)
  writeFileSync(join(app, 'undici-consumer.mts'), consumerUndiciTs)
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', types: ['node'], typeRoots: [join(root, 'node_modules', '@types')], skipLibCheck: false },
      files: ['consumer.ts', 'consumer.mts', 'undici-consumer.ts', 'undici-consumer.mts'],
    }),
  )
  await run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: app, env })
})

test('without a matching binary the loader throws one clear error that says what to do', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'pconn-nobin-'))
  t.teardown(() => rmSync(work, { recursive: true, force: true }))
  for (const dir of ['dist', 'native']) mkdirSync(join(work, dir))
  await run('cp', ['-r', join(root, 'dist'), work])
  copyFileSync(join(root, 'native', 'index.js'), join(work, 'native', 'index.js'))
  const err = await t.throwsAsync(run(process.execPath, ['-e', `require(${JSON.stringify(join(work, 'dist', 'index.js'))})`]))
  t.regex(err.message, /no native binding could be loaded for linux-x64-gnu/)
  t.regex(err.message, /pconn-linux-x64-gnu/)
  t.regex(err.message, /npm run build/)
})

const workflow = (name) => parse(readFileSync(join(root, '.github', 'workflows', name), 'utf8'))

test('the shared build workflow is valid YAML and builds every target in package.json', (t) => {
  const build = workflow('build.yml')
  t.deepEqual(Object.keys(build.on), ['workflow_call'])
  const matrix = build.jobs.build.strategy.matrix.settings
  t.deepEqual(matrix.map((m) => m.target).sort(), [...pkg.napi.targets].sort())
  for (const m of matrix) t.true(m.build.includes(`--target ${m.target}`), m.target)
  t.is(build.env.NODE_VERSION, '20')
})

test('CI runs lint and the test suite on every push and pull request, and builds every target', (t) => {
  const ci = workflow('ci.yml')
  t.truthy(ci.on.push)
  t.true('pull_request' in ci.on)
  const steps = ci.jobs.test.steps.map((s) => s.run ?? '').join('\n')
  t.regex(steps, /npm run lint/)
  t.regex(steps, /bash \.ci\/run/)
  t.is(ci.jobs.test['runs-on'], 'ubuntu-latest')
  t.is(ci.jobs.build.uses, './.github/workflows/build.yml')
  t.is(ci.env.NODE_VERSION, '20')
})

test('the release workflow builds with the shared workflow, tests, then publishes', (t) => {
  const release = workflow('release.yml')
  t.deepEqual(release.on.push.tags, ['v*'])
  t.is(release.jobs.build.uses, './.github/workflows/build.yml')
  const publish = release.jobs.publish.steps.map((s) => s.run ?? '').join('\n')
  t.regex(publish, /napi prepublish/)
  t.regex(publish, /napi artifacts/)
  t.deepEqual(release.jobs.publish.needs, ['build', 'test'])
  t.is(release.env.NODE_VERSION, '20')
  const platform = JSON.parse(readFileSync(join(root, 'npm', 'linux-x64-gnu', 'package.json'), 'utf8'))
  t.is(platform.version, pkg.version)
  t.is(platform.name, `${pkg.napi.packageName}-linux-x64-gnu`)
  t.is(platform.main, `${pkg.napi.binaryName}.linux-x64-gnu.node`)
  t.deepEqual(platform.repository, pkg.repository, 'provenance needs the same repository')
})

test('package.json says where the project lives; shipped JavaScript has its source maps', (t) => {
  for (const field of ['repository', 'homepage', 'bugs']) t.truthy(pkg[field], field)
  t.true(pkg.files.includes('dist/**/*.js.map'))
  const js = readFileSync(join(root, 'dist', 'index.js'), 'utf8')
  const mapName = /sourceMappingURL=(\S+)/.exec(js)?.[1]
  t.truthy(mapName)
  const map = JSON.parse(readFileSync(join(root, 'dist', mapName), 'utf8'))
  t.true(map.sourcesContent?.length > 0, 'the sources are inside the map (src-ts is not shipped)')
  const types = readFileSync(join(root, 'dist', 'pool.d.ts'), 'utf8')
  t.false(/\bnative\b|resolveKey|acquireKey|debugPanic/.test(types), '@internal members are stripped from the types')
  t.false(/DESIGN\.md/.test(types))
})

test('the ES module entries name every export of the CommonJS builds', async (t) => {
  for (const [esmPath, cjsPath] of [
    ['../esm/index.mjs', '../dist/index.js'],
    ['../esm/undici.mjs', '../dist/undici/index.js'],
  ]) {
    const esm = await import(esmPath)
    const cjs = (await import(cjsPath)).default
    const missing = Object.keys(cjs).filter((name) => name !== '__esModule' && esm[name] !== cjs[name])
    t.deepEqual(missing, [], `${esmPath} lacks these`)
  }
})
