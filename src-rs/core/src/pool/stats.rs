//! Counters the pool keeps, and the snapshot `stats()` returns.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::circuit::CircuitState;
use super::key::{KeyMap, PoolKey};
use super::poolable::Poolable;
use super::PoolInner;

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
    fn add(&mut self, o: &ClosedBy) {
        self.idle += o.idle;
        self.lifetime += o.lifetime;
        self.broken += o.broken;
        self.peer += o.peer;
        self.flush += o.flush;
        self.shutdown += o.shutdown;
        self.evicted += o.evicted;
    }

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

impl Counters {
    fn add(&mut self, o: &Counters) {
        self.created += o.created;
        self.reused += o.reused;
        self.closed += o.closed;
        self.waited += o.waited;
        self.timed_out += o.timed_out;
        self.closed_by.add(&o.closed_by);
    }
}

/// Gauges and totals for one key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostStats {
    /// Open connections (idle + active); connecting ones are counted apart.
    pub connections: usize,
    /// Parked, or multiplexed with no stream.
    pub idle: usize,
    /// Lent out, or multiplexed with streams.
    pub active: usize,
    pub connecting: usize,
    pub pending: usize,
    /// Of the open connections, the multiplexed ones (HTTP/2).
    pub multiplexed: usize,
    /// Loans of multiplexed connections in progress.
    pub streams: usize,
    pub counters: Counters,
    /// The server's idle timeout as learned from its closes (`learnIdleTimeout`).
    pub learned_idle_timeout: Option<Duration>,
    /// The key's circuit breaker (always closed without `circuitBreaker`).
    pub circuit: CircuitState,
    /// The addresses its connections are open to, with how many on each
    /// (filled by the client with `spreadAddresses`).
    pub addresses: Vec<(IpAddr, usize)>,
}

impl HostStats {
    /// Two keys shown alike (an `https` origin's HTTP/2-capable requests
    /// and its raw acquires) are reported as one.
    fn add(&mut self, o: &HostStats) {
        self.connections += o.connections;
        self.idle += o.idle;
        self.active += o.active;
        self.connecting += o.connecting;
        self.pending += o.pending;
        self.multiplexed += o.multiplexed;
        self.streams += o.streams;
        self.counters.add(&o.counters);
        self.learned_idle_timeout = match (self.learned_idle_timeout, o.learned_idle_timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if self.circuit == CircuitState::Closed {
            self.circuit = o.circuit;
        }
        self.add_addresses(&o.addresses);
    }

    /// Count connections per address, added to those already counted.
    pub fn add_addresses(&mut self, addresses: &[(IpAddr, usize)]) {
        for &(ip, open) in addresses {
            match self.addresses.iter_mut().find(|(known, _)| *known == ip) {
                Some((_, n)) => *n += open,
                None => self.addresses.push((ip, open)),
            }
        }
    }
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
    pub multiplexed: usize,
    pub streams: usize,
    pub counters: Counters,
    /// Keyed by the key's display form, e.g. `https://example.com:443`:
    /// keys in use, and up to [`HOST_HISTORY_LIMIT`] quiet ones.
    pub hosts: BTreeMap<String, HostStats>,
}

impl<K: PoolKey, C: Poolable> PoolInner<K, C> {
    pub(crate) fn stats(&self) -> PoolStats {
        let st = self.lock();
        let now = Instant::now();
        let mut hosts: BTreeMap<String, HostStats> = BTreeMap::new();
        let mut put = |key: String, s: HostStats| {
            hosts
                .entry(key)
                .and_modify(|shown| shown.add(&s))
                .or_insert(s);
        };
        for (k, remembered) in st.history.iter() {
            let quiet = HostStats {
                counters: remembered.counters,
                learned_idle_timeout: remembered.learned_idle.current(now),
                circuit: remembered.circuit.state(),
                ..HostStats::default()
            };
            put(k.to_string(), quiet);
        }
        for (k, h) in &st.hosts {
            let g = &h.gauges;
            let s = HostStats {
                connections: g.open(),
                idle: g.idle_count(),
                active: g.in_use(),
                connecting: g.connecting,
                pending: h.waiters.live(),
                multiplexed: g.multiplexed(),
                streams: g.streams,
                counters: h.counters,
                learned_idle_timeout: h.learned_idle.current(now),
                circuit: h.circuit.state(),
                addresses: Vec::new(),
            };
            put(k.to_string(), s);
        }
        let g = &st.gauges;
        PoolStats {
            connections: g.open(),
            idle: g.idle_count(),
            active: g.in_use(),
            connecting: g.connecting,
            pending: st.pending,
            multiplexed: g.multiplexed(),
            streams: g.streams,
            counters: st.counters,
            hosts,
        }
    }
}

/// Most keys whose counters are kept after their last connection closed.
pub const HOST_HISTORY_LIMIT: usize = 1024;

/// What is remembered of keys that currently have no connection and no
/// waiter (their counters, so a host's totals survive it going quiet).
/// Bounded: past the limit, the keys touched longest ago are forgotten
/// (least recently used first).
pub(crate) struct History<K: PoolKey, V> {
    entries: KeyMap<K, (V, u64)>,
    tick: u64,
}

impl<K: PoolKey, V> Default for History<K, V> {
    fn default() -> Self {
        History {
            entries: KeyMap::default(),
            tick: 0,
        }
    }
}

impl<K: PoolKey, V: Default> History<K, V> {
    /// Take what is remembered of a key back (it has a connection or a
    /// waiter again).
    pub(crate) fn take(&mut self, key: &K) -> V {
        self.entries.remove(key).map(|(c, _)| c).unwrap_or_default()
    }

    /// Remember `value` of a key while it is quiet.
    pub(crate) fn keep(&mut self, key: K, value: V) {
        self.tick += 1;
        self.entries.insert(key, (value, self.tick));
        if self.entries.len() > HOST_HISTORY_LIMIT {
            // Forget the oldest quarter at once: amortised O(1) per insert.
            let mut ticks: Vec<u64> = self.entries.values().map(|(_, t)| *t).collect();
            let cut = HOST_HISTORY_LIMIT / 4;
            let (_, nth, _) = ticks.select_nth_unstable(cut);
            let threshold = *nth;
            self.entries.retain(|_, (_, t)| *t > threshold);
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, (c, _))| (k, c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Key;

    fn key(i: usize) -> Key {
        Key::parse_url(&format!("http://host{i}.example/")).unwrap()
    }

    fn created(n: u64) -> Counters {
        Counters {
            created: n,
            ..Counters::default()
        }
    }

    #[test]
    fn quiet_keys_keep_their_counters_and_the_least_recent_go_first() {
        let mut history = History::<Key, Counters>::default();
        for i in 0..HOST_HISTORY_LIMIT {
            history.keep(key(i), created(i as u64));
        }
        // Key 0 comes back and goes quiet again: now the most recent.
        let back = history.take(&key(0));
        assert_eq!(back.created, 0);
        history.keep(key(0), created(7));
        history.keep(key(HOST_HISTORY_LIMIT), created(1));
        assert!(history.iter().count() <= HOST_HISTORY_LIMIT, "bounded");
        let kept: Vec<_> = history.iter().map(|(k, _)| k.clone()).collect();
        assert!(kept.contains(&key(0)), "recently used key kept");
        assert!(kept.contains(&key(HOST_HISTORY_LIMIT)));
        assert!(!kept.contains(&key(1)), "least recently used key forgotten");
        assert_eq!(history.take(&key(0)).created, 7);
        assert_eq!(
            history.take(&key(999_999)),
            Counters::default(),
            "unknown keys start at zero"
        );
    }
}
