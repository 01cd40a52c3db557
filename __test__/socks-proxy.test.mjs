// SOCKS5 proxies (socks5:// and socks5h://, with or without credentials),
// against a SOCKS5 server written for the test that records what it was asked.
import test from 'ava'
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import { once } from 'node:events'
import { Pool } from '../dist/index.js'
import { makeSelfSigned } from './helpers/certs.mjs'
import { useServer, usePool } from './helpers/servers.mjs'

/** Read exactly `n` bytes from a paused socket. */
async function take(socket, n) {
  for (;;) {
    const chunk = socket.read(n)
    if (chunk !== null) return chunk
    await once(socket, 'readable')
  }
}

/**
 * A SOCKS5 server: no authentication, or user name and password when
 * `auth` is given; CONNECT only; `refuse` answers every connect with that
 * reply code. Records each connect's address type, host, port and user.
 */
async function socksServer({ auth, refuse } = {}) {
  const seen = { connects: [] }
  const server = net.createServer(async (client) => {
    client.on('error', () => {})
    client.pause()
    try {
      const [, count] = await take(client, 2)
      const methods = [...(await take(client, count))]
      const method = auth ? 2 : 0
      if (!methods.includes(method)) return client.end(Buffer.from([5, 0xff]))
      client.write(Buffer.from([5, method]))
      let user
      if (auth) {
        const [, ulen] = await take(client, 2)
        user = String(await take(client, ulen))
        const [plen] = await take(client, 1)
        const pass = String(await take(client, plen))
        const ok = user === auth.user && pass === auth.pass
        client.write(Buffer.from([1, ok ? 0 : 1]))
        if (!ok) return client.end()
      }
      const [, cmd, , atyp] = await take(client, 4)
      let host
      if (atyp === 1) host = [...(await take(client, 4))].join('.')
      else if (atyp === 3) host = String(await take(client, (await take(client, 1))[0]))
      else host = 'ipv6'
      const port = (await take(client, 2)).readUInt16BE(0)
      seen.connects.push({ cmd, atyp, host, port, user })
      if (refuse) return client.end(Buffer.from([5, refuse, 0, 1, 0, 0, 0, 0, 0, 0]))
      const upstream = net.connect(port, atyp === 3 && host === 'localhost' ? '127.0.0.1' : host)
      upstream.on('error', () => client.destroy())
      await once(upstream, 'connect')
      client.write(Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0, 0]))
      client.pipe(upstream).pipe(client)
      client.resume()
    } catch {
      client.destroy()
    }
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return Object.assign(seen, {
    port: server.address().port,
    async close() {
      server.close()
    },
  })
}

async function webServer(tls) {
  const server = tls ? https.createServer(tls, (req, res) => res.end(`tls ${req.url}`)) : http.createServer((req, res) => res.end(`plain ${req.url}`))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { port: server.address().port, close: async () => { server.closeAllConnections(); server.close() } }
}

test('socks5h:// sends the host name with the URL’s credentials; socks5:// resolves it first', async (t) => {
  const web = await useServer(t, webServer)
  const socks = await useServer(t, socksServer, { auth: { user: 'me', pass: 's3cret' } })
  const remote = usePool(t, Pool, { proxy: `socks5h://me:s3cret@127.0.0.1:${socks.port}` })
  t.is(await (await remote.request(`http://localhost:${web.port}/a`)).body.text(), 'plain /a')
  const plain = await useServer(t, socksServer)
  const local = usePool(t, Pool, { proxy: `socks5://127.0.0.1:${plain.port}` })
  t.is(await (await local.request(`http://localhost:${web.port}/b`)).body.text(), 'plain /b')
  t.like(socks.connects[0], { cmd: 1, atyp: 3, host: 'localhost', port: web.port, user: 'me' })
  t.like(plain.connects[0], { cmd: 1, atyp: 1, host: '127.0.0.1', port: web.port })
  t.true(Object.keys(remote.stats().hosts).some((k) => k.includes(`proxy=socks5h://127.0.0.1:${socks.port}`)))
})

test.serial('HTTPS through a SOCKS5 proxy: TLS end to end; proxy: env reads socks5h:// from HTTP_PROXY', async (t) => {
  const tls = makeSelfSigned(['localhost'])
  const web = await useServer(t, webServer, tls)
  const socks = await useServer(t, socksServer)
  const pool = usePool(t, Pool, { proxy: `socks5h://127.0.0.1:${socks.port}`, tls: { ca: tls.cert } })
  t.is(await (await pool.request(`https://localhost:${web.port}/s`)).body.text(), 'tls /s')
  const saved = process.env.HTTP_PROXY
  process.env.HTTP_PROXY = `socks5h://127.0.0.1:${socks.port}`
  t.teardown(() => (saved === undefined ? delete process.env.HTTP_PROXY : (process.env.HTTP_PROXY = saved)))
  const plainWeb = await useServer(t, webServer)
  const fromEnv = usePool(t, Pool, { proxy: 'env' })
  t.is(await (await fromEnv.request(`http://localhost:${plainWeb.port}/e`)).body.text(), 'plain /e')
  t.is(socks.connects.length, 2)
})

test.serial('a refusal is PCONN_PROXY saying why; bad credentials, and a proxy variable that is no proxy URL is named', async (t) => {
  const refusing = await useServer(t, socksServer, { refuse: 5 })
  const pool = usePool(t, Pool, { proxy: `socks5h://127.0.0.1:${refusing.port}` })
  const err = await t.throwsAsync(pool.request('http://localhost:9/'), { code: 'PCONN_PROXY' })
  t.regex(err.message, /refused the SOCKS5 connect to localhost:9: connection refused by the target/)
  t.is(pool.stats().connections, 0)
  const strict = await useServer(t, socksServer, { auth: { user: 'me', pass: 'right' } })
  const wrong = usePool(t, Pool, { proxy: `socks5h://me:wrong@127.0.0.1:${strict.port}` })
  await t.throwsAsync(wrong.request('http://localhost:9/'), { code: 'PCONN_PROXY', message: /refused the user name or password/ })
  const saved = process.env.HTTPS_PROXY
  process.env.HTTPS_PROXY = 'ftp://proxy.example:21'
  t.teardown(() => (saved === undefined ? delete process.env.HTTPS_PROXY : (process.env.HTTPS_PROXY = saved)))
  t.throws(() => new Pool({ proxy: 'env' }), { code: 'ERR_INVALID_ARG_VALUE', message: /^HTTPS_PROXY: invalid proxy URL: ftp:\/\/ is not a proxy scheme/ })
})
