//! The pool's rules with a fake connection, no sockets and a paused clock:
//! every state change (grant on release, on close, on failed connect, on
//! flush, eviction for a blocked waiter, shutdown during a connect,
//! lifetimes and jitter, handles) runs in milliseconds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use tokio::time::{advance, Instant};

use super::gauges::Gauges;
use super::*;
use crate::key::Key;

/// What the fake peer of a connection did.
struct Peer {
    /// 0 alive, 1 closed, 2 sent unexpected bytes.
    state: AtomicU8,
    closed_by_us: AtomicBool,
    watch: Mutex<Option<IdleWatch<Key>>>,
    /// Run once by the next liveness check (which the pool makes outside
    /// its lock): what another thread does meanwhile.
    during_check: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl Peer {
    /// Bytes the connection absorbs (a TLS session ticket): the idle
    /// watcher reports activity and the pool checks the parked connection.
    fn poke(&self) {
        let watch = self.watch.lock().unwrap().clone();
        if let Some(w) = watch {
            w.activity();
        }
    }

    fn close(&self) {
        self.state.store(1, Ordering::SeqCst);
        let watch = self.watch.lock().unwrap().clone();
        if let Some(w) = watch {
            w.activity();
        }
    }
}

struct Fake {
    peer: Arc<Peer>,
    used: bool,
    hint: Option<Duration>,
    /// Multiplexed: how many streams the peer allows (shared by handles).
    streams: Option<Arc<AtomicUsize>>,
    /// A stream's handle onto a multiplexed connection (dropping it
    /// closes nothing).
    handle: bool,
}

impl Fake {
    fn new(peer: Arc<Peer>, streams: Option<usize>) -> Fake {
        Fake {
            peer,
            used: false,
            hint: None,
            streams: streams.map(|n| Arc::new(AtomicUsize::new(n))),
            handle: false,
        }
    }
}

impl Poolable for Fake {
    fn liveness(&mut self, _exact: bool) -> Liveness {
        let meanwhile = self.peer.during_check.lock().unwrap().take();
        if let Some(f) = meanwhile {
            f();
        }
        match self.peer.state.load(Ordering::SeqCst) {
            0 => Liveness::Alive,
            1 => Liveness::PeerClosed,
            _ => Liveness::UnexpectedBytes,
        }
    }
    fn is_broken(&self) -> bool {
        false
    }
    fn was_used(&self) -> bool {
        self.used
    }
    fn unpark(&mut self) {
        self.used = false;
    }
    fn idle_timeout_hint(&self) -> Option<Duration> {
        self.hint
    }
    fn streams(&self) -> Option<usize> {
        self.streams.as_ref().map(|n| n.load(Ordering::SeqCst))
    }
    fn share(&self) -> Option<Fake> {
        Some(Fake {
            peer: self.peer.clone(),
            used: false,
            hint: None,
            streams: Some(self.streams.clone()?),
            handle: true,
        })
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        if !self.handle {
            self.peer.closed_by_us.store(true, Ordering::SeqCst);
        }
    }
}

#[derive(Clone, Copy)]
enum Plan {
    Open,
    Refuse,
    /// Fails as a bad setting would (says nothing of the server).
    BadSetting,
    Hang,
    /// Multiplexed, with this many streams.
    Multiplexed(usize),
    /// Said to maybe multiplex, but one request at a time.
    MaybeMultiplexed,
}

impl Connector {
    fn plan(&self, key: &Key) -> Plan {
        let plans = self.plans.lock().unwrap();
        plans.get(key.host()).copied().unwrap_or(Plan::Open)
    }
}

#[derive(Default)]
struct Connector {
    plans: Mutex<HashMap<String, Plan>>,
    opened: AtomicUsize,
    peers: Mutex<Vec<Arc<Peer>>>,
}

impl Connect<Key, Fake> for Arc<Connector> {
    fn connect<'a>(&'a self, key: &'a Key, watch: IdleWatch<Key>) -> BoxFuture<'a, Result<Fake>> {
        Box::pin(async move {
            let streams = match self.plan(key) {
                Plan::Refuse => {
                    return Err(Error::Io(std::io::ErrorKind::ConnectionRefused.into()))
                }
                Plan::BadSetting => {
                    return Err(Error::InvalidArgument("a bad proxy password".into()))
                }
                Plan::Hang => std::future::pending().await,
                Plan::Multiplexed(n) => Some(n),
                Plan::Open | Plan::MaybeMultiplexed => None,
            };
            // A connect takes a moment: acquires made meanwhile queue or connect.
            tokio::task::yield_now().await;
            self.opened.fetch_add(1, Ordering::SeqCst);
            let peer = Arc::new(Peer {
                state: AtomicU8::new(0),
                closed_by_us: AtomicBool::new(false),
                watch: Mutex::new(Some(watch)),
                during_check: Mutex::default(),
            });
            self.peers.lock().unwrap().push(peer.clone());
            Ok(Fake::new(peer, streams))
        })
    }

    fn may_multiplex(&self, key: &Key) -> bool {
        matches!(
            self.plan(key),
            Plan::Multiplexed(_) | Plan::MaybeMultiplexed
        )
    }
}

fn pool_with(config: PoolLimits) -> (Pool<Key, Fake>, Arc<Connector>) {
    let connector = Arc::new(Connector::default());
    let pool = Pool::new(config, &Handle::current(), connector.clone());
    (pool, connector)
}

fn key(host: &str) -> Key {
    Key::parse_url(&format!("tcp://{host}:1")).unwrap()
}

fn opts() -> AcquireOptions {
    AcquireOptions::default()
}

/// Counts that must always agree with each other.
fn assert_consistent(pool: &Pool<Key, Fake>) {
    let st = pool.inner.lock();
    let mut sum = Gauges::default();
    let mut pending = 0;
    for host in st.hosts.values() {
        let g = host.gauges;
        sum.idle += g.idle;
        sum.checking += g.checking;
        sum.active += g.active;
        sum.connecting += g.connecting;
        sum.shared_idle += g.shared_idle;
        sum.shared_busy += g.shared_busy;
        sum.streams += g.streams;
        pending += host.waiters.live();
        assert_eq!(g.idle, host.idle.len(), "parked count");
        assert_eq!(g.multiplexed(), host.shared.len(), "multiplexed count");
        assert_eq!(
            g.streams,
            host.shared.iter().map(|s| s.loans).sum::<usize>(),
            "streams"
        );
        assert!(
            g.total() > 0 || host.waiters.live() > 0,
            "an unused key's entry is removed"
        );
    }
    assert_eq!(sum, st.gauges);
    assert_eq!(pending, st.pending);
}

/// No waiter is left queued while it could be served.
fn assert_no_stranded_waiter(pool: &Pool<Key, Fake>) {
    let st = pool.inner.lock();
    let cfg = &pool.inner.limits;
    let global_full = cfg.max_connections.is_some_and(|m| st.gauges.total() >= m);
    for (key, host) in &st.hosts {
        if host.waiters.live() == 0 {
            continue;
        }
        assert!(
            host.idle.is_empty(),
            "{key}: waiters while idle connections are parked"
        );
        let per_host_full = cfg
            .max_connections_per_host
            .is_some_and(|m| host.gauges.total() >= m);
        let others_idle = st.hosts.iter().any(|(k, h)| k != key && !h.idle.is_empty());
        assert!(
            per_host_full || (global_full && !others_idle),
            "{key}: a waiter is stranded (per-host full {per_host_full}, global full {global_full}, other idle {others_idle})"
        );
    }
}

mod breaker;
mod idle;
mod multiplexed;
mod properties;
mod shutdown;
mod waiters;
mod warm;
