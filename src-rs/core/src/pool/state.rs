//! The pool's state, behind its one mutex: per key, the idle list, the
//! multiplexed connections, the waiters, the gauges and counters; across
//! keys, the gauges, the queues that find keys quickly (ready, evictable,
//! deadlines) and the history of quiet keys.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use tokio::time::Instant;

use super::circuit::Circuit;
use super::entry::Entry;
use super::events::PoolEvent;
use super::gauges::{Gauges, Slot};
use super::idle_list::IdleList;
use super::key::{KeyMap, PoolKey};
use super::learned_idle::LearnedIdle;
use super::poolable::Poolable;
use super::pooled::Grant;
use super::stats::{CloseReason, Counters, History};
use super::waiters::{Deliver, WaiterQueue};

/// What is known of a key's connections' protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Sharing {
    /// No connection has said yet.
    #[default]
    Unknown,
    /// Its connections carry one loan at a time.
    Exclusive,
    /// Its connections carry many loans at once.
    Multiplexed,
}

/// What the pool remembers of a quiet key (no connection, no waiter).
#[derive(Debug, Clone, Default)]
pub(crate) struct Remembered {
    pub(crate) counters: Counters,
    pub(crate) sharing: Sharing,
    pub(crate) circuit: Circuit,
    pub(crate) learned_idle: LearnedIdle,
}

/// A multiplexed connection: kept by the pool while lent, one loan per stream.
pub(crate) struct SharedConn<K, C> {
    pub(crate) entry: Entry<K, C>,
    pub(crate) loans: usize,
    /// With no loan: when the idle timeout closes it.
    pub(crate) idle_deadline: Option<Instant>,
}

pub(crate) struct Host<K: PoolKey, C: Poolable> {
    pub(crate) idle: IdleList<K, C>,
    pub(crate) shared: Vec<SharedConn<K, C>>,
    pub(crate) gauges: Gauges,
    pub(crate) waiters: WaiterQueue<K, C>,
    pub(crate) counters: Counters,
    pub(crate) sharing: Sharing,
    pub(crate) circuit: Circuit,
    pub(crate) learned_idle: LearnedIdle,
    /// A top-up to `min_idle_per_host` is under way.
    pub(crate) topping_up: bool,
    /// Queued in `State::ready`.
    pub(crate) in_ready: bool,
    /// Queued in `State::evictable`.
    pub(crate) in_evictable: bool,
    /// The deadline this key has in `State::deadlines`.
    pub(crate) scheduled: Option<Instant>,
}

impl<K: PoolKey, C: Poolable> Host<K, C> {
    fn new(remembered: Remembered) -> Host<K, C> {
        Host {
            idle: IdleList::default(),
            shared: Vec::new(),
            gauges: Gauges::default(),
            waiters: WaiterQueue::default(),
            counters: remembered.counters,
            sharing: remembered.sharing,
            circuit: remembered.circuit,
            learned_idle: remembered.learned_idle,
            topping_up: false,
            in_ready: false,
            in_evictable: false,
            scheduled: None,
        }
    }

    /// No connection, no waiter, no top-up under way (whose flag would be
    /// lost with the entry).
    fn is_unused(&self) -> bool {
        self.gauges.total() == 0 && self.waiters.live() == 0 && !self.topping_up
    }

    /// The earliest deadline of its idle connections, of both kinds.
    pub(crate) fn earliest_deadline(&self) -> Option<Instant> {
        let shared = self.shared.iter().filter_map(|s| s.idle_deadline).min();
        match (self.idle.earliest_deadline(), shared) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The multiplexed connection `id`, by position.
    pub(crate) fn shared_at(&self, id: u64) -> Option<usize> {
        self.shared.iter().position(|s| s.entry.id == id)
    }
}

/// A key's next deadline, in the reaper's heap.
pub(crate) struct Due<K> {
    pub(crate) at: Instant,
    pub(crate) key: K,
}

impl<K> PartialEq for Due<K> {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl<K> Eq for Due<K> {}
impl<K> PartialOrd for Due<K> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<K> Ord for Due<K> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

pub(crate) struct State<K: PoolKey, C: Poolable> {
    pub(crate) hosts: KeyMap<K, Host<K, C>>,
    pub(crate) history: History<K, Remembered>,
    pub(crate) gauges: Gauges,
    /// Waiting acquires over every key.
    pub(crate) pending: usize,
    pub(crate) closed: bool,
    pub(crate) counters: Counters,
    /// Keys with waiters that only `maxConnections` holds back, in the
    /// order they became so (entries may be stale: checked when reached).
    pub(crate) ready: VecDeque<K>,
    /// Keys that parked connections, for eviction under `maxConnections`
    /// (kept only when that limit is set; entries may be stale).
    pub(crate) evictable: VecDeque<K>,
    /// Each key's earliest idle deadline (stale entries are skipped).
    pub(crate) deadlines: BinaryHeap<Reverse<Due<K>>>,
    pub(crate) next_seq: u64,
    /// When the reaper is next due, so that a nearer deadline wakes it.
    pub(crate) reaper_due: Option<Instant>,
}

impl<K: PoolKey, C: Poolable> Default for State<K, C> {
    fn default() -> Self {
        State {
            hosts: KeyMap::default(),
            history: History::default(),
            gauges: Gauges::default(),
            pending: 0,
            closed: false,
            counters: Counters::default(),
            ready: VecDeque::new(),
            evictable: VecDeque::new(),
            deadlines: BinaryHeap::new(),
            next_seq: 0,
            reaper_due: None,
        }
    }
}

impl<K: PoolKey, C: Poolable> State<K, C> {
    /// The host of `key`, created (with what is remembered of it) if needed.
    /// Found, it costs one lookup and no clone of the key (the usual case).
    pub(crate) fn host_mut(&mut self, key: &K) -> &mut Host<K, C> {
        if !self.hosts.contains_key(key) {
            let remembered = self.history.take(key);
            self.hosts.insert(key.clone(), Host::new(remembered));
        }
        match self.hosts.get_mut(key) {
            Some(host) => host,
            None => unreachable!("the host was just inserted"),
        }
    }

    /// A connection of `key` entered `slot`, for the key and the pool.
    pub(crate) fn entered(&mut self, key: &K, slot: Slot) {
        self.host_mut(key).gauges.entered(slot);
        self.gauges.entered(slot);
    }

    /// A connection of `key` left `slot` (it closed, or the room was freed).
    pub(crate) fn left(&mut self, key: &K, slot: Slot) {
        if let Some(host) = self.hosts.get_mut(key) {
            host.gauges.left(slot);
        }
        self.gauges.left(slot);
    }

    /// A connection of `key` went from `from` to `to`.
    pub(crate) fn moved(&mut self, key: &K, from: Slot, to: Slot) {
        self.host_mut(key).gauges.moved(from, to);
        self.gauges.moved(from, to);
    }

    /// Count one more of a counter, for the key and the pool.
    pub(crate) fn count(&mut self, key: &K, which: fn(&mut Counters) -> &mut u64) {
        *which(&mut self.host_mut(key).counters) += 1;
        *which(&mut self.counters) += 1;
    }

    /// Drop the entry of a key that has nothing left (its counters are kept).
    pub(crate) fn settle(&mut self, key: &K) {
        if self.hosts.get(key).is_some_and(Host::is_unused) {
            if let Some((key, host)) = self.hosts.remove_entry(key) {
                let remembered = Remembered {
                    counters: host.counters,
                    sharing: host.sharing,
                    circuit: host.circuit,
                    learned_idle: host.learned_idle,
                };
                self.history.keep(key, remembered);
            }
        }
    }
}

/// What a locked step leaves to do once the lock is released: grants to
/// deliver to waiters, in the order they were made, connections to close
/// (each close is reported to the pool's listeners) and other events to
/// report.
pub(crate) struct Aftermath<K: PoolKey, C: Poolable> {
    pub(crate) handoffs: Vec<(Deliver<K, C>, Grant<K, C>)>,
    pub(crate) closes: Vec<(Entry<K, C>, CloseReason)>,
    pub(crate) events: Vec<(K, PoolEvent)>,
    /// Keys to top up to `min_idle_per_host`, in the background.
    pub(crate) top_ups: Vec<K>,
}

impl<K: PoolKey, C: Poolable> Aftermath<K, C> {
    pub(crate) fn new() -> Self {
        Aftermath {
            handoffs: Vec::new(),
            closes: Vec::new(),
            events: Vec::new(),
            top_ups: Vec::new(),
        }
    }

    /// Report `event` of `key` after the lock.
    pub(crate) fn report(&mut self, key: &K, event: PoolEvent) {
        self.events.push((key.clone(), event));
    }

    /// Close `entry` after the lock, counted now for its key and the pool.
    pub(crate) fn close(&mut self, st: &mut State<K, C>, entry: Entry<K, C>, reason: CloseReason) {
        st.counters.closed += 1;
        st.counters.closed_by.count(reason);
        if let Some(host) = st.hosts.get_mut(&entry.key) {
            host.counters.closed += 1;
            host.counters.closed_by.count(reason);
        }
        self.closes.push((entry, reason));
    }
}
