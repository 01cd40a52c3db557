//! Waking a JavaScript thread from any thread: the binding's one
//! threadsafe function per channel, in raw napi calls, and the deferral of
//! wake-ups made on I/O threads.
//!
//! Why raw: the function only wakes the thread; what runs there is ours
//! (`Bridge::drain` builds a whole batch into one call), and the queue is
//! ours too, so that what is still queued when an environment ends drops
//! in Rust (connections go back to their pool) instead of leaking in
//! Node's queue. napi-rs' typed `ThreadsafeFunction` queues a value per
//! call and converts it on the JavaScript thread: one JavaScript call per
//! completion, which is what batching removes.
//!
//! Deferral: a completion made on a `pconn-io` thread does not wake its
//! JavaScript thread at once. The wake-up waits until the I/O thread is
//! about to park (the runtime's `on_thread_park` calls `flush`), or, while
//! it stays busy, until a later completion finds the oldest held longer
//! than `MAX_DEFERRAL`. So one busy period reaches each JavaScript thread
//! as one call.

use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use napi::{sys, Env};

use crate::scope::Scope;

/// Longest a completion waits for its thread's wake-up while the I/O
/// thread stays busy (it normally flushes when it is about to park).
const MAX_DEFERRAL: Duration = Duration::from_micros(100);

/// Wakes one channel's JavaScript thread.
#[derive(Default)]
pub(crate) struct Wakeup {
    /// A wake-up is pending and the thread has not drained yet.
    scheduled: AtomicBool,
    tsfn: RwLock<Option<RawTsfn>>,
}

struct RawTsfn(sys::napi_threadsafe_function);

// SAFETY: a threadsafe function handle may be used from any thread
// (`napi_call_threadsafe_function` is documented thread-safe); it is never
// called after its finaliser ran (`finalize` takes it out of `Wakeup::tsfn`
// under the write lock, and every call holds the read lock).
unsafe impl Send for RawTsfn {}
unsafe impl Sync for RawTsfn {}

impl Wakeup {
    /// Attach `on_batch`, a function of `env`: each wake-up calls
    /// `Bridge::drain` for `scope` on the JavaScript thread, which calls it.
    /// Unref'd: it never keeps the event loop alive by itself.
    pub(crate) fn attach(
        &self,
        env: &Env,
        on_batch: sys::napi_value,
        scope: Arc<Scope>,
    ) -> napi::Result<()> {
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
                on_batch,
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
            return Err(napi::Error::from_reason(
                "pconn: could not create the completion channel",
            ));
        }
        // SAFETY: `tsfn` was just created on this thread.
        unsafe { sys::napi_unref_threadsafe_function(env.raw(), tsfn) };
        *self.tsfn.write().unwrap_or_else(|p| p.into_inner()) = Some(RawTsfn(tsfn));
        Ok(())
    }

    /// Make sure the thread drains soon: nothing if a wake-up is pending;
    /// on an I/O thread, when it parks (or past `MAX_DEFERRAL`); else now.
    pub(crate) fn wake(self: &Arc<Self>) {
        if self.scheduled.swap(true, Ordering::AcqRel) {
            flush_overdue();
            return;
        }
        if !defer(self) {
            self.wake_now();
        }
    }

    /// The thread is draining: later completions need a new wake-up.
    pub(crate) fn draining(&self) {
        self.scheduled.store(false, Ordering::Release);
    }

    fn wake_now(&self) {
        let tsfn = self.tsfn.read().unwrap_or_else(|p| p.into_inner());
        if let Some(tsfn) = tsfn.as_ref() {
            // SAFETY: the handle is alive while it is in `self.tsfn` (see
            // `RawTsfn`).
            unsafe {
                sys::napi_call_threadsafe_function(
                    tsfn.0,
                    ptr::null_mut(),
                    sys::ThreadsafeFunctionCallMode::nonblocking,
                )
            };
        }
    }
}

/// Node closes the function (environment teardown): stop using it, and
/// close the channel (what is still queued drops).
unsafe extern "C" fn finalize(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: `data` is the `Arc<Scope>` leaked in `attach`.
    let scope = unsafe { Arc::from_raw(data as *const Scope) };
    let bridge = &scope.bridge;
    bridge
        .wakeup
        .tsfn
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    bridge.close();
}

/// On the JavaScript thread: drain the channel into one call.
unsafe extern "C" fn call_js(
    env: sys::napi_env,
    js_cb: sys::napi_value,
    context: *mut c_void,
    _data: *mut c_void,
) {
    if env.is_null() {
        return; // teardown: nothing was attached to the call itself
    }
    // SAFETY: the function owns one strong count of `context` (see
    // `attach`), alive until `finalize`, which cannot run during this call;
    // this clone gives the objects made for the batch their own.
    let scope = unsafe {
        Arc::increment_strong_count(context as *const Scope);
        Arc::from_raw(context as *const Scope)
    };
    // SAFETY: on the environment's thread with its live `env`; `js_cb` is
    // the function given to `attach`, kept alive by the threadsafe function.
    unsafe { scope.bridge.drain(env, js_cb, &scope) };
}

thread_local! {
    static IO_THREAD: Cell<bool> = const { Cell::new(false) };
    static DEFERRED: RefCell<Deferred> = const { RefCell::new(Deferred { wakeups: Vec::new(), since: None }) };
}

/// Wake-ups of JavaScript threads held back on an I/O thread.
struct Deferred {
    wakeups: Vec<Arc<Wakeup>>,
    since: Option<Instant>,
}

/// Mark the current thread as an I/O thread (its wake-ups are deferred).
pub(crate) fn on_io_thread_start() {
    IO_THREAD.with(|t| t.set(true));
}

/// On an I/O thread, hold `wakeup` back; false elsewhere (wake at once).
fn defer(wakeup: &Arc<Wakeup>) -> bool {
    if !IO_THREAD.with(Cell::get) {
        return false;
    }
    DEFERRED.with(|d| {
        let mut d = d.borrow_mut();
        d.wakeups.push(wakeup.clone());
        d.since.get_or_insert_with(Instant::now);
    });
    true
}

/// Called with every completion made on this thread: wake what has waited
/// longer than `MAX_DEFERRAL` (the thread has not parked meanwhile).
fn flush_overdue() {
    let overdue = DEFERRED.with(|d| {
        d.borrow()
            .since
            .is_some_and(|since| since.elapsed() > MAX_DEFERRAL)
    });
    if overdue {
        flush();
    }
}

/// Wake every JavaScript thread whose wake-up this thread held back (the
/// runtime calls it when an I/O thread is about to park).
pub(crate) fn flush() {
    let wakeups = DEFERRED.with(|d| {
        let mut d = d.borrow_mut();
        d.since = None;
        std::mem::take(&mut d.wakeups)
    });
    for wakeup in wakeups {
        wakeup.wake_now();
    }
}
