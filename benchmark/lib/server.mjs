// The loopback server every contestant is measured against: the workspace's
// own Tokio server (src-rs/bench-server), in a separate process.
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const binary = join(root, 'target', 'release', 'pconn-bench-server')

/** Build the server binary if it is missing (a release build, once). */
export function ensureServerBinary(log) {
  if (existsSync(binary)) return binary
  log('building the bench server (cargo build --release -p pconn-bench-server)…')
  execFileSync('cargo', ['build', '--release', '-p', 'pconn-bench-server'], { cwd: root, stdio: 'inherit' })
  return binary
}

/** A CA and a certificate for 127.0.0.1 made with the openssl CLI. */
export function makeCertificates() {
  const dir = mkdtempSync(join(tmpdir(), 'pconn-bench-'))
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  const openssl = (args) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' })
  openssl(['req', '-x509', ...ec, '-days', '1', '-subj', '/CN=pconn bench CA', '-keyout', 'ca.key', '-out', 'ca.pem'])
  openssl(['req', ...ec, '-subj', '/CN=127.0.0.1', '-keyout', 'key.pem', '-out', 'leaf.csr'])
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n')
  openssl(['x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', 'ext.cnf', '-out', 'cert.pem'])
  return {
    dir,
    ca: readFileSync(join(dir, 'ca.pem')),
    certPath: join(dir, 'cert.pem'),
    keyPath: join(dir, 'key.pem'),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  }
}

/** Start the server; resolves with its port and a stop function. */
export async function startServer({ tls } = {}) {
  const args = ['--threads', '1']
  if (tls) args.push('--cert', tls.certPath, '--key', tls.keyPath)
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  const lines = createInterface({ input: child.stdout })
  const port = await new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`bench server exited with ${code}`)))
    lines.once('line', (line) => resolve(Number(line.split(' ')[1])))
  })
  return {
    port,
    name: `pconn-bench-server (Tokio, 1 thread${tls ? ', rustls' : ''})`,
    stop: () => child.kill(),
  }
}
