#!/usr/bin/env node
// `npm run pack:local [-- DIR]`: the two tarballs an app needs to install
// a local build of pconn, as a release publishes them: the platform package
// holding this machine's binary (from `native/`, so build first), and the
// main package with that platform package as its optional dependency.
// Then, in the app: `npm install DIR/pconn-<v>.tgz DIR/pconn-<platform>-<v>.tgz`.
import { execFileSync } from 'node:child_process'
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))

/** Pack the main and platform packages into `out`; their file names. */
export function packLocal(out) {
  const binaries = readdirSync(join(root, 'native')).filter((f) => f.endsWith('.node'))
  if (binaries.length !== 1) {
    throw new Error(`expected one built binary in native/, found ${binaries.length}: run \`npm run build\` first`)
  }
  const binary = binaries[0]
  const platform = binary.slice(`${pkg.napi.binaryName}.`.length, -'.node'.length)
  const platformDir = join(root, 'npm', platform)
  if (!existsSync(platformDir)) throw new Error(`no platform package for ${platform} in npm/`)
  mkdirSync(out, { recursive: true })
  const work = mkdtempSync(join(tmpdir(), 'pconn-pack-'))
  try {
    const staged = join(work, 'platform')
    mkdirSync(staged)
    for (const f of ['package.json', 'README.md']) copyFileSync(join(platformDir, f), join(staged, f))
    copyFileSync(join(root, 'native', binary), join(staged, binary))
    execFileSync('npm', ['pack', '--silent', '--pack-destination', out], { cwd: staged })
    // The main package as `napi prepublish` leaves it at release time: the
    // platform package wired in as an optional dependency.
    const main = join(work, 'main')
    mkdirSync(main)
    for (const entry of ['dist', 'esm', 'native', 'README.md', 'CHANGELOG.md', 'LICENSE']) {
      cpSync(join(root, entry), join(main, entry), { recursive: true })
    }
    const published = { ...pkg, optionalDependencies: { [`${pkg.napi.packageName}-${platform}`]: pkg.version } }
    delete published.scripts
    writeFileSync(join(main, 'package.json'), JSON.stringify(published, null, 2))
    execFileSync('npm', ['pack', '--silent', '--pack-destination', out], { cwd: main })
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
  return [`${pkg.name}-${pkg.version}.tgz`, `${pkg.napi.packageName}-${platform}-${pkg.version}.tgz`]
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = resolve(process.argv[2] ?? join(root, 'packed'))
  const files = packLocal(out)
  console.log(`Packed into ${out}:\n  ${files.join('\n  ')}\nInstall both in your app:\n  npm install ${files.map((f) => join(out, f)).join(' ')}`)
}
