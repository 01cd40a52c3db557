//! Sending a prepared request: take a connection (or a stream of an HTTP/2
//! one), run one attempt in the protocol it speaks, and go again when the
//! failure says that is safe:
//!
//! - the keep-alive race: a request that fails on a reused connection
//!   before any response byte arrived is retried once on a fresh one when
//!   it is idempotent and its body can be sent again;
//! - a refusal: an HTTP/2 server that says it did not process the request
//!   (GOAWAY above its last stream, REFUSED_STREAM), or a connection found
//!   dead before anything was sent, lets the request go again on another
//!   connection whatever its method.

use std::time::Instant;

use super::prepared::{AttemptError, ExchangeError, Prepared, RequestOptions, Timings};
use super::response_body::{finish_http1, finish_http2, Response};
use super::{http1, http2};
use crate::error::Error;
use crate::key::Key;
use crate::pool::{cancel, AcquireOptions};
use crate::transport::OpenTimes;
use crate::{Pool, Pooled};

/// How many times a request refused unprocessed goes again.
const MAX_REFUSALS: u32 = 3;

/// A first attempt begun synchronously: an idle connection that already
/// carries the first `written` bytes of the request.
pub struct Started {
    pooled: Pooled,
    written: usize,
}

/// Begin a request without waiting, from any thread: take an idle
/// HTTP/1.1 connection and write as much of the request as its socket
/// takes now. `None` (nothing done) when no idle connection is parked, the
/// body streams, or the write failed at once (the connection is closed;
/// the request was not sent).
///
/// Done on the caller's thread, the write overlaps the I/O thread's wake-up
/// with the server's work instead of preceding it.
pub fn start_now(pool: &Pool, key: &Key, prepared: &Prepared) -> Option<Started> {
    if !prepared.joined {
        return None;
    }
    // Parked connections are HTTP/1.1 ones (HTTP/2 ones are never parked).
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

/// A final response head, by protocol.
enum Answer {
    Http1(http1::Answer),
    Http2(http2::Answer),
}

/// One attempt in the protocol the connection speaks.
async fn attempt(
    pooled: &mut Pooled,
    prepared: &mut Prepared,
    written: usize,
    opts: &RequestOptions,
) -> std::result::Result<Answer, AttemptError> {
    match pooled.connection_ref().as_http2().cloned() {
        Some(h2) => http2::attempt(&h2, pooled.key(), prepared, opts)
            .await
            .map(Answer::Http2),
        None => http1::attempt(pooled, prepared, written, opts)
            .await
            .map(Answer::Http1),
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
    let mut refusals = 0;
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
                _ = cancel::fired(opts.cancel.as_deref()) => Err(AttemptError::answered(Error::Aborted)),
                r = work => r,
            }
        };
        match outcome {
            Ok(answer) => {
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
                        retried: fresh || refusals > 0,
                    }
                });
                let finished = match answer {
                    Answer::Http1(a) => {
                        let reusable = a.reusable && !prepared.head.close;
                        finish_http1(pooled, a.head, a.framing, reusable, a.upload, reused, opts)
                    }
                    Answer::Http2(a) => finish_http2(pooled, a, reused, opts),
                };
                let mut response = finished.map_err(failed_at)?;
                response.timings = timings;
                return Ok(response);
            }
            Err(AttemptError {
                error,
                answered,
                refused,
            }) => {
                // The exchange was interrupted: the connection's state is unknown.
                pooled.release(false);
                if refused && prepared.replayable && refusals < MAX_REFUSALS {
                    refusals += 1;
                    continue;
                }
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
