// Certificates made at test time with the openssl command line: a private
// CA, and leaf certificates signed by it for the names a test asks for.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

function openssl(dir, args) {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
}

/** A new CA: `{ cert, key }` as PEM strings. */
export function makeCa(name = 'pconn test CA') {
  const dir = mkdtempSync(join(tmpdir(), 'pconn-ca-'))
  try {
    openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
      '-subj', `/CN=${name}`, '-keyout', 'ca.key', '-out', 'ca.pem',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'])
    return { cert: readFileSync(join(dir, 'ca.pem'), 'utf8'), key: readFileSync(join(dir, 'ca.key'), 'utf8') }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** A leaf certificate for `names` (DNS names or IPs) signed by `ca`. */
export function makeLeaf(ca, names, { client = false } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'pconn-leaf-'))
  try {
    writeFileSync(join(dir, 'ca.pem'), ca.cert)
    writeFileSync(join(dir, 'ca.key'), ca.key)
    const san = names.map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',')
    writeFileSync(join(dir, 'ext.cnf'), [
      `subjectAltName=${san}`,
      'basicConstraints=CA:FALSE',
      `extendedKeyUsage=${client ? 'clientAuth' : 'serverAuth'}`,
    ].join('\n'))
    openssl(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-subj', `/CN=${names[0]}`, '-keyout', 'leaf.key', '-out', 'leaf.csr'])
    openssl(dir, ['x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
      '-days', '2', '-extfile', 'ext.cnf', '-out', 'leaf.pem'])
    return { cert: readFileSync(join(dir, 'leaf.pem'), 'utf8'), key: readFileSync(join(dir, 'leaf.key'), 'utf8') }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * A self-signed certificate for `names`, made the common way
 * (`openssl req -x509`, which marks it as a CA): `{ cert, key }`.
 */
export function makeSelfSigned(names) {
  const dir = mkdtempSync(join(tmpdir(), 'pconn-self-'))
  try {
    const san = names.map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',')
    openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
      '-subj', `/CN=${names[0]}`, '-addext', `subjectAltName=${san}`, '-keyout', 'key.pem', '-out', 'cert.pem'])
    return { cert: readFileSync(join(dir, 'cert.pem'), 'utf8'), key: readFileSync(join(dir, 'key.pem'), 'utf8') }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
