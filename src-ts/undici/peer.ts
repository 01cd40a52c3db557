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
