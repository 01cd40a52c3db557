// Results as a table with ratios, as JSON, and as an SVG bar chart.

const fmt = (n, digits = 0) => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '–')

/**
 * rows: [{ scenario, contestant, rps: { median, min, max }, p50, p99, cpu: { js, other }, wrk? }]
 * Prints one table per scenario: throughput with ratios to undici's
 * `request` and `dispatch`, node:http and wrk, latency, and CPU µs per
 * request (JavaScript thread, other threads, and the total relative to
 * undici `dispatch`'s).
 */
export function printTable(rows, print = console.log) {
  const scenarios = [...new Set(rows.map((r) => r.scenario))]
  for (const scenario of scenarios) {
    const group = rows.filter((r) => r.scenario === scenario)
    const find = (name) => group.find((r) => r.contestant === name)
    const base = (name) => find(name)?.rps.median
    // HTTP/2 scenarios compare with node:http2's client instead of node:http.
    const nodeName = find('node:http2') ? 'node:http2' : 'node:http'
    const [request, dispatch, node] = [base('undici request'), base('undici dispatch'), base(nodeName)]
    const dispatchCpu = find('undici dispatch') && find('undici dispatch').cpu.js + find('undici dispatch').cpu.other
    const wrk = group.find((r) => r.wrk)?.wrk
    print(`\n${scenario}`)
    const header = ['contestant', 'req/s (median)', 'min–max', 'p50 µs', 'p99 µs', 'vs undici request', 'vs undici dispatch', `vs ${nodeName}`]
    if (wrk) header.push('of wrk')
    header.push('CPU µs/req JS', 'CPU µs/req other', 'CPU vs dispatch')
    const ratio = (n, d) => (d ? `${fmt(n / d, 2)}x` : '')
    const table = group.map((r) => {
      const line = [
        r.contestant,
        fmt(r.rps.median),
        `${fmt(r.rps.min)}–${fmt(r.rps.max)}`,
        fmt(r.p50),
        fmt(r.p99),
        ratio(r.rps.median, request),
        ratio(r.rps.median, dispatch),
        ratio(r.rps.median, node),
      ]
      if (wrk) line.push(`${fmt((100 * r.rps.median) / wrk)}%`)
      line.push(fmt(r.cpu.js, 1), fmt(r.cpu.other, 1), ratio(r.cpu.js + r.cpu.other, dispatchCpu))
      return line
    })
    if (wrk) table.push(['wrk (ceiling)', fmt(wrk), '', '', '', '', '', '', '100%', '', '', ''])
    const widths = header.map((h, i) => Math.max(h.length, ...table.map((l) => String(l[i] ?? '').length)))
    const line = (cells) => '| ' + cells.map((c, i) => String(c ?? '').padEnd(widths[i])).join(' | ') + ' |'
    print(line(header))
    print('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|')
    for (const l of table) print(line(l))
  }
}

/** A grouped horizontal bar chart of median req/s per scenario. */
export function svgChart(rows, title) {
  const scenarios = [...new Set(rows.map((r) => r.scenario))]
  const names = [...new Set(rows.map((r) => r.contestant))]
  const colors = ['#d9480f', '#f08c00', '#1971c2', '#2f9e44', '#868e96', '#7048e8', '#c2255c']
  const bar = 16
  const gap = 10
  const left = 260
  const width = 900
  const max = Math.max(...rows.map((r) => r.rps.median))
  let y = 50
  const parts = []
  for (const scenario of scenarios) {
    parts.push(`<text x="10" y="${y + 12}" font-weight="bold">${escape(scenario)}</text>`)
    y += 20
    for (const r of rows.filter((x) => x.scenario === scenario)) {
      const w = Math.max(1, ((width - left - 120) * r.rps.median) / max)
      const color = colors[names.indexOf(r.contestant) % colors.length]
      parts.push(`<text x="${left - 8}" y="${y + bar - 4}" text-anchor="end">${escape(r.contestant)}</text>`)
      parts.push(`<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${bar}" fill="${color}"/>`)
      parts.push(`<text x="${left + w + 6}" y="${y + bar - 4}">${fmt(r.rps.median)} req/s</text>`)
      y += bar + 4
    }
    y += gap
  }
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y + 10}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="24" font-size="16" font-weight="bold">${escape(title)}</text>`,
    ...parts,
    '</svg>',
  ].join('\n')
}

function escape(s) {
  return String(s).replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c])
}
