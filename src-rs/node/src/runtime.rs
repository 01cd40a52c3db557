//! The one Tokio runtime of the process: every pool and every JavaScript
//! thread share it. It is built on first use and never shut down (workers
//! come and go; the runtime outlives them all).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use tokio::runtime::{Builder, Handle, Runtime};

static RUNTIME: OnceLock<std::io::Result<Runtime>> = OnceLock::new();

/// Worker threads: `PCONN_THREADS`, else one. The work per request is a few
/// system calls; the Node thread already takes a core, and a second worker
/// on a small machine mostly adds cross-thread wake-ups.
fn worker_threads() -> usize {
    std::env::var("PCONN_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1)
}

pub(crate) fn handle() -> napi::Result<&'static Handle> {
    let built = RUNTIME.get_or_init(|| {
        // The runtime's threads outlive any one environment: keep the
        // addon's code mapped even if Node unloads it with a worker.
        napi::bindgen_prelude::retain_current_module_for_unload_safety();
        Builder::new_multi_thread()
            .worker_threads(worker_threads())
            .thread_name("pconn-io")
            .on_thread_start(crate::wakeup::on_io_thread_start)
            .on_thread_park(crate::wakeup::flush)
            .enable_all()
            .build()
    });
    match built {
        Ok(rt) => Ok(rt.handle()),
        Err(e) => Err(napi::Error::from_reason(format!(
            "pconn: could not start the I/O runtime: {e}"
        ))),
    }
}

/// Run `fut` on the runtime; a panic inside it becomes `on_panic(message)`
/// instead of tearing down a worker (and with it the process).
pub(crate) fn spawn_guarded<F>(
    fut: F,
    on_panic: impl FnOnce(String) + Send + 'static,
) -> napi::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let fut = CatchUnwind(fut);
    handle()?.spawn(async move {
        if let Err(message) = fut.await {
            on_panic(message);
        }
    });
    Ok(())
}

struct CatchUnwind<F>(F);

impl<F: Future<Output = ()>> Future for CatchUnwind<F> {
    type Output = Result<(), String>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: structural pinning: the inner future is never moved out
        // of `self`, and `CatchUnwind` has no Drop impl or other access.
        let inner = unsafe { self.map_unchecked_mut(|s| &mut s.0) };
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(())) => Poll::Ready(Ok(())),
            Err(payload) => Poll::Ready(Err(panic_message(payload.as_ref()))),
        }
    }
}

/// What a panic said, as text.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
