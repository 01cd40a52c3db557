//! What one JavaScript environment (the main thread or one worker) owns on
//! the native side: its completion bridge and a cancel that stops its
//! operations when the environment is torn down.
//!
//! Nothing here is process-wide: each environment installs its own scope
//! when it loads the addon (instance data), and an environment cleanup hook
//! closes it. Objects made in an environment (pools, connections, bodies)
//! hold its scope, so their completions go to the thread that started them
//! and to no other.

use std::ffi::c_void;
use std::future::Future;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use napi::{sys, Env};
use pconn_core::Cancel;

use crate::bridge::{Bridge, Outcome};
use crate::errors::panicked;
use crate::runtime;

pub(crate) struct Scope {
    pub(crate) bridge: Arc<Bridge>,
    /// Fired when the environment is torn down: its operations stop, and
    /// what they held (connections, slots, waiters) goes back or closes.
    pub(crate) closing: Cancel,
    /// Requests of this environment waiting for their response head.
    pub(crate) requests_waiting: AtomicUsize,
}

impl Scope {
    /// Run `work` on the I/O runtime and complete `id` with its outcome on
    /// this environment's thread. A panic becomes a failed outcome; a
    /// teardown of the environment drops the work.
    pub(crate) fn spawn<F>(self: &Arc<Self>, id: u32, work: F) -> napi::Result<()>
    where
        F: Future<Output = Outcome> + Send + 'static,
    {
        // On the heap at once: a request's future is kilobytes, and every
        // wrapper below would otherwise copy it again on this thread.
        let work = Box::pin(work);
        let scope = self.clone();
        let on_panic = {
            let scope = self.clone();
            move |message: String| scope.complete_panicked(id, &message)
        };
        runtime::spawn_guarded(
            async move {
                let outcome = tokio::select! {
                    biased;
                    _ = scope.closing.cancelled() => return,
                    outcome = work => outcome,
                };
                // A closed bridge gives the outcome back: it drops here, off
                // the JavaScript thread (a connection goes back or closes).
                drop(scope.bridge.complete(id, outcome));
            },
            on_panic,
        )
    }

    /// Run `work` on the I/O runtime until it ends or the environment goes;
    /// `on_panic` completes, as failed, the operations it would have.
    pub(crate) fn spawn_quiet<F>(
        self: &Arc<Self>,
        work: F,
        on_panic: impl FnOnce(String) + Send + 'static,
    ) -> napi::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let scope = self.clone();
        runtime::spawn_guarded(
            async move {
                tokio::select! {
                    biased;
                    _ = scope.closing.cancelled() => {}
                    _ = work => {}
                }
            },
            on_panic,
        )
    }

    /// Complete `id` with the failure a Rust panic becomes.
    pub(crate) fn complete_panicked(&self, id: u32, message: &str) {
        drop(
            self.bridge
                .complete(id, Outcome::Failed(panicked(message).into())),
        );
    }

    fn teardown(&self) {
        self.closing.cancel();
        self.bridge.close();
    }
}

/// Install a scope for a new environment (called once per environment,
/// when it loads the addon).
pub(crate) fn install(env: &Env) -> napi::Result<()> {
    let scope = Arc::new(Scope {
        bridge: Arc::default(),
        closing: Cancel::new(),
        requests_waiting: AtomicUsize::new(0),
    });
    let data = Box::into_raw(Box::new(scope.clone()));
    // SAFETY: `env` is this environment's live handle (we are in its
    // module initialiser, on its thread); `data` is a leaked Box that only
    // `drop_scope` frees, once, when Node finalises the instance data.
    let status = unsafe {
        sys::napi_set_instance_data(
            env.raw(),
            data.cast(),
            Some(drop_scope),
            std::ptr::null_mut(),
        )
    };
    if status != sys::Status::napi_ok {
        // SAFETY: Node did not take `data`; reclaim the Box we leaked.
        drop(unsafe { Box::from_raw(data) });
        return Err(napi::Error::from_reason(
            "pconn: could not set up this thread's state",
        ));
    }
    // Cleanup hooks run before objects are finalised: operations stop and
    // the bridge refuses completions before anything else goes away.
    env.add_env_cleanup_hook(scope, |scope| scope.teardown())?;
    Ok(())
}

unsafe extern "C" fn drop_scope(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: `data` is the Box leaked in `install`, given to Node once.
    drop(unsafe { Box::from_raw(data.cast::<Arc<Scope>>()) });
}

/// This environment's scope.
pub(crate) fn scope(env: &Env) -> napi::Result<Arc<Scope>> {
    let mut data = std::ptr::null_mut();
    // SAFETY: `env` is a live environment handle on its own thread.
    let status = unsafe { sys::napi_get_instance_data(env.raw(), &mut data) };
    if status != sys::Status::napi_ok || data.is_null() {
        return Err(napi::Error::from_reason(
            "pconn: this thread's state is missing",
        ));
    }
    // SAFETY: the instance data is the `Box<Arc<Scope>>` set in `install`,
    // alive until the environment's finaliser, which cannot run while this
    // environment is calling into the addon.
    Ok(unsafe { &*data.cast::<Arc<Scope>>() }.clone())
}
