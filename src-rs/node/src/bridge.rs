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

use std::ffi::c_void;
use std::net::SocketAddr;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use napi::bindgen_prelude::Function;
use napi::{sys, Env, JsValue};
use napi_derive::napi;
use pconn_core::http1::Response;
use pconn_core::{Error, Grant, Key, Pooled};

use crate::batch;
use crate::runtime::panic_message;
use crate::scope::{self, Scope};

/// What a finished operation yields.
pub(crate) enum Outcome {
    Done,
    Failed(Failure),
    Connection(Pooled),
    Bytes(Option<Vec<u8>>),
    Response(Box<Response>),
    End(Vec<(String, String)>),
    Closed {
        id: u64,
        key: String,
        reason: &'static str,
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

pub(crate) struct Queued {
    pub(crate) id: OpId,
    pub(crate) outcome: Outcome,
}

struct RawTsfn(sys::napi_threadsafe_function);

// SAFETY: a threadsafe function handle may be used from any thread
// (`napi_call_threadsafe_function` is documented thread-safe); we never
// call it after its finaliser ran (the handle is taken out under the
// write lock there).
unsafe impl Send for RawTsfn {}
unsafe impl Sync for RawTsfn {}

#[derive(Default)]
pub(crate) struct Bridge {
    queue: Mutex<Vec<Queued>>,
    /// A wake-up is queued and has not drained yet.
    scheduled: AtomicBool,
    /// The environment is going away: completions are refused.
    closed: AtomicBool,
    tsfn: RwLock<Option<RawTsfn>>,
}

impl Bridge {
    /// Queue `outcome` for operation `id`; gives it back when the
    /// environment is gone (the caller drops it, outside any pool lock).
    pub(crate) fn complete(self: &Arc<Self>, id: OpId, outcome: Outcome) -> Result<(), Outcome> {
        let Some(mut queue) = self.open_queue() else {
            return Err(outcome);
        };
        queue.push(Queued { id, outcome });
        drop(queue);
        self.wake();
        Ok(())
    }

    /// Hand a pool's grant for acquire `id` of `key` to JavaScript (a
    /// connection or a failure); gives it back when the environment is
    /// gone. Called after the pool's lock is released, in grant order, so acquires see
    /// hand-overs in order.
    pub(crate) fn deliver(
        self: &Arc<Self>,
        id: OpId,
        key: &Key,
        grant: Grant,
    ) -> Result<(), Grant> {
        let Some(mut queue) = self.open_queue() else {
            return Err(grant);
        };
        let outcome = match grant {
            Grant::Conn(pooled) => Outcome::Connection(pooled),
            Grant::Failed(error) => Outcome::Failed(Failure::at(key, error)),
            permit @ Grant::Permit(_) => return Err(permit),
        };
        queue.push(Queued { id, outcome });
        drop(queue);
        self.wake();
        Ok(())
    }

    /// The queue, locked, unless the environment is gone.
    fn open_queue(&self) -> Option<std::sync::MutexGuard<'_, Vec<Queued>>> {
        let queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        (!self.closed.load(Ordering::Acquire)).then_some(queue)
    }

    /// Schedule one drain unless one is already due. On an I/O thread the
    /// wake-up waits until the thread is about to park, so that everything
    /// completed in one busy period reaches JavaScript in one call.
    fn wake(self: &Arc<Self>) {
        if self.scheduled.swap(true, Ordering::AcqRel) {
            crate::runtime::flush_overdue();
            return;
        }
        if crate::runtime::defer_wake(self) {
            return;
        }
        self.wake_now();
    }

    pub(crate) fn wake_now(&self) {
        let tsfn = self.tsfn.read().unwrap_or_else(|p| p.into_inner());
        if let Some(tsfn) = tsfn.as_ref() {
            // SAFETY: the handle is alive while it is in `self.tsfn` (the
            // finaliser takes it out under the write lock).
            unsafe {
                sys::napi_call_threadsafe_function(
                    tsfn.0,
                    ptr::null_mut(),
                    sys::ThreadsafeFunctionCallMode::nonblocking,
                )
            };
        }
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

    fn take_batch(&self) -> Vec<Queued> {
        self.scheduled.store(false, Ordering::Release);
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()))
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
    let mut name = ptr::null_mut();
    let mut tsfn = ptr::null_mut();
    let context = Arc::into_raw(scope) as *mut c_void;
    // SAFETY: all handles belong to this environment and its thread;
    // `context` is an `Arc<Scope>` leaked for the function and reclaimed
    // once in `finalize`, which Node calls exactly once.
    let status = unsafe {
        sys::napi_create_string_utf8(env.raw(), c"pconn".as_ptr(), 5, &mut name);
        sys::napi_create_threadsafe_function(
            env.raw(),
            on_batch.raw(),
            ptr::null_mut(),
            name,
            0,
            1,
            context,
            Some(finalize),
            context,
            Some(call_js),
            &mut tsfn,
        )
    };
    if status != sys::Status::napi_ok {
        // SAFETY: Node did not take `context`.
        drop(unsafe { Arc::from_raw(context as *const Scope) });
        bridge.close();
        return Err(napi::Error::from_reason(
            "pconn: could not create the completion channel",
        ));
    }
    // SAFETY: `tsfn` was just created on this thread.
    unsafe { sys::napi_unref_threadsafe_function(env.raw(), tsfn) };
    *bridge.tsfn.write().unwrap_or_else(|p| p.into_inner()) = Some(RawTsfn(tsfn));
    Ok(channel)
}

/// Node closes the function (environment teardown): stop using it and
/// drop whatever is still queued.
unsafe extern "C" fn finalize(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: `data` is the `Arc<Scope>` leaked in `init_bridge`.
    let scope = unsafe { Arc::from_raw(data as *const Scope) };
    scope
        .bridge
        .tsfn
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    scope.bridge.close();
}

/// On the JavaScript thread: drain the queue into one call.
unsafe extern "C" fn call_js(
    env: sys::napi_env,
    js_cb: sys::napi_value,
    context: *mut c_void,
    _data: *mut c_void,
) {
    if env.is_null() {
        return; // teardown: nothing was attached to the call itself
    }
    // SAFETY: `context` is the `Arc<Scope>` owned by the function, alive
    // until `finalize`, which cannot run during this call.
    let batch = unsafe { &*(context as *const Scope) }.bridge.take_batch();
    if batch.is_empty() {
        return;
    }
    // SAFETY: the function owns one strong count (see `init_bridge`);
    // this clone gives the objects made for the batch their own.
    let scope = unsafe {
        Arc::increment_strong_count(context as *const Scope);
        Arc::from_raw(context as *const Scope)
    };
    // A panic must not unwind into Node (that aborts the process).
    let delivered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: we are on the environment's thread with a live `env`.
        unsafe { batch::deliver(env, js_cb, &scope, batch) }
    }));
    if let Err(payload) = delivered {
        eprintln!(
            "pconn: internal error delivering completions: {}",
            panic_message(payload.as_ref())
        );
    }
}
