//! `request()`: the HTTP exchange runs in the core; this converts its
//! inputs and hands the response over in one crossing.

use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use pconn_core::http1::{self, RequestBody, RequestHead, RequestOptions, ResponseBody};
use pconn_core::{Cancel, Error};
use tokio::sync::{mpsc, Mutex};

use crate::bridge::Value;
use crate::errors::throw;
use crate::pool::{start, NativeCancel, NativeKey, NativePool};

/// Per-request options, validated by the façade.
#[napi(object)]
pub struct NativeRequestOptions {
    pub headers_timeout_ms: f64,
    pub body_timeout_ms: f64,
    pub idempotent: bool,
}

/// Everything about a response that is known when its head has arrived,
/// plus the body if it is already complete.
#[napi(object, object_from_js = false)]
pub struct NativeResponse {
    pub status: u32,
    pub status_text: String,
    pub http_version: String,
    /// `[name, value, name, value, ...]`, names lower-cased.
    pub headers: Vec<String>,
    pub reused: bool,
    /// The body bytes read so far (all of them when `complete`).
    pub body: Buffer,
    pub complete: bool,
    /// Trailers of a complete chunked body, flattened like `headers`.
    pub trailers: Vec<String>,
    /// The rest of the body, when not `complete`.
    pub stream: Option<NativeBody>,
}

fn flatten(pairs: &[(String, String)]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|(n, v)| [n.clone(), v.clone()])
        .collect()
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
                None => Ok(Value::Trailers(flatten(b.trailers()))),
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
    /// body is fed through the returned upload handle.
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
        options: NativeRequestOptions,
        cancel: Option<&NativeCancel>,
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
        head.check_length(&body).map_err(throw)?;
        let opts = RequestOptions {
            headers_timeout: ms(options.headers_timeout_ms),
            body_timeout: ms(options.body_timeout_ms),
            idempotent: options.idempotent,
            cancel: cancel.map(|c| c.cancel.clone()),
        };
        let pool = self.pool.clone();
        let key = key.key.clone();
        start(id, async move {
            let mut response = http1::send(&pool, &key, head, body, &opts).await?;
            let first = response.body.next_chunk_ready();
            let complete = response.body.is_complete();
            let h = &response.head;
            Ok(Value::Response(NativeResponse {
                status: h.status as u32,
                status_text: h.reason.clone(),
                http_version: format!("1.{}", h.version),
                headers: flatten(&h.headers),
                reused: response.reused,
                body: first.into(),
                complete,
                trailers: flatten(response.body.trailers()),
                stream: (!complete).then(|| NativeBody {
                    body: Arc::new(Mutex::new(Some(response.body))),
                    stop: Arc::new(Cancel::new()),
                }),
            }))
        })?;
        Ok(upload)
    }
}
