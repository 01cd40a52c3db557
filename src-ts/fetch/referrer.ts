/**
 * The `Referer` header fetch sends, by the W3C Referrer Policy rules: a
 * request made with `referrer: url` sends all, part or none of that URL
 * depending on its `referrerPolicy` (default `strict-origin-when-cross-origin`)
 * and where the request goes; a redirect's `Referrer-Policy` header changes
 * the policy for the next hop. Without a `referrer` (Node has no document
 * to take one from) nothing is sent, as in Node's fetch.
 */

export type ReferrerPolicy = NonNullable<RequestInit['referrerPolicy']>

const POLICIES: ReadonlySet<string> = new Set([
  'no-referrer',
  'no-referrer-when-downgrade',
  'same-origin',
  'origin',
  'strict-origin',
  'origin-when-cross-origin',
  'strict-origin-when-cross-origin',
  'unsafe-url',
])

const DEFAULT_POLICY = 'strict-origin-when-cross-origin'

/** `init.referrerPolicy`, checked ('' is the default). */
export function policyOf(value: string | undefined): ReferrerPolicy {
  if (value === undefined || value === '') return ''
  if (!POLICIES.has(value)) {
    throw new TypeError(`Failed to read the 'referrerPolicy' property from 'RequestInit': The provided value '${value}' is not a valid enum value of type ReferrerPolicy.`)
  }
  return value as ReferrerPolicy
}

/** `init.referrer` as a URL, or undefined for none (`''`, or `about:client`: Node has no client to take one from). */
export function referrerOf(value: string | undefined): URL | undefined {
  if (value === undefined || value === '' || value === 'about:client') return undefined
  try {
    return new URL(value)
  } catch (cause) {
    throw new TypeError(`Referrer "${value}" is not a valid URL.`, { cause })
  }
}

/** The policy a `Referrer-Policy` header sets: its last token that names one, or undefined. */
export function policyFromHeader(value: string | undefined): ReferrerPolicy | undefined {
  let policy: ReferrerPolicy | undefined
  for (const token of (value ?? '').split(',')) {
    const name = token.trim().toLowerCase()
    if (POLICIES.has(name)) policy = name as ReferrerPolicy
  }
  return policy
}

/** Whether the spec calls `url` potentially trustworthy (TLS, or this machine). */
function trustworthy(url: URL): boolean {
  if (url.protocol === 'https:' || url.protocol === 'wss:' || url.protocol === 'file:') return true
  const host = url.hostname
  return host === 'localhost' || host.endsWith('.localhost') || /^127\./.test(host) || host === '[::1]'
}

/** The `Referer` value for a request to `target` from `referrer` under `policy`, or undefined. */
export function refererFor(referrer: URL, policy: ReferrerPolicy, target: URL): string | undefined {
  const full = new URL(referrer.href)
  full.username = ''
  full.password = ''
  full.hash = ''
  const originOnly = `${referrer.origin}/`
  const sameOrigin = referrer.origin === target.origin
  const downgrade = trustworthy(referrer) && !trustworthy(target)
  switch (policy === '' ? DEFAULT_POLICY : policy) {
    case 'no-referrer':
      return undefined
    case 'origin':
      return originOnly
    case 'unsafe-url':
      return full.href
    case 'strict-origin':
      return downgrade ? undefined : originOnly
    case 'same-origin':
      return sameOrigin ? full.href : undefined
    case 'origin-when-cross-origin':
      return sameOrigin ? full.href : originOnly
    case 'no-referrer-when-downgrade':
      return downgrade ? undefined : full.href
    default:
      // strict-origin-when-cross-origin
      return sameOrigin ? full.href : downgrade ? undefined : originOnly
  }
}
