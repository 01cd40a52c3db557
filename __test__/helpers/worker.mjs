// A worker thread that uses pconn as the tests tell it to, by messages:
//   { op: 'open', options, lookup }    make this thread's pool (or a shared handle);
//                                      `lookup`: addresses its lookup option answers
//   { op: 'get', urls, headers }       GET each URL at once; replies with the bodies
//   { op: 'stall', stages }            start operations that will hang, one per stage
//   { op: 'stats' }                    the pool's stats()
//   { op: 'shutdown' }                 pool.shutdownAll()
// Every reply is { id, ok, value } or { id, ok: false, error: { code, message } }.
import { parentPort } from 'node:worker_threads'
import { Pool } from '../../dist/index.js'

let pool

/** Operations that never finish on their own, to be cut short by terminate(). */
const stall = {
  // At maxConnectionsPerHost 1, a second request waits for the first.
  waiting: (s) => {
    const p = new Pool({ maxConnectionsPerHost: 1 })
    p.request(s.stallHead).catch(() => {})
    p.request(s.stallHead).catch(() => {})
  },
  // A TLS handshake the server never answers.
  connecting: (s) => new Pool({ tls: { rejectUnauthorized: false } }).acquire(s.silentTls).catch(() => {}),
  // The server read the request and says nothing.
  'mid-head': (s) => pool.request(s.stallHead).catch(() => {}),
  // Part of a large body arrived; the rest never does.
  'mid-body': async (s) => {
    const res = await pool.request(s.stallBody)
    res.body.on('data', () => {}).on('error', () => {})
  },
  // An upload whose source never ends.
  'mid-upload': (s) => {
    async function* forever() {
      yield 'first chunk'
      await new Promise(() => {})
    }
    pool.request(s.upload, { method: 'POST', body: forever() }).catch(() => {})
  },
}

parentPort.on('message', async ({ id, op, ...args }) => {
  try {
    let value
    switch (op) {
      case 'open':
        pool = new Pool(args.lookup ? { ...args.options, lookup: () => args.lookup } : args.options)
        break
      case 'get':
        value = await Promise.all(args.urls.map((url) => pool.request(url, { headers: args.headers }).then((r) => r.body.text())))
        break
      case 'stall':
        for (const stage of args.stages) stall[stage](args.servers)
        break
      case 'stats':
        value = pool.stats()
        break
      case 'shutdown':
        await pool.shutdownAll()
        break
      default:
        throw new Error(`unknown op ${op}`)
    }
    parentPort.postMessage({ id, ok: true, value })
  } catch (err) {
    parentPort.postMessage({ id, ok: false, error: { code: err.code, message: err.message } })
  }
})
