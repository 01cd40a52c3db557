//! `stats()` as a plain JS object.

use std::collections::HashMap;

use napi_derive::napi;
use pconn_core::pool::{ClosedBy, Counters, PoolStats};

#[napi(object)]
pub struct ClosedByJs {
    pub idle: f64,
    pub lifetime: f64,
    pub broken: f64,
    pub peer: f64,
    pub flush: f64,
    pub shutdown: f64,
    pub evicted: f64,
}

/// An address a key's connections are open to.
#[napi(object)]
pub struct AddressStatsJs {
    pub address: String,
    pub connections: u32,
}

/// Gauges and totals, for the pool and (in `hosts`) for each key.
#[napi(object)]
pub struct StatsJs {
    pub connections: u32,
    pub idle: u32,
    pub active: u32,
    pub connecting: u32,
    pub pending: u32,
    /// Of the open connections, those speaking HTTP/2.
    pub http2: u32,
    /// Requests in flight on HTTP/2 connections (one stream each).
    pub streams: u32,
    pub created: f64,
    pub reused: f64,
    pub closed: f64,
    pub waited: f64,
    pub timed_out: f64,
    pub closed_by: ClosedByJs,
    /// Per key only: the server's idle timeout as learned (`learnIdleTimeout`).
    pub learned_idle_timeout_ms: Option<f64>,
    /// Per key only: `closed`, `open` or `half-open`.
    pub circuit: Option<String>,
    /// Per key only, with `spreadAddresses`: its connections per address.
    pub addresses: Option<Vec<AddressStatsJs>>,
    pub hosts: Option<HashMap<String, StatsJs>>,
}

fn closed_by(c: &ClosedBy) -> ClosedByJs {
    ClosedByJs {
        idle: c.idle as f64,
        lifetime: c.lifetime as f64,
        broken: c.broken as f64,
        peer: c.peer as f64,
        flush: c.flush as f64,
        shutdown: c.shutdown as f64,
        evicted: c.evicted as f64,
    }
}

fn stats(gauges: [usize; 7], c: &Counters, hosts: Option<HashMap<String, StatsJs>>) -> StatsJs {
    let [connections, idle, active, connecting, pending, http2, streams] = gauges.map(|g| g as u32);
    StatsJs {
        connections,
        idle,
        active,
        connecting,
        pending,
        http2,
        streams,
        created: c.created as f64,
        reused: c.reused as f64,
        closed: c.closed as f64,
        waited: c.waited as f64,
        timed_out: c.timed_out as f64,
        closed_by: closed_by(&c.closed_by),
        learned_idle_timeout_ms: None,
        circuit: None,
        addresses: None,
        hosts,
    }
}

impl From<PoolStats> for StatsJs {
    fn from(s: PoolStats) -> StatsJs {
        let hosts = s
            .hosts
            .iter()
            .map(|(k, h)| {
                let gauges = [
                    h.connections,
                    h.idle,
                    h.active,
                    h.connecting,
                    h.pending,
                    h.multiplexed,
                    h.streams,
                ];
                let host = StatsJs {
                    learned_idle_timeout_ms: h.learned_idle_timeout.map(|d| d.as_millis() as f64),
                    circuit: Some(h.circuit.as_str().to_string()),
                    addresses: Some(
                        h.addresses
                            .iter()
                            .map(|(ip, n)| AddressStatsJs {
                                address: ip.to_string(),
                                connections: u32::try_from(*n).unwrap_or(u32::MAX),
                            })
                            .collect(),
                    ),
                    ..stats(gauges, &h.counters, None)
                };
                (k.clone(), host)
            })
            .collect();
        stats(
            [
                s.connections,
                s.idle,
                s.active,
                s.connecting,
                s.pending,
                s.multiplexed,
                s.streams,
            ],
            &s.counters,
            Some(hosts),
        )
    }
}
