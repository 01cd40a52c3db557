//! Capacity: when freed room reaches waiters. `grant_capacity` is the one
//! place where room to connect is handed out; `evict_idle` closes idle
//! connections of other keys when only `maxConnections` stands in the way.

use std::collections::VecDeque;
use std::sync::Arc;

use super::gauges::Slot;
use super::key::{KeyMap, PoolKey};
use super::poolable::Poolable;
use super::pooled::{ConnectSlot, Grant};
use super::state::{Aftermath, Host, State};
use super::stats::CloseReason;
use super::PoolInner;

impl<K: PoolKey, C: Poolable> PoolInner<K, C> {
    pub(crate) fn global_room(&self, st: &State<K, C>) -> bool {
        self.limits
            .max_connections
            .is_none_or(|max| st.gauges.total() < max)
    }

    /// Put `key` in the ready queue if it has waiters that may connect.
    pub(crate) fn mark_ready(&self, st: &mut State<K, C>, key: &K) {
        let Some(host) = st.hosts.get(key) else {
            return;
        };
        if host.in_ready || host.waiters.live() == 0 || !self.may_connect(key, host) {
            return;
        }
        st.host_mut(key).in_ready = true;
        st.ready.push_back(key.clone());
        if st.ready.len() > 2 * st.hosts.len() + 64 {
            compact(&mut st.ready, &mut st.hosts, in_ready);
        }
    }

    /// Whether `key` has a waiter that could open a connection now but for
    /// `maxConnections`.
    fn is_ready(&self, st: &State<K, C>, key: &K) -> bool {
        st.hosts
            .get(key)
            .is_some_and(|h| h.waiters.live() > 0 && self.may_connect(key, h))
    }

    /// Take `key` off the front of the ready queue.
    fn pop_ready(st: &mut State<K, C>, key: &K) {
        st.ready.pop_front();
        if let Some(host) = st.hosts.get_mut(key) {
            host.in_ready = false;
        }
    }

    /// Whether some waiter is held back by `maxConnections` alone (stale
    /// entries at the front of the ready queue are dropped on the way).
    pub(crate) fn ready_waiter_blocked(&self, st: &mut State<K, C>) -> bool {
        if self.global_room(st) {
            return false;
        }
        while let Some(key) = st.ready.front().cloned() {
            if self.is_ready(st, &key) {
                return true;
            }
            Self::pop_ready(st, &key);
        }
        false
    }

    /// The one place where freed capacity reaches waiters: `freed` (if
    /// any) just lost a connection or a connect; every key whose waiters
    /// may now open a connection gets a permit, oldest-ready first,
    /// closing idle connections of other keys when only `maxConnections`
    /// stands in the way.
    pub(crate) fn grant_capacity(
        self: &Arc<Self>,
        st: &mut State<K, C>,
        freed: Option<&K>,
        after: &mut Aftermath<K, C>,
    ) {
        if let Some(key) = freed {
            self.mark_ready(st, key);
        }
        while let Some(key) = st.ready.front().cloned() {
            if !self.is_ready(st, &key) {
                Self::pop_ready(st, &key);
                continue;
            }
            if !self.global_room(st) && !self.evict_idle(st, &key, after) {
                return;
            }
            Self::pop_ready(st, &key);
            self.grant_permit(st, &key, after);
            self.mark_ready(st, &key);
        }
    }

    /// Give room to connect to the oldest live waiter of `key`.
    fn grant_permit(self: &Arc<Self>, st: &mut State<K, C>, key: &K, after: &mut Aftermath<K, C>) {
        let Some(waiter) = st.hosts.get_mut(key).and_then(|h| h.waiters.pop()) else {
            return;
        };
        st.pending -= 1;
        st.entered(key, Slot::Connecting);
        // Waiters queue only while the circuit is closed: never a trial.
        let slot = ConnectSlot::new(self.clone(), waiter.handle, key.clone(), None);
        after.handoffs.push((waiter.deliver, Grant::Permit(slot)));
    }

    /// Close the longest-parked idle connection of a key other than
    /// `except`, to make room under `maxConnections` (as node:http's Agent
    /// does with `maxTotalSockets`).
    pub(crate) fn evict_idle(
        &self,
        st: &mut State<K, C>,
        except: &K,
        after: &mut Aftermath<K, C>,
    ) -> bool {
        if self.limits.max_connections.is_none() {
            return false;
        }
        let mut skipped = None;
        let mut evicted = false;
        while let Some(key) = st.evictable.pop_front() {
            let Some(host) = st.hosts.get_mut(&key) else {
                continue;
            };
            host.in_evictable = false;
            if host.idle.is_empty() {
                continue;
            }
            if key == *except {
                host.in_evictable = true;
                skipped = Some(key);
                continue;
            }
            let more = host.idle.len() > 1;
            host.in_evictable = more;
            self.close_oldest_idle(st, &key, after);
            if more {
                st.evictable.push_back(key.clone());
            }
            st.settle(&key);
            evicted = true;
            break;
        }
        if let Some(key) = skipped {
            st.evictable.push_back(key);
        }
        evicted
    }

    /// Close `key`'s longest-parked idle connection, if it has one.
    pub(crate) fn close_oldest_idle(
        &self,
        st: &mut State<K, C>,
        key: &K,
        after: &mut Aftermath<K, C>,
    ) -> bool {
        let Some(idle) = st.hosts.get_mut(key).and_then(|h| h.idle.pop_oldest()) else {
            return false;
        };
        st.left(key, Slot::Idle);
        after.close(st, idle.entry, CloseReason::Evicted);
        true
    }
}

fn in_ready<K: PoolKey, C: Poolable>(host: &mut Host<K, C>) -> &mut bool {
    &mut host.in_ready
}

pub(crate) fn in_evictable<K: PoolKey, C: Poolable>(host: &mut Host<K, C>) -> &mut bool {
    &mut host.in_evictable
}

/// Rebuild a lazy key queue: each key still present, once.
pub(crate) fn compact<K: PoolKey, C: Poolable>(
    queue: &mut VecDeque<K>,
    hosts: &mut KeyMap<K, Host<K, C>>,
    flag: fn(&mut Host<K, C>) -> &mut bool,
) {
    let old = std::mem::take(queue);
    for h in hosts.values_mut() {
        *flag(h) = false;
    }
    for key in old {
        if let Some(h) = hosts.get_mut(&key) {
            let f = flag(h);
            if !*f {
                *f = true;
                queue.push_back(key);
            }
        }
    }
}
