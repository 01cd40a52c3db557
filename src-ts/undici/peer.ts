/**
 * The peer `undici` package: `pconn/undici` builds on its `Dispatcher` and
 * error classes. Only this entry needs it; `pconn` itself never loads it.
 */
import type * as Undici from 'undici'

function load(): typeof Undici {
  try {
    return require('undici') as typeof Undici
  } catch (err) {
    throw new Error("pconn/undici needs the 'undici' package (a peer dependency, version 7): npm install undici@7", {
      cause: err,
    })
  }
}

export const undici = load()
export const errors = undici.errors

/**
 * undici's internal symbols that let its `MockAgent` wrap a pconn Agent
 * (undici 7's `lib/core/symbols.js`); without them a MockAgent cannot.
 */
export const internals = loadInternals()

function loadInternals(): { kClients: symbol; kDispatch: symbol } | undefined {
  try {
    const symbols = require('undici/lib/core/symbols.js') as { kClients?: unknown; kDispatch?: unknown }
    const { kClients, kDispatch } = symbols
    return typeof kClients === 'symbol' && typeof kDispatch === 'symbol' ? { kClients, kDispatch } : undefined
  } catch {
    return undefined
  }
}
