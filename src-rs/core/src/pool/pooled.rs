//! What the pool lends out (`Pooled`), the room it reserves for a connect
//! (`ConnectSlot`), and what a waiting acquire receives (`Grant`).

use std::sync::{Arc, Weak};

use tokio::time::Instant;

use super::circuit::Trial;
use super::entry::Entry;
use super::handle::HandleState;
use super::key::PoolKey;
use super::poolable::{IdleCheck, IdleWatch, Poolable};
use super::PoolInner;
use crate::error::{Error, Result};

/// A connection on loan from a pool: the connection itself, or, for a
/// multiplexed one, a handle onto it (one stream).
///
/// Give it back with [`Pooled::release`]. Dropping it without a release
/// closes the connection (its state is unknown), except while it is still
/// in transit to a waiter that went away: then it goes back intact.
pub struct Pooled<K: PoolKey, C: Poolable> {
    held: Held<K, C>,
    pool: Arc<PoolInner<K, C>>,
    handle: Arc<HandleState>,
    reused: bool,
    in_transit: bool,
}

enum Held<K, C> {
    /// The connection, taken off the pool while lent (`None` once given back).
    Alone(Option<Entry<K, C>>),
    /// A handle onto a multiplexed connection the pool keeps, and that
    /// connection's bookkeeping as it was when the stream was lent.
    Shared {
        conn: Option<C>,
        id: u64,
        key: K,
        uses: u64,
        retire_at: Option<Instant>,
    },
}

impl<K: PoolKey, C: Poolable> Pooled<K, C> {
    pub(crate) fn new(
        entry: Entry<K, C>,
        pool: Arc<PoolInner<K, C>>,
        handle: Arc<HandleState>,
        reused: bool,
    ) -> Pooled<K, C> {
        handle.lend();
        Pooled {
            held: Held::Alone(Some(entry)),
            pool,
            handle,
            reused,
            in_transit: false,
        }
    }

    /// One stream of the multiplexed connection `of`.
    pub(crate) fn stream(
        conn: C,
        of: &Entry<K, C>,
        pool: Arc<PoolInner<K, C>>,
        handle: Arc<HandleState>,
        reused: bool,
    ) -> Pooled<K, C> {
        handle.lend();
        Pooled {
            held: Held::Shared {
                conn: Some(conn),
                id: of.id,
                key: of.key.clone(),
                uses: of.uses,
                retire_at: of.retire_at,
            },
            pool,
            handle,
            reused,
            in_transit: false,
        }
    }

    /// The connection's bookkeeping.
    fn facts(&self) -> (u64, &K, u64, Option<Instant>) {
        match &self.held {
            Held::Alone(Some(e)) => (e.id, &e.key, e.uses, e.retire_at),
            Held::Shared {
                id,
                key,
                uses,
                retire_at,
                ..
            } => (*id, key, *uses, *retire_at),
            Held::Alone(None) => gone(),
        }
    }

    /// A hand-over to a waiter: if the waiter is gone before it takes it,
    /// dropping it parks the connection again instead of closing it.
    pub(crate) fn in_transit(mut self) -> Pooled<K, C> {
        self.in_transit = true;
        self
    }

    /// The waiter took it (a connection handed over through
    /// `Pool::begin_acquire_with` goes back intact until then).
    pub fn received(mut self) -> Pooled<K, C> {
        self.in_transit = false;
        self
    }

    /// Unique id of the connection (stable across loans).
    pub fn id(&self) -> u64 {
        self.facts().0
    }
    pub fn key(&self) -> &K {
        self.facts().1
    }
    /// Whether this connection served an earlier acquire.
    pub fn reused(&self) -> bool {
        self.reused
    }
    /// Loans this connection has served, this one included.
    pub fn uses(&self) -> u64 {
        self.facts().2
    }
    /// When `maxLifetimeMs` retires this connection (none when unlimited).
    pub fn retire_at(&self) -> Option<Instant> {
        self.facts().3
    }
    /// Whether this is one stream of a multiplexed connection.
    pub fn is_stream(&self) -> bool {
        matches!(self.held, Held::Shared { .. })
    }
    /// The id of the pool this came from.
    pub fn pool_id(&self) -> u64 {
        self.pool.id
    }

    pub fn connection(&mut self) -> &mut C {
        match &mut self.held {
            Held::Alone(Some(entry)) => &mut entry.conn,
            Held::Shared {
                conn: Some(conn), ..
            } => conn,
            _ => gone(),
        }
    }

    pub fn connection_ref(&self) -> &C {
        match &self.held {
            Held::Alone(Some(entry)) => &entry.conn,
            Held::Shared {
                conn: Some(conn), ..
            } => conn,
            _ => gone(),
        }
    }

    /// Give the connection back: park it, hand it to a waiter, or close it
    /// (see `docs/ARCHITECTURE.md`, "Release"). A stream just ends.
    pub fn release(mut self, keep_alive_ok: bool) {
        self.give_back(keep_alive_ok, true);
    }

    /// Release after a protocol exchange that read exactly up to the end of
    /// its message: no need to look at the socket for unread bytes.
    pub(crate) fn release_after_exchange(mut self, keep_alive_ok: bool) {
        self.give_back(keep_alive_ok, false);
    }

    fn give_back(&mut self, keep_alive_ok: bool, probe: bool) {
        match &mut self.held {
            Held::Alone(entry) => {
                if let Some(entry) = entry.take() {
                    self.pool.put_back(entry, keep_alive_ok, probe);
                }
            }
            Held::Shared { conn, id, key, .. } => {
                if let Some(conn) = conn.take() {
                    drop(conn);
                    self.pool.end_stream(key, *id);
                }
            }
        }
    }
}

/// The connection is only taken by `give_back` (from `release` and
/// `Drop`, which consume the `Pooled`): no method can observe it missing.
fn gone() -> ! {
    unreachable!("a Pooled holds its connection until it is consumed")
}

impl<K: PoolKey, C: Poolable> Drop for Pooled<K, C> {
    fn drop(&mut self) {
        self.give_back(self.in_transit, true);
        self.handle.give_back();
    }
}

impl<K: PoolKey, C: Poolable> std::fmt::Debug for Pooled<K, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pooled")
            .field("id", &self.id())
            .field("key", &self.key().to_string())
            .field("reused", &self.reused)
            .field("stream", &self.is_stream())
            .finish()
    }
}

/// Room for one more connection, reserved for an acquire that opens it.
/// Dropped unused (the connect failed or was given up), it frees the room
/// and the pool passes it on.
pub struct ConnectSlot<K: PoolKey, C: Poolable> {
    pool: Arc<PoolInner<K, C>>,
    handle: Arc<HandleState>,
    key: K,
    armed: bool,
    /// The half-open circuit's trial connect, by number.
    trial: Option<Trial>,
}

impl<K: PoolKey, C: Poolable> ConnectSlot<K, C> {
    pub(crate) fn new(
        pool: Arc<PoolInner<K, C>>,
        handle: Arc<HandleState>,
        key: K,
        trial: Option<Trial>,
    ) -> Self {
        ConnectSlot {
            pool,
            handle,
            key,
            armed: true,
            trial,
        }
    }

    pub fn key(&self) -> &K {
        &self.key
    }

    /// Open the connection. Gives up with PCONN_POOL_CLOSED when the pool
    /// or the handle closes meanwhile.
    pub async fn open(mut self) -> Result<Pooled<K, C>> {
        let pool = self.pool.clone();
        let id = super::next_connection_id();
        let watch_target: Weak<dyn IdleCheck<K>> = {
            let weak: Weak<PoolInner<K, C>> = Arc::downgrade(&pool);
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
            r = connect => match r {
                Ok(conn) => Ok(conn),
                Err(e) => {
                    // A failure of the connect itself: the room goes back
                    // and the key's circuit counts it.
                    self.armed = false;
                    pool.connect_failed(&self.key, Some(&e), self.trial);
                    Err(e)
                }
            },
        }?;
        let entry = Entry {
            id,
            key: self.key.clone(),
            uses: 1,
            retire_at: pool.retire_time(Instant::now()),
            parked_at: Instant::now(),
            conn,
        };
        // The room is the connection's now (or, if the pool closed
        // meanwhile, freed by `opened`).
        self.armed = false;
        pool.opened(entry, &self.handle)
    }
}

impl<K: PoolKey, C: Poolable> Drop for ConnectSlot<K, C> {
    fn drop(&mut self) {
        if self.armed {
            self.pool.connect_failed(&self.key, None, self.trial);
        }
    }
}

impl<K: PoolKey, C: Poolable> std::fmt::Debug for ConnectSlot<K, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectSlot")
            .field("key", &self.key.to_string())
            .finish()
    }
}

/// What a waiting acquire receives. One that is not taken (the waiter is
/// gone) goes back to the pool as it drops.
pub enum Grant<K: PoolKey, C: Poolable> {
    /// A released connection (or a stream of a multiplexed one).
    Conn(Pooled<K, C>),
    /// Room to open a new connection.
    Permit(ConnectSlot<K, C>),
    /// The wait ended without a connection (the pool closed).
    Failed(Error),
}
