//! Handles: the users of one pool. A pool has one handle, or one per
//! JavaScript thread that opened a shared pool by name; a handle can close
//! on its own (its waiters give up, its loans come back) and the pool
//! closes with its last handle.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use tokio::sync::Notify;

use super::cancel::Cancel;

static NEXT_HANDLE_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) struct HandleState {
    pub(crate) id: u64,
    closed: AtomicBool,
    /// Fired when the handle closes: its waiting acquires and connects give
    /// up with PCONN_POOL_CLOSED.
    pub(crate) closing: Cancel,
    /// Connections on loan through this handle.
    loans: AtomicUsize,
    returned: Notify,
}

impl HandleState {
    pub(crate) fn new() -> HandleState {
        HandleState {
            id: NEXT_HANDLE_ID.fetch_add(1, Ordering::Relaxed),
            closed: AtomicBool::new(false),
            closing: Cancel::new(),
            loans: AtomicUsize::new(0),
            returned: Notify::new(),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Close the handle; true the first time.
    pub(crate) fn close(&self) -> bool {
        let first = !self.closed.swap(true, Ordering::SeqCst);
        if first {
            self.closing.cancel();
        }
        first
    }

    pub(crate) fn lend(&self) {
        self.loans.fetch_add(1, Ordering::AcqRel);
    }

    /// A loan ended. Only a closed handle has anyone waiting for its loans
    /// (`all_returned`), so an open one skips the notification.
    ///
    /// Both sides store then load (`loans` here, `closed` in `close` and
    /// `all_returned`), so both use SeqCst: either this sees the close and
    /// notifies, or the waiter's later load of `loans` sees this return.
    pub(crate) fn give_back(&self) {
        if self.loans.fetch_sub(1, Ordering::SeqCst) == 1 && self.closed.load(Ordering::SeqCst) {
            self.returned.notify_waiters();
        }
    }

    /// Completes once no connection is on loan through this handle.
    pub(crate) async fn all_returned(&self) {
        loop {
            let returned = self.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if self.loans.load(Ordering::SeqCst) == 0 {
                return;
            }
            returned.await;
        }
    }
}
