// A node:http2 secure server that records what it saw: sessions (HTTP/2
// connections), streams, the most streams open at once on one session,
// streams the client reset, and HTTP/1.1 requests when `allowHTTP1` lets
// them in; `sockets` holds the raw TLS sockets. `handler(stream, headers, ctx)` answers through the stream API.
import http2 from 'node:http2'
import { once } from 'node:events'
import { makeSelfSigned } from './certs.mjs'

let certificate
/** One self-signed certificate for 127.0.0.1 and localhost, made once per test file. */
export function certFor127() {
  certificate ??= makeSelfSigned(['127.0.0.1', 'localhost'])
  return certificate
}

export async function http2Server(handler, { settings, allowHTTP1 = false, onSession } = {}) {
  const { cert, key } = certFor127()
  const seen = { sessions: 0, streams: 0, maxOpen: 0, resets: [], http1: 0, sessionList: [], sockets: [] }
  const server = http2.createSecureServer({ cert, key, allowHTTP1, settings })
  // The TLS sockets in the order they connected, for tests that drop one
  // without a word (a session's own `socket` refuses to be destroyed).
  server.on('secureConnection', (socket) => seen.sockets.push(socket))
  server.on('session', (session) => {
    seen.sessions++
    seen.sessionList.push(session)
    session.open = 0
    session.on('error', () => {})
    onSession?.(session)
  })
  server.on('stream', (stream, headers) => {
    seen.streams++
    const session = stream.session
    session.open++
    seen.maxOpen = Math.max(seen.maxOpen, session.open)
    stream.on('error', () => {})
    stream.on('close', () => {
      session.open--
      if (stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR) seen.resets.push(stream.rstCode)
    })
    handler(stream, headers, { session, id: stream.id })
  })
  if (allowHTTP1) {
    // HTTP/1.1 requests arrive here (HTTP/2 ones too, answered by `handler`).
    server.on('request', (req, res) => {
      if (req.httpVersion === '2.0') return
      seen.http1++
      res.end(`http/1.1 ${req.url}`)
    })
  }
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address()
  return Object.assign(seen, {
    port,
    cert,
    url: (path = '/') => `https://127.0.0.1:${port}${path}`,
    async close() {
      for (const s of seen.sessionList) s.destroy()
      server.close()
      await once(server, 'close')
    },
  })
}

/** Read a stream's whole request body. */
export async function bodyOf(stream) {
  const chunks = []
  for await (const c of stream) chunks.push(c)
  return Buffer.concat(chunks)
}
