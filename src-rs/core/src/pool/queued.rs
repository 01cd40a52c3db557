//! An acquire waiting in the queue, and how it waits.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::cancel::{self, or_cancelled};
use super::handle::HandleState;
use super::key::PoolKey;
use super::poolable::Poolable;
use super::pooled::{Grant, Pooled};
use super::waiters::Deliver;
use super::{AcquireOptions, PoolInner};
use crate::error::{Error, Result};

/// An acquire waiting in the queue. Dropping it leaves the queue.
pub struct Queued<K: PoolKey, C: Poolable> {
    pool: Arc<PoolInner<K, C>>,
    handle: Arc<HandleState>,
    key: K,
    seq: u64,
    /// Where the grant arrives, for `Pool::begin_acquire`; callers of
    /// `Pool::begin_acquire_with` get it in their callback instead.
    rx: Option<oneshot::Receiver<Grant<K, C>>>,
    done: bool,
}

impl<K: PoolKey, C: Poolable> Queued<K, C> {
    pub(crate) fn new(
        pool: Arc<PoolInner<K, C>>,
        handle: Arc<HandleState>,
        key: K,
        seq: u64,
        rx: Option<oneshot::Receiver<Grant<K, C>>>,
    ) -> Self {
        Queued {
            pool,
            handle,
            key,
            seq,
            rx,
            done: false,
        }
    }

    /// Leave the queue because of `why`. Returns the callback given to
    /// `begin_acquire_with` when it had not been called yet (the caller
    /// reports `why` through it); `None` when a grant was already made.
    pub fn withdraw(&mut self, why: &Error) -> Option<Deliver<K, C>> {
        self.done = true;
        let timed_out = matches!(why, Error::AcquireTimeout { .. });
        self.pool.withdraw(&self.key, self.seq, timed_out)
    }

    /// How long this acquire may wait: `opts.timeout`, else the pool's
    /// `acquire_timeout` (zero: forever).
    pub fn timeout(&self, opts: &AcquireOptions) -> Duration {
        opts.timeout.unwrap_or(self.pool.limits.acquire_timeout)
    }

    /// Completes when the handle this acquire waits through is closed.
    pub async fn handle_closed(&self) {
        self.handle.closing.cancelled().await
    }

    /// Wait for a grant (acquires begun with `begin_acquire`), bounded by
    /// the timeout and the cancel of `opts`, then open a permitted connect.
    pub async fn wait(mut self, opts: &AcquireOptions) -> Result<Pooled<K, C>> {
        let Some(mut rx) = self.rx.take() else {
            return Err(Error::InvalidArgument(
                "this acquire reports through its callback".into(),
            ));
        };
        let timeout = self.timeout(opts);
        let waited = tokio::select! {
            biased;
            g = &mut rx => Ok(g.unwrap_or(Grant::Failed(Error::PoolClosed))),
            _ = cancel::fired(opts.cancel.as_deref()) => Err(Error::Aborted),
            _ = self.handle.closing.cancelled() => Err(Error::PoolClosed),
            _ = cancel::after(timeout) => Err(Error::AcquireTimeout { waited_ms: timeout.as_millis() as u64 }),
        };
        let grant = match waited {
            Ok(grant) => {
                self.done = true;
                grant
            }
            Err(error) => {
                // A grant made meanwhile goes back as it drops (a
                // connection in transit is parked again, room passes on):
                // here if it arrived, or where it is delivered.
                if self.withdraw(&error).is_none() {
                    drop(rx.try_recv());
                }
                return Err(error);
            }
        };
        match grant {
            Grant::Conn(pooled) => Ok(pooled.received()),
            Grant::Permit(slot) => or_cancelled(opts.cancel.as_deref(), slot.open()).await,
            Grant::Failed(error) => Err(error),
        }
    }
}

impl<K: PoolKey, C: Poolable> Drop for Queued<K, C> {
    fn drop(&mut self) {
        if !self.done {
            self.pool.withdraw(&self.key, self.seq, false);
        }
    }
}
