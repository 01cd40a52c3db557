//! `request()`: the HTTP exchange runs in the core; this converts its
//! inputs and hands the response over in one crossing.

use std::net::SocketAddr;
use std::sync::Arc;

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use std::sync::atomic::Ordering;

use pconn_core::http1::{
    self, Prepared, RequestBody, RequestHead, RequestOptions, ResponseBody, Target,
};
use pconn_core::{Cancel, Error, Key};
use tokio::sync::{mpsc, Mutex};

use crate::bridge::{Failure, Outcome};
use crate::errors::{internal, throw, Code};
use crate::options::from_millis;
use crate::pool::NativePool;
use crate::scope::Scope;

/// The remainder of a response body, read on demand.
#[napi]
pub struct NativeBody {
    body: Arc<Mutex<Option<ResponseBody>>>,
    /// Fired by `destroy`: interrupts a read in flight.
    stop: Arc<Cancel>,
    scope: Arc<Scope>,
    /// Named by the errors of its reads.
    key: Key,
    peer: Option<SocketAddr>,
}

impl NativeBody {
    pub(crate) fn new(
        body: ResponseBody,
        key: Key,
        peer: Option<SocketAddr>,
        scope: &Arc<Scope>,
    ) -> NativeBody {
        NativeBody {
            body: Arc::new(Mutex::new(Some(body))),
            stop: Arc::new(Cancel::new()),
            scope: scope.clone(),
            key,
            peer,
        }
    }
}

#[napi]
impl NativeBody {
    /// Next chunk, or the end with its trailers; completes `id`.
    #[napi(catch_unwind)]
    pub fn read(&self, id: f64) -> napi::Result<(), Code> {
        let (body, stop) = (self.body.clone(), self.stop.clone());
        let (key, peer) = (self.key.clone(), self.peer);
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
                        return Outcome::Failed(Error::Aborted.into());
                    }
                    chunk = b.next_chunk() => chunk,
                };
                match chunk {
                    Ok(Some(bytes)) => Outcome::Bytes(Some(bytes)),
                    Ok(None) => Outcome::End(b.trailers().to_vec()),
                    Err(error) => Outcome::Failed(Failure::on(&key, peer, error)),
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

/// A request URL parsed once: its pool key (with this pool's TLS
/// settings applied) and its request target. The façade caches these per
/// URL string, so a repeated URL costs no parse.
#[napi]
pub struct NativeTarget {
    key: Key,
    path: String,
}

#[napi]
impl NativeTarget {
    /// The key, `scheme://host:port`.
    #[napi(getter)]
    pub fn key(&self) -> String {
        self.key.to_string()
    }
    /// Path and query, percent-encoded.
    #[napi(getter)]
    pub fn path(&self) -> String {
        self.path.clone()
    }
}

/// The per-request settings; every field is optional (absent: default).
/// Omitted altogether on the common path, so a plain request reads no
/// object properties.
#[napi(object)]
pub struct NativeRequestOptions {
    /// Milliseconds allowed for the response head once the request is
    /// sent; 0 turns the limit off. Default 300 000.
    pub headers_timeout_ms: Option<f64>,
    /// Milliseconds allowed between two pieces of either body; 0 turns the
    /// limit off. Default 300 000.
    pub body_timeout_ms: Option<f64>,
    /// Safe to retry whatever the method. Default false.
    pub idempotent: Option<bool>,
    /// The body comes through the returned handle's `write` and `end`.
    pub stream_body: Option<bool>,
    /// Return a handle whose `cancel` aborts the request.
    pub cancellable: Option<bool>,
    /// Measure the stages and note the peer: the response then carries
    /// them (for diagnostics channels; off, no clock is read).
    pub detailed: Option<bool>,
}

/// A request in flight, returned when its body streams or it can be
/// cancelled.
#[napi]
pub struct NativeRequest {
    /// Feeds a streamed body (at most one chunk waits in memory).
    body: std::sync::Mutex<Option<mpsc::Sender<Vec<u8>>>>,
    cancel: Arc<Cancel>,
    scope: Arc<Scope>,
}

#[napi]
impl NativeRequest {
    /// Queue a body chunk; completes `id` when the exchange took it, so a
    /// slow server slows the producer.
    #[napi(catch_unwind)]
    pub fn write(&self, id: f64, chunk: Buffer) -> napi::Result<(), Code> {
        let sender = self.body.lock().ok().and_then(|s| s.clone());
        let chunk = chunk.to_vec();
        self.scope
            .spawn(id, async move {
                let Some(sender) = sender else {
                    let ended = Error::InvalidArgument("the request body already ended".into());
                    return Outcome::Failed(ended.into());
                };
                match sender.send(chunk).await {
                    Ok(()) => Outcome::Done,
                    Err(_) => {
                        let gone = Error::SocketClosed(
                            "the request ended before its body was sent".into(),
                        );
                        Outcome::Failed(gone.into())
                    }
                }
            })
            .map_err(internal)
    }

    /// End the streamed body.
    #[napi(catch_unwind)]
    pub fn end(&self) {
        if let Ok(mut s) = self.body.lock() {
            s.take();
        }
    }

    /// Abort the request at whatever stage it is (`ABORT_ERR`).
    #[napi(catch_unwind)]
    pub fn cancel(&self) {
        self.cancel.cancel();
    }
}

/// Counts an environment's requests waiting for their response head.
struct Waiting(Arc<Scope>);

impl Waiting {
    /// Count one more; true when it is the only one.
    fn start(scope: &Arc<Scope>) -> (Waiting, bool) {
        let before = scope.env.requests_waiting.fetch_add(1, Ordering::Relaxed);
        (Waiting(scope.clone()), before == 0)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.env.requests_waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

#[napi]
impl NativePool {
    /// Parse a request URL (throws `ERR_INVALID_ARG_VALUE` on a bad one);
    /// `servername` overrides the TLS name, `socket_path` connects to a
    /// Unix socket instead of the URL's host (both are part of the key).
    #[napi(catch_unwind)]
    pub fn target(
        &self,
        url: String,
        servername: Option<String>,
        socket_path: Option<String>,
    ) -> napi::Result<NativeTarget, Code> {
        let Target { mut key, path } = Target::parse(&url).map_err(throw)?;
        // A TLS name means nothing to a plain-HTTP key (undici's dns
        // interceptor sets one for every origin): ignored there.
        if let Some(name) = servername.filter(|_| key.uses_tls()) {
            key = key.with_servername(&name).map_err(throw)?;
        }
        if let Some(path) = socket_path {
            key = key.with_socket_path(&path).map_err(throw)?;
        }
        let key = self.pool.effective_key(key).map_err(throw)?;
        Ok(NativeTarget { key, path })
    }

    /// Start an HTTP request; the response completes `id`. Bad input throws
    /// before anything is sent. `headers` is `[name, value, ...]`.
    #[napi(catch_unwind)]
    pub fn request(
        &self,
        id: f64,
        target: &NativeTarget,
        method: String,
        headers: Option<Vec<String>>,
        body: Option<Buffer>,
        options: Option<NativeRequestOptions>,
    ) -> napi::Result<Option<NativeRequest>, Code> {
        let mut pairs = Vec::new();
        let mut it = headers.unwrap_or_default().into_iter();
        while let (Some(n), Some(v)) = (it.next(), it.next()) {
            pairs.push((n, v));
        }
        let head = RequestHead::new(&method, &target.path, pairs).map_err(throw)?;
        let defaults = RequestOptions::default();
        let mut opts = RequestOptions {
            max_header_size: self.pool.config().max_header_size,
            ..defaults.clone()
        };
        let (mut streamed, mut cancellable) = (false, false);
        if let Some(o) = options {
            opts.headers_timeout = o
                .headers_timeout_ms
                .map_or(defaults.headers_timeout, from_millis);
            opts.body_timeout = o.body_timeout_ms.map_or(defaults.body_timeout, from_millis);
            opts.idempotent = o.idempotent.unwrap_or(defaults.idempotent);
            streamed = o.stream_body.unwrap_or(false);
            cancellable = o.cancellable.unwrap_or(false);
            opts.timed = o.detailed.unwrap_or(false);
        }
        let (body, sender) = match (body, streamed) {
            (_, true) => {
                let (tx, rx) = mpsc::channel(1);
                (RequestBody::Stream(rx), Some(tx))
            }
            (Some(b), false) => (RequestBody::Bytes(b.to_vec().into()), None),
            (None, false) => (RequestBody::Empty, None),
        };
        let handle = (streamed || cancellable).then(|| {
            let cancel = Arc::new(Cancel::new());
            opts.cancel = Some(cancel.clone());
            NativeRequest {
                body: std::sync::Mutex::new(sender),
                cancel,
                scope: self.scope.clone(),
            }
        });
        let key = target.key.clone();
        let prepared = Prepared::new(&key, head, body, &opts).map_err(throw)?;
        // Alone in flight on this thread, the request is written here at
        // once if an idle connection waits: lower latency for sequential
        // callers. Under concurrency the I/O thread writes, keeping the
        // JavaScript thread free.
        let (waiting, alone) = Waiting::start(&self.scope);
        let first = if alone {
            http1::start_now(&self.pool, &key, &prepared)
        } else {
            None
        };
        let pool = self.pool.clone();
        self.scope
            .spawn(id, async move {
                // Built here, on the I/O thread: the exchange's future is
                // kilobytes; the task spawned from JavaScript only holds its
                // arguments.
                let exchange = Box::pin(http1::send_prepared(&pool, &key, prepared, first, &opts));
                let outcome = match exchange.await {
                    Ok(response) => Outcome::Response(Box::new(response)),
                    Err(failed) => Outcome::Failed(Failure::on(&key, failed.peer, failed.error)),
                };
                drop(waiting);
                outcome
            })
            .map_err(internal)?;
        Ok(handle)
    }
}
