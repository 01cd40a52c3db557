//! The pool's background task: the reaper. It holds the pool weakly, so a
//! dropped pool ends it.

use std::sync::{Arc, Weak};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::{PoolInner, Poolable};

/// Closes idle connections at their deadlines. Sleeps until the nearest
/// deadline; a park with a nearer one wakes it early.
pub(crate) async fn reap<C: Poolable>(pool: Weak<PoolInner<C>>, wake: Arc<Notify>) {
    loop {
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let next = match pool.upgrade() {
            Some(inner) => inner.reap(Instant::now()),
            None => return,
        };
        match next {
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = notified => {}
                }
            }
            None => notified.await,
        }
    }
}
