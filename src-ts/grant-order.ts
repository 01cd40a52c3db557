/**
 * Delivers hand-overs to waiting acquires in the order the pool made them.
 *
 * The pool grants released connections to waiters strictly first-come,
 * first-served, and numbers each grant (0, 1, 2, ...). The grants finish on
 * the I/O thread, where two made at the same moment can finish in either
 * order; this puts them back in grant order before user code sees them.
 */

/** How long a grant waits for a missing predecessor before giving up on it. */
const GAP_TIMEOUT_MS = 100

export class GrantOrder {
  #next = 0
  readonly #held = new Map<number, () => void>()

  /**
   * Resolves once every earlier grant has been delivered (at once when this
   * is the next one). A gap, which the pool never leaves, is skipped after
   * a short timeout rather than blocking later waiters forever.
   */
  turn(grant: number): Promise<void> {
    if (grant <= this.#next) {
      if (grant === this.#next) this.#advance()
      return Promise.resolve()
    }
    return new Promise<void>((resolve) => {
      this.#held.set(grant, resolve)
      setTimeout(() => this.#skipTo(grant), GAP_TIMEOUT_MS).unref()
    })
  }

  #advance(): void {
    this.#next++
    const next = this.#held.get(this.#next)
    if (next !== undefined) {
      this.#held.delete(this.#next)
      // After the current delivery's own continuations have been queued.
      queueMicrotask(() => {
        next()
        this.#advance()
      })
    }
  }

  #skipTo(grant: number): void {
    const resolve = this.#held.get(grant)
    if (resolve === undefined || this.#next >= grant) return
    for (const g of [...this.#held.keys()].filter((g) => g < grant).sort((a, b) => a - b)) {
      this.#held.get(g)?.()
      this.#held.delete(g)
    }
    this.#held.delete(grant)
    this.#next = grant
    resolve()
    this.#advance()
  }
}
