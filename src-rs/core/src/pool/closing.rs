//! Closing: `flush` (idle connections of some keys), a handle's close
//! (its waiters fail, its connects stop), the pool's close with its last
//! handle, and waiting until every connection is gone.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::gauges::Slot;
use super::handle::HandleState;
use super::key::PoolKey;
use super::poolable::Poolable;
use super::pooled::Grant;
use super::state::{Aftermath, State};
use super::stats::CloseReason;
use super::PoolInner;
use crate::error::Error;

impl<K: PoolKey, C: Poolable> PoolInner<K, C> {
    pub(crate) fn flush(self: &Arc<Self>, matches: impl Fn(&K) -> bool) -> usize {
        let mut guard = self.lock();
        let st = &mut *guard;
        let mut after = Aftermath::new();
        let keys: Vec<K> = st
            .hosts
            .iter()
            .filter(|(k, h)| matches(k) && h.gauges.idle_count() > h.gauges.checking)
            .map(|(k, _)| k.clone())
            .collect();
        for key in &keys {
            self.close_idle_of(st, key, CloseReason::Flush, &mut after);
        }
        let flushed = after.closes.len();
        for key in &keys {
            self.grant_capacity(st, Some(key), &mut after);
            st.settle(key);
        }
        self.note_drained(st);
        self.unlock(guard, after);
        flushed
    }

    /// Close every idle connection of `key`: parked ones, and multiplexed
    /// ones with no stream.
    fn close_idle_of(
        &self,
        st: &mut State<K, C>,
        key: &K,
        reason: CloseReason,
        after: &mut Aftermath<K, C>,
    ) {
        let Some(host) = st.hosts.get_mut(key) else {
            return;
        };
        let parked: Vec<_> = host.idle.drain().collect();
        let (unused, busy): (Vec<_>, Vec<_>) = host.shared.drain(..).partition(|s| s.loans == 0);
        host.shared = busy;
        for idle in parked {
            st.left(key, Slot::Idle);
            after.close(st, idle.entry, reason);
        }
        for shared in unused {
            st.left(key, Slot::SharedIdle);
            after.close(st, shared.entry, reason);
        }
    }

    pub(crate) fn close_handle(&self, handle: &HandleState) {
        if handle.close() && self.open_handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.close_pool();
        }
    }

    /// Close the pool: idle connections now, waiters and connects in
    /// progress fail with PCONN_POOL_CLOSED, active ones close on release.
    fn close_pool(&self) {
        let mut guard = self.lock();
        let st = &mut *guard;
        if st.closed {
            return;
        }
        st.closed = true;
        let mut after = Aftermath::new();
        let keys: Vec<K> = st.hosts.keys().cloned().collect();
        for key in &keys {
            self.close_idle_of(st, key, CloseReason::Shutdown, &mut after);
            if let Some(host) = st.hosts.get_mut(key) {
                host.in_ready = false;
                for waiter in host.waiters.drain() {
                    after
                        .handoffs
                        .push((waiter.deliver, Grant::Failed(Error::PoolClosed)));
                }
            }
        }
        st.ready.clear();
        st.evictable.clear();
        st.deadlines.clear();
        st.pending = 0;
        for key in &keys {
            st.settle(key);
        }
        self.note_drained(st);
        self.closing.cancel();
        self.unlock(guard, after);
        self.reaper_wake.notify_one();
    }

    pub(crate) fn note_drained(&self, st: &State<K, C>) {
        if st.closed && st.gauges.total() == 0 {
            self.drained.notify_waiters();
        }
    }

    /// Completes once the pool is closed and holds no connection.
    pub(crate) async fn all_closed(&self) {
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            {
                let st = self.lock();
                if !st.closed || st.gauges.total() == 0 {
                    return;
                }
            }
            drained.await;
        }
    }
}
