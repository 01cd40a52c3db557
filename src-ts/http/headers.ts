/** Header conversions between users and the native exchange. */
import { invalidArgType } from '../errors.js'

/**
 * Request headers: an object (an array value repeats the header), a
 * `Headers`, a `Map`, or any iterable of `[name, value]` pairs.
 */
export type OutgoingHeaders =
  | Record<string, string | number | readonly string[] | undefined>
  | Iterable<readonly [string, string]>

/**
 * Response headers: lower-cased names; a repeated header becomes an array.
 * A null-prototype object, so names such as `__proto__` or `constructor`
 * are plain entries.
 */
export type IncomingHeaders = Record<string, string | string[]>

const PAIRS = 'an object, a Headers, a Map or an iterable of [name, value] string pairs'

/** Flatten to `[name, value, ...]`; the native side refuses CR, LF and NUL. */
export function flattenHeaders(headers: unknown): string[] | undefined {
  if (headers === undefined || headers === null) return undefined
  if (typeof headers !== 'object') throw invalidArgType('options.headers', PAIRS, headers)
  const flat: string[] = []
  if (Symbol.iterator in headers) {
    for (const pair of headers as Iterable<unknown>) {
      if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') {
        throw invalidArgType('options.headers', PAIRS, pair)
      }
      flat.push(pair[0], pair[1])
    }
    return flat
  }
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue
    if (typeof value === 'string') flat.push(name, value)
    else if (typeof value === 'number') flat.push(name, String(value))
    else if (Array.isArray(value) && value.every((v) => typeof v === 'string')) for (const v of value) flat.push(name, v)
    else throw invalidArgType(`options.headers[${JSON.stringify(name)}]`, 'a string, a number or an array of strings', value)
  }
  return flat
}

/** Whether `flat` names header `name` (case-insensitive). */
export function hasHeader(flat: readonly string[] | undefined, name: string): boolean {
  if (flat === undefined) return false
  for (let i = 0; i < flat.length; i += 2) if (flat[i]!.toLowerCase() === name) return true
  return false
}

/**
 * Build the headers object from `name: value` lines (CRLF-separated, names
 * already lower-case), from `start` up to an empty line or the end.
 */
export function parseHeaderBlock(block: string, start = 0): IncomingHeaders {
  const out: IncomingHeaders = Object.create(null) as IncomingHeaders
  let at = start
  while (at < block.length) {
    let end = block.indexOf('\r\n', at)
    if (end < 0) end = block.length
    if (end === at) break
    const colon = block.indexOf(': ', at)
    const name = block.slice(at, colon)
    const value = block.slice(colon + 2, end)
    at = end + 2
    const prev = out[name]
    if (prev === undefined) out[name] = value
    else if (Array.isArray(prev)) prev.push(value)
    else out[name] = [prev, value]
  }
  return out
}

/**
 * Where the `name: value` lines of a head block lie in `slab`, from `start`
 * up to an empty line or `end` (the block's layout: see the native
 * `ResponseField::HeadStart`). `lines` holds `[nameStart, colon, end]`
 * triples; `next` is where the block continues after an empty line (the
 * trailers), or `end`.
 */
export function headerLines(slab: Buffer, start: number, end: number): { lines: number[]; next: number } {
  const lines: number[] = []
  let at = start
  while (at < end) {
    // Buffer#indexOf searches natively: twice as fast as a loop over the bytes.
    let eol = slab.indexOf(0x0d, at)
    if (eol < 0 || eol > end) eol = end
    if (eol === at) return { lines, next: at + 2 }
    lines.push(at, slab.indexOf(0x3a, at), eol)
    at = eol + 2
  }
  return { lines, next: end }
}
