//! One HTTP/1.1 request/response over a pooled connection.
//!
//! - The response is read while the request is sent (RFC 9112 §9.3): a final
//!   response that arrives during an upload is handed over at once. An
//!   error (4xx, 5xx) stops the upload and the connection is not reused;
//!   any other status lets the upload go on beside the response (echo
//!   servers, streaming APIs), and the connection goes back to the pool
//!   once both are done.
//! - The keep-alive race: a request that fails on a reused connection
//!   before any response byte arrived is retried once on a fresh one when
//!   it is idempotent and its body can be sent again.
//! - Small bodies that have already arrived come with the head, so the
//!   connection is back in the pool before the caller looks at the
//!   response; the head never waits for body bytes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::task::JoinHandle;

use super::response_body::{finish, Response};
use crate::error::{Error, Result};
use crate::http1::codec::{
    is_idempotent_method, parse_head, BodyFraming, Framing, RequestBody, RequestHead, ResponseHead,
    MAX_HEAD_BYTES,
};
use crate::key::Key;
use crate::pool::{cancel, AcquireOptions, Cancel};
use crate::transport::{Duplex, OpenTimes, ReadSide, WriteSide};
use crate::{Pool, Pooled};

/// Bytes asked of the socket per read while waiting for a head; the buffer
/// grows by this much while a head is incomplete, up to `maxHeaderSize`.
const HEAD_READ_SIZE: usize = 4 * 1024;

/// Safety margin under a server's `Keep-Alive: timeout` (node:http uses 1 s).
const KEEP_ALIVE_MARGIN: Duration = Duration::from_secs(1);

/// Bodies up to this size go out in the same write as the head.
const JOIN_BODY_LIMIT: usize = 16 * 1024;

/// Request bodies are written in pieces of this size, each within the body
/// timeout, so a peer that stops reading is noticed.
const UPLOAD_PIECE: usize = 64 * 1024;

/// Per-request settings.
#[derive(Debug, Clone)]
pub struct RequestOptions {
    /// Time allowed for the response head once the request is sent (zero:
    /// no limit).
    pub headers_timeout: Duration,
    /// Time allowed between two pieces of the body, either way: the
    /// response's, and the request's while it is sent (zero: no limit).
    pub body_timeout: Duration,
    /// Treat as idempotent (safe to retry) whatever the method.
    pub idempotent: bool,
    /// Largest response head accepted.
    pub max_header_size: usize,
    pub cancel: Option<Arc<Cancel>>,
    /// Measure the stages (see [`Timings`]); off, no clock is read.
    pub timed: bool,
    /// Undo the body's `Content-Encoding` (gzip, deflate, br), as fetch does.
    pub decompress: bool,
}

impl Default for RequestOptions {
    /// undici's timeouts (300 s each) and node's head limit (16 KiB).
    fn default() -> Self {
        RequestOptions {
            headers_timeout: Duration::from_secs(300),
            body_timeout: Duration::from_secs(300),
            idempotent: false,
            max_header_size: MAX_HEAD_BYTES,
            cancel: None,
            timed: false,
            decompress: false,
        }
    }
}

/// How long the stages of an exchange took, from its start.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// Waiting for a connection at a limit (the acquire, less any connect).
    pub queued: Duration,
    /// Opening the connection, when this exchange was its first.
    pub connect: Duration,
    pub tls: Duration,
    /// Until the response head had arrived.
    pub head: Duration,
    /// A stale keep-alive connection made the request go again.
    pub retried: bool,
}

/// Why an exchange failed, and the peer it failed at when a connection
/// had been made (a failed connect names its address in the error itself).
#[derive(Debug)]
pub struct ExchangeError {
    pub error: Error,
    pub peer: Option<std::net::SocketAddr>,
}

impl From<Error> for ExchangeError {
    fn from(error: Error) -> ExchangeError {
        ExchangeError { error, peer: None }
    }
}

/// Why an attempt failed, and whether the server had started answering.
struct AttemptError {
    error: Error,
    answered: bool,
}

impl From<Error> for AttemptError {
    fn from(error: Error) -> AttemptError {
        AttemptError {
            error,
            answered: false,
        }
    }
}

/// A failed write: the server cannot have answered yet.
impl From<std::io::Error> for AttemptError {
    fn from(e: std::io::Error) -> AttemptError {
        AttemptError {
            error: e.into(),
            answered: false,
        }
    }
}

/// A validated request with its head encoded (and a small body joined to
/// it, so that one write sends both).
pub struct Prepared {
    head: RequestHead,
    wire: Bytes,
    /// Whatever was not joined to `wire`; a stream body is taken by the
    /// attempt that sends it.
    body: RequestBody,
    framing: BodyFraming,
    idempotent: bool,
    /// The body can be sent again (not a stream).
    replayable: bool,
}

impl Prepared {
    pub fn new(
        key: &Key,
        head: RequestHead,
        body: RequestBody,
        opts: &RequestOptions,
    ) -> Result<Prepared> {
        let framing = head.framing(&body)?;
        let idempotent = opts.idempotent
            || is_idempotent_method(&head.method)
            || head
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("idempotency-key"));
        let mut wire = head.encode(key.host_header(), framing);
        let replayable = body.is_replayable();
        let body = match body {
            RequestBody::Bytes(bytes) if bytes.len() <= JOIN_BODY_LIMIT => {
                wire.extend_from_slice(&bytes);
                RequestBody::Empty
            }
            other => other,
        };
        Ok(Prepared {
            head,
            wire: Bytes::from(wire),
            body,
            framing,
            idempotent,
            replayable,
        })
    }

    /// Whether a failure on a stale connection may be retried.
    fn retryable(&self) -> bool {
        self.idempotent && self.replayable
    }

    /// The body for one attempt: bytes are shared, a stream is handed over.
    fn body_for_attempt(&mut self) -> RequestBody {
        match &mut self.body {
            RequestBody::Empty => RequestBody::Empty,
            RequestBody::Bytes(bytes) => RequestBody::Bytes(bytes.clone()),
            stream @ RequestBody::Stream(_) => std::mem::replace(stream, RequestBody::Empty),
        }
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
    let io = pooled.connection().io().clone();
    let Some(mut writer) = io.try_write_side() else {
        pooled.release(true);
        return None;
    };
    let written = writer.try_write_now(&prepared.wire);
    drop(writer);
    match written {
        Ok((written, _)) => Some(Started { pooled, written }),
        Err(_) => {
            pooled.release(false);
            None
        }
    }
}

/// Finish a prepared request, continuing a first attempt begun by
/// `start_now` if there is one.
pub async fn send_prepared(
    pool: &Pool,
    key: &Key,
    mut prepared: Prepared,
    mut first: Option<Started>,
    opts: &RequestOptions,
) -> std::result::Result<Response, ExchangeError> {
    let mut fresh = false;
    let started = opts.timed.then(Instant::now);
    loop {
        let (mut pooled, written) = match first.take() {
            Some(started) => (started.pooled, started.written),
            None => {
                let acquire = AcquireOptions {
                    cancel: opts.cancel.clone(),
                    fresh,
                    retry_on_stale: !fresh && prepared.retryable(),
                    ..AcquireOptions::default()
                };
                (pool.acquire(key, &acquire).await?, 0)
            }
        };
        let reused = pooled.reused();
        let peer = pooled.connection_ref().remote_addr();
        let failed_at = |error| ExchangeError { error, peer };
        let acquired = started.map(|t| t.elapsed());
        let outcome = {
            let work = attempt(&mut pooled, &mut prepared, written, opts);
            tokio::select! {
                biased;
                _ = cancel::fired(opts.cancel.as_deref()) => Err(AttemptError { error: Error::Aborted, answered: true }),
                r = work => r,
            }
        };
        match outcome {
            Ok(Answer {
                head,
                framing,
                reusable,
                upload,
            }) => {
                let reusable = reusable && !prepared.head.close;
                let timings = started.zip(acquired).map(|(start, acquired)| {
                    let opened = match reused {
                        false => pooled.connection_ref().opened(),
                        true => OpenTimes::default(),
                    };
                    Timings {
                        queued: acquired.saturating_sub(opened.connect + opened.tls),
                        connect: opened.connect,
                        tls: opened.tls,
                        head: start.elapsed(),
                        retried: fresh,
                    }
                });
                let mut response = finish(pooled, head, framing, reusable, upload, reused, opts)
                    .map_err(failed_at)?;
                response.timings = timings;
                return Ok(response);
            }
            Err(AttemptError { error, answered }) => {
                // The exchange was interrupted: the connection's state is unknown.
                pooled.release(false);
                let stale = reused && !answered && error.is_stale_connection();
                if !stale {
                    return Err(failed_at(error));
                }
                if !fresh && prepared.retryable() {
                    fresh = true;
                    continue;
                }
                let why = if prepared.idempotent {
                    "and the retry failed too"
                } else {
                    "and the request is not idempotent, so it was not retried"
                };
                return Err(failed_at(Error::SocketClosed(format!(
                    "the server closed a reused connection before answering ({error}), {why}"
                ))));
            }
        }
    }
}

/// The final response head and what it says about the connection.
struct Answer {
    head: ResponseHead,
    framing: Framing,
    reusable: bool,
    /// The rest of the request body, still being sent after an early answer.
    upload: Option<JoinHandle<Result<()>>>,
}

/// The request going out, as a task of its own once an early answer lets it
/// outlive the attempt.
type Sending = Pin<Box<dyn Future<Output = std::result::Result<(), AttemptError>> + Send>>;

/// Send the request while reading the response head.
async fn attempt(
    pooled: &mut Pooled,
    prepared: &mut Prepared,
    written: usize,
    opts: &RequestOptions,
) -> std::result::Result<Answer, AttemptError> {
    let conn = pooled.connection();
    let io = conn.io().clone();
    let mut reader = io.read_side().await;
    let mut send: Sending = Box::pin(send_request(
        io.clone(),
        prepared.wire.slice(written..),
        prepared.body_for_attempt(),
        prepared.framing,
        opts.body_timeout,
    ));
    let read = read_head(&mut reader, &prepared.head.method, opts.max_header_size);
    tokio::pin!(read);
    let sent = tokio::select! {
        // The send first: a response already waiting when the request goes
        // out in full (a request written ahead by `start_now`) is not early.
        biased;
        sent = &mut send => sent,
        // A final response before the request is fully sent: an error
        // stops the upload (the server may not read the rest, so the
        // connection cannot be reused); any other status lets it go on.
        answer = &mut read => {
            let mut answer = answer?;
            if answer.head.status >= 400 {
                answer.reusable = false;
            } else {
                answer.upload = Some(tokio::spawn(async move { send.await.map_err(|f| f.error) }));
            }
            return Ok(answer);
        }
    };
    if let Err(failure) = sent {
        // The server may have answered and closed (a 413 then a reset): a
        // response already received is delivered rather than the error.
        return match tokio::time::timeout(Duration::from_millis(50), &mut read).await {
            Ok(Ok(mut answer)) => {
                answer.reusable = false;
                Ok(answer)
            }
            _ => Err(failure),
        };
    }
    let answer = if opts.headers_timeout.is_zero() {
        read.await
    } else {
        match tokio::time::timeout(opts.headers_timeout, read).await {
            Ok(answer) => answer,
            Err(_) => Err(AttemptError {
                error: Error::HeadersTimeout {
                    timeout_ms: opts.headers_timeout.as_millis() as u64,
                },
                answered: true,
            }),
        }
    }?;
    if let Some(hint) = answer.head.keep_alive_timeout() {
        let hint = hint.saturating_sub(KEEP_ALIVE_MARGIN);
        if hint.is_zero() {
            return Ok(Answer {
                reusable: false,
                ..answer
            });
        }
        conn.set_idle_timeout_hint(hint);
    }
    Ok(answer)
}

/// Write the head and the body; no piece may take longer than `stall`.
async fn send_request(
    io: Arc<Duplex>,
    wire: Bytes,
    mut body: RequestBody,
    framing: BodyFraming,
    stall: Duration,
) -> std::result::Result<(), AttemptError> {
    let mut writer = io.write_side().await;
    let mut out = Upload {
        writer: &mut writer,
        stall,
    };
    out.write(&wire).await?;
    match &mut body {
        RequestBody::Empty => {}
        RequestBody::Bytes(bytes) => out.write(bytes).await?,
        RequestBody::Stream(chunks) => {
            let mut sent: u64 = 0;
            while let Some(chunk) = chunks.recv().await {
                if chunk.is_empty() {
                    continue;
                }
                sent += chunk.len() as u64;
                match framing {
                    BodyFraming::Length(declared) => {
                        if sent > declared {
                            return Err(length_mismatch(declared, sent, "more"));
                        }
                        out.write(&chunk).await?;
                    }
                    _ => {
                        let mut framed = Vec::with_capacity(chunk.len() + 20);
                        framed.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                        framed.extend_from_slice(&chunk);
                        framed.extend_from_slice(b"\r\n");
                        out.write(&framed).await?;
                    }
                }
            }
            match framing {
                BodyFraming::Length(declared) if sent != declared => {
                    return Err(length_mismatch(declared, sent, "fewer"));
                }
                BodyFraming::Length(_) => {}
                _ => out.write(b"0\r\n\r\n").await?,
            }
        }
    }
    Ok(())
}

/// The request as it goes out: in pieces, each within the stall limit.
struct Upload<'w, 'c> {
    writer: &'w mut WriteSide<'c>,
    stall: Duration,
}

impl Upload<'_, '_> {
    async fn write(&mut self, bytes: &[u8]) -> std::result::Result<(), AttemptError> {
        for piece in bytes.chunks(UPLOAD_PIECE) {
            if self.stall.is_zero() {
                self.writer.write_all(piece).await?;
                continue;
            }
            match tokio::time::timeout(self.stall, self.writer.write_all(piece)).await {
                Ok(written) => written?,
                Err(_) => {
                    return Err(AttemptError {
                        error: Error::BodyTimeout {
                            timeout_ms: self.stall.as_millis() as u64,
                        },
                        // Part of the request reached the server: never retried.
                        answered: true,
                    });
                }
            }
        }
        Ok(())
    }
}

fn length_mismatch(declared: u64, sent: u64, what: &str) -> AttemptError {
    AttemptError {
        error: Error::InvalidArgument(format!(
            "the request body stream gave {what} bytes than its content-length ({sent} vs {declared})"
        )),
        // Part of the body reached the server: never retry.
        answered: true,
    }
}

/// Read up to the end of the final response head.
async fn read_head(
    reader: &mut ReadSide<'_>,
    method: &str,
    max_head: usize,
) -> std::result::Result<Answer, AttemptError> {
    let answered = |error| AttemptError {
        error,
        answered: true,
    };
    loop {
        match parse_head(reader.buffered(), max_head) {
            Err(error) => return Err(answered(error)),
            Ok(Some((head, used))) => {
                reader.consume(used);
                if head.is_interim() {
                    continue;
                }
                if head.status == 101 {
                    let error = Error::HttpParse(
                        "the server switched protocols (101) but the request asked for no upgrade"
                            .into(),
                    );
                    return Err(answered(error));
                }
                let (framing, reusable) = head.framing(method).map_err(answered)?;
                let reusable = reusable && head.allows_keep_alive();
                return Ok(Answer {
                    head,
                    framing,
                    reusable,
                    upload: None,
                });
            }
            Ok(None) => {
                let started = !reader.buffered().is_empty();
                match reader.fill(HEAD_READ_SIZE).await {
                    Ok(0) => {
                        let error = Error::SocketClosed(
                            "the server closed the connection before a complete response head"
                                .into(),
                        );
                        return Err(AttemptError {
                            error,
                            answered: started,
                        });
                    }
                    Ok(_) => {}
                    Err(e) => {
                        return Err(AttemptError {
                            error: e,
                            answered: started,
                        })
                    }
                }
            }
        }
    }
}
