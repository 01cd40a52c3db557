// The node:http2 server the HTTP/2 scenarios also run against, in a process
// of its own (so it does not share the clients' event loop): `GET /` answers
// 13 bytes, `GET /64k` 64 KiB, with the benchmark's certificate.
//   node benchmark/lib/http2-server.mjs CERT KEY   → prints "listening PORT"
import http2 from 'node:http2'
import { readFileSync } from 'node:fs'

const [certPath, keyPath] = process.argv.slice(2)
const small = Buffer.from('hello, world\n')
const large = Buffer.alloc(64 * 1024, 'x')
const server = http2.createSecureServer({ cert: readFileSync(certPath), key: readFileSync(keyPath) })
server.on('stream', (stream, headers) => {
  const body = headers[':path'] === '/64k' ? large : small
  stream.respond({ ':status': 200, 'content-type': 'text/plain', 'content-length': body.length })
  stream.end(body)
})
server.on('sessionError', () => {})
server.listen(0, '127.0.0.1', () => console.log(`listening ${server.address().port}`))
