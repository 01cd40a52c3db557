//! What one JavaScript environment (the main thread or one worker) owns on
//! the native side, and the channels its completions come back on.
//!
//! Nothing here is process-wide: each environment installs its own
//! `Environment` when it loads the addon (instance data), and an
//! environment cleanup hook closes it. Each evaluation of the façade's
//! JavaScript in that environment (normally one; a test runner that
//! re-evaluates modules makes more) opens its own `Scope`: a completion
//! channel of its own, so completions reach the module instance that
//! started the operation. Objects (pools, connections, bodies) hold the
//! scope they were made in, so their completions go to that thread and
//! that module instance only.

use std::collections::HashMap;
use std::ffi::c_void;
use std::future::Future;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use napi::{sys, Env};
use pconn_core::Cancel;

use crate::bridge::{Bridge, OpId, Outcome};
use crate::errors::panicked;
use crate::runtime;

/// One environment's native state.
pub(crate) struct Environment {
    /// Fired when the environment is torn down: its operations stop, and
    /// what they held (connections, slots, waiters) goes back or closes.
    pub(crate) closing: Cancel,
    /// Requests of this environment waiting for their response head.
    pub(crate) requests_waiting: AtomicUsize,
    /// Its scopes, by channel number.
    scopes: Mutex<Vec<Arc<Scope>>>,
}

impl Environment {
    /// Open a scope with `bridge` as its channel; its channel number.
    pub(crate) fn open_scope(self: &Arc<Self>, bridge: Arc<Bridge>) -> (u32, Arc<Scope>) {
        let scope = Arc::new(Scope {
            bridge,
            env: self.clone(),
            cancels: Mutex::default(),
        });
        let mut scopes = self.scopes.lock().unwrap_or_else(|p| p.into_inner());
        scopes.push(scope.clone());
        ((scopes.len() - 1) as u32, scope)
    }

    /// The scope of channel `channel`.
    pub(crate) fn scope(&self, channel: u32) -> Option<Arc<Scope>> {
        let scopes = self.scopes.lock().unwrap_or_else(|p| p.into_inner());
        scopes.get(channel as usize).cloned()
    }

    fn teardown(&self) {
        self.closing.cancel();
        let scopes = std::mem::take(&mut *self.scopes.lock().unwrap_or_else(|p| p.into_inner()));
        for scope in scopes {
            scope.bridge.close();
        }
    }
}

/// One module instance's side of an environment: where its completions go.
pub(crate) struct Scope {
    pub(crate) bridge: Arc<Bridge>,
    pub(crate) env: Arc<Environment>,
    /// The cancels of this channel's operations that can be cancelled by
    /// id, while they run (no JavaScript object per operation).
    cancels: Mutex<HashMap<u64, Arc<Cancel>>>,
}

impl Scope {
    /// A cancel for operation `id`, found by `cancel(id)` while the
    /// returned registration lives (hold it in the operation's future: it
    /// ends with the operation, however it ends).
    pub(crate) fn cancel_for(self: &Arc<Self>, id: OpId) -> (Arc<Cancel>, Registration) {
        let cancel = Arc::new(Cancel::new());
        let mut cancels = self.cancels.lock().unwrap_or_else(|p| p.into_inner());
        cancels.insert(id as u64, cancel.clone());
        (cancel, Registration(self.clone(), id))
    }

    /// Cancel operation `id`, if it still runs.
    pub(crate) fn cancel(&self, id: OpId) {
        let cancel = {
            let cancels = self.cancels.lock().unwrap_or_else(|p| p.into_inner());
            cancels.get(&(id as u64)).cloned()
        };
        if let Some(cancel) = cancel {
            cancel.cancel();
        }
    }

    /// Queue `outcome` for operation `id` on this scope's channel; when the
    /// environment is gone the outcome drops here (a connection goes back
    /// or closes), off the JavaScript thread.
    pub(crate) fn complete(&self, id: OpId, outcome: Outcome) {
        drop(self.bridge.complete(id, outcome));
    }

    /// Run `work` on the I/O runtime and complete `id` with its outcome on
    /// this environment's thread. A panic becomes a failed outcome; a
    /// teardown of the environment drops the work.
    pub(crate) fn spawn<F>(self: &Arc<Self>, id: OpId, work: F) -> napi::Result<()>
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
                    _ = scope.env.closing.cancelled() => return,
                    outcome = work => outcome,
                };
                scope.complete(id, outcome);
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
                    _ = scope.env.closing.cancelled() => {}
                    _ = work => {}
                }
            },
            on_panic,
        )
    }

    /// Complete `id` with the failure a Rust panic becomes.
    pub(crate) fn complete_panicked(&self, id: OpId, message: &str) {
        self.complete(id, Outcome::Failed(panicked(message).into()));
    }
}

/// Keeps an operation's cancel findable by its id; dropped, it forgets it.
pub(crate) struct Registration(Arc<Scope>, OpId);

impl Drop for Registration {
    fn drop(&mut self) {
        let mut cancels = self.0.cancels.lock().unwrap_or_else(|p| p.into_inner());
        cancels.remove(&(self.1 as u64));
    }
}

/// Install the state of a new environment (called once per environment,
/// when it loads the addon).
pub(crate) fn install(env: &Env) -> napi::Result<()> {
    let state = Arc::new(Environment {
        closing: Cancel::new(),
        requests_waiting: AtomicUsize::new(0),
        scopes: Mutex::default(),
    });
    let data = Box::into_raw(Box::new(state.clone()));
    // SAFETY: `env` is this environment's live handle (we are in its
    // module initialiser, on its thread); `data` is a leaked Box that only
    // `drop_environment` frees, once, when Node finalises the instance data.
    let status = unsafe {
        sys::napi_set_instance_data(
            env.raw(),
            data.cast(),
            Some(drop_environment),
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
    // the bridges refuse completions before anything else goes away.
    env.add_env_cleanup_hook(state, |state| state.teardown())?;
    Ok(())
}

unsafe extern "C" fn drop_environment(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: `data` is the Box leaked in `install`, given to Node once.
    drop(unsafe { Box::from_raw(data.cast::<Arc<Environment>>()) });
}

/// This environment's state.
pub(crate) fn environment(env: &Env) -> napi::Result<Arc<Environment>> {
    let mut data = std::ptr::null_mut();
    // SAFETY: `env` is a live environment handle on its own thread.
    let status = unsafe { sys::napi_get_instance_data(env.raw(), &mut data) };
    if status != sys::Status::napi_ok || data.is_null() {
        return Err(napi::Error::from_reason(
            "pconn: this thread's state is missing",
        ));
    }
    // SAFETY: the instance data is the `Box<Arc<Environment>>` set in
    // `install`, alive until the environment's finaliser, which cannot run
    // while this environment is calling into the addon.
    Ok(unsafe { &*data.cast::<Arc<Environment>>() }.clone())
}

/// The scope of channel `channel` in this environment (from `initBridge`).
pub(crate) fn scope(env: &Env, channel: u32) -> napi::Result<Arc<Scope>> {
    environment(env)?.scope(channel).ok_or_else(|| {
        napi::Error::from_reason(format!(
            "pconn: no completion channel {channel} on this thread (initBridge first)"
        ))
    })
}
