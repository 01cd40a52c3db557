/** A connection on loan from a pool: raw bytes in and out. */
import { invalidArgType } from './errors.js'
import { run, type NativeConnection } from './native.js'

/** What a pool needs to know about a loan it handed out. */
export interface Loan {
  readonly native: NativeConnection
  readonly poolId: number
  /** Stops the leak detector's timer, if any. */
  readonly stopLeakWatch: (() => void) | undefined
}

const loans = new WeakMap<Connection, Loan>()

/** The loan behind a connection (for the pool that made it). */
export function loanOf(conn: Connection): Loan | undefined {
  return loans.get(conn)
}

/**
 * One checkout of a pooled TCP or TLS connection. Give it back with
 * `pool.release(conn, keepAliveOk)` (or `conn.release()`); after that every
 * method fails with `PCONN_ALREADY_RELEASED`.
 */
export class Connection {
  /** Unique id of the underlying connection (stable across reuses). */
  readonly id: number
  /** The pool key, e.g. `'https://example.com:443'`. */
  readonly key: string
  /** Whether this connection served an earlier checkout. */
  readonly reused: boolean
  /** How many checkouts this connection has served, this one included. */
  readonly uses: number
  /** The peer's IP address. */
  readonly remoteAddress: string
  readonly remotePort: number
  /** The ALPN protocol the TLS server chose, if any. */
  readonly alpnProtocol: string | null
  readonly #release: (conn: Connection, keepAliveOk: boolean) => void

  /** @internal Connections are made by `Pool.acquire`. */
  constructor(loan: Loan, release: (conn: Connection, keepAliveOk: boolean) => void) {
    const n = loan.native
    this.id = n.id
    this.key = n.key
    this.reused = n.reused
    this.uses = n.uses
    this.remoteAddress = n.remoteAddress
    this.remotePort = n.remotePort
    this.alpnProtocol = n.alpnProtocol ?? null
    this.#release = release
    loans.set(this, loan)
  }

  /** Whether this checkout was released. */
  get released(): boolean {
    return loans.get(this)?.native.released ?? true
  }

  /** Write `data` (strings as UTF-8); resolves once it is flushed to the socket. */
  write(data: string | Uint8Array): Promise<void> {
    if (typeof data !== 'string' && !(data instanceof Uint8Array)) {
      throw invalidArgType('data', 'a string, Buffer or Uint8Array', data)
    }
    const conn = this.#native()
    const bytes = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength)
    return run<void>((id) => conn.write(id, bytes))
  }

  /** The next chunk received, or `null` once the peer closed its side. */
  read(): Promise<Buffer | null> {
    const conn = this.#native()
    return run<Buffer | null>((id) => conn.read(id))
  }

  /** Same as `pool.release(this, keepAliveOk)`. */
  release(keepAliveOk = true): void {
    this.#release(this, keepAliveOk)
  }

  #native(): NativeConnection {
    const loan = loans.get(this)
    if (loan === undefined) throw new TypeError('not a pconn connection')
    return loan.native
  }
}

