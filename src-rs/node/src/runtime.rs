//! The Tokio runtime behind every pool, shared with napi-rs.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use tokio::runtime::{Builder, Handle};

static HANDLE: OnceLock<Handle> = OnceLock::new();

/// Worker threads: `PCONN_THREADS`, else one. The work per request is a few
/// syscalls; the Node thread already takes a core, and a second worker on a
/// small machine mostly adds cross-thread wake-ups (measured: BENCHMARKS.md).
fn worker_threads() -> usize {
    std::env::var("PCONN_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1)
}

/// Build the runtime and hand it to napi-rs, keeping a handle for spawning.
pub(crate) fn install() {
    let built = Builder::new_multi_thread()
        .worker_threads(worker_threads())
        .thread_name("pconn-io")
        .enable_all()
        .build();
    match built {
        Ok(rt) => {
            let _ = HANDLE.set(rt.handle().clone());
            napi::bindgen_prelude::create_custom_tokio_runtime(rt);
        }
        Err(e) => eprintln!("pconn: could not start the I/O runtime: {e}"),
    }
}

pub(crate) fn handle() -> napi::Result<&'static Handle> {
    HANDLE
        .get()
        .ok_or_else(|| napi::Error::from_reason("pconn: the I/O runtime is not running"))
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
    let fut = CatchUnwind(Box::pin(fut));
    handle()?.spawn(async move {
        if let Err(message) = fut.await {
            on_panic(message);
        }
    });
    Ok(())
}

struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future<Output = ()>> Future for CatchUnwind<F> {
    type Output = Result<(), String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.0.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(())) => Poll::Ready(Ok(())),
            Err(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                Poll::Ready(Err(message))
            }
        }
    }
}
