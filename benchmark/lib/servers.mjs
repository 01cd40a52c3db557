// The loopback servers every contestant is measured against, in their own
// processes: nginx when it is installed (one worker, real headers), else
// the workspace's own Tokio server (src-rs/bench-server). Both answer
// `GET /` with a small body and `GET /64k` with 64 KiB, over HTTP and HTTPS
// with a self-signed certificate made the common way (`openssl req -x509`).
// HTTP/2 runs against nginx (`ssl http2`, when nginx is used) and a
// node:http2 server (always).
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const SMALL_BODY = 'hello, world\n' // 13 bytes, like the nginx measurements

/** Whether a command is on the PATH (nginx, wrk). */
export function installed(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0
}

/**
 * The bench server binary: the release build, else the one `npm test`
 * builds (profile `ci`); built in release if neither exists. Built for the
 * host target, as the addon is, so both share one dependency build.
 */
export function ensureBenchServer(log) {
  const host = execFileSync('rustc', ['--print', 'host-tuple'], { encoding: 'utf8' }).trim()
  const binary = (profile) => join(root, 'target', host, profile, 'pconn-bench-server')
  const found = ['release', 'ci'].map(binary).find((path) => existsSync(path))
  if (found !== undefined) return found
  log('building the bench server (cargo build --release -p pconn-bench-server)…')
  execFileSync('cargo', ['build', '--release', '-p', 'pconn-bench-server', '--target', host], { cwd: root, stdio: 'inherit' })
  return binary('release')
}

/** A self-signed certificate for 127.0.0.1, as `openssl req -x509` makes it (CA:TRUE). */
function selfSigned(dir) {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')],
  { stdio: 'ignore' })
  return readFileSync(join(dir, 'cert.pem'))
}

async function freePort() {
  const server = net.createServer().listen(0, '127.0.0.1')
  await new Promise((r) => server.once('listening', r))
  const { port } = server.address()
  await new Promise((r) => server.close(r))
  return port
}

async function waitForPort(port, child) {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`)
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(s.end() && true)).on('error', () => resolve(false))
    })
    if (ok) return
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error(`nothing listens on ${port}`)
}

async function startNginx(dir) {
  mkdirSync(join(dir, 'html'))
  writeFileSync(join(dir, 'html', 'index.txt'), SMALL_BODY)
  writeFileSync(join(dir, 'html', '64k'), 'x'.repeat(64 * 1024))
  const [http, https, h2] = [await freePort(), await freePort(), await freePort()]
  const config = readFileSync(join(root, 'benchmark', 'nginx', 'nginx.conf'), 'utf8')
    .replaceAll('@DIR@', dir)
    .replaceAll('@HTTP_PORT@', String(http))
    .replaceAll('@HTTPS_PORT@', String(https))
    .replaceAll('@H2_PORT@', String(h2))
  writeFileSync(join(dir, 'nginx.conf'), config)
  const child = spawn('nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir], { stdio: 'ignore' })
  await waitForPort(http, child)
  await waitForPort(https, child)
  await waitForPort(h2, child)
  const version = spawnSync('nginx', ['-v'], { encoding: 'utf8' }).stderr.trim().replace('nginx version: ', '')
  return { http, https, h2, name: `${version} (1 worker)`, stop: () => child.kill() }
}

async function startBenchServer(dir, log) {
  const benchServer = ensureBenchServer(log)
  const one = async (tls) => {
    const args = ['--threads', '1']
    if (tls) args.push('--cert', join(dir, 'cert.pem'), '--key', join(dir, 'key.pem'))
    const child = spawn(benchServer, args, { stdio: ['ignore', 'pipe', 'inherit'] })
    const port = await new Promise((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`bench server exited with ${code}`)))
      createInterface({ input: child.stdout }).once('line', (line) => resolve(Number(line.split(' ')[1])))
    })
    return { port, child }
  }
  const [plain, secure] = [await one(false), await one(true)]
  return {
    http: plain.port,
    https: secure.port,
    name: 'pconn-bench-server (Tokio, 1 thread, rustls)',
    stop: () => {
      plain.child.kill()
      secure.child.kill()
    },
  }
}

/** The node:http2 server (benchmark/lib/http2-server.mjs) in a child process. */
async function startNodeHttp2(dir) {
  const script = join(root, 'benchmark', 'lib', 'http2-server.mjs')
  const child = spawn(process.execPath, [script, join(dir, 'cert.pem'), join(dir, 'key.pem')], { stdio: ['ignore', 'pipe', 'inherit'] })
  const port = await new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`node:http2 server exited with ${code}`)))
    createInterface({ input: child.stdout }).once('line', (line) => resolve(Number(line.split(' ')[1])))
  })
  return { port, stop: () => child.kill() }
}

/**
 * Start the servers: `kind` is 'nginx', 'bench', or 'auto' (nginx when
 * installed). Resolves with `{ http, https, h2, nodeH2, name, ca, stop() }`
 * (`h2`: nginx's HTTP/2 port, absent without nginx; `nodeH2`: node:http2's).
 */
export async function startServers(kind, log) {
  const useNginx = kind === 'nginx' || (kind === 'auto' && installed('nginx'))
  if (kind === 'nginx' && !installed('nginx')) throw new Error('--server nginx: nginx is not installed (apt-get install -y nginx)')
  const dir = mkdtempSync(join(tmpdir(), 'pconn-bench-'))
  // mkdtemp makes it 0700; nginx started as root serves files as its
  // unprivileged worker user, which must be able to read them (without
  // this every request got a 403 or 404).
  chmodSync(dir, 0o755)
  const ca = selfSigned(dir)
  const servers = useNginx ? await startNginx(dir) : await startBenchServer(dir, log)
  const nodeH2 = await startNodeHttp2(dir)
  return {
    ...servers,
    nodeH2: nodeH2.port,
    ca,
    stop() {
      servers.stop()
      nodeH2.stop()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
