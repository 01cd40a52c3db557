//! A one-shot cancellation flag (the Rust side of AbortSignal, and how a
//! closing pool or handle stops what is waiting on it).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::error::{Error, Result};

/// Cancels what holds it. Cancelling twice is harmless.
#[derive(Debug, Default)]
pub struct Cancel {
    fired: AtomicBool,
    notify: Notify,
}

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    pub fn cancel(&self) {
        self.fired.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    pub fn is_cancelled(&self) -> bool {
        self.fired.load(Ordering::Acquire)
    }

    /// Completes once `cancel` has been called (at once if it already was).
    pub async fn cancelled(&self) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.is_cancelled() {
            return;
        }
        notified.await;
    }
}

/// Completes when `cancel` fires; never when there is none.
pub async fn fired(cancel: Option<&Cancel>) {
    match cancel {
        Some(c) => c.cancelled().await,
        None => std::future::pending().await,
    }
}

/// Completes after `timeout`; never when it is zero (no timeout).
pub async fn after(timeout: Duration) {
    if timeout.is_zero() {
        std::future::pending().await
    } else {
        tokio::time::sleep(timeout).await
    }
}

/// Run `work` unless `cancel` fires first (ABORT_ERR); `work` is dropped.
pub(crate) async fn or_cancelled<T>(
    cancel: Option<&Cancel>,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    tokio::select! {
        biased;
        _ = fired(cancel) => Err(Error::Aborted),
        r = work => r,
    }
}
