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
use super::pooled::Grant;
use super::Poolable;

/// Hands a grant to a waiting acquire. Called under the pool lock, so it
/// must not block or touch the pool; it gives the grant back when the
/// acquire is gone, and the pool passes it to the next waiter.
pub type Deliver<C> = Box<dyn FnOnce(Grant<C>) -> Result<(), Grant<C>> + Send>;

pub(crate) struct Waiter<C: Poolable> {
    pub(crate) seq: u64,
    pub(crate) deliver: Deliver<C>,
    /// The handle it acquires through (its loans are counted there).
    pub(crate) handle: Arc<HandleState>,
}

struct Slot<C: Poolable> {
    seq: u64,
    waiter: Option<Waiter<C>>,
}

pub(crate) struct WaiterQueue<C: Poolable> {
    slots: VecDeque<Slot<C>>,
    live: usize,
}

impl<C: Poolable> Default for WaiterQueue<C> {
    fn default() -> Self {
        WaiterQueue {
            slots: VecDeque::new(),
            live: 0,
        }
    }
}

impl<C: Poolable> WaiterQueue<C> {
    /// Waiters still waiting.
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// Queue a waiter; `seq` must be larger than any queued before.
    pub(crate) fn push(&mut self, waiter: Waiter<C>) {
        self.slots.push_back(Slot {
            seq: waiter.seq,
            waiter: Some(waiter),
        });
        self.live += 1;
    }

    /// The oldest live waiter.
    pub(crate) fn pop(&mut self) -> Option<Waiter<C>> {
        while let Some(slot) = self.slots.pop_front() {
            if let Some(waiter) = slot.waiter {
                self.live -= 1;
                return Some(waiter);
            }
        }
        None
    }

    /// Take a waiter out by its sequence number, if it is still queued.
    pub(crate) fn withdraw(&mut self, seq: u64) -> Option<Waiter<C>> {
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
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Waiter<C>> + '_ {
        self.live = 0;
        self.slots.drain(..).filter_map(|s| s.waiter)
    }
}
