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

#[tokio::test(start_paused = true)]
async fn release_parks_and_the_next_acquire_reuses_lifo() {
    let (pool, connector) = pool_with(PoolLimits::default());
    let k = key("a");
    let a = pool.acquire(&k, &opts()).await.unwrap();
    let b = pool.acquire(&k, &opts()).await.unwrap();
    let b_id = b.id();
    a.release(true);
    b.release(true);
    let c = pool.acquire(&k, &opts()).await.unwrap();
    assert!(c.reused());
    assert_eq!(c.id(), b_id, "LIFO hands out the last released");
    assert_eq!(connector.opened.load(Ordering::SeqCst), 2);
    let s = pool.stats();
    assert_eq!(
        (s.idle, s.active, s.counters.created, s.counters.reused),
        (1, 1, 2, 1)
    );
    assert_consistent(&pool);
}

#[tokio::test(start_paused = true)]
async fn fifo_hands_out_the_longest_parked() {
    let (pool, _) = pool_with(PoolLimits {
        scheduling: Scheduling::Fifo,
        ..PoolLimits::default()
    });
    let k = key("a");
    let a = pool.acquire(&k, &opts()).await.unwrap();
    let b = pool.acquire(&k, &opts()).await.unwrap();
    let a_id = a.id();
    a.release(true);
    b.release(true);
    assert_eq!(pool.acquire(&k, &opts()).await.unwrap().id(), a_id);
}

#[tokio::test(start_paused = true)]
async fn a_dead_parked_connection_is_skipped_at_checkout() {
    let (pool, connector) = pool_with(PoolLimits::default());
    let k = key("a");
    pool.acquire(&k, &opts()).await.unwrap().release(true);
    connector.peers.lock().unwrap()[0]
        .state
        .store(1, Ordering::SeqCst);
    let c = pool.acquire(&k, &opts()).await.unwrap();
    assert!(!c.reused());
    let s = pool.stats();
    assert_eq!((s.counters.closed_by.peer, s.counters.reused), (1, 0));
    assert_consistent(&pool);
}

#[tokio::test(start_paused = true)]
async fn the_idle_watcher_closes_a_parked_connection_whose_peer_left() {
    let (pool, connector) = pool_with(PoolLimits::default());
    let k = key("a");
    pool.acquire(&k, &opts()).await.unwrap().release(true);
    let peer = connector.peers.lock().unwrap()[0].clone();
    peer.close();
    assert!(peer.closed_by_us.load(Ordering::SeqCst));
    assert_eq!(pool.stats().idle, 0);
    assert_eq!(pool.stats().counters.closed_by.peer, 1);
    assert_consistent(&pool);
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_closes_at_the_deadline_not_before() {
    let (pool, _) = pool_with(PoolLimits::default());
    pool.acquire(&key("a"), &opts())
        .await
        .unwrap()
        .release(true);
    advance(Duration::from_millis(3_999)).await;
    tokio::task::yield_now().await;
    assert_eq!(pool.stats().idle, 1);
    advance(Duration::from_millis(2)).await;
    tokio::task::yield_now().await;
    assert_eq!(pool.stats().idle, 0);
    assert_eq!(pool.stats().counters.closed_by.idle, 1);
}

#[tokio::test(start_paused = true)]
async fn a_keep_alive_hint_shortens_the_idle_deadline() {
    let (pool, _) = pool_with(PoolLimits::default());
    let mut c = pool.acquire(&key("a"), &opts()).await.unwrap();
    c.connection().hint = Some(Duration::from_secs(1));
    c.release(true);
    advance(Duration::from_millis(1_001)).await;
    tokio::task::yield_now().await;
    assert_eq!(pool.stats().counters.closed_by.idle, 1);
}

#[tokio::test(start_paused = true)]
async fn max_lifetime_retires_with_at_most_ten_percent_jitter() {
    let (pool, _) = pool_with(PoolLimits {
        max_lifetime: Duration::from_secs(20),
        idle_timeout: Duration::from_secs(3600),
        ..PoolLimits::default()
    });
    let start = Instant::now();
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(pool.acquire(&key("a"), &opts()).await.unwrap());
    }
    let deadlines: Vec<Duration> = held
        .iter()
        .map(|p| p.retire_at().unwrap() - start)
        .collect();
    assert!(deadlines
        .iter()
        .all(|d| *d > Duration::from_secs(18) && *d <= Duration::from_secs(20)));
    assert!(
        deadlines.iter().any(|d| *d != deadlines[0]),
        "jitter spreads retirements"
    );
    for p in held {
        p.release(true);
    }
    advance(Duration::from_secs(20)).await;
    tokio::task::yield_now().await;
    let s = pool.stats();
    assert_eq!((s.idle, s.counters.closed_by.lifetime), (0, 20));
}

#[tokio::test(start_paused = true)]
async fn max_uses_retires_on_release() {
    let (pool, _) = pool_with(PoolLimits {
        max_uses: 2,
        ..PoolLimits::default()
    });
    pool.acquire(&key("a"), &opts())
        .await
        .unwrap()
        .release(true);
    let second = pool.acquire(&key("a"), &opts()).await.unwrap();
    assert_eq!(second.uses(), 2);
    second.release(true);
    assert_eq!(pool.stats().counters.closed_by.lifetime, 1);
}

#[tokio::test(start_paused = true)]
async fn the_idle_cap_closes_the_excess() {
    let (pool, _) = pool_with(PoolLimits {
        max_idle_per_host: 1,
        ..PoolLimits::default()
    });
    let a = pool.acquire(&key("a"), &opts()).await.unwrap();
    let b = pool.acquire(&key("a"), &opts()).await.unwrap();
    a.release(true);
    b.release(true);
    let s = pool.stats();
    assert_eq!((s.idle, s.counters.closed_by.evicted), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn waiters_at_the_per_host_limit_are_served_in_order_by_releases() {
    let (pool, _) = pool_with(PoolLimits {
        max_connections_per_host: Some(2),
        ..PoolLimits::default()
    });
    let k = key("a");
    let held = [
        pool.acquire(&k, &opts()).await.unwrap(),
        pool.acquire(&k, &opts()).await.unwrap(),
    ];
    let order = Arc::new(Mutex::new(Vec::new()));
    let handed: Arc<Mutex<Vec<Pooled<Key, Fake>>>> = Arc::default();
    let mut queued = Vec::new();
    for i in 0..50 {
        let (order, handed) = (order.clone(), handed.clone());
        // Called under the pool's lock: record and keep, nothing more.
        let deliver = move |g: Grant<Key, Fake>| match g {
            Grant::Conn(p) => {
                order.lock().unwrap().push(i);
                handed.lock().unwrap().push(p.received());
                Ok(())
            }
            other => Err(other),
        };
        match pool.begin_acquire_with(&k, &opts(), deliver).unwrap() {
            Acquiring::Queued(q) => queued.push(q),
            _ => panic!("both connections are held"),
        }
    }
    assert_eq!(pool.stats().pending, 50);
    for p in held {
        p.release(true);
    }
    loop {
        let next = handed.lock().unwrap().pop();
        match next {
            Some(p) => p.release(true),
            None => break,
        }
    }
    drop(queued);
    assert_eq!(*order.lock().unwrap(), (0..50).collect::<Vec<_>>());
    assert_eq!(pool.stats().idle, 2);
}

#[tokio::test(start_paused = true)]
async fn a_release_serves_a_waiter_of_another_key_blocked_by_max_connections() {
    // The reproduction of the starvation bug: the waiter for key b used to
    // wait forever while a's connection was parked.
    let (pool, connector) = pool_with(PoolLimits {
        max_connections: Some(1),
        ..PoolLimits::default()
    });
    let a = pool.acquire(&key("a"), &opts()).await.unwrap();
    let p = pool.clone();
    let waiter =
        tokio::spawn(async move { p.acquire(&key("b"), &opts()).await.map(|c| c.key().clone()) });
    tokio::task::yield_now().await;
    assert_eq!(pool.stats().pending, 1);
    a.release(true);
    assert_eq!(waiter.await.unwrap().unwrap(), key("b"));
    let s = pool.stats();
    assert_eq!((s.pending, s.counters.closed_by.evicted), (0, 1));
    assert_eq!(connector.opened.load(Ordering::SeqCst), 2);
    assert_consistent(&pool);
}

#[tokio::test(start_paused = true)]
async fn an_acquire_at_max_connections_evicts_an_idle_connection_of_another_key() {
    let (pool, connector) = pool_with(PoolLimits {
        max_connections: Some(1),
        ..PoolLimits::default()
    });
    pool.acquire(&key("a"), &opts())
        .await
        .unwrap()
        .release(true);
    let b = pool.acquire(&key("b"), &opts()).await.unwrap();
    assert_eq!(pool.stats().counters.closed_by.evicted, 1);
    assert!(connector.peers.lock().unwrap()[0]
        .closed_by_us
        .load(Ordering::SeqCst));
    drop(b);
}

#[tokio::test(start_paused = true)]
async fn a_failed_connect_passes_its_room_to_the_next_waiter() {
    let (pool, connector) = pool_with(PoolLimits {
        max_connections: Some(1),
        ..PoolLimits::default()
    });
    connector
        .plans
        .lock()
        .unwrap()
        .insert("a".into(), Plan::Refuse);
    let p = pool.clone();
    let first = tokio::spawn(async move { p.acquire(&key("a"), &opts()).await.map(|_| ()) });
    let p = pool.clone();
    let second =
        tokio::spawn(async move { p.acquire(&key("b"), &opts()).await.map(|c| c.key().clone()) });
    assert_eq!(first.await.unwrap().unwrap_err().code(), "ECONNREFUSED");
    assert_eq!(second.await.unwrap().unwrap(), key("b"));
    assert_consistent(&pool);
}

#[tokio::test(start_paused = true)]
async fn closing_a_connection_on_release_grants_the_room_to_a_waiter() {
    let (pool, _) = pool_with(PoolLimits {
        max_connections_per_host: Some(1),
        ..PoolLimits::default()
    });
    let a = pool.acquire(&key("a"), &opts()).await.unwrap();
    let p = pool.clone();
    let waiter =
        tokio::spawn(async move { p.acquire(&key("a"), &opts()).await.map(|c| c.reused()) });
    tokio::task::yield_now().await;
    a.release(false);
    assert!(
        !waiter.await.unwrap().unwrap(),
        "the waiter opened a new connection"
    );
}

#[tokio::test(start_paused = true)]
async fn flush_closes_idle_connections_of_a_host_on_every_port_only() {
    let (pool, _) = pool_with(PoolLimits::default());
    let a1 = Key::parse_url("tcp://a:1").unwrap();
    let a2 = Key::parse_url("tls://a:2").unwrap();
    pool.acquire(&a1, &opts()).await.unwrap().release(true);
    pool.acquire(&a2, &opts()).await.unwrap().release(true);
    pool.acquire(&key("b"), &opts())
        .await
        .unwrap()
        .release(true);
    let held = pool.acquire(&a1, &opts()).await.unwrap();
    assert_eq!(pool.flush(|k| k.host() == "a"), 1);
    assert_eq!(pool.flush(|k| k.host() == "nobody"), 0);
    let s = pool.stats();
    assert_eq!((s.idle, s.active, s.counters.closed_by.flush), (1, 1, 1));
    drop(held);
    assert_consistent(&pool);
}

#[tokio::test(start_paused = true)]
async fn shutdown_cancels_connects_in_progress_at_once() {
    let (pool, connector) = pool_with(PoolLimits::default());
    connector
        .plans
        .lock()
        .unwrap()
        .insert("a".into(), Plan::Hang);
    let p = pool.clone();
    let connecting = tokio::spawn(async move { p.acquire(&key("a"), &opts()).await.map(|_| ()) });
    tokio::task::yield_now().await;
    assert_eq!(pool.stats().connecting, 1);
    let started = Instant::now();
    pool.shutdown().await;
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "no wait for the connect timeout"
    );
    assert_eq!(
        connecting.await.unwrap().unwrap_err().code(),
        "PCONN_POOL_CLOSED"
    );
    assert_eq!(pool.stats().connecting, 0);
}

#[tokio::test(start_paused = true)]
async fn shutdown_rejects_waiters_and_waits_for_active_connections() {
    let (pool, connector) = pool_with(PoolLimits {
        max_connections_per_host: Some(1),
        ..PoolLimits::default()
    });
    let held = pool.acquire(&key("a"), &opts()).await.unwrap();
    let p = pool.clone();
    let waiter = tokio::spawn(async move { p.acquire(&key("a"), &opts()).await.map(|_| ()) });
    tokio::task::yield_now().await;
    let p = pool.clone();
    let shutdown = tokio::spawn(async move { p.shutdown().await });
    assert_eq!(
        waiter.await.unwrap().unwrap_err().code(),
        "PCONN_POOL_CLOSED"
    );
    assert_eq!(
        pool.acquire(&key("a"), &opts()).await.unwrap_err().code(),
        "PCONN_POOL_CLOSED"
    );
    tokio::task::yield_now().await;
    assert!(
        !shutdown.is_finished(),
        "an active connection keeps shutdown pending"
    );
    held.release(true);
    shutdown.await.unwrap();
    assert!(connector.peers.lock().unwrap()[0]
        .closed_by_us
        .load(Ordering::SeqCst));
    assert_eq!(pool.stats().counters.closed_by.shutdown, 1);
}

#[tokio::test(start_paused = true)]
async fn a_parked_connection_that_passes_its_check_serves_a_waiter_that_queued_meanwhile() {
    let (pool, connector) = pool_with(PoolLimits {
        max_connections_per_host: Some(1),
        ..PoolLimits::default()
    });
    let k = key("a");
    pool.acquire(&k, &opts()).await.unwrap().release(true);
    let peer = connector.peers.lock().unwrap()[0].clone();
    // While the pool checks the parked connection, an acquire finds no idle
    // connection and no room (the one connection counts): it queues.
    let handed: Arc<Mutex<Option<Pooled<Key, Fake>>>> = Arc::default();
    let queued: Arc<Mutex<Vec<Queued<Key, Fake>>>> = Arc::default();
    let (p, into, waiting) = (pool.clone(), handed.clone(), queued.clone());
    *peer.during_check.lock().unwrap() = Some(Box::new(move || {
        let deliver = move |g: Grant<Key, Fake>| match g {
            Grant::Conn(c) => {
                *into.lock().unwrap() = Some(c.received());
                Ok(())
            }
            other => Err(other),
        };
        match p.begin_acquire_with(&key("a"), &opts(), deliver).unwrap() {
            Acquiring::Queued(q) => waiting.lock().unwrap().push(q),
            _ => panic!("the connection is being checked: no idle one, no room"),
        }
    }));
    peer.poke();
    let served = handed.lock().unwrap().take();
    let served = served.expect("the checked connection went to the waiter");
    assert!(served.reused());
    assert_eq!((pool.stats().pending, pool.stats().idle), (0, 0));
    served.release(true);
    assert_eq!(pool.stats().idle, 1);
    assert_consistent(&pool);
}

#[tokio::test(start_paused = true)]
async fn a_fresh_retry_at_the_limit_replaces_the_keys_oldest_idle_connection() {
    let (pool, connector) = pool_with(PoolLimits {
        max_connections_per_host: Some(2),
        ..PoolLimits::default()
    });
    let k = key("a");
    let (first, second) = (
        pool.acquire(&k, &opts()).await.unwrap(),
        pool.acquire(&k, &opts()).await.unwrap(),
    );
    first.release(true);
    second.release(true);
    let fresh = AcquireOptions {
        fresh: true,
        ..opts()
    };
    let retry = tokio::time::timeout(Duration::from_secs(1), pool.acquire(&k, &fresh))
        .await
        .expect("the retry does not queue behind idle connections it skips")
        .unwrap();
    assert!(!retry.reused());
    assert_eq!(connector.opened.load(Ordering::SeqCst), 3);
    let s = pool.stats();
    assert_eq!((s.idle, s.counters.closed_by.evicted), (1, 1));
    assert!(connector.peers.lock().unwrap()[0]
        .closed_by_us
        .load(Ordering::SeqCst));
    drop(retry);
    assert_consistent(&pool);
}

#[tokio::test(start_paused = true)]
async fn a_refused_hand_over_returns_its_loan_once() {
    let (pool, _) = pool_with(PoolLimits {
        max_connections_per_host: Some(1),
        ..PoolLimits::default()
    });
    let k = key("a");
    let held = pool.acquire(&k, &opts()).await.unwrap();
    // A waiter whose thread is gone: it refuses what it is handed.
    let refusing = pool
        .begin_acquire_with(&k, &opts(), |g: Grant<Key, Fake>| Err(g))
        .unwrap();
    let Acquiring::Queued(refusing) = refusing else {
        panic!("the only connection is held")
    };
    let p = pool.clone();
    let waiter = tokio::spawn(async move { p.acquire(&key("a"), &opts()).await });
    tokio::task::yield_now().await;
    held.release(true);
    let served = waiter.await.unwrap().unwrap();
    drop(refusing);
    served.release(true);
    // Every loan came back exactly once: the shutdown does not wait forever.
    tokio::time::timeout(Duration::from_secs(1), pool.shutdown())
        .await
        .expect("shutdown completes");
}

#[tokio::test(start_paused = true)]
async fn shutdown_reports_its_own_closes() {
    let (pool, _) = pool_with(PoolLimits::default());
    let closes = Arc::new(Mutex::new(Vec::new()));
    let seen = closes.clone();
    pool.on_close(Arc::new(move |id, _, reason| {
        seen.lock().unwrap().push((id, reason))
    }));
    let idle = pool.acquire(&key("a"), &opts()).await.unwrap();
    let active = pool.acquire(&key("a"), &opts()).await.unwrap();
    let (idle_id, active_id) = (idle.id(), active.id());
    idle.release(true);
    let p = pool.clone();
    let shutdown = tokio::spawn(async move { p.shutdown().await });
    tokio::task::yield_now().await;
    active.release(true);
    shutdown.await.unwrap();
    assert_eq!(
        *closes.lock().unwrap(),
        [
            (idle_id, CloseReason::Shutdown),
            (active_id, CloseReason::Shutdown)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn acquire_timeout_counts_and_removes_the_waiter() {
    let (pool, _) = pool_with(PoolLimits {
        max_connections_per_host: Some(1),
        acquire_timeout: Duration::from_millis(500),
        ..PoolLimits::default()
    });
    let _held = pool.acquire(&key("a"), &opts()).await.unwrap();
    let started = Instant::now();
    let err = pool.acquire(&key("a"), &opts()).await.unwrap_err();
    assert_eq!(err.code(), "PCONN_ACQUIRE_TIMEOUT");
    assert_eq!(started.elapsed(), Duration::from_millis(500));
    let s = pool.stats();
    assert_eq!((s.pending, s.counters.timed_out), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn an_abort_storm_leaves_no_waiter_and_no_garbage() {
    let (pool, _) = pool_with(PoolLimits {
        max_connections_per_host: Some(1),
        ..PoolLimits::default()
    });
    let held = pool.acquire(&key("a"), &opts()).await.unwrap();
    let queued: Vec<_> = (0..10_000)
        .map(|_| match pool.begin_acquire(&key("a"), &opts()).unwrap() {
            Acquiring::Queued(q) => q,
            _ => panic!("expected to queue"),
        })
        .collect();
    assert_eq!(pool.stats().pending, 10_000);
    // Withdraw in a scattered order; the queue trims as its ends empty.
    let mut queued: Vec<_> = queued.into_iter().map(Some).collect();
    for i in (0..10_000).step_by(2).chain((1..10_000).step_by(2)) {
        queued[i] = None;
    }
    assert_eq!(pool.stats().pending, 0);
    assert_eq!(
        pool.inner
            .lock()
            .hosts
            .get(&key("a"))
            .map(|h| h.waiters.live()),
        Some(0)
    );
    held.release(true);
    assert_eq!(pool.stats().idle, 1);
    assert_consistent(&pool);
}

#[tokio::test(start_paused = true)]
async fn counters_of_a_quiet_key_survive_and_stay_bounded() {
    let (pool, _) = pool_with(PoolLimits {
        max_idle_per_host: 0,
        ..PoolLimits::default()
    });
    pool.acquire(&key("a"), &opts())
        .await
        .unwrap()
        .release(true);
    assert!(
        pool.inner.lock().hosts.is_empty(),
        "the quiet key's entry is gone"
    );
    let s = pool.stats();
    let a = &s.hosts["tcp://a:1"];
    assert_eq!(
        (a.connections, a.counters.created, a.counters.closed),
        (0, 1, 1)
    );
    pool.acquire(&key("a"), &opts())
        .await
        .unwrap()
        .release(true);
    assert_eq!(
        pool.stats().hosts["tcp://a:1"].counters.created,
        2,
        "counters carry on"
    );
    for i in 0..(HOST_HISTORY_LIMIT + 100) {
        pool.acquire(&key(&format!("h{i}")), &opts())
            .await
            .unwrap()
            .release(true);
    }
    assert!(pool.stats().hosts.len() <= HOST_HISTORY_LIMIT);
}

#[tokio::test(start_paused = true)]
async fn a_shared_pool_handle_closes_alone_and_the_last_closes_the_pool() {
    let (one, connector) = pool_with(PoolLimits {
        max_connections_per_host: Some(1),
        ..PoolLimits::default()
    });
    let two = one.new_handle().unwrap();
    let held = two.acquire(&key("a"), &opts()).await.unwrap();
    let p = one.clone();
    let waiting = tokio::spawn(async move { p.acquire(&key("a"), &opts()).await.map(|_| ()) });
    tokio::task::yield_now().await;
    one.shutdown().await;
    assert_eq!(
        waiting.await.unwrap().unwrap_err().code(),
        "PCONN_POOL_CLOSED"
    );
    assert_eq!(
        one.acquire(&key("a"), &opts()).await.unwrap_err().code(),
        "PCONN_POOL_CLOSED"
    );
    held.release(true);
    let again = two.acquire(&key("a"), &opts()).await.unwrap();
    assert!(
        again.reused(),
        "the other handle keeps the pool and its connections"
    );
    again.release(true);
    two.shutdown().await;
    assert!(connector.peers.lock().unwrap()[0]
        .closed_by_us
        .load(Ordering::SeqCst));
    assert!(two.new_handle().is_none());
}

#[tokio::test(start_paused = true)]
async fn past_max_pending_an_acquire_is_refused_with_queue_full() {
    let (pool, _) = pool_with(PoolLimits {
        max_connections_per_host: Some(1),
        max_pending: Some(1),
        ..PoolLimits::default()
    });
    let held = pool.acquire(&key("a"), &opts()).await.unwrap();
    let p = pool.clone();
    let queued =
        tokio::spawn(async move { p.acquire(&key("a"), &opts()).await.map(|c| c.release(true)) });
    tokio::task::yield_now().await;
    assert_eq!(pool.stats().pending, 1);
    assert_eq!(
        pool.acquire(&key("a"), &opts()).await.unwrap_err().code(),
        "PCONN_QUEUE_FULL"
    );
    held.release(true);
    queued.await.unwrap().unwrap();
    assert_consistent(&pool);
}

#[tokio::test(start_paused = true)]
async fn an_aborted_waiter_leaves_the_queue() {
    let (pool, _) = pool_with(PoolLimits {
        max_connections_per_host: Some(1),
        ..PoolLimits::default()
    });
    let _held = pool.acquire(&key("a"), &opts()).await.unwrap();
    let cancel = Arc::new(Cancel::new());
    let cancelled = AcquireOptions {
        cancel: Some(cancel.clone()),
        ..AcquireOptions::default()
    };
    let k = key("a");
    let (res, _) = tokio::join!(pool.acquire(&k, &cancelled), async {
        advance(Duration::from_millis(20)).await;
        cancel.cancel();
    });
    assert_eq!(res.unwrap_err().code(), "ABORT_ERR");
    assert_eq!(pool.stats().pending, 0);
    assert_consistent(&pool);
}

/// Start `n` acquires of `k` at once; their loans, in the order they came.
async fn acquire_together(pool: &Pool<Key, Fake>, k: &Key, n: usize) -> Vec<Pooled<Key, Fake>> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (p, k) = (pool.clone(), k.clone());
            tokio::spawn(async move { p.acquire(&k, &opts()).await.unwrap() })
        })
        .collect();
    let mut loans = Vec::new();
    for t in tasks {
        loans.push(t.await.unwrap());
    }
    loans
}

#[tokio::test(start_paused = true)]
async fn a_multiplexed_connection_carries_streams_up_to_its_limit_and_a_new_one_opens_only_when_it_is_full(
) {
    let (pool, connector) = pool_with(PoolLimits::default());
    connector
        .plans
        .lock()
        .unwrap()
        .insert("a".into(), Plan::Multiplexed(3));
    let loans = acquire_together(&pool, &key("a"), 5).await;
    assert!(loans.iter().all(Pooled::is_stream));
    assert_eq!(
        connector.opened.load(Ordering::SeqCst),
        2,
        "3 streams on the first, 2 on the second"
    );
    let s = pool.stats();
    assert_eq!(
        (s.connections, s.multiplexed, s.streams, s.active, s.idle),
        (2, 2, 5, 2, 0)
    );
    let ids: std::collections::HashSet<u64> = loans.iter().map(Pooled::id).collect();
    assert_eq!(ids.len(), 2);
    assert_consistent(&pool);
    // Streams end: both connections idle (one at once, none closed), and
    // the next acquire takes a stream of the oldest.
    let first = loans[0].id();
    drop(loans);
    let s = pool.stats();
    assert_eq!(
        (s.connections, s.idle, s.streams, s.counters.closed),
        (2, 2, 0, 0)
    );
    let again = pool.acquire(&key("a"), &opts()).await.unwrap();
    assert!(again.reused() && again.is_stream());
    assert_eq!(again.id(), first);
    drop(again);
    // Idle multiplexed connections close at their idle deadline.
    advance(PoolLimits::default().idle_timeout + Duration::from_millis(1)).await;
    tokio::task::yield_now().await;
    let s = pool.stats();
    assert_eq!((s.connections, s.counters.closed_by.idle), (0, 2));
    assert_consistent(&pool);
}

#[tokio::test(start_paused = true)]
async fn a_multiplexed_connection_that_goes_away_takes_no_new_stream_and_closes_after_its_last() {
    let (pool, connector) = pool_with(PoolLimits::default());
    connector
        .plans
        .lock()
        .unwrap()
        .insert("a".into(), Plan::Multiplexed(10));
    let first = pool.acquire(&key("a"), &opts()).await.unwrap();
    // The peer goes away (GOAWAY): no new stream on it.
    first
        .connection_ref()
        .streams
        .as_ref()
        .unwrap()
        .store(0, Ordering::SeqCst);
    let peer = connector.peers.lock().unwrap()[0].clone();
    peer.poke();
    let second = pool.acquire(&key("a"), &opts()).await.unwrap();
    assert_ne!(second.id(), first.id(), "a new connection");
    assert!(
        !peer.closed_by_us.load(Ordering::SeqCst),
        "its stream still runs"
    );
    drop(first);
    assert!(
        peer.closed_by_us.load(Ordering::SeqCst),
        "closed after its last stream"
    );
    let s = pool.stats();
    assert_eq!(
        (s.connections, s.streams, s.counters.closed_by.peer),
        (1, 1, 1)
    );
    drop(second);
    assert_consistent(&pool);
}

#[tokio::test(start_paused = true)]
async fn a_key_that_may_multiplex_connects_once_first_and_an_exclusive_answer_lets_the_rest_connect(
) {
    let (pool, connector) = pool_with(PoolLimits::default());
    connector
        .plans
        .lock()
        .unwrap()
        .insert("a".into(), Plan::MaybeMultiplexed);
    let loans = acquire_together(&pool, &key("a"), 3).await;
    assert!(loans.iter().all(|l| !l.is_stream()));
    assert_eq!(connector.opened.load(Ordering::SeqCst), 3);
    let s = pool.stats();
    assert_eq!(
        (s.connections, s.counters.waited),
        (3, 2),
        "two waited for the first connect"
    );
    // Closed (dropped without a release), the key is quiet but remembered
    // as exclusive: concurrent acquires connect at once.
    drop(loans);
    assert_eq!(pool.stats().connections, 0);
    let more = acquire_together(&pool, &key("a"), 5).await;
    assert_eq!(pool.stats().counters.waited, 2);
    assert_eq!(connector.opened.load(Ordering::SeqCst), 8);
    drop(more);
    assert_consistent(&pool);
}

#[tokio::test(start_paused = true)]
async fn a_grant_is_delivered_after_the_pool_lock_is_released() {
    let (pool, _) = pool_with(PoolLimits {
        max_connections_per_host: Some(1),
        ..PoolLimits::default()
    });
    let held = pool.acquire(&key("a"), &opts()).await.unwrap();
    let seen = Arc::new(Mutex::new(None));
    let (p, sink) = (pool.clone(), seen.clone());
    // Delivery calls back into the pool: under the lock, this would deadlock.
    let deliver = move |g: Grant<Key, Fake>| {
        *sink.lock().unwrap() = Some(p.stats().active);
        drop(g);
        Ok(())
    };
    let Acquiring::Queued(_queued) = pool
        .begin_acquire_with(&key("a"), &opts(), deliver)
        .unwrap()
    else {
        panic!("the only connection is held")
    };
    held.release(true);
    assert_eq!(
        *seen.lock().unwrap(),
        Some(1),
        "delivered, with the pool usable"
    );
    assert_consistent(&pool);
}

#[derive(Debug, Clone)]
enum Op {
    Acquire(u8),
    Release(usize, bool),
    Drop(usize),
    Withdraw(usize),
    PeerClose(usize),
    Flush(u8),
    Advance(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..4).prop_map(Op::Acquire),
        3 => (any::<usize>(), any::<bool>()).prop_map(|(i, ok)| Op::Release(i, ok)),
        1 => any::<usize>().prop_map(Op::Drop),
        1 => any::<usize>().prop_map(Op::Withdraw),
        1 => any::<usize>().prop_map(Op::PeerClose),
        1 => (0u8..4).prop_map(Op::Flush),
        1 => (0u16..3000).prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any sequence of operations keeps the counts consistent, never
    /// strands a waiter that capacity could serve, and never exceeds a limit.
    #[test]
    fn capacity_always_reaches_waiters(ops in proptest::collection::vec(op(), 1..120),
                                       per_host in 1usize..4, global in 1usize..6) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
        rt.block_on(async move {
            let (pool, connector) = pool_with(PoolLimits {
                max_connections_per_host: Some(per_host),
                max_connections: Some(global),
                max_idle_per_host: 2,
                ..PoolLimits::default()
            });
            let mut loans: Vec<Pooled<Key, Fake>> = Vec::new();
            let mut queued: Vec<Queued<Key, Fake>> = Vec::new();
            let granted: Arc<Mutex<Vec<Pooled<Key, Fake>>>> = Arc::default();
            let permits: Arc<Mutex<Vec<ConnectSlot<Key, Fake>>>> = Arc::default();
            for op in ops {
                match op {
                    Op::Acquire(h) => {
                        let (sink, rooms) = (granted.clone(), permits.clone());
                        let deliver = move |g: Grant<Key, Fake>| match g {
                            Grant::Conn(p) => { sink.lock().unwrap().push(p.received()); Ok(()) }
                            Grant::Permit(slot) => { rooms.lock().unwrap().push(slot); Ok(()) }
                            other => Err(other),
                        };
                        match pool.begin_acquire_with(&key(&format!("h{h}")), &opts(), deliver).unwrap() {
                            Acquiring::Ready(p) => loans.push(p),
                            Acquiring::Connect(slot) => loans.push(slot.open().await.unwrap()),
                            Acquiring::Queued(q) => queued.push(q),
                        }
                    }
                    Op::Release(i, ok) if !loans.is_empty() => { let n = loans.len(); loans.swap_remove(i % n).release(ok) }
                    Op::Drop(i) if !loans.is_empty() => { let n = loans.len(); drop(loans.swap_remove(i % n)) }
                    Op::Withdraw(i) if !queued.is_empty() => { let n = queued.len(); drop(queued.swap_remove(i % n)) }
                    Op::PeerClose(i) => {
                        let peers = connector.peers.lock().unwrap().clone();
                        if !peers.is_empty() { peers[i % peers.len()].close() }
                    }
                    Op::Flush(h) => { let host = format!("h{h}"); pool.flush(|k| k.host() == host); }
                    Op::Advance(ms) => { advance(Duration::from_millis(u64::from(ms))).await; tokio::task::yield_now().await; }
                    _ => {}
                }
                loans.append(&mut granted.lock().unwrap());
                let opened: Vec<_> = permits.lock().unwrap().drain(..).collect();
                for slot in opened {
                    loans.push(slot.open().await.unwrap());
                }
                loans.append(&mut granted.lock().unwrap());
                assert_consistent(&pool);
                assert_no_stranded_waiter(&pool);
                let s = pool.stats();
                assert!(s.connections + s.connecting <= global);
                assert!(s.hosts.values().all(|h| h.connections + h.connecting <= per_host));
            }
        });
    }
}
