//! Deadlines: the reaper task that closes idle connections when their
//! time is up, and the lifetimes (with jitter) that retire connections.

use std::cmp::Reverse;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::gauges::Slot;
use super::key::PoolKey;
use super::poolable::Poolable;
use super::state::{Aftermath, Due};
use super::stats::CloseReason;
use super::PoolInner;

/// Closes idle connections at their deadlines. Sleeps until the nearest
/// deadline; a park with a nearer one wakes it early. It holds the pool
/// weakly, so a dropped pool ends it.
pub(crate) async fn reap<K: PoolKey, C: Poolable>(pool: Weak<PoolInner<K, C>>, wake: Arc<Notify>) {
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

impl<K: PoolKey, C: Poolable> PoolInner<K, C> {
    /// Close idle connections past their deadline; returns the next one.
    pub(crate) fn reap(self: &Arc<Self>, now: Instant) -> Option<Instant> {
        let mut guard = self.lock();
        let st = &mut *guard;
        let mut after = Aftermath::new();
        while let Some(Reverse(due)) = st.deadlines.peek() {
            if due.at > now {
                break;
            }
            let Some(Reverse(Due { at, key })) = st.deadlines.pop() else {
                break;
            };
            let Some(host) = st.hosts.get_mut(&key) else {
                continue;
            };
            if host.scheduled != Some(at) {
                continue; // superseded by a nearer deadline
            }
            let mut expired = Vec::new();
            host.idle.take_expired(now, &mut expired);
            let mut spent_shared = Vec::new();
            let mut i = 0;
            while i < host.shared.len() {
                let shared = &host.shared[i];
                if shared.loans == 0 && shared.idle_deadline.is_some_and(|d| d <= now) {
                    spent_shared.push(host.shared.swap_remove(i).entry);
                } else {
                    i += 1;
                }
            }
            host.scheduled = host.earliest_deadline();
            if let Some(next) = host.scheduled {
                st.deadlines.push(Reverse(Due {
                    at: next,
                    key: key.clone(),
                }));
            }
            for idle in expired {
                let reason = idle.close_reason();
                st.left(&key, Slot::Idle);
                after.close(st, idle.entry, reason);
            }
            for entry in spent_shared {
                let reason = match entry.retire_at {
                    Some(t) if t <= now => CloseReason::Lifetime,
                    _ => CloseReason::Idle,
                };
                st.left(&key, Slot::SharedIdle);
                after.close(st, entry, reason);
            }
            self.grant_capacity(st, Some(&key), &mut after);
            self.top_up_if_needed(st, &key, &mut after);
            st.settle(&key);
        }
        self.note_drained(st);
        st.reaper_due = st.deadlines.peek().map(|Reverse(d)| d.at);
        let next = st.reaper_due;
        self.unlock(guard, after);
        next
    }

    /// `maxLifetimeMs` minus up to 10% (at most 10 s) of random jitter, so
    /// connections made together do not all retire together.
    pub(crate) fn retire_time(&self, now: Instant) -> Option<Instant> {
        let life = self.limits.max_lifetime;
        if life.is_zero() {
            return None;
        }
        let span = (life / 10).min(Duration::from_secs(10)).as_millis() as u64;
        let jitter = if span == 0 {
            0
        } else {
            self.next_random() % span
        };
        Some(now + life - Duration::from_millis(jitter))
    }

    fn next_random(&self) -> u64 {
        // xorshift64: cheap, good enough to spread deadlines.
        let mut x = self.jitter_seed.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.jitter_seed.store(x, Ordering::Relaxed);
        x
    }
}

/// A random, non-zero seed for the jitter (from the standard library's
/// per-process random hasher keys).
pub(crate) fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id().into());
    h.finish() | 1
}
