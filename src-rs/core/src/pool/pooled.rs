//! What the pool lends out (`Pooled`), the room it reserves for a connect
//! (`ConnectSlot`), and what a waiting acquire receives (`Grant`).

use std::sync::{Arc, Weak};

use tokio::time::Instant;

use super::entry::Entry;
use super::handle::HandleState;
use super::poolable::{IdleCheck, IdleWatch, Poolable};
use super::PoolInner;
use crate::error::{Error, Result};
use crate::key::Key;

/// A connection on loan from a pool.
///
/// Give it back with [`Pooled::release`]. Dropping it without a release
/// closes the connection (its state is unknown), except while it is still
/// in transit to a waiter that went away: then it goes back intact.
pub struct Pooled<C: Poolable> {
    entry: Option<Entry<C>>,
    id: u64,
    key: Key,
    pool: Arc<PoolInner<C>>,
    handle: Arc<HandleState>,
    reused: bool,
    in_transit: bool,
}

impl<C: Poolable> Pooled<C> {
    pub(crate) fn new(
        entry: Entry<C>,
        pool: Arc<PoolInner<C>>,
        handle: Arc<HandleState>,
        reused: bool,
    ) -> Pooled<C> {
        handle.lend();
        Pooled {
            id: entry.id,
            key: entry.key.clone(),
            entry: Some(entry),
            pool,
            handle,
            reused,
            in_transit: false,
        }
    }

    /// A hand-over to a waiter: if the waiter is gone before it takes it,
    /// dropping it parks the connection again instead of closing it.
    pub(crate) fn in_transit(mut self) -> Pooled<C> {
        self.in_transit = true;
        self
    }

    /// The waiter took it (a connection handed over through
    /// `Pool::begin_acquire_with` goes back intact until then).
    pub fn received(mut self) -> Pooled<C> {
        self.in_transit = false;
        self
    }

    /// Undo a hand-over the waiter did not take (under the pool lock: no
    /// Drop that would take it again). The loan ends in `Drop`.
    pub(crate) fn reclaim(mut self) -> Option<Entry<C>> {
        self.entry.take()
    }

    /// Unique id of the connection (stable across loans).
    pub fn id(&self) -> u64 {
        self.id
    }
    pub fn key(&self) -> &Key {
        &self.key
    }
    /// Whether this connection served an earlier acquire.
    pub fn reused(&self) -> bool {
        self.reused
    }
    /// Checkouts this connection has served, this one included.
    pub fn uses(&self) -> u64 {
        self.entry.as_ref().map_or(0, |e| e.uses)
    }
    /// When `maxLifetimeMs` retires this connection (none when unlimited).
    pub fn retire_at(&self) -> Option<Instant> {
        self.entry.as_ref().and_then(|e| e.retire_at)
    }
    /// The id of the pool this came from.
    pub fn pool_id(&self) -> u64 {
        self.pool.id
    }

    pub fn connection(&mut self) -> &mut C {
        match self.entry.as_mut() {
            Some(entry) => &mut entry.conn,
            None => gone(),
        }
    }

    pub fn connection_ref(&self) -> &C {
        match self.entry.as_ref() {
            Some(entry) => &entry.conn,
            None => gone(),
        }
    }

    /// Give the connection back: park it, hand it to a waiter, or close it
    /// (see `docs/ARCHITECTURE.md`, "Release").
    pub fn release(mut self, keep_alive_ok: bool) {
        if let Some(entry) = self.entry.take() {
            self.pool.put_back(entry, keep_alive_ok, true);
        }
    }

    /// Release after a protocol exchange that read exactly up to the end of
    /// its message: no need to look at the socket for unread bytes.
    pub(crate) fn release_after_exchange(mut self, keep_alive_ok: bool) {
        if let Some(entry) = self.entry.take() {
            self.pool.put_back(entry, keep_alive_ok, false);
        }
    }
}

/// The entry is only taken by `release`, `reclaim` and `Drop`, which all
/// consume the `Pooled`: no method can observe it missing.
fn gone() -> ! {
    unreachable!("a Pooled holds its connection until it is consumed")
}

impl<C: Poolable> Drop for Pooled<C> {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            self.pool.put_back(entry, self.in_transit, true);
        }
        self.handle.give_back();
    }
}

impl<C: Poolable> std::fmt::Debug for Pooled<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pooled")
            .field("id", &self.id)
            .field("key", &self.key)
            .field("reused", &self.reused)
            .finish()
    }
}

/// Room for one more connection, reserved for an acquire that opens it.
/// Dropped unused (the connect failed or was given up), it frees the room
/// and the pool passes it on.
pub struct ConnectSlot<C: Poolable> {
    pool: Arc<PoolInner<C>>,
    handle: Arc<HandleState>,
    key: Key,
    armed: bool,
}

impl<C: Poolable> ConnectSlot<C> {
    pub(crate) fn new(pool: Arc<PoolInner<C>>, handle: Arc<HandleState>, key: Key) -> Self {
        ConnectSlot {
            pool,
            handle,
            key,
            armed: true,
        }
    }

    pub fn key(&self) -> &Key {
        &self.key
    }

    /// Give up the room without the pool's lock (it is held).
    pub(crate) fn disarm(mut self) {
        self.armed = false;
    }

    /// Open the connection. Gives up with PCONN_POOL_CLOSED when the pool
    /// or the handle closes meanwhile.
    pub async fn open(mut self) -> Result<Pooled<C>> {
        let pool = self.pool.clone();
        let id = super::next_connection_id();
        let watch_target: Weak<dyn IdleCheck> = {
            let weak: Weak<PoolInner<C>> = Arc::downgrade(&pool);
            weak
        };
        let watch = IdleWatch {
            pool: watch_target,
            key: self.key.clone(),
            id,
        };
        let connect = pool.connector.connect(&self.key, watch);
        let conn = tokio::select! {
            biased;
            _ = pool.closing.cancelled() => Err(Error::PoolClosed),
            _ = self.handle.closing.cancelled() => Err(Error::PoolClosed),
            r = connect => r,
        }?;
        let entry = Entry {
            id,
            key: self.key.clone(),
            uses: 1,
            retire_at: pool.retire_time(Instant::now()),
            conn,
        };
        if !pool.opened(&self.key) {
            // Closed meanwhile: the connection closes as it drops, and the
            // slot's Drop frees the room.
            return Err(Error::PoolClosed);
        }
        self.armed = false;
        Ok(Pooled::new(entry, pool, self.handle.clone(), false))
    }
}

impl<C: Poolable> Drop for ConnectSlot<C> {
    fn drop(&mut self) {
        if self.armed {
            self.pool.connect_failed(&self.key);
        }
    }
}

impl<C: Poolable> std::fmt::Debug for ConnectSlot<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectSlot")
            .field("key", &self.key)
            .finish()
    }
}

/// What a waiting acquire receives.
pub enum Grant<C: Poolable> {
    /// A released connection, handed over directly.
    Conn(Pooled<C>),
    /// Room to open a new connection.
    Permit(ConnectSlot<C>),
    /// The wait ended without a connection (the pool closed).
    Failed(Error),
}

impl<C: Poolable> Grant<C> {
    /// Undo a grant that could not be delivered, under the pool lock.
    pub(crate) fn reclaim(self) -> Option<Entry<C>> {
        match self {
            Grant::Conn(p) => p.reclaim(),
            Grant::Permit(slot) => {
                slot.disarm();
                None
            }
            Grant::Failed(_) => None,
        }
    }
}
