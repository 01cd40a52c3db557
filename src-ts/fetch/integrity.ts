/**
 * Subresource integrity (`fetch(url, { integrity })`), as the W3C SRI
 * specification matches bytes against metadata: of the hashes whose
 * algorithm is known (sha256, sha384, sha512), only those of the strongest
 * algorithm count, and the body matches if it matches any of them (in
 * base64 or base64url, padded or not).
 * Metadata naming no known algorithm checks nothing.
 */
import { createHash } from 'node:crypto'

/** Known algorithms, weakest first. */
const ALGORITHMS = ['sha256', 'sha384', 'sha512'] as const

/**
 * A digest as SRI compares it: without padding, and in the base64
 * alphabet (metadata may use base64url's `-` and `_`).
 */
const normalised = (b64: string): string => b64.replace(/={1,2}$/, '').replace(/-/g, '+').replace(/_/g, '/')

/** Whether `bytes` match `metadata` (a whitespace-separated list of `alg-base64[?options]`). */
export function integrityMatches(bytes: Uint8Array, metadata: string): boolean {
  let strongest = -1
  let expected: string[] = []
  for (const token of metadata.split(/\s+/)) {
    const dash = token.indexOf('-')
    const rank = ALGORITHMS.indexOf(token.slice(0, dash) as (typeof ALGORITHMS)[number])
    if (dash < 0 || rank < 0 || rank < strongest) continue
    if (rank > strongest) {
      strongest = rank
      expected = []
    }
    expected.push(normalised(token.slice(dash + 1).split('?')[0]!))
  }
  if (strongest < 0) return true
  const actual = normalised(createHash(ALGORITHMS[strongest]!).update(bytes).digest('base64'))
  return expected.includes(actual)
}
