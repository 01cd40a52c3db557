// Upgrades through the pconn Agent: undici's WebSocket, dispatcher.upgrade()
// and dispatcher.connect() against node:http servers, the connection handed
// over as a socket and never returned to the pool.
import test from 'ava'
import http from 'node:http'
import net from 'node:net'
import https from 'node:https'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import * as undici from 'undici'
import { Agent } from '../dist/undici/index.js'
import { makeSelfSigned } from './helpers/certs.mjs'
import { eventually, useServer } from './helpers/servers.mjs'

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

/** A text frame from the server (unmasked, short payloads). */
function textFrame(text) {
  const payload = Buffer.from(text)
  return Buffer.concat([Buffer.from([0x81, payload.length]), payload])
}

/**
 * Masked client frames (short payloads) as they arrive in pieces: calls
 * `onFrame(opcode, text)` for each whole one.
 */
function frameReader(onFrame) {
  let buf = Buffer.alloc(0)
  return (data) => {
    buf = Buffer.concat([buf, data])
    while (buf.length >= 6) {
      const length = buf[1] & 0x7f
      if (buf.length < 6 + length) return
      const mask = buf.subarray(2, 6)
      const payload = Buffer.from(buf.subarray(6, 6 + length))
      for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i % 4]
      onFrame(buf[0] & 0x0f, payload.toString())
      buf = buf.subarray(6 + length)
    }
  }
}

/**
 * A node:http server that upgrades: WebSocket handshakes (echoing text
 * frames as "echo: ..."), other upgrades (echoing raw bytes), and CONNECT
 * (echoing raw bytes); it counts the sockets it saw close.
 */
async function upgradingServer(tls, { challenge = false } = {}) {
  const seen = { upgrades: [], connects: [], closed: 0, sockets: new Set(), authorizations: [], hosts: [] }
  const server = tls ? https.createServer(tls, (req, res) => res.end('plain')) : http.createServer((req, res) => res.end('plain'))
  server.on('upgrade', (req, socket) => {
    seen.upgrades.push(req.headers.upgrade)
    seen.hosts.push(req.headers.host)
    seen.sockets.add(socket)
    socket.on('close', () => seen.closed++)
    socket.on('error', () => {})
    // node:http's sockets allow half-open: close when the client does.
    socket.on('end', () => socket.end())
    seen.authorizations.push(req.headers.authorization)
    if (challenge && req.headers.authorization === undefined) {
      socket.end('HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n')
      return
    }
    if (req.headers.upgrade.toLowerCase() === 'websocket') {
      const accept = createHash('sha1').update(req.headers['sec-websocket-key'] + WS_GUID).digest('base64')
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`)
      socket.on(
        'data',
        frameReader((opcode, text) => {
          if (opcode === 1) socket.write(textFrame(`echo: ${text}`))
          else if (opcode === 8) socket.end(Buffer.from([0x88, 0]))
        }),
      )
    } else {
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${req.headers.upgrade}\r\nConnection: Upgrade\r\n\r\n`)
      socket.on('data', (d) => socket.write(d))
    }
  })
  server.on('connect', (req, socket) => {
    seen.connects.push(req.url)
    seen.sockets.add(socket)
    socket.on('close', () => seen.closed++)
    socket.on('error', () => {})
    socket.on('end', () => socket.end())
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n')
    socket.on('data', (d) => socket.write(d))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return Object.assign(seen, {
    origin: `${tls ? 'https' : 'http'}://127.0.0.1:${server.address().port}`,
    async close() {
      for (const s of seen.sockets) s.destroy()
      server.close()
    },
  })
}

function useAgent(t) {
  const agent = new Agent()
  t.teardown(() => agent.destroy())
  return agent
}

test('undici’s WebSocket over the pconn Agent exchanges messages', async (t) => {
  const server = await useServer(t, upgradingServer)
  const agent = useAgent(t)
  const ws = new undici.WebSocket(`ws://127.0.0.1:${new URL(server.origin).port}/chat`, { dispatcher: agent })
  await once(ws, 'open')
  ws.send('hello')
  const [message] = await once(ws, 'message')
  t.is(message.data, 'echo: hello')
  ws.close()
  await once(ws, 'close')
  t.deepEqual(server.upgrades, ['websocket'])
  await eventually(() => server.closed === 1, 3000, 'the server to see the socket close')
  await eventually(() => agent.pool.stats().connections === 0, 3000, 'the connection to leave the pool')
})

test('an answer that does not upgrade reaches fetch as a response: WebSocket’s 401 then a retry with the URL’s credentials', async (t) => {
  const server = await useServer(t, upgradingServer, undefined, { challenge: true })
  const agent = useAgent(t)
  const ws = new undici.WebSocket(`ws://user:pass@127.0.0.1:${new URL(server.origin).port}/path`, { dispatcher: agent })
  await once(ws, 'open')
  t.deepEqual(server.authorizations, [undefined, `Basic ${Buffer.from('user:pass').toString('base64')}`])
  ws.close()
  await once(ws, 'close')
})

test('undici’s WebSocket over TLS (wss:) through the pconn Agent', async (t) => {
  const tls = makeSelfSigned(['127.0.0.1'])
  const server = await useServer(t, upgradingServer, tls)
  const agent = new Agent({ connect: { ca: tls.cert } })
  t.teardown(() => agent.destroy())
  const ws = new undici.WebSocket(`wss://127.0.0.1:${new URL(server.origin).port}/`, { dispatcher: agent })
  await once(ws, 'open')
  ws.send('over tls')
  const [message] = await once(ws, 'message')
  t.is(message.data, 'echo: over tls')
  ws.close()
  await once(ws, 'close')
})

test('dispatcher.upgrade(): a socket both ways; it leaves the pool and closes with destroy()', async (t) => {
  const server = await useServer(t, upgradingServer)
  const agent = useAgent(t)
  const { headers, socket } = await agent.upgrade({ origin: server.origin, path: '/', protocol: 'x-echo' })
  t.is(headers.upgrade, 'x-echo')
  socket.setNoDelay(true).setKeepAlive(true).ref()
  socket.write('ping')
  const [data] = await once(socket, 'data')
  t.is(data.toString(), 'ping')
  t.is(agent.pool.stats().active, 1, 'on loan to the socket')
  socket.destroy()
  await eventually(() => server.closed === 1 && agent.pool.stats().connections === 0, 3000, 'the close')
  t.is(agent.pool.stats().idle, 0, 'never parked')
})

test('dispatcher.connect(): CONNECT answered 200 gives a tunnel socket; a refused upgrade fails and closes its connection', async (t) => {
  const server = await useServer(t, upgradingServer)
  const agent = useAgent(t)
  const { statusCode, socket } = await agent.connect({ origin: server.origin, path: 'example.test:443' })
  t.is(statusCode, 200)
  t.deepEqual(server.connects, ['example.test:443'])
  socket.write('through the tunnel')
  const [echoed] = await once(socket, 'data')
  t.is(echoed.toString(), 'through the tunnel')
  socket.end()
  await eventually(() => server.closed === 1 && agent.pool.stats().connections === 0, 3000, 'the tunnel to close')
  // A server that answers an upgrade with a plain 200 refuses it.
  const plain = http.createServer((req, res) => res.end('no upgrade here'))
  plain.listen(0, '127.0.0.1')
  await once(plain, 'listening')
  t.teardown(() => plain.close())
  const origin = `http://127.0.0.1:${plain.address().port}`
  const err = await t.throwsAsync(agent.upgrade({ origin, path: '/', protocol: 'x-echo' }))
  t.is(err.code, 'UND_ERR_SOCKET')
  await eventually(() => agent.pool.stats().connections === 0, 3000, 'the refused connection to close')
})

test('dispatcher.connect(): end() half-closes the tunnel as a net.Socket does: the server reads EOF and its answer still arrives', async (t) => {
  let closed = 0
  const server = http.createServer()
  server.on('connect', (req, socket) => {
    socket.on('error', () => {})
    socket.on('close', () => closed++)
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n')
    const got = []
    socket.on('data', (d) => got.push(d))
    socket.on('end', () => socket.end(`after EOF: ${Buffer.concat(got)}`))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const agent = useAgent(t)
  const { socket } = await agent.connect({ origin: `http://127.0.0.1:${server.address().port}`, path: 'example.test:443' })
  socket.end('the question')
  const chunks = []
  for await (const chunk of socket) chunks.push(chunk)
  t.is(Buffer.concat(chunks).toString(), 'after EOF: the question')
  await eventually(() => closed === 1 && agent.pool.stats().connections === 0, 3000, 'the tunnel to close')
})

test('upgrades keep undici’s handler rules: the caller’s Host header, a throwing onConnect or onUpgrade, and headersTimeout for a silent server', async (t) => {
  const server = await useServer(t, upgradingServer)
  const hosts = []
  const agent = useAgent(t)
  // The Host header given is the one sent.
  const { socket } = await agent.upgrade({ origin: server.origin, path: '/', protocol: 'x-echo', headers: { host: 'virtual.test' } })
  socket.destroy()
  t.deepEqual(server.hosts, ['virtual.test'])
  // onConnect throws: the error reaches onError and close() still finishes.
  const thrown = new Error('from onConnect')
  const errors = []
  agent.dispatch(
    { origin: server.origin, path: '/', method: 'GET', upgrade: 'x-echo' },
    { onConnect() { throw thrown }, onUpgrade() {}, onError: (e) => errors.push(e) },
  )
  t.deepEqual(errors, [thrown])
  // onUpgrade throws: the socket is destroyed, so the connection closes.
  const before = server.closed
  agent.dispatch(
    { origin: server.origin, path: '/', method: 'GET', upgrade: 'x-echo' },
    { onConnect() {}, onUpgrade() { throw new Error('from onUpgrade') }, onError() {} },
  )
  await eventually(() => server.closed >= before + 2 && agent.pool.stats().connections === 0, 3000, 'the connections to close')
  await agent.close()
  // A server that takes the upgrade request and never answers: headersTimeout.
  const silent = http.createServer()
  silent.on('upgrade', (req, s) => hosts.push(req.headers.host) && s.on('error', () => {}))
  silent.listen(0, '127.0.0.1')
  await once(silent, 'listening')
  t.teardown(() => { silent.closeAllConnections(); silent.close() })
  const impatient = new Agent({ headersTimeout: 200 })
  t.teardown(() => impatient.destroy())
  const err = await t.throwsAsync(impatient.upgrade({ origin: `http://127.0.0.1:${silent.address().port}`, path: '/', protocol: 'x' }))
  t.is(err.code, 'UND_ERR_HEADERS_TIMEOUT')
  t.deepEqual(hosts, [`127.0.0.1:${silent.address().port}`])
})

/** A raw TCP server that answers the first request head with `answer(socket)`; it counts the heads it saw. */
async function rawAnswering(t, answer) {
  const seen = { heads: [] }
  const server = net.createServer((socket) => {
    socket.on('error', () => {})
    let head = ''
    const onData = (d) => {
      head += d.toString('latin1')
      if (!head.includes('\r\n\r\n')) return
      socket.off('data', onData)
      seen.heads.push(head)
      answer(socket)
    }
    socket.on('data', onData)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  return Object.assign(seen, { origin: `http://127.0.0.1:${server.address().port}`, server })
}

test('an upgrade value with CR or LF is refused before anything is sent (no header injection)', async (t) => {
  const server = await rawAnswering(t, (s) => s.end())
  const agent = useAgent(t)
  const err = await t.throwsAsync(agent.upgrade({ origin: server.origin, path: '/', protocol: 'x\r\nX-Evil: 1' }))
  t.is(err.code, 'UND_ERR_INVALID_ARG')
  t.deepEqual(server.heads, [])
})

test('informational answers (100, 103) before the 101 are skipped, and the upgrade goes on', async (t) => {
  const server = await rawAnswering(t, (s) => {
    s.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n')
    s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: x-echo\r\nConnection: Upgrade\r\n\r\n')
    s.on('data', (d) => s.write(d))
  })
  const agent = useAgent(t)
  const { headers, socket } = await agent.upgrade({ origin: server.origin, path: '/', protocol: 'x-echo' })
  t.is(headers.upgrade, 'x-echo')
  socket.write('after the interim answers')
  const [echoed] = await once(socket, 'data')
  t.is(echoed.toString(), 'after the interim answers')
  socket.destroy()
})

test('an answer that does not upgrade and then stalls its body fails with bodyTimeout and closes its connection', async (t) => {
  const server = await rawAnswering(t, (s) => s.write('HTTP/1.1 401 Unauthorized\r\nContent-Length: 10\r\n\r\nabc'))
  const agent = new Agent({ bodyTimeout: 200 })
  t.teardown(() => agent.destroy())
  const error = await new Promise((resolve) => {
    agent.dispatch(
      { origin: server.origin, path: '/', method: 'GET', upgrade: 'websocket' },
      { onConnect() {}, onHeaders() { return true }, onData() { return true }, onComplete: () => resolve(undefined), onError: resolve, onUpgrade() {} },
    )
  })
  t.is(error?.code, 'UND_ERR_BODY_TIMEOUT')
  await eventually(() => agent.pool.stats().connections === 0, 3000, 'the connection to close')
})

test('an upgrade aborted while it waits for a connection at the limit leaves the queue at once', async (t) => {
  const server = await rawAnswering(t, () => {}) // takes heads, never answers
  const agent = new Agent({ maxConnectionsPerHost: 1 })
  t.teardown(() => agent.destroy())
  const held = agent.upgrade({ origin: server.origin, path: '/', protocol: 'x' }).catch((e) => e)
  await eventually(() => server.heads.length === 1, 3000, 'the first upgrade to take the connection')
  const ac = new AbortController()
  const waiting = agent.upgrade({ origin: server.origin, path: '/', protocol: 'x', signal: ac.signal }).catch((e) => e)
  await eventually(() => agent.pool.stats().pending === 1, 3000, 'the second upgrade to wait')
  ac.abort()
  t.is((await waiting).name, 'AbortError')
  // The abort reaches the pool through its I/O thread: soon, not never.
  await eventually(() => agent.pool.stats().pending === 0, 1000, 'its acquire to be withdrawn')
  await agent.destroy()
  await held
})
