// A raw HTTP/1.1 server on node:net whose responses are literal bytes, so
// tests control framing exactly. It parses requests (Content-Length or
// chunked bodies) and records every connection and request it saw.
import net from 'node:net'
import { once } from 'node:events'

function parseHead(text) {
  const [requestLine, ...lines] = text.split('\r\n')
  const [method, path, version] = requestLine.split(' ')
  const headers = {}
  for (const line of lines) {
    const i = line.indexOf(':')
    const name = line.slice(0, i).trim().toLowerCase()
    const value = line.slice(i + 1).trim()
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value
  }
  return { method, path, version, headers }
}

/** Pull one complete request off `buf`; returns [request, rest] or null. */
function takeRequest(buf) {
  const end = buf.indexOf('\r\n\r\n')
  if (end < 0) return null
  const head = parseHead(buf.subarray(0, end).toString('latin1'))
  let rest = buf.subarray(end + 4)
  if (head.headers['transfer-encoding'] === 'chunked') {
    const parts = []
    let at = 0
    for (;;) {
      const lineEnd = rest.indexOf('\r\n', at)
      if (lineEnd < 0) return null
      const size = parseInt(rest.subarray(at, lineEnd).toString(), 16)
      if (rest.length < lineEnd + 2 + size + 2) return null
      if (size === 0) {
        const trailerEnd = rest.indexOf('\r\n\r\n', lineEnd)
        if (trailerEnd < 0 && rest.subarray(lineEnd, lineEnd + 4).toString() !== '\r\n\r\n') return null
        return [{ ...head, body: Buffer.concat(parts) }, rest.subarray(lineEnd + 4)]
      }
      parts.push(rest.subarray(lineEnd + 2, lineEnd + 2 + size))
      at = lineEnd + 2 + size + 2
    }
  }
  const length = Number(head.headers['content-length'] ?? 0)
  if (rest.length < length) return null
  return [{ ...head, body: rest.subarray(0, length) }, rest.subarray(length)]
}

/**
 * `respond(req, socket, ctx)` writes the response bytes itself (or does
 * something nasty). `ctx` has `index` (request number on this connection)
 * and `connection` (connection number).
 */
export async function httpServer(respond, { onConnection, port: wantedPort = 0 } = {}) {
  const seen = { opened: 0, closed: 0, requests: [], sockets: new Set() }
  const server = net.createServer((socket) => {
    const connection = ++seen.opened
    seen.sockets.add(socket)
    socket.on('error', () => {})
    socket.on('close', () => {
      seen.closed++
      seen.sockets.delete(socket)
    })
    onConnection?.(socket, connection)
    let buf = Buffer.alloc(0)
    let index = 0
    socket.on('data', (data) => {
      buf = Buffer.concat([buf, data])
      for (let taken = takeRequest(buf); taken; taken = takeRequest(buf)) {
        const [req, rest] = taken
        buf = rest
        seen.requests.push({ ...req, connection })
        respond(req, socket, { index: index++, connection })
      }
    })
  })
  server.listen(wantedPort, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address()
  return Object.assign(seen, {
    port,
    url: (path = '/') => `http://127.0.0.1:${port}${path}`,
    get open() {
      return seen.sockets.size
    },
    async close() {
      for (const s of seen.sockets) s.destroy()
      server.close()
      await once(server, 'close')
    },
  })
}

/** A 200 response with a Content-Length body. */
export function ok(body = 'ok', extra = '') {
  return `HTTP/1.1 200 OK\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`
}
