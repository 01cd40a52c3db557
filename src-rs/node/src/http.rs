//! `request()`: the HTTP exchange runs in the core; this converts its
//! inputs and hands the response over in one crossing.

use std::net::SocketAddr;
use std::sync::Arc;

use napi::bindgen_prelude::{Buffer, ClassInstance, JavaScriptClassExt};
use napi::Env;
use napi_derive::napi;
use std::sync::atomic::Ordering;

use pconn_core::exchange::{self, Prepared, RequestOptions, ResponseBody, Target};
use pconn_core::http1::{RequestBody, RequestHead};
use pconn_core::{Cancel, Error, Key};
use tokio::sync::{mpsc, Mutex};

use crate::bridge::{Failure, Outcome};
use crate::errors::{internal, throw, Code};
use crate::options::from_millis;
use crate::pool::{NativeKey, NativePool};
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
                    // Destroyed: what was not read is lost, so a read must
                    // not look like the end of the body.
                    return Outcome::Failed(Error::Aborted.into());
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

/// A request URL, split: the pool key of its origin (with this pool's TLS
/// settings and routing applied) and the request target. The façade
/// caches these per URL string (and keys per origin), so a repeated URL,
/// or a new path on a known origin, costs no parse.
#[napi(object)]
pub struct NativeTarget<'env> {
    pub key: ClassInstance<'env, NativeKey>,
    /// Path and query, percent-encoded.
    pub path: String,
}

/// What a request asks for besides the defaults: bits of `request`'s `flags`.
#[napi]
pub enum RequestFlag {
    /// The body comes through the returned handle's `write` and `end`.
    StreamBody = 1,
    /// `NativePool.cancel(id)` aborts the request (until its head arrives;
    /// then the body's `destroy` does).
    Cancellable = 2,
    /// Measure the stages and note the peer: the response then carries them
    /// (for diagnostics channels; off, no clock is read).
    Detailed = 4,
    /// Safe to retry whatever the method.
    Idempotent = 8,
    /// Undo the body's `Content-Encoding` (gzip, deflate, br), as fetch does.
    Decompress = 16,
    /// Keep the response's header names as the server sent them (undici's
    /// `rawHeaders`); otherwise they are lower-cased.
    RawHeaderCase = 32,
    /// Over HTTP/1.1, send `Expect: 100-continue` and the body only after
    /// the server's 100 (or a second without an answer).
    ExpectContinue = 64,
}

/// A request whose body streams: its chunks go through `write`.
#[napi]
pub struct NativeRequest {
    /// Feeds a streamed body (at most one chunk waits in memory).
    body: std::sync::Mutex<Option<mpsc::Sender<Vec<u8>>>>,
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
    pub fn target<'env>(
        &self,
        env: &'env Env,
        url: String,
        servername: Option<String>,
        socket_path: Option<String>,
    ) -> napi::Result<NativeTarget<'env>, Code> {
        let Target { mut key, path } = Target::parse(&url).map_err(throw)?;
        // A TLS name means nothing to a plain-HTTP key (undici's dns
        // interceptor sets one for every origin): ignored there.
        if let Some(name) = servername.filter(|_| key.uses_tls()) {
            key = key.with_servername(&name).map_err(throw)?;
        }
        if let Some(path) = socket_path {
            key = key.with_socket_path(&path).map_err(throw)?;
        }
        let key = self.pool.request_key(key).map_err(throw)?;
        let key = NativeKey { key }.into_instance(env).map_err(internal)?;
        Ok(NativeTarget { key, path })
    }

    /// Start an HTTP request to `key` for `path` (a request target as it
    /// goes on the wire); the response completes `id`. Bad input throws
    /// before anything is sent. `headers` is `[name, value, ...]`; `flags`
    /// are `RequestFlag` bits; a timeout below 0 takes the default (300 s),
    /// 0 means none. Returns the body's handle when it streams.
    #[napi(catch_unwind)]
    #[allow(clippy::too_many_arguments)]
    pub fn request(
        &self,
        id: f64,
        key: &NativeKey,
        path: String,
        method: String,
        headers: Option<Vec<String>>,
        body: Option<Buffer>,
        flags: u32,
        headers_timeout_ms: f64,
        body_timeout_ms: f64,
    ) -> napi::Result<Option<NativeRequest>, Code> {
        let mut pairs = Vec::new();
        let mut it = headers.unwrap_or_default().into_iter();
        while let (Some(n), Some(v)) = (it.next(), it.next()) {
            pairs.push((n, v));
        }
        let head = RequestHead::new(&method, &path, pairs).map_err(throw)?;
        let defaults = RequestOptions::default();
        let timeout = |ms: f64, default| if ms < 0.0 { default } else { from_millis(ms) };
        let flag = |f: RequestFlag| flags & f as u32 != 0;
        let mut opts = RequestOptions {
            max_header_size: self.pool.config().max_header_size,
            headers_timeout: timeout(headers_timeout_ms, defaults.headers_timeout),
            body_timeout: timeout(body_timeout_ms, defaults.body_timeout),
            idempotent: flag(RequestFlag::Idempotent),
            timed: flag(RequestFlag::Detailed),
            decompress: flag(RequestFlag::Decompress),
            raw_header_case: flag(RequestFlag::RawHeaderCase),
            expect_continue: flag(RequestFlag::ExpectContinue),
            cancel: None,
        };
        let streamed = flag(RequestFlag::StreamBody);
        let cancellable = flag(RequestFlag::Cancellable);
        let (body, sender) = match (body, streamed) {
            (_, true) => {
                let (tx, rx) = mpsc::channel(1);
                (RequestBody::Stream(rx), Some(tx))
            }
            (Some(b), false) => (RequestBody::Bytes(b.to_vec().into()), None),
            (None, false) => (RequestBody::Empty, None),
        };
        let registration = cancellable.then(|| {
            let (cancel, registration) = self.scope.cancel_for(id);
            opts.cancel = Some(cancel);
            registration
        });
        let handle = sender.map(|sender| NativeRequest {
            body: std::sync::Mutex::new(Some(sender)),
            scope: self.scope.clone(),
        });
        let key = key.key.clone();
        let prepared = Prepared::new(&key, head, body, &opts).map_err(throw)?;
        // Alone in flight on this thread, the request is written here at
        // once if an idle connection waits: lower latency for sequential
        // callers. Under concurrency the I/O thread writes, keeping the
        // JavaScript thread free.
        let (waiting, alone) = Waiting::start(&self.scope);
        let first = if alone {
            exchange::start_now(&self.pool, &key, &prepared)
        } else {
            None
        };
        let pool = self.pool.clone();
        let spawned = self.scope.spawn(id, async move {
            // Built here, on the I/O thread: the exchange's future is
            // kilobytes; the task spawned from JavaScript only holds its
            // arguments.
            let exchange = Box::pin(exchange::send_prepared(&pool, &key, prepared, first, &opts));
            let outcome = match exchange.await {
                Ok(response) => Outcome::Response(Box::new(response)),
                Err(failed) => Outcome::Failed(Failure::on(&key, failed.peer, failed.error)),
            };
            drop((waiting, registration));
            outcome
        });
        spawned.map_err(internal)?;
        Ok(handle)
    }

    /// Abort request `id` (made `Cancellable`) at whatever stage it is
    /// (`ABORT_ERR`); nothing once its head has arrived or it failed.
    #[napi(catch_unwind)]
    pub fn cancel(&self, id: f64) {
        self.scope.cancel(id);
    }
}
