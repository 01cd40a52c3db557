export * from '../dist/index.js'
import * as pconn from '../dist/index.js'
export default pconn
