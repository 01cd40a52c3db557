//! `NativePool`: the pool's methods, converted.

use std::sync::Arc;

use napi::bindgen_prelude::{FnArgs, Function};
use napi::Env;
use napi_derive::napi;
use pconn_core::pool::cancel::{after, fired};
use pconn_core::pool::{AcquireOptions, PoolEvent};
use pconn_core::transport::Lookup;
use pconn_core::{
    Acquiring, Cancel, Client, ConnectSlot, Error, Grant, Key, PoolConfig, Queued, Scheme,
};

use crate::bridge::{Failure, Fault, OpId, Outcome};
use crate::connection::NativeConnection;
use crate::errors::{internal, throw, Code};
use crate::lookup::JsLookup;
use crate::options::{from_millis, NativePoolOptions};
use crate::record::PoolEventKind;
use crate::runtime;
use crate::scope::{self, Scope};
use crate::stats::StatsJs;

/// A normalized key; the façade caches these per URL origin.
#[napi]
pub struct NativeKey {
    pub(crate) key: Key,
}

#[napi]
impl NativeKey {
    /// `scheme://host:port`, then `#servername=`, `socket=` or `proxy=`
    /// when the key has them (`unix:path` for a raw Unix key).
    #[napi(getter)]
    pub fn display(&self) -> String {
        self.key.to_string()
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
    #[allow(clippy::new_without_default)]
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

/// A handle on a pool: its own, or one shared by name with other threads.
#[napi]
pub struct NativePool {
    pub(crate) pool: Client,
    pub(crate) scope: Arc<Scope>,
    /// The `lookup` option's resolver, when this handle made the pool with one.
    lookup: Option<Arc<JsLookup>>,
}

#[napi]
impl NativePool {
    /// A pool, or with `shared`, a handle on the process-wide pool of that
    /// name (created by the first thread; later ones must pass the same
    /// options). Every event of the pool (connections closed, idle
    /// timeouts learned, circuits changing state) is reported to this thread.
    /// Its completions go to `channel` (from `initBridge`). With `lookup`,
    /// names are resolved by asking it `(id, hostname)`; the answer comes
    /// back through `answer_lookup`.
    #[napi(constructor)]
    pub fn new(
        env: Env,
        options: NativePoolOptions,
        shared: Option<String>,
        channel: u32,
        lookup: Option<Function<'_, FnArgs<(u32, String)>, ()>>,
    ) -> napi::Result<Self, Code> {
        let scope = scope::scope(&env, channel).map_err(internal)?;
        let runtime = runtime::handle().map_err(internal)?;
        let mut config = PoolConfig::try_from(options).map_err(throw)?;
        let lookup = lookup.map(JsLookup::new).transpose().map_err(internal)?;
        config.connect.lookup = lookup.as_ref().map(|l| Lookup(l.resolver()));
        let pool = match shared {
            Some(name) => Client::shared(&name, config, runtime),
            None => Client::new(config, runtime),
        }
        .map_err(throw)?;
        let events = scope.clone();
        pool.on_event(Arc::new(move |key, event| {
            let (kind, value, detail) = match event {
                PoolEvent::Closed { id, reason } => {
                    (PoolEventKind::Closed, id as f64, reason.as_str())
                }
                PoolEvent::IdleTimeoutLearned(timeout) => (
                    PoolEventKind::IdleTimeoutLearned,
                    timeout.as_millis() as f64,
                    "",
                ),
                PoolEvent::Circuit(state) => (PoolEventKind::Circuit, 0.0, state.as_str()),
            };
            let key = key.to_string();
            let event = Outcome::PoolEvent {
                kind,
                value,
                key,
                detail,
            };
            events.complete(0.0, event);
        }));
        Ok(NativePool {
            pool,
            scope,
            lookup,
        })
    }

    /// The façade's answer to lookup `id` (see `new`): the addresses the
    /// `lookup` option returned, or the message of what it threw.
    #[napi(catch_unwind)]
    pub fn answer_lookup(&self, id: u32, addresses: Option<Vec<String>>, error: Option<String>) {
        if let Some(lookup) = &self.lookup {
            lookup.answer(id, addresses, error);
        }
    }

    #[napi(getter)]
    pub fn id(&self) -> f64 {
        self.pool.id() as f64
    }

    /// Parse and normalize a URL's origin into a key (throws on bad input).
    #[napi(catch_unwind)]
    pub fn key_from_url(&self, url: String) -> napi::Result<NativeKey, Code> {
        let key = Key::parse_url(&url)
            .and_then(|k| self.pool.effective_key(k))
            .map_err(throw)?;
        Ok(NativeKey { key })
    }

    /// Build a key from parts (throws on bad input); a `unix` key is made
    /// from `socket_path` alone.
    #[napi(catch_unwind)]
    pub fn key_from_parts(
        &self,
        scheme: String,
        host: String,
        port: Option<f64>,
        servername: Option<String>,
        socket_path: Option<String>,
    ) -> napi::Result<NativeKey, Code> {
        if let Some(path) = socket_path {
            let key = Key::unix(&path).map_err(throw)?;
            return Ok(NativeKey { key });
        }
        let port = match port {
            // Zero passes here and is refused by the key, with the same words.
            Some(p) if p.fract() == 0.0 && (0.0..=65535.0).contains(&p) => Some(p as u16),
            Some(_) => {
                return Err(throw(Error::InvalidArgument(
                    "port must be an integer between 1 and 65535".into(),
                )))
            }
            None => None,
        };
        let key = Scheme::parse(&scheme)
            .and_then(|s| Key::new(s, &host, port, servername.as_deref()))
            .and_then(|k| self.pool.effective_key(k))
            .map_err(throw)?;
        Ok(NativeKey { key })
    }

    /// Acquire. A live idle connection is returned at once; otherwise this
    /// returns null and the outcome completes `id`. The place in the queue
    /// is taken before this returns, and hand-overs complete in queue order.
    #[napi(catch_unwind)]
    pub fn acquire(
        &self,
        id: f64,
        key: &NativeKey,
        timeout_ms: Option<f64>,
        cancel: Option<&NativeCancel>,
    ) -> napi::Result<Option<NativeConnection>, Code> {
        let opts = AcquireOptions {
            timeout: timeout_ms.map(from_millis),
            cancel: cancel.map(|c| c.cancel.clone()),
            ..AcquireOptions::default()
        };
        let served = Arc::new(Cancel::new());
        let deliver = {
            let (scope, served, cancel) = (self.scope.clone(), served.clone(), opts.cancel.clone());
            let key = key.key.clone();
            move |grant: Grant| {
                served.cancel();
                match grant {
                    Grant::Permit(slot) => {
                        open(&scope, id, slot, cancel);
                        Ok(())
                    }
                    other => scope.bridge.deliver(id, &key, other),
                }
            }
        };
        match self
            .pool
            .begin_acquire_with(&key.key, &opts, deliver)
            .map_err(throw)?
        {
            Acquiring::Ready(pooled) => Ok(Some(NativeConnection::new(pooled, &self.scope))),
            Acquiring::Connect(slot) => {
                open(&self.scope, id, slot, opts.cancel);
                Ok(None)
            }
            Acquiring::Queued(queued) => {
                watch(&self.scope, id, queued, opts, served);
                Ok(None)
            }
        }
    }

    /// Give a connection back (throws PCONN_ALREADY_RELEASED on a second call).
    #[napi(catch_unwind)]
    pub fn release(&self, conn: &NativeConnection, keep_alive_ok: bool) -> napi::Result<(), Code> {
        conn.release_to(self.pool.id(), keep_alive_ok)
            .map_err(throw)
    }

    /// Open connections of `key` until `count` are idle (the key as
    /// `request()` uses it: an `https` key offers HTTP/2 when `allowH2`);
    /// completes `id` with the number idle.
    #[napi(catch_unwind)]
    pub fn warm(&self, id: f64, key: &NativeKey, count: u32) -> napi::Result<(), Code> {
        let pool = self.pool.clone();
        let key = key.key.with_http2(self.pool.config().allow_h2);
        self.scope
            .spawn(id, async move {
                match pool.warm(&key, count as usize).await {
                    Ok(idle) => Outcome::Count(u32::try_from(idle).unwrap_or(u32::MAX)),
                    Err(error) => Outcome::Failed(Failure::at(&key, error)),
                }
            })
            .map_err(internal)
    }

    #[napi(catch_unwind)]
    pub fn flush_for_host(&self, host: String) -> napi::Result<u32, Code> {
        Ok(self.pool.flush_for_host(&host).map_err(throw)? as u32)
    }

    /// Shut this handle down; completes `id` once its connections are back
    /// and, with the pool's last handle, every connection is closed.
    #[napi(catch_unwind)]
    pub fn shutdown(&self, id: f64) -> napi::Result<(), Code> {
        let pool = self.pool.clone();
        self.scope
            .spawn(id, async move {
                pool.shutdown().await;
                Outcome::Done
            })
            .map_err(internal)
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

    /// Test hook, only when `PCONN_TEST_HOOKS=1`: panic inside this call
    /// (`sync`), an async operation (`async`) or a background task that
    /// stands for operations (`background`: a queued acquire's watch, a
    /// connection's writer), to prove panics surface as errors.
    #[napi(catch_unwind)]
    pub fn debug_panic(&self, id: f64, place: String) -> napi::Result<(), Code> {
        test_hooks_on()?;
        let spawned = match place.as_str() {
            "sync" => panic!("debug_panic (sync) requested by a test"),
            "async" => self.scope.spawn(id, async move {
                panic!("debug_panic (async) requested by a test")
            }),
            _ => {
                let scope = self.scope.clone();
                self.scope.spawn_quiet(
                    async move { panic!("debug_panic (background) requested by a test") },
                    move |message| scope.complete_panicked(id, &message),
                )
            }
        };
        spawned.map_err(internal)
    }

    /// Test hook, only when `PCONN_TEST_HOOKS=1`: complete `ids` in one
    /// batch, each as `faults` says (`done`; `panic`: building it panics;
    /// `unknown-kind`: the façade does not know its kind), to prove that a
    /// completion that cannot be delivered fails its own operation only.
    #[napi(catch_unwind)]
    pub fn debug_batch(&self, ids: Vec<f64>, faults: Vec<String>) -> napi::Result<(), Code> {
        test_hooks_on()?;
        for (id, fault) in ids.into_iter().zip(faults) {
            let outcome = match fault.as_str() {
                "panic" => Outcome::Fault(Fault::Panic),
                "unknown-kind" => Outcome::Fault(Fault::UnknownKind),
                _ => Outcome::Done,
            };
            self.scope.complete(id, outcome);
        }
        Ok(())
    }

    /// Test hook, only when `PCONN_TEST_HOOKS=1`: how many of the `lookup`
    /// option's lookups wait for an answer (none once their connects
    /// ended), or 0 without the option.
    #[napi(catch_unwind)]
    pub fn debug_lookups_waiting(&self) -> napi::Result<u32, Code> {
        test_hooks_on()?;
        Ok(self.lookup.as_ref().map_or(0, |l| l.waiting_count()) as u32)
    }
}

fn test_hooks_on() -> napi::Result<(), Code> {
    if std::env::var_os("PCONN_TEST_HOOKS").is_none_or(|v| v != "1") {
        return Err(throw(Error::InvalidArgument(
            "test hooks are off (PCONN_TEST_HOOKS=1)".into(),
        )));
    }
    Ok(())
}

/// Open a connection in a reserved slot and complete `id` with it.
fn open(scope: &Arc<Scope>, id: OpId, slot: ConnectSlot, cancel: Option<Arc<Cancel>>) {
    let key = slot.key().clone();
    let spawned = scope.spawn(id, async move {
        let opened = tokio::select! {
            biased;
            _ = fired(cancel.as_deref()) => Err(Error::Aborted),
            r = slot.open() => r,
        };
        match opened {
            Ok(pooled) => Outcome::Connection(pooled),
            Err(error) => Outcome::Failed(Failure::at(&key, error)),
        }
    });
    if let Err(e) = spawned {
        let error = Error::Io(std::io::Error::other(e.reason));
        scope.complete(id, Outcome::Failed(error.into()));
    }
}

/// Watch a queued acquire: it gives up on timeout, abort or a closed
/// handle (reported through its callback), and leaves the queue silently
/// when the environment goes. A grant stops the watch.
fn watch(
    scope: &Arc<Scope>,
    id: OpId,
    mut queued: Queued,
    opts: AcquireOptions,
    served: Arc<Cancel>,
) {
    let timeout = queued.timeout(&opts);
    let watch = async move {
        let why = tokio::select! {
            biased;
            _ = served.cancelled() => return,
            _ = fired(opts.cancel.as_deref()) => Error::Aborted,
            _ = queued.handle_closed() => Error::PoolClosed,
            _ = after(timeout) => Error::AcquireTimeout { waited_ms: timeout.as_millis() as u64 },
        };
        if let Some(deliver) = queued.withdraw(&why) {
            drop(deliver(Grant::Failed(why)));
        }
    };
    // The scope's teardown drops the watch, and with it the queued acquire;
    // a panic drops it too, and fails the acquire.
    let failed = scope.clone();
    drop(scope.spawn_quiet(watch, move |message| failed.complete_panicked(id, &message)));
}
