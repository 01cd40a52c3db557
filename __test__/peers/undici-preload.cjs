// Loaded (--require) before each of undici's test files by undici-suite.mjs:
// puts pconn where the mode says. undici's index.js is the module the tests
// get from require('../..'), so changing its exports here changes theirs.
'use strict'
const { join } = require('node:path')

const undici = require(join(process.env.PCONN_SUITE_UNDICI, 'index.js'))
const pconnRoot = process.env.PCONN_SUITE_PCONN

if (process.env.PCONN_SUITE_MODE === 'agent') {
  const { Agent } = require(join(pconnRoot, 'dist', 'undici', 'index.js'))
  undici.setGlobalDispatcher(new Agent())
} else {
  const { fetch } = require(join(pconnRoot, 'dist', 'index.js'))
  undici.fetch = fetch
  globalThis.fetch = fetch
}
