//! `request()`: the HTTP exchange runs in the core; this converts its
//! inputs and hands the response over in one crossing.

use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use pconn_core::http1::{self, Prepared, RequestBody, RequestHead, RequestOptions, ResponseBody};
use pconn_core::{Cancel, Error};
use tokio::sync::{mpsc, Mutex};

use crate::bridge::Value;
use crate::errors::throw;
use crate::pool::{start, NativeCancel, NativeKey, NativePool};

/// A response handed to JavaScript in one crossing.
pub(crate) struct ResponseHandoff {
    /// Status code, plus bit 10: HTTP/1.1, bit 11: reused, bit 12: body
    /// complete; the connection's id times 8192 is added on top (exact in an
    /// f64 up to 2^40 connections).
    pub(crate) status: f64,
    /// Reason phrase, then `name: value` lines (CRLF-separated); for a
    /// complete chunked body, an empty line and the trailers follow.
    pub(crate) head: String,
    /// The body read so far (all of it when complete).
    pub(crate) body: Vec<u8>,
    pub(crate) stream: Option<NativeBody>,
}

/// `name: value\r\n` lines; names are lower-case tokens, values had no CR/LF.
fn header_block(out: &mut String, pairs: &[(String, String)]) {
    for (name, value) in pairs {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
}

/// The remainder of a response body, read on demand.
#[napi]
pub struct NativeBody {
    body: Arc<Mutex<Option<ResponseBody>>>,
    /// Fired by `destroy`: interrupts a read in flight.
    stop: Arc<Cancel>,
}

#[napi]
impl NativeBody {
    /// Next chunk (null at the end); completes at the bridge under `id`.
    #[napi(catch_unwind)]
    pub fn read(&self, id: u32) -> napi::Result<()> {
        let (body, stop) = (self.body.clone(), self.stop.clone());
        start(id, async move {
            let mut guard = body.lock().await;
            let Some(b) = guard.as_mut() else {
                return Ok(Value::Bytes(None));
            };
            let chunk = tokio::select! {
                biased;
                _ = stop.cancelled() => {
                    // Dropping the body mid-read closes its connection.
                    guard.take();
                    return Err(Error::Aborted);
                }
                chunk = b.next_chunk() => chunk?,
            };
            match chunk {
                None => {
                    let mut block = String::new();
                    header_block(&mut block, b.trailers());
                    Ok(Value::Trailers(block))
                }
                Some(bytes) => Ok(Value::Bytes(Some(bytes))),
            }
        })
    }

    /// Stop reading: the connection is closed unless the body had ended.
    #[napi(catch_unwind)]
    pub fn destroy(&self) {
        self.stop.cancel();
        if let Ok(mut guard) = self.body.try_lock() {
            guard.take();
        }
    }
}

/// Feeds a streamed request body to the exchange, one chunk at a time.
#[napi]
pub struct NativeUpload {
    sender: Arc<std::sync::Mutex<Option<mpsc::Sender<Vec<u8>>>>>,
}

#[napi]
impl NativeUpload {
    /// Queue a chunk; completes when the exchange took it (at most one
    /// chunk waits in memory, so a slow server slows the producer).
    #[napi(catch_unwind)]
    pub fn write(&self, id: u32, chunk: Buffer) -> napi::Result<()> {
        let sender = self.sender.lock().ok().and_then(|s| s.clone());
        let chunk = chunk.to_vec();
        start(id, async move {
            let sender = sender
                .ok_or_else(|| Error::InvalidArgument("the request body already ended".into()))?;
            sender.send(chunk).await.map_err(|_| {
                Error::SocketClosed("the request ended before its body was sent".into())
            })?;
            Ok(Value::Done)
        })
    }

    /// End the body.
    #[napi(catch_unwind)]
    pub fn end(&self) {
        if let Ok(mut s) = self.sender.lock() {
            s.take();
        }
    }
}

fn ms(v: f64) -> Duration {
    Duration::from_millis(v.max(0.0) as u64)
}

#[napi]
impl NativePool {
    /// Start an HTTP request; the response arrives at the bridge under `id`.
    /// Bad input throws before anything is sent. With `stream_body`, the
    /// body is fed through the returned upload handle; with `write_now`, a
    /// request that finds an idle connection is written at once.
    #[napi(catch_unwind)]
    #[allow(clippy::too_many_arguments)]
    pub fn request(
        &self,
        id: u32,
        key: &NativeKey,
        method: String,
        path: String,
        headers: Vec<String>,
        body: Option<Buffer>,
        stream_body: bool,
        headers_timeout_ms: f64,
        body_timeout_ms: f64,
        idempotent: bool,
        cancel: Option<&NativeCancel>,
        write_now: bool,
    ) -> napi::Result<Option<NativeUpload>> {
        let mut pairs = Vec::with_capacity(headers.len() / 2);
        let mut it = headers.into_iter();
        while let (Some(n), Some(v)) = (it.next(), it.next()) {
            pairs.push((n, v));
        }
        let head = RequestHead::new(&method, &path, pairs).map_err(throw)?;
        let (body, upload) = match (body, stream_body) {
            (_, true) => {
                let (tx, rx) = mpsc::channel(1);
                let upload = NativeUpload {
                    sender: Arc::new(std::sync::Mutex::new(Some(tx))),
                };
                (RequestBody::Stream(rx), Some(upload))
            }
            (Some(b), false) => (RequestBody::Bytes(b.to_vec()), None),
            (None, false) => (RequestBody::Empty, None),
        };
        let opts = RequestOptions {
            headers_timeout: ms(headers_timeout_ms),
            body_timeout: ms(body_timeout_ms),
            idempotent,
            cancel: cancel.map(|c| c.cancel.clone()),
        };
        let prepared = Prepared::new(&key.key, head, body, &opts).map_err(throw)?;
        // With `write_now` (the façade asks when nothing else is in flight),
        // take an idle connection and write on this thread: lower latency
        // for sequential callers. Under concurrency the I/O thread writes,
        // keeping the JavaScript thread free.
        let first = if write_now {
            http1::start_now(&self.pool, &key.key, &prepared)
        } else {
            None
        };
        let pool = self.pool.clone();
        let key = key.key.clone();
        start(id, async move {
            let mut response = http1::send_prepared(&pool, &key, prepared, first, &opts).await?;
            let body = response.body.next_chunk_ready();
            let complete = response.body.is_complete();
            let h = &response.head;
            let mut block = String::with_capacity(64 + h.headers.len() * 32);
            block.push_str(&h.reason);
            block.push_str("\r\n");
            header_block(&mut block, &h.headers);
            if complete && !response.body.trailers().is_empty() {
                block.push_str("\r\n");
                header_block(&mut block, response.body.trailers());
            }
            let flags = u32::from(h.status)
                | (u32::from(h.version == 1) << 10)
                | (u32::from(response.reused) << 11)
                | (u32::from(complete) << 12);
            Ok(Value::Response(ResponseHandoff {
                status: f64::from(flags) + response.connection_id as f64 * 8192.0,
                head: block,
                body,
                stream: (!complete).then(|| NativeBody {
                    body: Arc::new(Mutex::new(Some(response.body))),
                    stop: Arc::new(Cancel::new()),
                }),
            }))
        })?;
        Ok(upload)
    }
}
