export * from '../dist/undici/index.js'
import * as undici from '../dist/undici/index.js'
export default undici
