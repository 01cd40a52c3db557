//! Carries async completions from the I/O threads back to the JavaScript
//! thread that started them.
//!
//! One bridge per environment: a queue on the Rust side and one raw
//! threadsafe function that only wakes the thread. Each wake-up drains
//! everything queued and makes a single JavaScript call with the whole
//! batch, flattened into one array, and how many of its slots are used:
//! `onBatch([id, kind, ...values, id, kind, ...], length)` (the values of
//! each kind are listed on [`Completion`]; the array is allocated for the
//! worst case, so slots past `length` are empty). Positional
//! values are far cheaper to create than objects, and one call carries
//! many responses under load.
//!
//! The queue is ours, not Node's: when the environment goes away, what is
//! still queued (connections, bodies) is dropped here and goes back to its
//! pool, where a threadsafe function's own queue would leak it.
//!
//! The function never holds the event loop open (it is unref'd): the
//! façade keeps the loop referenced exactly while operations are pending.

use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use napi::bindgen_prelude::{Function, ToNapiValue};
use napi::{sys, Env, JsValue};
use napi_derive::napi;
use pconn_core::http1::Response;
use pconn_core::{Connection, Error, Grant, Pooled};

use crate::connection::NativeConnection;
use crate::errors::error_info;
use crate::http::{response_parts, NativeBody};
use crate::runtime::panic_message;
use crate::scope::{self, Scope};

/// What each completion in a batch carries after its id and kind.
#[napi]
pub enum Completion {
    /// Nothing.
    Done,
    /// An `ErrorInfo` object.
    Failed,
    /// A `NativeConnection`.
    Connection,
    /// A Buffer, or null at the end of the stream.
    Bytes,
    /// Status and flags, connection id, head block, body Buffer, and a
    /// `NativeBody` or undefined when the body is complete.
    Response,
    /// The end of a streamed body: its trailers as a header block.
    End,
    /// A connection closed (id 0): connection id, key, reason.
    Closed,
}

/// What a finished operation yields.
pub(crate) enum Outcome {
    Done,
    Failed(Error),
    Connection(Pooled),
    Bytes(Option<Vec<u8>>),
    Response(Box<Response>),
    End(Vec<(String, String)>),
    Closed {
        id: u64,
        key: String,
        reason: &'static str,
    },
}

struct Queued {
    id: u32,
    outcome: Outcome,
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
    pub(crate) fn complete(&self, id: u32, outcome: Outcome) -> Result<(), Outcome> {
        let Some(mut queue) = self.open_queue() else {
            return Err(outcome);
        };
        queue.push(Queued { id, outcome });
        drop(queue);
        self.wake();
        Ok(())
    }

    /// Hand a pool's grant for acquire `id` to JavaScript (a connection or
    /// a failure); gives it back when the environment is gone. Called under
    /// the pool lock, in grant order, so acquires see hand-overs in order.
    pub(crate) fn deliver(
        &self,
        id: u32,
        grant: Grant<Connection>,
    ) -> Result<(), Grant<Connection>> {
        let Some(mut queue) = self.open_queue() else {
            return Err(grant);
        };
        let outcome = match grant {
            Grant::Conn(pooled) => Outcome::Connection(pooled),
            Grant::Failed(error) => Outcome::Failed(error),
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

    /// Schedule one drain unless one is already due.
    fn wake(&self) {
        if self.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
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

/// Give this environment's bridge the function that receives batches
/// (the façade calls it once, when it loads).
#[napi]
#[allow(clippy::type_complexity)]
pub fn init_bridge(
    env: Env,
    on_batch: Function<
        napi::bindgen_prelude::FnArgs<(Vec<napi::bindgen_prelude::Unknown<'static>>, u32)>,
        (),
    >,
) -> napi::Result<()> {
    let scope = scope::scope(&env)?;
    let mut name = ptr::null_mut();
    let mut tsfn = ptr::null_mut();
    let context = Arc::into_raw(scope.clone()) as *mut c_void;
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
        return Err(napi::Error::from_reason(
            "pconn: could not create the completion channel",
        ));
    }
    // SAFETY: `tsfn` was just created on this thread.
    unsafe { sys::napi_unref_threadsafe_function(env.raw(), tsfn) };
    let replaced = scope
        .bridge
        .tsfn
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .replace(RawTsfn(tsfn));
    if let Some(old) = replaced {
        // SAFETY: the previous function of this environment, released once.
        unsafe {
            sys::napi_release_threadsafe_function(
                old.0,
                sys::ThreadsafeFunctionReleaseMode::release,
            )
        };
    }
    Ok(())
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
    let scope = unsafe { &*(context as *const Scope) };
    let batch = scope.bridge.take_batch();
    if batch.is_empty() {
        return;
    }
    // A panic must not unwind into Node (that aborts the process).
    let delivered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: we are on the environment's thread with a live `env`.
        unsafe { deliver_batch(env, js_cb, context as *const Scope, batch) }
    }));
    if let Err(payload) = delivered {
        eprintln!(
            "pconn: internal error delivering completions: {}",
            panic_message(payload.as_ref())
        );
    }
}

/// Build the flat array and call `js_cb` with it. Values that cannot be
/// created (the environment is terminating) end the batch; the rest drop.
unsafe fn deliver_batch(
    env: sys::napi_env,
    js_cb: sys::napi_value,
    scope: *const Scope,
    batch: Vec<Queued>,
) {
    // SAFETY: `scope` points to the live `Arc<Scope>` (see `call_js`);
    // cloning it gives the objects made here their own reference.
    let scope = unsafe {
        Arc::increment_strong_count(scope);
        Arc::from_raw(scope)
    };
    let mut out = Flat::new(env, batch.len() * 3);
    for Queued { id, outcome } in batch {
        if out.failed() {
            break;
        }
        out.number(f64::from(id));
        match outcome {
            Outcome::Done => out.kind(Completion::Done),
            Outcome::Failed(error) => {
                out.kind(Completion::Failed);
                out.value(error_info(&error));
            }
            Outcome::Connection(pooled) => {
                out.kind(Completion::Connection);
                out.value(NativeConnection::new(pooled, &scope));
            }
            Outcome::Bytes(bytes) => {
                out.kind(Completion::Bytes);
                match bytes {
                    Some(b) => out.bytes(&b),
                    None => out.null(),
                }
            }
            Outcome::Response(response) => {
                out.kind(Completion::Response);
                let parts = response_parts(*response);
                out.number(parts.flags);
                out.number(parts.connection_id);
                out.value(parts.head);
                out.bytes(&parts.body);
                match parts.rest {
                    Some(rest) => out.value(NativeBody::new(rest, &scope)),
                    None => out.undefined(),
                }
            }
            Outcome::End(trailers) => {
                out.kind(Completion::End);
                out.value(crate::http::header_block(&trailers));
            }
            Outcome::Closed { id, key, reason } => {
                out.kind(Completion::Closed);
                out.number(id as f64);
                out.value(key);
                out.value(reason);
            }
        }
    }
    if out.failed() {
        return;
    }
    let mut undefined = ptr::null_mut();
    let mut length = ptr::null_mut();
    // SAFETY: live env on its thread; `js_cb` is the function given to
    // `init_bridge`, kept alive by the threadsafe function.
    unsafe {
        sys::napi_get_undefined(env, &mut undefined);
        sys::napi_create_uint32(env, out.len, &mut length);
        let args = [out.array, length];
        let status =
            sys::napi_call_function(env, undefined, js_cb, 2, args.as_ptr(), ptr::null_mut());
        if status == sys::Status::napi_pending_exception {
            let mut exception = ptr::null_mut();
            sys::napi_get_and_clear_last_exception(env, &mut exception);
            sys::napi_fatal_exception(env, exception);
        }
    }
}

/// A JavaScript array filled left to right.
struct Flat {
    env: sys::napi_env,
    array: sys::napi_value,
    len: u32,
    ok: bool,
}

impl Flat {
    fn new(env: sys::napi_env, capacity: usize) -> Flat {
        let mut array = ptr::null_mut();
        // SAFETY: live env on its thread.
        let ok = unsafe { sys::napi_create_array_with_length(env, capacity, &mut array) }
            == sys::Status::napi_ok;
        Flat {
            env,
            array,
            len: 0,
            ok,
        }
    }

    fn failed(&self) -> bool {
        !self.ok
    }

    fn push(&mut self, value: napi::Result<sys::napi_value>) {
        if !self.ok {
            return;
        }
        match value {
            // SAFETY: live env; `array` was created in this scope.
            Ok(v) => {
                self.ok = unsafe { sys::napi_set_element(self.env, self.array, self.len, v) }
                    == sys::Status::napi_ok
            }
            Err(_) => self.ok = false,
        }
        self.len += 1;
    }

    fn value<T: ToNapiValue>(&mut self, value: T) {
        // SAFETY: live env on its thread (ToNapiValue's contract).
        let v = unsafe { T::to_napi_value(self.env, value) };
        self.push(v);
    }

    fn number(&mut self, n: f64) {
        self.value(n);
    }

    fn kind(&mut self, kind: Completion) {
        self.number(f64::from(kind as u32));
    }

    fn null(&mut self) {
        let mut v = ptr::null_mut();
        // SAFETY: live env on its thread.
        let status = unsafe { sys::napi_get_null(self.env, &mut v) };
        self.push(ok_value(status, v));
    }

    fn undefined(&mut self) {
        let mut v = ptr::null_mut();
        // SAFETY: live env on its thread.
        let status = unsafe { sys::napi_get_undefined(self.env, &mut v) };
        self.push(ok_value(status, v));
    }

    /// A Buffer holding its own copy: V8 frees it with the Buffer (zero-copy
    /// buffers need a finalizer each, which made garbage collection the
    /// main cost of large bodies).
    fn bytes(&mut self, bytes: &[u8]) {
        let mut buffer = ptr::null_mut();
        // SAFETY: live env; `bytes` is valid for the call and copied.
        let status = unsafe {
            sys::napi_create_buffer_copy(
                self.env,
                bytes.len(),
                bytes.as_ptr().cast(),
                ptr::null_mut(),
                &mut buffer,
            )
        };
        self.push(ok_value(status, buffer));
    }
}

fn ok_value(status: sys::napi_status, value: sys::napi_value) -> napi::Result<sys::napi_value> {
    if status == sys::Status::napi_ok {
        Ok(value)
    } else {
        Err(napi::Error::from_reason("could not create a value"))
    }
}
