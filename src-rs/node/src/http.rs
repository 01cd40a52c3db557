//! `request()`: the HTTP exchange runs in the core; this converts its
//! inputs and hands the response over in one crossing.

use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use pconn_core::http1::{self, Prepared, RequestBody, RequestHead, RequestOptions, ResponseBody};
use pconn_core::{Cancel, Error};
use tokio::sync::{mpsc, Mutex};

use crate::bridge::Outcome;
use crate::errors::{internal, throw, Code};
use crate::pool::{NativeCancel, NativeKey, NativePool};
use crate::scope::Scope;

/// The remainder of a response body, read on demand.
#[napi]
pub struct NativeBody {
    body: Arc<Mutex<Option<ResponseBody>>>,
    /// Fired by `destroy`: interrupts a read in flight.
    stop: Arc<Cancel>,
    scope: Arc<Scope>,
}

impl NativeBody {
    pub(crate) fn new(body: ResponseBody, scope: &Arc<Scope>) -> NativeBody {
        NativeBody {
            body: Arc::new(Mutex::new(Some(body))),
            stop: Arc::new(Cancel::new()),
            scope: scope.clone(),
        }
    }
}

#[napi]
impl NativeBody {
    /// Next chunk, or the end with its trailers; completes `id`.
    #[napi(catch_unwind)]
    pub fn read(&self, id: u32) -> napi::Result<(), Code> {
        let (body, stop) = (self.body.clone(), self.stop.clone());
        self.scope
            .spawn(id, async move {
                let mut guard = body.lock().await;
                let Some(b) = guard.as_mut() else {
                    return Outcome::End(Vec::new());
                };
                let chunk = tokio::select! {
                    biased;
                    _ = stop.cancelled() => {
                        // Dropping the body mid-read closes its connection.
                        guard.take();
                        return Outcome::Failed(Error::Aborted);
                    }
                    chunk = b.next_chunk() => chunk,
                };
                match chunk {
                    Ok(Some(bytes)) => Outcome::Bytes(Some(bytes)),
                    Ok(None) => Outcome::End(b.trailers().to_vec()),
                    Err(error) => Outcome::Failed(error),
                }
            })
            .map_err(internal)
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
    scope: Arc<Scope>,
}

#[napi]
impl NativeUpload {
    /// Queue a chunk; completes `id` when the exchange took it (at most one
    /// chunk waits in memory, so a slow server slows the producer).
    #[napi(catch_unwind)]
    pub fn write(&self, id: u32, chunk: Buffer) -> napi::Result<(), Code> {
        let sender = self.sender.lock().ok().and_then(|s| s.clone());
        let chunk = chunk.to_vec();
        self.scope
            .spawn(id, async move {
                let Some(sender) = sender else {
                    return Outcome::Failed(Error::InvalidArgument(
                        "the request body already ended".into(),
                    ));
                };
                match sender.send(chunk).await {
                    Ok(()) => Outcome::Done,
                    Err(_) => Outcome::Failed(Error::SocketClosed(
                        "the request ended before its body was sent".into(),
                    )),
                }
            })
            .map_err(internal)
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
    /// Start an HTTP request; the response completes `id`. Bad input throws
    /// before anything is sent. With `stream_body`, the body is fed through
    /// the returned upload handle; with `write_now`, a request that finds
    /// an idle connection is written at once.
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
    ) -> napi::Result<Option<NativeUpload>, Code> {
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
                    scope: self.scope.clone(),
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
            ..RequestOptions::default()
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
        self.scope
            .spawn(id, async move {
                // Built here, on the I/O thread: the exchange's future is
                // kilobytes; the task spawned from JavaScript only holds its
                // arguments.
                let exchange = Box::pin(http1::send_prepared(&pool, &key, prepared, first, &opts));
                match exchange.await {
                    Ok(response) => Outcome::Response(Box::new(response)),
                    Err(error) => Outcome::Failed(error),
                }
            })
            .map_err(internal)?;
        Ok(upload)
    }
}
