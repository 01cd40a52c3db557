//! The parked connections of one key, in the order they were parked.

use std::collections::VecDeque;

use tokio::time::Instant;

use super::entry::Entry;
use super::limits::Scheduling;
use super::stats::CloseReason;

/// A parked connection and when it must be closed if nobody takes it.
pub(crate) struct Idle<K, C> {
    pub(crate) entry: Entry<K, C>,
    pub(crate) deadline: Instant,
    /// The deadline is the connection's lifetime, not its idle timeout.
    pub(crate) deadline_is_lifetime: bool,
}

impl<K, C> Idle<K, C> {
    /// Why it closes at its deadline.
    pub(crate) fn close_reason(&self) -> CloseReason {
        if self.deadline_is_lifetime {
            CloseReason::Lifetime
        } else {
            CloseReason::Idle
        }
    }
}

/// Parked connections, oldest first. Bounded by `maxIdlePerHost`, so the
/// linear steps (by id, earliest deadline) stay short.
pub(crate) struct IdleList<K, C> {
    entries: VecDeque<Idle<K, C>>,
}

impl<K, C> Default for IdleList<K, C> {
    fn default() -> Self {
        IdleList {
            entries: VecDeque::new(),
        }
    }
}

impl<K, C> IdleList<K, C> {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub(crate) fn push(&mut self, idle: Idle<K, C>) {
        self.entries.push_back(idle);
    }
    /// LIFO takes the most recently parked, FIFO the longest parked.
    pub(crate) fn pop(&mut self, scheduling: Scheduling) -> Option<Idle<K, C>> {
        match scheduling {
            Scheduling::Lifo => self.entries.pop_back(),
            Scheduling::Fifo => self.entries.pop_front(),
        }
    }
    pub(crate) fn pop_oldest(&mut self) -> Option<Idle<K, C>> {
        self.entries.pop_front()
    }
    pub(crate) fn remove(&mut self, id: u64) -> Option<Idle<K, C>> {
        let at = self.entries.iter().position(|i| i.entry.id == id)?;
        self.entries.remove(at)
    }
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Idle<K, C>> + '_ {
        self.entries.drain(..)
    }
    /// Move every entry whose deadline is at or before `now` to `out`.
    pub(crate) fn take_expired(&mut self, now: Instant, out: &mut Vec<Idle<K, C>>) {
        let mut kept = VecDeque::with_capacity(self.entries.len());
        for idle in self.entries.drain(..) {
            if idle.deadline <= now {
                out.push(idle);
            } else {
                kept.push_back(idle);
            }
        }
        self.entries = kept;
    }
    pub(crate) fn earliest_deadline(&self) -> Option<Instant> {
        self.entries.iter().map(|i| i.deadline).min()
    }
}
