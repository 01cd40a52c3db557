//! What the pool asks of the connections it keeps, and of whatever opens
//! them. The pool is generic over both (and over its key), so its rules are
//! tested with a fake connection and no sockets (see `tests`), as
//! hyper-util tests its pool.

use std::future::Future;
use std::pin::Pin;
use std::sync::Weak;
use std::time::Duration;

use super::key::PoolKey;
use super::stats::CloseReason;
use crate::error::Result;

/// What a cheap check of a connection found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    /// EOF or reset from the peer.
    PeerClosed,
    /// Bytes nobody asked for: the stream is out of sync.
    UnexpectedBytes,
}

impl Liveness {
    /// Why a connection in this state must close; None if it may stay.
    pub fn close_reason(self) -> Option<CloseReason> {
        match self {
            Liveness::Alive => None,
            Liveness::PeerClosed => Some(CloseReason::Peer),
            Liveness::UnexpectedBytes => Some(CloseReason::Broken),
        }
    }
}

/// A connection the pool can park and hand out again.
///
/// Most connections carry one loan at a time (HTTP/1.1, raw TCP and TLS).
/// A multiplexed one (HTTP/2) carries several at once: it answers
/// `streams` with how many it takes now, and `share` gives each loan a
/// handle onto it; the pool keeps it while it is lent, counts it once
/// against the limits and its loans as streams.
pub trait Poolable: Send + 'static {
    /// A non-blocking check before reuse (and on release after use). With
    /// `exact` false it may answer from what the event loop already knows
    /// (no system call), at the risk of missing a close still in flight.
    fn liveness(&mut self, exact: bool) -> Liveness;
    /// An I/O error or EOF made the connection unusable.
    fn is_broken(&self) -> bool;
    /// Anything was read or written since it was handed out; release only
    /// checks liveness then (an untouched connection was checked at checkout).
    fn was_used(&self) -> bool;
    /// It is being parked: drop buffers, let the idle watcher look at it.
    fn park(&mut self) {}
    /// It is being handed out.
    fn unpark(&mut self) {}
    /// A shorter idle timeout the peer announced (`Keep-Alive: timeout=N`).
    fn idle_timeout_hint(&self) -> Option<Duration> {
        None
    }
    /// For a multiplexed connection, how many loans it carries at once now
    /// (the peer's limit; 0 once it takes no more: going away, closing).
    /// `None` for a connection lent to one user at a time.
    fn streams(&self) -> Option<usize> {
        None
    }
    /// A handle for one more loan of a multiplexed connection (only called
    /// when `streams` is `Some`).
    fn share(&self) -> Option<Self>
    where
        Self: Sized,
    {
        None
    }
}

/// A boxed future, as `Connect` returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Opens connections for keys.
pub trait Connect<K: PoolKey, C>: Send + Sync + 'static {
    /// Open a connection for `key`. `watch` lets the connection ask the pool
    /// to check it while it is parked (the peer closed or sent something).
    fn connect<'a>(&'a self, key: &'a K, watch: IdleWatch<K>) -> BoxFuture<'a, Result<C>>;

    /// Whether a connection for `key` may turn out multiplexed (an HTTPS
    /// key that offers HTTP/2). Until one has, the pool opens such a key's
    /// connections one at a time: the first may carry every waiter.
    fn may_multiplex(&self, _key: &K) -> bool {
        false
    }
}

/// The pool side of an idle watcher: how a connection reports activity
/// while it is parked (or, multiplexed, while it may be idle). Holds the
/// pool weakly, so a watcher never keeps a pool alive.
pub struct IdleWatch<K> {
    pub(crate) pool: Weak<dyn IdleCheck<K>>,
    pub(crate) key: K,
    pub(crate) id: u64,
}

impl<K: Clone> Clone for IdleWatch<K> {
    fn clone(&self) -> Self {
        IdleWatch {
            pool: self.pool.clone(),
            key: self.key.clone(),
            id: self.id,
        }
    }
}

pub(crate) trait IdleCheck<K>: Send + Sync {
    fn check_idle(self: std::sync::Arc<Self>, key: &K, id: u64);
}

impl<K> IdleWatch<K> {
    /// Something happened on the connection: if it is parked, the pool
    /// checks it (outside its lock) and closes it when it is dead. Returns
    /// false once the pool is gone (the watcher can stop).
    pub fn activity(&self) -> bool {
        match self.pool.upgrade() {
            Some(pool) => {
                pool.check_idle(&self.key, self.id);
                true
            }
            None => false,
        }
    }
}
