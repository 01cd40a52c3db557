// Drives a worker thread running helpers/worker.mjs by messages.
import { Worker } from 'node:worker_threads'

const workerScript = new URL('./worker.mjs', import.meta.url)

/** A worker running helpers/worker.mjs, driven by `call(op, args)`; terminated when the test ends. */
export function startWorker(t) {
  const worker = new Worker(workerScript)
  const waiting = new Map()
  let next = 0
  worker.on('message', ({ id, ok, value, error }) => {
    const w = waiting.get(id)
    waiting.delete(id)
    if (ok) w.resolve(value)
    else w.reject(Object.assign(new Error(error.message), { code: error.code }))
  })
  worker.on('error', (err) => {
    for (const w of waiting.values()) w.reject(err)
  })
  t.teardown(() => worker.terminate())
  const call = (op, args = {}) =>
    new Promise((resolve, reject) => {
      const id = next++
      waiting.set(id, { resolve, reject })
      worker.postMessage({ id, op, ...args })
    })
  return { worker, call }
}
