//! The acquires of one key waiting at a limit, first come, first served.
//!
//! A waiter that gives up (timeout, abort, closed handle) is found by its
//! sequence number with a binary search and marked withdrawn in place;
//! withdrawn entries are skipped when the queue is served and trimmed from
//! both ends, so an abort storm over 10,000 waiters costs no quadratic
//! shuffling.

use std::collections::VecDeque;
use std::sync::Arc;

use super::handle::HandleState;
use super::key::PoolKey;
use super::poolable::Poolable;
use super::pooled::Grant;

/// Hands a grant to a waiting acquire. Called after the pool's lock is
/// released, in grant order (see `Aftermath`); it must not touch the pool.
/// It gives the grant back when the acquire is gone; the grant then returns
/// to the pool as it drops (a connection parks or goes to the next waiter,
/// reserved room passes on).
pub type Deliver<K, C> = Box<dyn FnOnce(Grant<K, C>) -> Result<(), Grant<K, C>> + Send>;

pub(crate) struct Waiter<K: PoolKey, C: Poolable> {
    pub(crate) seq: u64,
    pub(crate) deliver: Deliver<K, C>,
    /// The handle it acquires through (its loans are counted there).
    pub(crate) handle: Arc<HandleState>,
}

struct Slot<K: PoolKey, C: Poolable> {
    seq: u64,
    waiter: Option<Waiter<K, C>>,
}

pub(crate) struct WaiterQueue<K: PoolKey, C: Poolable> {
    slots: VecDeque<Slot<K, C>>,
    live: usize,
}

impl<K: PoolKey, C: Poolable> Default for WaiterQueue<K, C> {
    fn default() -> Self {
        WaiterQueue {
            slots: VecDeque::new(),
            live: 0,
        }
    }
}

impl<K: PoolKey, C: Poolable> WaiterQueue<K, C> {
    /// Waiters still waiting.
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// Queue a waiter; `seq` must be larger than any queued before.
    pub(crate) fn push(&mut self, waiter: Waiter<K, C>) {
        self.slots.push_back(Slot {
            seq: waiter.seq,
            waiter: Some(waiter),
        });
        self.live += 1;
    }

    /// The oldest live waiter.
    pub(crate) fn pop(&mut self) -> Option<Waiter<K, C>> {
        while let Some(slot) = self.slots.pop_front() {
            if let Some(waiter) = slot.waiter {
                self.live -= 1;
                return Some(waiter);
            }
        }
        None
    }

    /// Take a waiter out by its sequence number, if it is still queued.
    pub(crate) fn withdraw(&mut self, seq: u64) -> Option<Waiter<K, C>> {
        let at = self.slots.binary_search_by_key(&seq, |s| s.seq).ok()?;
        let waiter = self.slots[at].waiter.take()?;
        self.live -= 1;
        while self.slots.front().is_some_and(|s| s.waiter.is_none()) {
            self.slots.pop_front();
        }
        while self.slots.back().is_some_and(|s| s.waiter.is_none()) {
            self.slots.pop_back();
        }
        Some(waiter)
    }

    /// Every live waiter, oldest first (the queue is left empty).
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Waiter<K, C>> + '_ {
        self.live = 0;
        self.slots.drain(..).filter_map(|s| s.waiter)
    }
}
