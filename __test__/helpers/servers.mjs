// Real loopback servers for the tests. Each one records what it saw, so
// tests assert on the server's view (connections opened and closed), not
// only on what pconn reports about itself.
import net from 'node:net'
import tls from 'node:tls'
import { once } from 'node:events'

/** Counts connections and keeps their sockets so tests can misbehave on purpose. */
class Tracker {
  opened = 0
  closed = 0
  sockets = new Set()

  track(socket) {
    this.opened++
    this.sockets.add(socket)
    socket.on('error', () => {})
    socket.on('close', () => {
      this.closed++
      this.sockets.delete(socket)
    })
  }

  /** Connections open right now, as the server sees them. */
  get open() {
    return this.sockets.size
  }

  destroyAll() {
    for (const s of this.sockets) s.destroy()
  }

  writeAll(bytes) {
    for (const s of this.sockets) s.write(bytes)
  }
}

async function listen(server, tracker) {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address()
  return Object.assign(tracker, {
    server,
    port,
    async close() {
      tracker.destroyAll()
      server.close()
      await once(server, 'close')
    },
  })
}

/** A TCP echo server. */
export async function tcpEchoServer() {
  const tracker = new Tracker()
  const server = net.createServer((socket) => {
    tracker.track(socket)
    socket.pipe(socket)
  })
  return listen(server, tracker)
}

/** A TCP server that accepts and then says nothing (for stalls). */
export async function silentServer() {
  const tracker = new Tracker()
  const server = net.createServer((socket) => {
    tracker.track(socket)
    socket.resume() // read (and drop) so that the peer's close is noticed
  })
  return listen(server, tracker)
}

/** A TLS echo server with the given certificate. */
export async function tlsEchoServer({ cert, key, ca, requestCert = false, ALPNProtocols }) {
  const tracker = new Tracker()
  const server = tls.createServer({ cert, key, ca, requestCert, rejectUnauthorized: requestCert, ALPNProtocols }, (socket) => {
    socket.pipe(socket)
  })
  server.on('connection', (raw) => tracker.track(raw))
  server.on('tlsClientError', () => {})
  return listen(server, tracker)
}

// Ports below the kernel's ephemeral range: `listen(0)` and outgoing
// connections never take them, so a port found free there stays closed
// while other tests start servers concurrently (a port freed from the
// ephemeral range was seen handed to the next test's server at once).
const CLOSED_PORTS = { low: 20000, high: 32767 }

/** A port nothing listens on, and no `listen(0)` elsewhere will take. */
export async function closedPort() {
  for (;;) {
    const port = CLOSED_PORTS.low + Math.floor(Math.random() * (CLOSED_PORTS.high - CLOSED_PORTS.low))
    const server = net.createServer()
    const free = await new Promise((resolve) => {
      server.once('error', () => resolve(false))
      server.listen(port, '127.0.0.1', () => resolve(true))
    })
    if (!free) continue
    server.close()
    await once(server, 'close')
    return port
  }
}

/** Wait until `cond()` is true, polling; fails the test after `ms`. */
export async function eventually(cond, ms = 3000, what = 'condition') {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** Start a server for one test and close it when the test ends, pass or fail. */
export async function useServer(t, start, ...args) {
  const server = await start(...args)
  t.teardown(() => server.close())
  return server
}

/**
 * A pool for one test, shut down when the test ends. Connections a failed
 * test still holds would keep shutdownAll pending; the teardown does not
 * wait for them longer than a second.
 */
export function usePool(t, Pool, options) {
  const pool = new Pool(options)
  t.teardown(() => Promise.race([pool.shutdownAll(), sleep(1000)]))
  return pool
}
