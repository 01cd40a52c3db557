//! One HTTP/1.1 request/response over a pooled connection, with the
//! keep-alive race handled: an idempotent request that fails on a reused
//! connection before any response byte is retried once on a fresh one.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::http1::body::BodyDecoder;
use crate::http1::request::{is_idempotent_method, RequestBody, RequestHead};
use crate::http1::response::{parse_head, Framing, ResponseHead};
use crate::key::Key;
use crate::pool::{AcquireOptions, Cancel, Pool, Pooled};

/// Bodies this small (with a known length) are read before the response is
/// returned, so the connection is back in the pool before the caller looks.
pub const EAGER_BODY_LIMIT: u64 = 64 * 1024;

/// Bytes asked of the socket per read while streaming a body.
const BODY_READ_SIZE: usize = 64 * 1024;

/// Bytes asked of the socket per read while waiting for a head; the buffer
/// grows by this much while a head is incomplete, up to the 16 KiB limit.
const HEAD_READ_SIZE: usize = 4 * 1024;

/// Safety margin under a server's `Keep-Alive: timeout` (node:http uses 1 s).
const KEEP_ALIVE_MARGIN: Duration = Duration::from_secs(1);

/// Per-request settings.
#[derive(Debug, Clone)]
pub struct RequestOptions {
    /// Time allowed for the response head after the request was sent.
    pub headers_timeout: Duration,
    /// Time allowed between two pieces of the body.
    pub body_timeout: Duration,
    /// Treat as idempotent (safe to retry) whatever the method.
    pub idempotent: bool,
    pub cancel: Option<Arc<Cancel>>,
}

impl Default for RequestOptions {
    /// undici's defaults: 300 s each.
    fn default() -> Self {
        RequestOptions {
            headers_timeout: Duration::from_secs(300),
            body_timeout: Duration::from_secs(300),
            idempotent: false,
            cancel: None,
        }
    }
}

/// A response whose head has arrived.
pub struct Response {
    pub head: ResponseHead,
    /// Whether the connection served an earlier request.
    pub reused: bool,
    /// The id of the connection the exchange ran on.
    pub connection_id: u64,
    pub body: ResponseBody,
}

/// The body of a response: already complete (small bodies), or streamed on
/// demand, reading the socket only when asked (backpressure).
pub struct ResponseBody {
    /// Complete body not yet handed out.
    ready: Option<Vec<u8>>,
    stream: Option<BodyStream>,
    trailers: Vec<(String, String)>,
    body_timeout: Duration,
    cancel: Option<Arc<Cancel>>,
}

struct BodyStream {
    pooled: Pooled,
    decoder: BodyDecoder,
    /// The head and framing allow reuse once the body has ended.
    reusable: bool,
}

/// Why an attempt failed, and whether the server had started answering.
struct Failure {
    error: Error,
    answered: bool,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure {
            error,
            answered: false,
        }
    }
}

/// A failed write: the server cannot have answered yet.
impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure {
            error: e.into(),
            answered: false,
        }
    }
}

/// Bodies up to this size go out in the same write as the head.
const JOIN_BODY_LIMIT: usize = 16 * 1024;

/// A validated request with its head encoded (and a small body joined to
/// it, so that one write sends both).
pub struct Prepared {
    head: RequestHead,
    wire: Vec<u8>,
    /// Whatever was not joined to `wire`.
    body: RequestBody,
    idempotent: bool,
}

impl Prepared {
    pub fn new(
        key: &Key,
        head: RequestHead,
        body: RequestBody,
        opts: &RequestOptions,
    ) -> Result<Prepared> {
        head.check_length(&body)?;
        let idempotent = opts.idempotent
            || is_idempotent_method(&head.method)
            || head
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("idempotency-key"));
        let mut wire = head.encode(key, &body);
        let body = match body {
            RequestBody::Bytes(bytes) if bytes.len() <= JOIN_BODY_LIMIT => {
                wire.extend_from_slice(&bytes);
                RequestBody::Empty
            }
            other => other,
        };
        Ok(Prepared {
            head,
            wire,
            body,
            idempotent,
        })
    }
}

/// A first attempt begun synchronously: an idle connection that already
/// carries the first `written` bytes of the request.
pub struct Started {
    pooled: Pooled,
    written: usize,
}

/// Begin a request without waiting, from any thread: take an idle
/// connection and write as much of the request as its socket takes now.
/// `None` (nothing done) when no idle connection is parked, the body
/// streams, or the write failed at once (the connection is closed; the
/// request was not sent).
///
/// Done on the caller's thread, the write overlaps the I/O thread's wake-up
/// with the server's work instead of preceding it.
pub fn start_now(pool: &Pool, key: &Key, prepared: &Prepared) -> Option<Started> {
    if !matches!(prepared.body, RequestBody::Empty) {
        return None;
    }
    let mut pooled = pool.try_acquire_idle(key).ok()??;
    match pooled.connection().ok()?.try_write_now(&prepared.wire) {
        Ok((written, _)) => Some(Started { pooled, written }),
        Err(_) => {
            pooled.release(false);
            None
        }
    }
}

/// Send a request through `pool` and wait for the response head.
pub async fn send(
    pool: &Pool,
    key: &Key,
    head: RequestHead,
    body: RequestBody,
    opts: &RequestOptions,
) -> Result<Response> {
    send_prepared(pool, key, Prepared::new(key, head, body, opts)?, None, opts).await
}

/// Finish a prepared request, continuing a first attempt begun by
/// `start_now` if there is one.
pub async fn send_prepared(
    pool: &Pool,
    key: &Key,
    mut prepared: Prepared,
    mut first: Option<Started>,
    opts: &RequestOptions,
) -> Result<Response> {
    let cancel = opts.cancel.as_deref();
    let mut fresh = false;
    loop {
        let (mut pooled, written) = match first.take() {
            Some(started) => (started.pooled, started.written),
            None => {
                let acquire = AcquireOptions {
                    cancel: opts.cancel.clone(),
                    fresh,
                    ..AcquireOptions::default()
                };
                (pool.acquire(key, &acquire).await?, 0)
            }
        };
        let reused = pooled.reused();
        let rest = &prepared.wire[written..];
        let attempt = async {
            match tokio::time::timeout(
                opts.headers_timeout,
                attempt(&mut pooled, rest, &mut prepared.body, &prepared.head.method),
            )
            .await
            {
                Ok(result) => result,
                Err(_) => Err(Failure {
                    error: Error::HeadersTimeout {
                        timeout_ms: opts.headers_timeout.as_millis() as u64,
                    },
                    answered: true,
                }),
            }
        };
        let outcome = match cancel {
            None => attempt.await,
            Some(c) => tokio::select! {
                biased;
                _ = c.cancelled() => Err(Failure { error: Error::Aborted, answered: true }),
                r = attempt => r,
            },
        };
        match outcome {
            Ok((response_head, framing, reusable)) => {
                let reusable = reusable && !prepared.head.close;
                return finish(pooled, response_head, framing, reusable, reused, opts).await;
            }
            Err(Failure { error, answered }) => {
                // The exchange was interrupted: the connection's state is unknown.
                pooled.release(false);
                let stale = reused && !answered && error.is_stale_connection();
                if !stale {
                    return Err(error);
                }
                if !fresh && prepared.idempotent && prepared.body.is_replayable() {
                    fresh = true;
                    continue;
                }
                let why = if prepared.idempotent {
                    "and the retry failed too"
                } else {
                    "and the request is not idempotent, so it was not retried"
                };
                return Err(Error::SocketClosed(format!(
                    "the server closed a reused connection before answering ({error}), {why}"
                )));
            }
        }
    }
}

/// Write the request, then read up to the end of the final response head.
async fn attempt(
    pooled: &mut Pooled,
    wire: &[u8],
    body: &mut RequestBody,
    method: &str,
) -> std::result::Result<(ResponseHead, Framing, bool), Failure> {
    let conn = pooled.connection()?;
    match body {
        RequestBody::Empty => conn.write_all(wire).await?,
        RequestBody::Bytes(bytes) => {
            conn.write_all(wire).await?;
            conn.write_all(bytes).await?;
        }
        RequestBody::Stream(chunks) => {
            conn.write_all(wire).await?;
            while let Some(chunk) = chunks.recv().await {
                if chunk.is_empty() {
                    continue;
                }
                let mut framed = Vec::with_capacity(chunk.len() + 20);
                framed.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                framed.extend_from_slice(&chunk);
                framed.extend_from_slice(b"\r\n");
                conn.write_all(&framed).await?;
            }
            conn.write_all(b"0\r\n\r\n").await?;
        }
    }
    loop {
        match parse_head(conn.buffered.filled()) {
            Err(error) => {
                return Err(Failure {
                    error,
                    answered: true,
                })
            }
            Ok(Some((head, used))) => {
                conn.buffered.consume(used);
                if head.is_interim() {
                    continue;
                }
                let (framing, reusable) = head.framing(method).map_err(|error| Failure {
                    error,
                    answered: true,
                })?;
                let reusable = reusable && head.allows_keep_alive();
                if let Some(hint) = head.keep_alive_timeout() {
                    let hint = hint.saturating_sub(KEEP_ALIVE_MARGIN);
                    if hint.is_zero() {
                        return Ok((head, framing, false));
                    }
                    conn.set_idle_timeout_hint(hint);
                }
                return Ok((head, framing, reusable));
            }
            Ok(None) => {
                let answered = !conn.buffered.is_empty();
                match conn.fill_buffer(HEAD_READ_SIZE).await {
                    Ok(0) => {
                        let error = Error::SocketClosed(
                            "the server closed the connection before a complete response head"
                                .into(),
                        );
                        return Err(Failure { error, answered });
                    }
                    Ok(_) => {}
                    Err(e) => {
                        return Err(Failure {
                            error: e.into(),
                            answered,
                        })
                    }
                }
            }
        }
    }
}

/// Build the response: small bodies are completed now and the connection
/// released; larger ones stream on demand.
async fn finish(
    pooled: Pooled,
    head: ResponseHead,
    framing: Framing,
    reusable: bool,
    reused: bool,
    opts: &RequestOptions,
) -> Result<Response> {
    let connection_id = pooled.connection_ref()?.id();
    let mut body = ResponseBody {
        ready: None,
        stream: Some(BodyStream {
            pooled,
            decoder: BodyDecoder::new(framing),
            reusable,
        }),
        trailers: Vec::new(),
        body_timeout: opts.body_timeout,
        cancel: opts.cancel.clone(),
    };
    let eager = matches!(framing, Framing::None)
        || matches!(framing, Framing::Length(n) if n <= EAGER_BODY_LIMIT);
    let mut collected = Vec::new();
    loop {
        // Streamed bodies stop at what already arrived: the head must not
        // wait for body bytes (think server-sent events).
        if !eager
            && body
                .stream
                .as_ref()
                .is_some_and(BodyStream::has_nothing_buffered)
        {
            break;
        }
        match body.next_chunk().await? {
            Some(chunk) if collected.is_empty() => collected = chunk,
            Some(chunk) => collected.extend_from_slice(&chunk),
            None => break,
        }
    }
    body.ready = Some(collected);
    Ok(Response {
        head,
        reused,
        connection_id,
        body,
    })
}

impl BodyStream {
    fn has_nothing_buffered(&self) -> bool {
        self.pooled
            .connection_ref()
            .is_ok_and(|c| c.buffered.is_empty())
    }

    /// Give the connection back if the body ended cleanly with nothing
    /// unexpected behind it.
    fn end(mut self) {
        let clean = self.decoder.is_done()
            && self.reusable
            && self
                .pooled
                .connection()
                .is_ok_and(|c| c.buffered.is_empty() && !c.is_broken());
        // The exchange just read up to the end of the framing: no need to
        // peek at the socket again before parking.
        self.pooled.release_after_exchange(clean);
    }
}

impl ResponseBody {
    /// The part of the body already read (the whole body once complete),
    /// taken out without touching the socket.
    pub fn next_chunk_ready(&mut self) -> Vec<u8> {
        self.ready.take().unwrap_or_default()
    }

    /// Whether the whole body has been read from the connection.
    pub fn is_complete(&self) -> bool {
        self.stream.is_none()
    }

    /// Trailers of a chunked body, once it is complete.
    pub fn trailers(&self) -> &[(String, String)] {
        &self.trailers
    }

    /// The next piece of the body, or `None` at its end. Reads the socket
    /// only when nothing is buffered; each read is bounded by the body
    /// timeout and the request's AbortSignal.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        if let Some(ready) = self.ready.take() {
            if !ready.is_empty() {
                return Ok(Some(ready));
            }
        }
        let cancel = self.cancel.clone();
        let timeout = self.body_timeout;
        let read = self.read_stream();
        let result = match cancel.as_deref() {
            None => tokio::time::timeout(timeout, read).await,
            Some(c) => tokio::select! {
                biased;
                _ = c.cancelled() => Ok(Err(Error::Aborted)),
                r = tokio::time::timeout(timeout, read) => r,
            },
        };
        let result = result.unwrap_or(Err(Error::BodyTimeout {
            timeout_ms: timeout.as_millis() as u64,
        }));
        if result.is_err() {
            // Drop closes the connection: its position in the stream is unknown.
            if let Some(stream) = self.stream.take() {
                stream.pooled.release(false);
            }
        }
        result
    }

    async fn read_stream(&mut self) -> Result<Option<Vec<u8>>> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(None);
        };
        let mut out = Vec::new();
        loop {
            let conn = stream.pooled.connection()?;
            if !conn.buffered.is_empty() {
                let used = stream.decoder.decode(conn.buffered.filled(), &mut out)?;
                conn.buffered.consume(used);
            }
            if stream.decoder.is_done() {
                self.trailers = stream.decoder.trailers().to_vec();
                if let Some(stream) = self.stream.take() {
                    stream.end();
                }
                return Ok((!out.is_empty()).then_some(out));
            }
            if !out.is_empty() {
                return Ok(Some(out));
            }
            if conn.fill_buffer(BODY_READ_SIZE).await? == 0 {
                stream.decoder.on_eof()?;
            }
        }
    }
}

impl Drop for ResponseBody {
    /// A body dropped unread must not leak its connection: it is closed
    /// (its unread bytes would desynchronise the next exchange).
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take() {
            stream.pooled.release(false);
        }
    }
}
