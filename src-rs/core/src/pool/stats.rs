//! Counters the pool keeps, and the snapshot `stats()` returns.

use std::collections::BTreeMap;

/// Why a connection was closed (the keys of `closedBy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Idle longer than its idle timeout.
    Idle,
    /// Reached `maxLifetimeMs` or `maxUses`.
    Lifetime,
    /// Released with `keepAliveOk = false`, with unread bytes, after an error,
    /// or never released (dropped).
    Broken,
    /// The peer closed or reset it.
    Peer,
    /// `flushForHost`.
    Flush,
    /// `shutdownAll`.
    Shutdown,
    /// Released while `maxIdlePerHost` idle connections were already parked,
    /// or closed to make room under `maxConnections`.
    Evicted,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Idle => "idle",
            CloseReason::Lifetime => "lifetime",
            CloseReason::Broken => "broken",
            CloseReason::Peer => "peer",
            CloseReason::Flush => "flush",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Evicted => "evicted",
        }
    }
}

/// How many connections closed for each reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClosedBy {
    pub idle: u64,
    pub lifetime: u64,
    pub broken: u64,
    pub peer: u64,
    pub flush: u64,
    pub shutdown: u64,
    pub evicted: u64,
}

impl ClosedBy {
    pub(crate) fn count(&mut self, reason: CloseReason) {
        let slot = match reason {
            CloseReason::Idle => &mut self.idle,
            CloseReason::Lifetime => &mut self.lifetime,
            CloseReason::Broken => &mut self.broken,
            CloseReason::Peer => &mut self.peer,
            CloseReason::Flush => &mut self.flush,
            CloseReason::Shutdown => &mut self.shutdown,
            CloseReason::Evicted => &mut self.evicted,
        };
        *slot += 1;
    }
}

/// Running totals, kept for the pool and for each key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Connections opened.
    pub created: u64,
    /// Acquires served by an idle or handed-over connection.
    pub reused: u64,
    /// Connections closed, for any reason.
    pub closed: u64,
    /// Acquires that had to queue.
    pub waited: u64,
    /// Acquires that gave up after `acquireTimeoutMs`.
    pub timed_out: u64,
    pub closed_by: ClosedBy,
}

/// Gauges and totals for one key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostStats {
    pub connections: usize,
    pub idle: usize,
    pub active: usize,
    pub connecting: usize,
    pub pending: usize,
    pub counters: Counters,
}

/// What `stats()` returns: gauges, totals, and the same per key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Open connections (idle + active); connecting ones are counted apart.
    pub connections: usize,
    pub idle: usize,
    pub active: usize,
    pub connecting: usize,
    pub pending: usize,
    pub counters: Counters,
    /// Keyed by the key's display form, e.g. `https://example.com:443`.
    pub hosts: BTreeMap<String, HostStats>,
}
