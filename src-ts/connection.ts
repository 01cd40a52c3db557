/** A connection on loan from a pool: raw bytes in and out. */
import { fromNative, invalidArgType, PconnError } from './errors.js'
import { completionOf, nextOperationId, run, type NativeConnection } from './native.js'

/** What a pool needs to know about a loan it handed out. */
export interface Loan {
  readonly native: NativeConnection
  readonly poolId: number
  /** Stops the leak detector's timer, if any. */
  readonly stopLeakWatch: (() => void) | undefined
}

/** The loan behind a connection, or undefined for anything else (for the pool). */
export let loanOf: (conn: unknown) => Loan | undefined

/**
 * One checkout of a pooled TCP or TLS connection. Give it back with
 * `pool.release(conn, keepAliveOk)` (or `conn.release()`); after that every
 * method fails with `PCONN_ALREADY_RELEASED`.
 */
export class Connection {
  readonly #native: NativeConnection
  readonly #poolId: number
  readonly #stopLeakWatch: (() => void) | undefined
  readonly #release: (conn: Connection, keepAliveOk: boolean) => void
  /** The half-close, once `end()` was called. */
  #ended: Promise<void> | undefined

  static {
    loanOf = (conn) =>
      typeof conn === 'object' && conn !== null && #native in conn
        ? { native: conn.#native, poolId: conn.#poolId, stopLeakWatch: conn.#stopLeakWatch }
        : undefined
  }

  /** @internal Connections are made by `Pool.acquire`. */
  constructor(loan: Loan, release: (conn: Connection, keepAliveOk: boolean) => void) {
    this.#native = loan.native
    this.#poolId = loan.poolId
    this.#stopLeakWatch = loan.stopLeakWatch
    this.#release = release
  }

  /** Unique id of the underlying connection (stable across reuses). */
  get id(): number {
    return this.#native.id
  }
  /** The pool key, e.g. `'https://example.com:443'`. */
  get key(): string {
    return this.#native.key
  }
  /** Whether this connection served an earlier checkout. */
  get reused(): boolean {
    return this.#native.reused
  }
  /** How many checkouts this connection has served, this one included. */
  get uses(): number {
    return this.#native.uses
  }
  /** The peer's IP address (the proxy's, through a proxy); undefined over a Unix socket. */
  get remoteAddress(): string | undefined {
    return this.#native.remoteAddress ?? undefined
  }
  /** The peer's port; undefined over a Unix socket. */
  get remotePort(): number | undefined {
    return this.#native.remotePort ?? undefined
  }
  /** The ALPN protocol the TLS server chose, if any. */
  get alpnProtocol(): string | null {
    return this.#native.alpnProtocol ?? null
  }
  /** Whether this checkout was released. */
  get released(): boolean {
    return this.#native.released
  }

  /**
   * Write `data` (strings as UTF-8); resolves once all of it is on the
   * socket. Writes go out whole and in call order, and a pending `read()`
   * never holds a write back.
   */
  write(data: string | Uint8Array): Promise<void> {
    if (typeof data !== 'string' && !(data instanceof Uint8Array)) {
      return Promise.reject(invalidArgType('data', 'a string, Buffer or Uint8Array', data))
    }
    if (this.#ended !== undefined && !this.released) {
      const err = new PconnError('ERR_STREAM_WRITE_AFTER_END', `write after end(): this connection's sending side is shut down (${this.key})`)
      return Promise.reject(err)
    }
    const bytes = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength)
    const id = nextOperationId()
    let written: boolean
    try {
      // Usually the socket takes it all at once: no trip through the I/O thread.
      written = this.#native.write(id, bytes)
    } catch (err) {
      return Promise.reject(fromNative(err))
    }
    return written ? Promise.resolve() : completionOf<void>(id)
  }

  /**
   * Half-close, as `socket.end()` does: once every earlier write is out,
   * shut the sending side down (the peer reads EOF; over TLS, close_notify
   * first). `read()` goes on until the peer closes its side. A connection
   * that was ended is never pooled again: its release closes it. Calling
   * it again returns the first call's Promise; `write()` after it rejects
   * with `ERR_STREAM_WRITE_AFTER_END`.
   */
  end(): Promise<void> {
    const conn = this.#native
    this.#ended ??= run<void>((id) => conn.end(id))
    return this.#ended
  }

  /** The next chunk received, or `null` once the peer closed its side. */
  read(): Promise<Buffer | null> {
    const conn = this.#native
    return run<Buffer | null>((id) => conn.read(id))
  }

  /** Same as `pool.release(this, keepAliveOk)`. */
  release(keepAliveOk = true): void {
    this.#release(this, keepAliveOk)
  }
}
