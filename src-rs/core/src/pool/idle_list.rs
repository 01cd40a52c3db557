//! The idle connections of one key, oldest first.

use std::collections::VecDeque;
use std::time::Instant;

use crate::config::Scheduling;
use crate::connection::Connection;

/// A parked connection and when it must be closed if nobody takes it.
pub(crate) struct Idle {
    pub(crate) conn: Connection,
    pub(crate) deadline: Instant,
    /// True when `deadline` is the connection's lifetime, not its idle timeout.
    pub(crate) deadline_is_lifetime: bool,
}

/// Parked connections, in the order they were released.
#[derive(Default)]
pub(crate) struct IdleList {
    entries: VecDeque<Idle>,
}

impl IdleList {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub(crate) fn push(&mut self, idle: Idle) {
        self.entries.push_back(idle);
    }
    /// LIFO takes the most recently released, FIFO the longest parked.
    pub(crate) fn pop(&mut self, scheduling: Scheduling) -> Option<Idle> {
        match scheduling {
            Scheduling::Lifo => self.entries.pop_back(),
            Scheduling::Fifo => self.entries.pop_front(),
        }
    }
    pub(crate) fn pop_oldest(&mut self) -> Option<Idle> {
        self.entries.pop_front()
    }
    pub(crate) fn remove(&mut self, id: u64) -> Option<Idle> {
        let at = self.entries.iter().position(|i| i.conn.id == id)?;
        self.entries.remove(at)
    }
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Idle> + '_ {
        self.entries.drain(..)
    }
    /// Remove every entry whose deadline is at or before `now`.
    pub(crate) fn take_expired(&mut self, now: Instant, out: &mut Vec<Idle>) {
        if self.entries.iter().all(|i| i.deadline > now) {
            return;
        }
        let (expired, kept): (VecDeque<Idle>, VecDeque<Idle>) =
            self.entries.drain(..).partition(|i| i.deadline <= now);
        self.entries = kept;
        out.extend(expired);
    }
    pub(crate) fn earliest_deadline(&self) -> Option<Instant> {
        self.entries.iter().map(|i| i.deadline).min()
    }
}
