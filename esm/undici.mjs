// The ES module entry point of pconn/undici: the same objects as the CommonJS build.
import undici from '../dist/undici/index.js'

export const { Agent } = undici
export default undici
