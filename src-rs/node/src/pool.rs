//! `NativePool`: the pool's methods, converted.

use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::{FnArgs, Function};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use napi_derive::napi;
use pconn_core::{AcquireOptions, Acquiring, Cancel, Key, Pool, Scheme};

use crate::bridge::{self, Value};
use crate::connection::NativeConnection;
use crate::errors::{panicked, throw, ErrorInfo};
use crate::options::NativePoolOptions;
use crate::runtime;
use crate::stats::StatsJs;

/// A normalized key; the façade caches these per URL origin.
#[napi]
pub struct NativeKey {
    pub(crate) key: Key,
}

#[napi]
impl NativeKey {
    /// `scheme://host:port` (plus `#servername=` when overridden).
    #[napi(getter)]
    pub fn display(&self) -> String {
        self.key.to_string()
    }
    #[napi(getter)]
    pub fn host(&self) -> String {
        self.key.host().to_string()
    }
    /// The Host header value for this key.
    #[napi(getter)]
    pub fn authority(&self) -> String {
        self.key.host_header().to_string()
    }
}

/// Cancels the operations it was passed to (the native half of AbortSignal).
#[napi]
pub struct NativeCancel {
    pub(crate) cancel: Arc<Cancel>,
}

#[napi]
impl NativeCancel {
    #[napi(constructor)]
    pub fn new() -> Self {
        NativeCancel {
            cancel: Arc::new(Cancel::new()),
        }
    }
    #[napi]
    pub fn cancel(&self) {
        self.cancel.cancel();
    }
}

type CloseArgs = FnArgs<(f64, String, String)>;
type CloseFn = ThreadsafeFunction<CloseArgs, (), CloseArgs, Status, false, true>;

#[napi]
pub struct NativePool {
    pub(crate) pool: Pool,
}

/// Run `work` on the runtime and deliver its outcome to `id`.
pub(crate) fn start<F>(id: u32, work: F) -> napi::Result<()>
where
    F: std::future::Future<Output = pconn_core::Result<Value>> + Send + 'static,
{
    bridge::ready()?;
    runtime::spawn_guarded(
        async move { bridge::complete(id, work.await.map_err(|e| ErrorInfo::from(&e))) },
        move |message| bridge::complete(id, Err(ErrorInfo::from(&panicked(&message)))),
    )
}

#[napi]
impl NativePool {
    /// `on_close(id, key, reason)` is called for every closed connection.
    // The type is spelled out (not an alias) so the generated .d.ts names it.
    #[allow(clippy::type_complexity)]
    #[napi(constructor)]
    pub fn new(
        options: NativePoolOptions,
        on_close: Option<Function<FnArgs<(f64, String, String)>, ()>>,
    ) -> napi::Result<Self> {
        let listener = match on_close {
            None => None,
            Some(f) => {
                let tsfn: CloseFn = f.build_threadsafe_function().weak::<true>().build()?;
                let listener: pconn_core::pool::CloseListener = Box::new(move |id, key, reason| {
                    tsfn.call(
                        (id as f64, key.to_string(), reason.as_str().to_string()).into(),
                        ThreadsafeFunctionCallMode::NonBlocking,
                    );
                });
                Some(listener)
            }
        };
        let pool = Pool::with_close_listener(options.into(), runtime::handle()?.clone(), listener)
            .map_err(throw)?;
        Ok(NativePool { pool })
    }

    #[napi(getter)]
    pub fn id(&self) -> f64 {
        self.pool.id() as f64
    }

    /// Parse and normalize a URL's origin into a key (throws on bad input).
    #[napi(catch_unwind)]
    pub fn key_from_url(&self, url: String) -> napi::Result<NativeKey> {
        let key = Key::parse_url(&url)
            .and_then(|k| self.pool.effective_key(k))
            .map_err(throw)?;
        Ok(NativeKey { key })
    }

    /// Build a key from parts (throws on bad input).
    #[napi(catch_unwind)]
    pub fn key_from_parts(
        &self,
        scheme: String,
        host: String,
        port: Option<u32>,
        servername: Option<String>,
    ) -> napi::Result<NativeKey> {
        let port = match port {
            Some(p) if p == 0 || p > 65535 => {
                return Err(throw(pconn_core::Error::InvalidArgument(format!(
                    "port {p} is outside 1-65535"
                ))))
            }
            p => p.map(|p| p as u16),
        };
        let key = Scheme::parse(&scheme)
            .and_then(|s| Key::new(s, &host, port, servername.as_deref()))
            .and_then(|k| self.pool.effective_key(k))
            .map_err(throw)?;
        Ok(NativeKey { key })
    }

    /// Acquire. A live idle connection is returned at once; otherwise this
    /// returns null and the outcome arrives at the bridge under `id`. The
    /// place in the queue is taken before this returns.
    #[napi(catch_unwind)]
    pub fn acquire(
        &self,
        id: u32,
        key: &NativeKey,
        timeout_ms: Option<f64>,
        cancel: Option<&NativeCancel>,
    ) -> napi::Result<Option<NativeConnection>> {
        let opts = AcquireOptions {
            timeout: timeout_ms.map(|ms| Duration::from_millis(ms.max(0.0) as u64)),
            cancel: cancel.map(|c| c.cancel.clone()),
            fresh: false,
            numbered: true,
        };
        let pending = match self.pool.begin_acquire(&key.key, &opts).map_err(throw)? {
            Acquiring::Ready(pooled) => {
                return NativeConnection::new(pooled).map(Some).map_err(throw)
            }
            Acquiring::Pending(pending) => pending,
        };
        start(id, async move {
            let pooled = pending.finish(&opts).await?;
            let grant = pooled.grant_number();
            Ok(Value::Connection(NativeConnection::new(pooled)?, grant))
        })?;
        Ok(None)
    }

    /// Give a connection back (throws PCONN_ALREADY_RELEASED on a second call).
    #[napi(catch_unwind)]
    pub fn release(&self, conn: &NativeConnection, keep_alive_ok: bool) -> napi::Result<()> {
        conn.release_to(self.pool.id(), keep_alive_ok)
            .map_err(throw)
    }

    #[napi(catch_unwind)]
    pub fn flush_for_host(&self, host: String) -> u32 {
        self.pool.flush_for_host(&host) as u32
    }

    /// Shut down; completes at the bridge under `id` once every socket is closed.
    #[napi(catch_unwind)]
    pub fn shutdown(&self, id: u32) -> napi::Result<()> {
        let pool = self.pool.clone();
        start(id, async move {
            pool.shutdown().await;
            Ok(Value::Done)
        })
    }

    /// The synchronous part of shutdown: for process exit.
    #[napi(catch_unwind)]
    pub fn close_now(&self) {
        self.pool.close_now();
    }

    #[napi(catch_unwind)]
    pub fn stats(&self) -> StatsJs {
        self.pool.stats().into()
    }

    /// Test hook: panic inside an async operation (`async`) or inside this
    /// call (`sync`), to prove panics surface as errors, not aborts.
    #[napi(catch_unwind)]
    pub fn debug_panic(&self, id: u32, sync: bool) -> napi::Result<()> {
        if sync {
            panic!("debug_panic (sync) requested by a test");
        }
        start(id, async move {
            panic!("debug_panic (async) requested by a test")
        })
    }
}
