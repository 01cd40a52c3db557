//! Release: a connection comes back (or a stream of a multiplexed one
//! ends), and is closed, handed to the oldest waiter of its key, or parked
//! with an idle deadline. Also the idle watcher's checks of parked
//! connections, which end the same way.

use std::cmp::Reverse;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::capacity::{compact, in_evictable};
use super::entry::Entry;
use super::events::PoolEvent;
use super::gauges::Slot;
use super::idle_list::Idle;
use super::key::PoolKey;
use super::poolable::Poolable;
use super::pooled::{Grant, Pooled};
use super::state::{Aftermath, Due, State};
use super::stats::CloseReason;
use super::waiters::Deliver;
use super::PoolInner;

impl<K: PoolKey, C: Poolable> PoolInner<K, C> {
    /// Release: close, hand to a waiter, or park (see `docs/ARCHITECTURE.md`).
    pub(crate) fn put_back(
        self: &Arc<Self>,
        mut entry: Entry<K, C>,
        keep_alive_ok: bool,
        probe: bool,
    ) {
        let now = Instant::now();
        let verdict = if !keep_alive_ok || entry.conn.is_broken() {
            Some(CloseReason::Broken)
        } else if entry.is_spent(self.limits.max_uses, now) {
            Some(CloseReason::Lifetime)
        } else if !probe || !entry.conn.was_used() {
            // Untouched since the checkout check, or an exchange that read
            // exactly to the end of its message: nothing left unread.
            None
        } else {
            entry.conn.liveness(true).close_reason()
        };
        let mut guard = self.lock();
        let st = &mut *guard;
        let mut after = Aftermath::new();
        let key = entry.key.clone();
        let verdict = if st.closed {
            Some(CloseReason::Shutdown)
        } else {
            verdict
        };
        match verdict {
            Some(reason) => {
                st.left(&key, Slot::Active);
                self.close_released(st, entry, reason, &mut after);
            }
            None => self.place_healthy(st, entry, Slot::Active, &mut after, |pool, st, entry| {
                pool.park(st, entry, now)
            }),
        }
        st.settle(&key);
        self.note_drained(st);
        self.unlock(guard, after);
    }

    /// A healthy connection that was in `from`: to the oldest waiter of
    /// its key, else parked (by `park`), unless a waiter blocked by
    /// `maxConnections` needs its room or `maxIdlePerHost` are parked.
    fn place_healthy(
        self: &Arc<Self>,
        st: &mut State<K, C>,
        mut entry: Entry<K, C>,
        from: Slot,
        after: &mut Aftermath<K, C>,
        park: impl FnOnce(&Self, &mut State<K, C>, Entry<K, C>),
    ) {
        let key = entry.key.clone();
        if let Some(waiter) = st.hosts.get_mut(&key).and_then(|h| h.waiters.pop()) {
            st.pending -= 1;
            st.moved(&key, from, Slot::Active);
            st.count(&key, |c| &mut c.reused);
            entry.uses += 1;
            let pooled = Pooled::new(entry, self.clone(), waiter.handle, true).in_transit();
            after.handoffs.push((waiter.deliver, Grant::Conn(pooled)));
            return;
        }
        let parked = st.hosts.get(&key).map_or(0, |h| h.idle.len());
        if self.ready_waiter_blocked(st) || parked >= self.limits.max_idle_per_host {
            st.left(&key, from);
            self.close_released(st, entry, CloseReason::Evicted, after);
        } else {
            st.moved(&key, from, Slot::Idle);
            park(self, st, entry);
        }
    }

    /// Close a connection that just left its slot, and pass its room on.
    fn close_released(
        self: &Arc<Self>,
        st: &mut State<K, C>,
        entry: Entry<K, C>,
        reason: CloseReason,
        after: &mut Aftermath<K, C>,
    ) {
        let key = entry.key.clone();
        after.close(st, entry, reason);
        self.grant_capacity(st, Some(&key), after);
    }

    /// Park a connection idle from `now`.
    fn park(&self, st: &mut State<K, C>, mut entry: Entry<K, C>, now: Instant) {
        let learned = self.learned_keep_idle(st, &entry.key, now);
        let (deadline, deadline_is_lifetime) = self.idle_deadline(&entry, learned, now);
        entry.parked_at = now;
        let idle = Idle {
            entry,
            deadline,
            deadline_is_lifetime,
        };
        self.park_until(st, idle);
    }

    /// How long the key's server lets connections idle, as learned, less
    /// the margin (when `learnIdleTimeout` is on and something was learned).
    fn learned_keep_idle(&self, st: &State<K, C>, key: &K, now: Instant) -> Option<Duration> {
        if !self.limits.learn_idle_timeout {
            return None;
        }
        st.hosts.get(key)?.learned_idle.keep_idle_for(now)
    }

    /// When an idle connection closes: its idle timeout (lowered by the
    /// peer's hint and by what was learned of the server), or its
    /// retirement if that comes first (true).
    fn idle_deadline(
        &self,
        entry: &Entry<K, C>,
        learned: Option<Duration>,
        now: Instant,
    ) -> (Instant, bool) {
        let idle_for = [entry.conn.idle_timeout_hint(), learned]
            .into_iter()
            .flatten()
            .fold(self.limits.idle_timeout, Duration::min);
        let idle_deadline = now + idle_for;
        match entry.retire_at {
            Some(t) if t < idle_deadline => (t, true),
            _ => (idle_deadline, false),
        }
    }

    /// Park a connection until its deadline: on its key's idle list, in
    /// the reaper's schedule and among the keys eviction can take from.
    fn park_until(&self, st: &mut State<K, C>, mut idle: Idle<K, C>) {
        idle.entry.conn.park();
        let key = idle.entry.key.clone();
        let deadline = idle.deadline;
        let track_evictable = self.limits.max_connections.is_some();
        let host = st.host_mut(&key);
        host.idle.push(idle);
        let add_evictable = track_evictable && !host.in_evictable;
        if add_evictable {
            host.in_evictable = true;
            st.evictable.push_back(key.clone());
            if st.evictable.len() > 2 * st.hosts.len() + 64 {
                compact(&mut st.evictable, &mut st.hosts, in_evictable);
            }
        }
        self.schedule(st, key, deadline);
    }

    /// Make sure the reaper looks at `key` by `deadline`.
    pub(crate) fn schedule(&self, st: &mut State<K, C>, key: K, deadline: Instant) {
        let host = st.host_mut(&key);
        if host.scheduled.is_some_and(|at| at <= deadline) {
            return;
        }
        host.scheduled = Some(deadline);
        st.deadlines.push(Reverse(Due { at: deadline, key }));
        if st.reaper_due.is_none_or(|due| deadline < due) {
            st.reaper_due = Some(deadline);
            self.reaper_wake.notify_one();
        }
    }

    /// A stream of the multiplexed connection `id` of `key` ended: lend
    /// its room to the next waiter; with no stream left, the connection
    /// idles until its deadline, or closes if it takes no more streams.
    pub(crate) fn end_stream(self: &Arc<Self>, key: &K, id: u64) {
        let mut guard = self.lock();
        let st = &mut *guard;
        let mut after = Aftermath::new();
        st.left(key, Slot::Stream);
        if let Some(at) = st.hosts.get(key).and_then(|h| h.shared_at(id)) {
            if let Some(host) = st.hosts.get_mut(key) {
                host.shared[at].loans -= 1;
            }
            self.serve_streams(st, key, &mut after);
            self.settle_shared(st, key, id, &mut after);
        }
        st.settle(key);
        self.note_drained(st);
        self.unlock(guard, after);
    }

    /// A multiplexed connection that may have no stream left: close it if
    /// it takes no more (the peer is going away, it is spent, the pool
    /// closed), else let it idle until its deadline. Either way, room it
    /// gave up passes on.
    fn settle_shared(
        self: &Arc<Self>,
        st: &mut State<K, C>,
        key: &K,
        id: u64,
        after: &mut Aftermath<K, C>,
    ) {
        let now = Instant::now();
        let closed = st.closed;
        let Some(host) = st.hosts.get_mut(key) else {
            return;
        };
        let Some(at) = host.shared_at(id) else {
            return;
        };
        let shared = &host.shared[at];
        let conn = &shared.entry.conn;
        let reason = if closed {
            Some(CloseReason::Shutdown)
        } else if conn.is_broken() {
            Some(CloseReason::Broken)
        } else if shared.entry.is_spent(self.limits.max_uses, now) {
            Some(CloseReason::Lifetime)
        } else if conn.streams().is_none_or(|n| n == 0) {
            Some(CloseReason::Peer)
        } else {
            None
        };
        if shared.loans > 0 {
            if reason.is_some() {
                // Draining: a new connection may be needed for the waiters.
                self.grant_capacity(st, Some(key), after);
            }
            return;
        }
        match reason {
            Some(reason) => {
                let shared = host.shared.swap_remove(at);
                st.left(key, Slot::SharedBusy);
                self.close_released(st, shared.entry, reason, after);
            }
            None if host.shared[at].idle_deadline.is_none() => {
                let learned = self
                    .limits
                    .learn_idle_timeout
                    .then(|| host.learned_idle.keep_idle_for(now))
                    .flatten();
                let (deadline, _) = self.idle_deadline(&host.shared[at].entry, learned, now);
                host.shared[at].idle_deadline = Some(deadline);
                st.moved(key, Slot::SharedBusy, Slot::SharedIdle);
                self.schedule(st, key.clone(), deadline);
            }
            None => {}
        }
    }

    /// Remove a waiter that gave up; its callback if it was still queued.
    pub(crate) fn withdraw(&self, key: &K, seq: u64, timed_out: bool) -> Option<Deliver<K, C>> {
        let mut guard = self.lock();
        let st = &mut *guard;
        let waiter = st.hosts.get_mut(key)?.waiters.withdraw(seq)?;
        st.pending -= 1;
        if timed_out {
            st.count(key, |c| &mut c.timed_out);
        }
        st.settle(key);
        Some(waiter.deliver)
    }

    /// The idle watcher saw activity on a connection: a parked one is
    /// checked (outside the lock) and closed if the peer went away; a
    /// multiplexed one with no stream closes if it takes no more.
    pub(crate) fn check_parked(self: &Arc<Self>, key: &K, id: u64) {
        let mut idle = {
            let mut guard = self.lock();
            let st = &mut *guard;
            let Some(host) = st.hosts.get_mut(key) else {
                return;
            };
            match host.idle.remove(id) {
                Some(idle) => {
                    st.moved(key, Slot::Idle, Slot::Checking);
                    idle
                }
                None => {
                    let mut after = Aftermath::new();
                    self.settle_shared(st, key, id, &mut after);
                    st.settle(key);
                    self.note_drained(st);
                    self.unlock(guard, after);
                    return;
                }
            }
        };
        let verdict = idle.entry.conn.liveness(true).close_reason();
        let mut guard = self.lock();
        let st = &mut *guard;
        let mut after = Aftermath::new();
        let verdict = if st.closed {
            Some(CloseReason::Shutdown)
        } else {
            verdict
        };
        let Idle {
            mut entry,
            deadline,
            deadline_is_lifetime,
        } = idle;
        match verdict {
            // Back as if released, keeping its deadline: while it was out,
            // a waiter may have queued, the reaper or eviction may have
            // passed its key by.
            None => {
                entry.conn.unpark();
                self.place_healthy(st, entry, Slot::Checking, &mut after, |pool, st, entry| {
                    let idle = Idle {
                        entry,
                        deadline,
                        deadline_is_lifetime,
                    };
                    pool.park_until(st, idle)
                });
            }
            Some(reason) => {
                if reason == CloseReason::Peer {
                    self.learn_idle_timeout(st, key, entry.parked_at, &mut after);
                }
                st.left(key, Slot::Checking);
                self.close_released(st, entry, reason, &mut after);
                self.top_up_if_needed(st, key, &mut after);
            }
        }
        st.settle(key);
        self.note_drained(st);
        self.unlock(guard, after);
    }

    /// The server closed a connection that idled since `parked_at`: the
    /// key's learned idle timeout may be shorter now. (Seen by the idle
    /// watcher, this is when the server closed; seen at checkout, a little
    /// later at most.)
    pub(crate) fn learn_idle_timeout(
        &self,
        st: &mut State<K, C>,
        key: &K,
        parked_at: Instant,
        after: &mut Aftermath<K, C>,
    ) {
        if !self.limits.learn_idle_timeout {
            return;
        }
        let now = Instant::now();
        let learned = &mut st.host_mut(key).learned_idle;
        if learned.observe(now.saturating_duration_since(parked_at), now) {
            if let Some(timeout) = learned.current(now) {
                after.report(key, PoolEvent::IdleTimeoutLearned(timeout));
            }
        }
    }
}
