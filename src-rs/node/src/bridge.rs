//! Carries async completions from the I/O threads back to the JavaScript
//! thread that started them.
//!
//! One bridge per scope (per evaluation of the façade in an environment):
//! a queue on the Rust side and one raw threadsafe function that only
//! wakes the thread. Each wake-up drains
//! everything queued and makes a single JavaScript call with the whole
//! batch (its encoding is in `batch`), so one wake-up carries many
//! responses under load.
//!
//! The queue is ours, not Node's: when the environment goes away, what is
//! still queued (connections, bodies) is dropped here and goes back to its
//! pool, where a threadsafe function's own queue would leak it.
//!
//! The function never holds the event loop open (it is unref'd): the
//! façade keeps the loop referenced exactly while operations are pending.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::Function;
use napi::{sys, Env, JsValue};
use napi_derive::napi;
use pconn_core::exchange::Response;
use pconn_core::{Error, Grant, Key, Pooled};

use crate::batch;
use crate::record::PoolEventKind;
use crate::runtime::panic_message;
use crate::scope::{self, Scope};
use crate::wakeup::Wakeup;

/// What a finished operation yields.
pub(crate) enum Outcome {
    Done,
    Failed(Failure),
    Connection(Pooled),
    Bytes(Option<Vec<u8>>),
    Response(Box<Response>),
    End(Vec<(String, String)>),
    Count(u32),
    /// An event of a pool (`PoolEventKind`), for its diagnostics channel.
    PoolEvent {
        kind: PoolEventKind,
        value: f64,
        key: String,
        detail: &'static str,
    },
    /// A completion that cannot be delivered, made by a test hook to prove
    /// that it fails its own operation and no other.
    Fault(Fault),
}

#[derive(Clone, Copy)]
pub(crate) enum Fault {
    /// Building it panics.
    Panic,
    /// Its kind is one the façade does not know.
    UnknownKind,
}

/// An operation's error, the key it was for and, once connected, the
/// connection's peer address (errors name their peer).
pub(crate) struct Failure {
    pub(crate) error: Error,
    pub(crate) peer: Option<Key>,
    pub(crate) address: Option<SocketAddr>,
}

impl Failure {
    pub(crate) fn at(peer: &Key, error: Error) -> Failure {
        Failure::on(peer, None, error)
    }

    /// On a connection to `address`.
    pub(crate) fn on(peer: &Key, address: Option<SocketAddr>, error: Error) -> Failure {
        Failure {
            error,
            peer: Some(peer.clone()),
            address,
        }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure {
            error,
            peer: None,
            address: None,
        }
    }
}

/// An operation's id: an integer below 2^53 (a JavaScript number holds it
/// exactly), unique within its scope for the life of the process. Id 0
/// carries events that answer no operation (connection closes). The
/// methods JavaScript calls take it as `id: f64` (their generated types
/// show `number`).
pub(crate) type OpId = f64;

/// An outcome waiting for its thread, with the operation it completes.
pub(crate) struct Completed {
    pub(crate) id: OpId,
    pub(crate) outcome: Outcome,
}

#[derive(Default)]
pub(crate) struct Bridge {
    queue: Mutex<Vec<Completed>>,
    /// The environment is going away: completions are refused.
    closed: AtomicBool,
    pub(crate) wakeup: Arc<Wakeup>,
}

impl Bridge {
    /// Queue `outcome` for operation `id`; gives it back when the
    /// environment is gone (the caller drops it, outside any pool lock).
    pub(crate) fn complete(&self, id: OpId, outcome: Outcome) -> Result<(), Outcome> {
        let Some(mut queue) = self.open_queue() else {
            return Err(outcome);
        };
        queue.push(Completed { id, outcome });
        drop(queue);
        self.wakeup.wake();
        Ok(())
    }

    /// Hand a pool's grant for acquire `id` of `key` to JavaScript (a
    /// connection or a failure); gives it back when the environment is
    /// gone. Called after the pool's lock is released, in grant order, so
    /// acquires see hand-overs in order.
    pub(crate) fn deliver(&self, id: OpId, key: &Key, grant: Grant) -> Result<(), Grant> {
        let outcome = match grant {
            Grant::Conn(pooled) => Outcome::Connection(pooled),
            Grant::Failed(error) => Outcome::Failed(Failure::at(key, error)),
            permit @ Grant::Permit(_) => return Err(permit),
        };
        self.complete(id, outcome).map_err(|outcome| match outcome {
            Outcome::Connection(pooled) => Grant::Conn(pooled),
            Outcome::Failed(failure) => Grant::Failed(failure.error),
            _ => unreachable!("deliver queues connections and failures only"),
        })
    }

    /// The queue, locked, unless the environment is gone.
    fn open_queue(&self) -> Option<std::sync::MutexGuard<'_, Vec<Completed>>> {
        let queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        (!self.closed.load(Ordering::Acquire)).then_some(queue)
    }

    /// Refuse further completions and drop what is queued.
    pub(crate) fn close(&self) {
        let leftover = {
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            self.closed.store(true, Ordering::Release);
            std::mem::take(&mut *queue)
        };
        drop(leftover);
    }

    /// On the JavaScript thread: hand everything queued to `js_cb` in one
    /// call. A panic never unwinds into Node (that aborts the process).
    ///
    /// # Safety
    /// On the environment's thread, with its live `env`; `js_cb` is a live
    /// function of that environment.
    pub(crate) unsafe fn drain(
        &self,
        env: sys::napi_env,
        js_cb: sys::napi_value,
        scope: &Arc<Scope>,
    ) {
        self.wakeup.draining();
        let batch = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()));
        if batch.is_empty() {
            return;
        }
        let delivered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: forwarded from the caller.
            unsafe { batch::deliver(env, js_cb, scope, batch) }
        }));
        if let Err(payload) = delivered {
            eprintln!(
                "pconn: internal error delivering completions: {}",
                panic_message(payload.as_ref())
            );
        }
    }
}

/// Open a completion channel for this evaluation of the façade: batches
/// of its operations' completions go to `on_batch`. Returns the channel's
/// number, which the pools it makes are tied to. A second evaluation in
/// the same environment (a test runner's module reset) opens a second
/// channel; both keep working.
#[napi]
#[allow(clippy::type_complexity)]
pub fn init_bridge(
    env: Env,
    on_batch: Function<
        napi::bindgen_prelude::FnArgs<(
            napi::bindgen_prelude::Float64Array,
            napi::bindgen_prelude::Buffer,
            Vec<napi::bindgen_prelude::Unknown<'static>>,
            u32,
        )>,
        (),
    >,
) -> napi::Result<u32> {
    let environment = scope::environment(&env)?;
    let bridge = Arc::new(Bridge::default());
    let (channel, scope) = environment.open_scope(bridge.clone());
    if let Err(e) = bridge.wakeup.attach(&env, on_batch.raw(), scope) {
        bridge.close();
        return Err(e);
    }
    Ok(channel)
}
