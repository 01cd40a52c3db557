// https:// proxies: TLS to the proxy, CONNECT inside it, and for https
// targets TLS to the target inside that (TLS in TLS), against a proxy built
// on node:https that records the tunnels it opened.
import test from 'ava'
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import { once } from 'node:events'
import { Pool } from '../dist/index.js'
import { makeCa, makeLeaf } from './helpers/certs.mjs'
import { useServer, usePool } from './helpers/servers.mjs'

const ca = makeCa()
const proxyCert = makeLeaf(ca, ['127.0.0.1'])
const targetCert = makeLeaf(ca, ['localhost'])

/** An HTTPS proxy: CONNECT tunnels, recorded with their Proxy-Authorization. */
async function httpsProxy() {
  const seen = { tunnels: [], sockets: new Set() }
  const server = https.createServer(proxyCert, (req, res) => res.writeHead(405).end())
  server.on('connect', (req, socket, head) => {
    seen.tunnels.push({ target: req.url, authorization: req.headers['proxy-authorization'] })
    seen.sockets.add(socket)
    socket.on('error', () => {})
    const [host, port] = req.url.split(':')
    const upstream = net.connect(Number(port), host === 'localhost' ? '127.0.0.1' : host, () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n')
      if (head.length > 0) upstream.write(head)
      socket.pipe(upstream).pipe(socket)
    })
    upstream.on('error', () => socket.destroy())
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return Object.assign(seen, {
    url: `https://127.0.0.1:${server.address().port}`,
    async close() {
      for (const s of seen.sockets) s.destroy()
      server.close()
    },
  })
}

async function webServer(tls) {
  const seen = { connections: 0 }
  const server = tls ? https.createServer(tls, (req, res) => res.end(`tls ${req.url}`)) : http.createServer((req, res) => res.end(`plain ${req.url}`))
  server.on(tls ? 'secureConnection' : 'connection', () => seen.connections++)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return Object.assign(seen, { port: server.address().port, close: async () => { server.closeAllConnections(); server.close() } })
}

test('an http target through an https:// proxy, with the URL’s credentials', async (t) => {
  const proxy = await useServer(t, httpsProxy)
  const web = await useServer(t, webServer)
  const withUser = proxy.url.replace('https://', 'https://me:pw@')
  const pool = usePool(t, Pool, { proxy: withUser, tls: { ca: ca.cert } })
  t.is(await (await pool.request(`http://localhost:${web.port}/a`)).body.text(), 'plain /a')
  t.is(await (await pool.request(`http://localhost:${web.port}/b`)).body.text(), 'plain /b')
  t.deepEqual(proxy.tunnels, [{ target: `localhost:${web.port}`, authorization: `Basic ${Buffer.from('me:pw').toString('base64')}` }])
  t.is(web.connections, 1, 'the tunnel is reused')
})

test.serial('an https target through an https:// proxy: TLS inside TLS, end to end; HTTPS_PROXY=https:// works too', async (t) => {
  const proxy = await useServer(t, httpsProxy)
  const web = await useServer(t, webServer, targetCert)
  const pool = usePool(t, Pool, { proxy: proxy.url, tls: { ca: ca.cert } })
  for (const path of ['/x', '/y']) t.is(await (await pool.request(`https://localhost:${web.port}${path}`)).body.text(), `tls ${path}`)
  t.is(web.connections, 1)
  const saved = process.env.HTTPS_PROXY
  process.env.HTTPS_PROXY = proxy.url
  t.teardown(() => (saved === undefined ? delete process.env.HTTPS_PROXY : (process.env.HTTPS_PROXY = saved)))
  const fromEnv = usePool(t, Pool, { proxy: 'env', tls: { ca: ca.cert } })
  t.is(await (await fromEnv.request(`https://localhost:${web.port}/env`)).body.text(), 'tls /env')
  t.is(proxy.tunnels.length, 2)
})

test('a proxy whose certificate is not trusted fails with PCONN_TLS, naming the proxy’s certificate', async (t) => {
  const proxy = await useServer(t, httpsProxy)
  const pool = usePool(t, Pool, { proxy: proxy.url })
  const err = await t.throwsAsync(pool.request('http://localhost:9/'), { code: 'PCONN_TLS' })
  t.true(err.message.includes('CN=127.0.0.1'), err.message)
  t.is(proxy.tunnels.length, 0)
  t.is(pool.stats().connections, 0)
})
