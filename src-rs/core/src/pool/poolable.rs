//! What the pool asks of the connections it keeps, and of whatever opens
//! them. The pool is generic over both, so its rules are tested with a fake
//! connection and no sockets (see `tests.rs`), as hyper-util tests its pool.

use std::future::Future;
use std::pin::Pin;
use std::sync::Weak;
use std::time::Duration;

use super::stats::CloseReason;
use crate::error::Result;
use crate::key::Key;

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
}

/// A boxed future, as `Connect` returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Opens connections for keys.
pub trait Connect<C>: Send + Sync + 'static {
    /// Open a connection for `key`. `watch` lets the connection ask the pool
    /// to check it while it is parked (the peer closed or sent something).
    fn connect<'a>(&'a self, key: &'a Key, watch: IdleWatch) -> BoxFuture<'a, Result<C>>;
}

/// The pool side of an idle watcher: how a parked connection reports
/// activity. Holds the pool weakly, so a watcher never keeps a pool alive.
#[derive(Clone)]
pub struct IdleWatch {
    pub(crate) pool: Weak<dyn IdleCheck>,
    pub(crate) key: Key,
    pub(crate) id: u64,
}

pub(crate) trait IdleCheck: Send + Sync {
    fn check_idle(self: std::sync::Arc<Self>, key: &Key, id: u64);
}

impl IdleWatch {
    /// The connection this watch belongs to.
    pub fn id(&self) -> u64 {
        self.id
    }

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
