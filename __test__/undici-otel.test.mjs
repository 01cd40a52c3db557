// OpenTelemetry's undici instrumentation, unchanged, over pconn/undici's
// Agent: the real packages with an in-memory exporter. The server records
// the traceparent it received, which must name the client span.
import test from 'ava'
import http from 'node:http'
import diagnostics from 'node:diagnostics_channel'
import { once } from 'node:events'
import * as undici from 'undici'
import { context, trace, SpanKind, SpanStatusCode } from '@opentelemetry/api'
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { UndiciInstrumentation } from '@opentelemetry/instrumentation-undici'
import { Agent } from 'pconn/undici'
import { closedPort, eventually } from './helpers/servers.mjs'

// One provider for the file (ava runs each file in its own process); the
// tests are serial because they read the one exporter.
const exporter = new InMemorySpanExporter()
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
provider.register()
const instrumentation = new UndiciInstrumentation()
instrumentation.setTracerProvider(provider)
const tracer = provider.getTracer('pconn-test')

test.after.always(async () => {
  instrumentation.disable()
  await provider.shutdown()
})

async function useServer(t, handler) {
  const seen = { requests: [] }
  const server = http.createServer((req, res) => {
    seen.requests.push({ url: req.url, headers: req.headers })
    handler(req, res)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return { seen, port: server.address().port, origin: `http://127.0.0.1:${server.address().port}` }
}

function useAgent(t) {
  const agent = new Agent()
  t.teardown(() => agent.destroy())
  return agent
}

const traceparentOf = (span) => `00-${span.spanContext().traceId}-${span.spanContext().spanId}-01`

test.serial('a client span per request with method, URL, status and peer; traceparent reaches the server', async (t) => {
  exporter.reset()
  const { seen, origin, port } = await useServer(t, (req, res) => res.end('traced'))
  const agent = useAgent(t)

  const r = await undici.request(`${origin}/undici/path?q=1`, { dispatcher: agent, headers: { 'user-agent': 'pconn-test/1' } })
  t.is(await r.body.text(), 'traced')
  const f = await fetch(`${origin}/node-fetch`, { dispatcher: agent, method: 'POST', body: 'x' })
  t.is(await f.text(), 'traced')
  const u = await undici.fetch(`${origin}/undici-fetch`, { dispatcher: agent })
  t.is(await u.text(), 'traced')

  await eventually(() => exporter.getFinishedSpans().length === 3, 5000, 'three spans')
  const spans = exporter.getFinishedSpans()
  t.deepEqual(
    spans.map((s) => s.name),
    ['GET', 'POST', 'GET'],
  )
  for (const span of spans) t.is(span.kind, SpanKind.CLIENT)
  const [first, post, third] = spans
  t.like(first.attributes, {
    'http.request.method': 'GET',
    'url.full': `${origin}/undici/path?q=1`,
    'url.path': '/undici/path',
    'url.query': '?q=1',
    'url.scheme': 'http',
    'server.address': '127.0.0.1',
    'server.port': port,
    'user_agent.original': 'pconn-test/1',
    'http.response.status_code': 200,
    'network.peer.address': '127.0.0.1',
    'network.peer.port': port,
    'network.protocol.version': '1.1',
  })
  t.like(post.attributes, { 'http.request.method': 'POST', 'url.full': `${origin}/node-fetch`, 'http.response.status_code': 200 })
  t.like(third.attributes, { 'url.full': `${origin}/undici-fetch`, 'http.response.status_code': 200 })
  t.is(first.status.code, SpanStatusCode.UNSET)

  t.is(seen.requests.length, 3)
  for (let i = 0; i < 3; i++) t.is(seen.requests[i].headers.traceparent, traceparentOf(spans[i]), `request ${i}`)
})

test.serial('a hostname origin gets the peer address the connection really used', async (t) => {
  exporter.reset()
  const { port } = await useServer(t, (req, res) => res.end('named'))
  const agent = useAgent(t)
  const r = await undici.request(`http://localhost:${port}/named`, { dispatcher: agent })
  t.is(await r.body.text(), 'named')
  await eventually(() => exporter.getFinishedSpans().length === 1, 5000, 'one span')
  const [span] = exporter.getFinishedSpans()
  t.like(span.attributes, { 'server.address': 'localhost', 'network.peer.address': '127.0.0.1', 'network.peer.port': port })
})

test.serial('the client span is a child of the active span at dispatch', async (t) => {
  exporter.reset()
  const { seen, origin } = await useServer(t, (req, res) => res.end('child'))
  const agent = useAgent(t)
  await tracer.startActiveSpan('parent', async (parent) => {
    const r = await undici.request(`${origin}/child`, { dispatcher: agent })
    await r.body.text()
    parent.end()
  })
  await eventually(() => exporter.getFinishedSpans().length === 2, 5000, 'two spans')
  const client = exporter.getFinishedSpans().find((s) => s.kind === SpanKind.CLIENT)
  const parent = exporter.getFinishedSpans().find((s) => s.name === 'parent')
  t.is(client.spanContext().traceId, parent.spanContext().traceId)
  t.is(client.parentSpanContext?.spanId ?? client.parentSpanId, parent.spanContext().spanId)
  t.is(seen.requests[0].headers.traceparent, traceparentOf(client))
  t.is(trace.getSpan(context.active()), undefined, 'no span leaks into the outer context')
})

test.serial('an error span for a refused connection, a 404 marked as error, an abort left unset', async (t) => {
  exporter.reset()
  const { origin } = await useServer(t, (req, res) => {
    if (req.url === '/missing') {
      res.writeHead(404)
      res.end('no')
    }
    // '/hang' never answers
  })
  const agent = useAgent(t)
  const port = await closedPort()

  const refused = await t.throwsAsync(undici.request(`http://127.0.0.1:${port}/refused`, { dispatcher: agent }))
  t.is(refused.code, 'ECONNREFUSED')
  const missing = await undici.request(`${origin}/missing`, { dispatcher: agent })
  await missing.body.text()
  const ac = new AbortController()
  const hanging = undici.request(`${origin}/hang`, { dispatcher: agent, signal: ac.signal })
  await eventually(() => exporter.getFinishedSpans().length === 2, 5000, 'two spans')
  ac.abort()
  await hanging.catch(() => {})
  await eventually(() => exporter.getFinishedSpans().length === 3, 5000, 'three spans')

  const [refusedSpan, missingSpan, abortedSpan] = exporter.getFinishedSpans()
  t.like(refusedSpan.attributes, { 'url.full': `http://127.0.0.1:${port}/refused`, 'error.type': 'ECONNREFUSED' })
  t.is(refusedSpan.status.code, SpanStatusCode.ERROR)
  t.true(refusedSpan.events.some((e) => e.name === 'exception'), 'the exception is recorded')
  t.like(missingSpan.attributes, { 'http.response.status_code': 404, 'error.type': '404' })
  t.is(missingSpan.status.code, SpanStatusCode.ERROR)
  t.is(abortedSpan.attributes['url.full'], `${origin}/hang`)
  t.is(abortedSpan.status.code, SpanStatusCode.UNSET)
  t.false('error.type' in abortedSpan.attributes)
})

test.serial("undici's channels: one create and one trailers per request, in undici's order, on the same request object", async (t) => {
  const { origin } = await useServer(t, (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.end('channels')
  })
  const agent = useAgent(t)
  const names = [
    'undici:request:create',
    'undici:client:beforeConnect',
    'undici:client:connected',
    'undici:client:sendHeaders',
    'undici:request:bodyChunkSent',
    'undici:request:bodySent',
    'undici:request:headers',
    'undici:request:bodyChunkReceived',
    'undici:request:trailers',
    'undici:request:error',
    'undici:client:connectError',
  ]
  const log = []
  const subscribers = names.map((name) => {
    const fn = (message) => log.push({ name, message })
    diagnostics.subscribe(name, fn)
    return () => diagnostics.unsubscribe(name, fn)
  })
  t.teardown(() => subscribers.forEach((off) => off()))

  const r = await undici.request(`${origin}/ch`, { dispatcher: agent, method: 'POST', body: 'sent', headers: { 'x-a': '1' } })
  await r.body.text()
  const ours = log.filter((e) => !e.message.request || e.message.request.origin === origin)
  t.deepEqual(
    ours.map((e) => e.name),
    [
      'undici:request:create',
      'undici:client:beforeConnect',
      'undici:client:connected',
      'undici:client:sendHeaders',
      'undici:request:bodyChunkSent',
      'undici:request:bodySent',
      'undici:request:headers',
      'undici:request:bodyChunkReceived',
      'undici:request:trailers',
    ],
  )
  const request = ours[0].message.request
  for (const e of ours) if (e.message.request) t.is(e.message.request, request)
  t.like(request, { origin, method: 'POST', path: '/ch', completed: true, aborted: false })
  t.true(request.headers.includes('x-a'))
  t.regex(ours[3].message.headers, /^POST \/ch HTTP\/1.1\r\nhost: 127\.0\.0\.1:\d+\r\nconnection: keep-alive\r\n/)
  t.like(ours[3].message.socket, { remoteAddress: '127.0.0.1', remotePort: Number(new URL(origin).port) })
  t.like(ours[1].message.connectParams, { hostname: '127.0.0.1', protocol: 'http:', port: new URL(origin).port })
  const headers = ours[6].message.response
  t.is(headers.statusCode, 200)
  t.is(headers.statusText, 'OK')
  t.true(headers.headers.every((h) => Buffer.isBuffer(h)))
  t.is(Buffer.concat(ours[7].message.chunk ? [ours[7].message.chunk] : []).toString(), 'channels')
  t.deepEqual(ours[8].message.trailers, [])

  // A reused connection publishes no connect messages; a refused one connectError then error.
  log.length = 0
  await (await undici.request(`${origin}/again`, { dispatcher: agent })).body.text()
  t.false(log.some((e) => e.name === 'undici:client:beforeConnect'))
  log.length = 0
  const port = await closedPort()
  await t.throwsAsync(undici.request(`http://127.0.0.1:${port}/`, { dispatcher: agent }))
  t.deepEqual(
    log.map((e) => e.name),
    ['undici:request:create', 'undici:client:beforeConnect', 'undici:client:connectError', 'undici:request:error'],
  )
  t.is(log[2].message.error.code, 'ECONNREFUSED')
})
