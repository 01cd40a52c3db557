// The ES module entry point: the same objects as the CommonJS build.
import pconn from '../dist/index.js'

export const {
  Pool,
  Connection,
  PconnError,
  Response,
  ResponseBody,
  acquire,
  release,
  flushForHost,
  shutdownAll,
  stats,
  request,
  fetch,
  getDefaultPool,
} = pconn
export default pconn
