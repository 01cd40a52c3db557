// HTTP servers that misbehave at random, for the soak test. Run as a child
// process: `node faulty-server.mjs <count>` prints `ports p1,p2,...`.
// Paths choose the behaviour so the client knows what to expect:
//   /ok       200 with a small body            /close  200 + Connection: close
//   /big      200 with 200 KiB                 /reset  reset in the middle of the body
//   /stall    never answers                    /bad    a malformed status line
// Independently, an idle connection is closed after a random 0-50 ms (the
// keep-alive race).
import net from 'node:net'

const count = Number(process.argv[2] ?? 50)
const big = 'b'.repeat(200 * 1024)

function answer(path, socket) {
  switch (path) {
    case '/close':
      return socket.end('HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok')
    case '/big':
      return socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${big.length}\r\n\r\n${big}`)
    case '/reset':
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\npartial')
      return setTimeout(() => socket.resetAndDestroy(), 5)
    case '/stall':
      return undefined
    case '/bad':
      return socket.write('HTTP/1.1 OK 200\r\n\r\n')
    default:
      return socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok')
  }
}

const ports = []
for (let i = 0; i < count; i++) {
  const server = net.createServer((socket) => {
    socket.on('error', () => {})
    let pending = ''
    let idle
    const armIdle = () => {
      clearTimeout(idle)
      idle = setTimeout(() => socket.end(), Math.random() * 50)
    }
    socket.on('close', () => clearTimeout(idle))
    socket.on('data', (data) => {
      pending += data.toString('latin1')
      let end
      while ((end = pending.indexOf('\r\n\r\n')) >= 0) {
        const head = pending.slice(0, end)
        const length = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0)
        if (pending.length < end + 4 + length) break
        pending = pending.slice(end + 4 + length)
        answer(head.split(' ')[1], socket)
      }
      armIdle()
    })
  })
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  ports.push(server.address().port)
}
process.stdout.write(`ports ${ports.join(',')}\n`)
