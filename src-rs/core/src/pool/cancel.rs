//! A one-shot cancellation flag for acquires (the Rust side of AbortSignal).

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// Cancels the acquires and requests that hold it. Cancelling twice is harmless.
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

/// Run `work` unless `cancel` fires first; a cancelled `work` is dropped.
pub(crate) async fn or_cancelled<T>(
    cancel: Option<&Cancel>,
    work: impl std::future::Future<Output = crate::Result<T>>,
) -> crate::Result<T> {
    match cancel {
        None => work.await,
        Some(c) => tokio::select! {
            biased;
            _ = c.cancelled() => Err(crate::Error::Aborted),
            r = work => r,
        },
    }
}
