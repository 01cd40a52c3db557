//! What the pool lends out, and what it hands to a waiting acquire.

use std::sync::Arc;

use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::key::Key;
use crate::pool::PoolInner;

/// A connection on loan from a pool.
///
/// Give it back with [`Pooled::release`]. Dropping it without a release
/// closes the connection (its state is unknown), except while it is still in
/// transit to a waiter that went away: then it goes back to the pool intact.
pub struct Pooled {
    conn: Option<Connection>,
    pool: Arc<PoolInner>,
    reused: bool,
    in_transit: bool,
    /// For acquires that asked for it: the position of this hand-over among
    /// all hand-overs to such waiters (0, 1, 2, ... in grant order).
    grant: Option<u64>,
}

impl Pooled {
    pub(crate) fn new(conn: Connection, pool: Arc<PoolInner>, reused: bool) -> Pooled {
        Pooled {
            conn: Some(conn),
            pool,
            reused,
            in_transit: false,
            grant: None,
        }
    }
    pub(crate) fn in_transit(conn: Connection, pool: Arc<PoolInner>, grant: Option<u64>) -> Pooled {
        Pooled {
            conn: Some(conn),
            pool,
            reused: true,
            in_transit: true,
            grant,
        }
    }
    pub(crate) fn arrived(mut self) -> Pooled {
        self.in_transit = false;
        self
    }
    /// Take the connection out without returning it (the pool's own bookkeeping).
    pub(crate) fn into_connection(mut self) -> Option<Connection> {
        self.conn.take()
    }

    /// Where this hand-over stands in grant order, for acquires made with
    /// `AcquireOptions::numbered` (see there).
    pub fn grant_number(&self) -> Option<u64> {
        self.grant
    }

    /// Whether this connection served an earlier acquire.
    pub fn reused(&self) -> bool {
        self.reused
    }
    /// The id of the pool this came from.
    pub fn pool_id(&self) -> u64 {
        self.pool.id
    }

    pub fn connection(&mut self) -> Result<&mut Connection> {
        self.conn.as_mut().ok_or(Error::AlreadyReleased)
    }

    pub fn connection_ref(&self) -> Result<&Connection> {
        self.conn.as_ref().ok_or(Error::AlreadyReleased)
    }

    /// Give the connection back: park it, hand it to a waiter, or close it
    /// (see the release rules in DESIGN.md).
    pub fn release(mut self, keep_alive_ok: bool) {
        if let Some(conn) = self.conn.take() {
            self.pool.put_back(conn, keep_alive_ok, true);
        }
    }

    /// Release after a protocol exchange that read exactly up to the end of
    /// its message: skips the peek at the socket (the next checkout still
    /// checks liveness).
    pub(crate) fn release_after_exchange(mut self, keep_alive_ok: bool) {
        if let Some(conn) = self.conn.take() {
            self.pool.put_back(conn, keep_alive_ok, false);
        }
    }
}

impl std::fmt::Debug for Pooled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pooled")
            .field("conn", &self.conn)
            .field("reused", &self.reused)
            .finish()
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.put_back(conn, self.in_transit, true);
        }
    }
}

/// Room for one more connection, reserved for an acquire that will open it.
/// Dropped unused (connect failed or was cancelled), it frees the room and
/// passes it on to the next waiter.
pub(crate) struct ConnectSlot {
    pub(crate) pool: Arc<PoolInner>,
    pub(crate) key: Key,
    armed: bool,
}

impl ConnectSlot {
    pub(crate) fn new(pool: Arc<PoolInner>, key: Key) -> ConnectSlot {
        ConnectSlot {
            pool,
            key,
            armed: true,
        }
    }
    /// The slot became a connection; nothing to free.
    pub(crate) fn fulfil(mut self) {
        self.armed = false;
    }
}

impl Drop for ConnectSlot {
    fn drop(&mut self) {
        if self.armed {
            self.pool.connect_failed(&self.key);
        }
    }
}

/// What a waiting acquire receives.
pub(crate) enum Grant {
    /// A released connection, handed over directly.
    Conn(Pooled),
    /// Capacity for a new connection, to be opened by the waiter.
    Permit(ConnectSlot),
}

impl Grant {
    /// Undo a grant that could not be delivered, without running any Drop
    /// that takes the pool lock (the caller holds it).
    pub(crate) fn defuse(self) -> Option<Connection> {
        match self {
            Grant::Conn(p) => p.into_connection(),
            Grant::Permit(mut slot) => {
                slot.armed = false;
                None
            }
        }
    }
}
