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

use super::*;
use crate::config::Scheduling;

/// What the fake peer of a connection did.
struct Peer {
    /// 0 alive, 1 closed, 2 sent unexpected bytes.
    state: AtomicU8,
    closed_by_us: AtomicBool,
    watch: Mutex<Option<IdleWatch>>,
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
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.peer.closed_by_us.store(true, Ordering::SeqCst);
    }
}

#[derive(Clone, Copy)]
enum Plan {
    Open,
    Refuse,
    Hang,
}

#[derive(Default)]
struct Connector {
    plans: Mutex<HashMap<String, Plan>>,
    opened: AtomicUsize,
    peers: Mutex<Vec<Arc<Peer>>>,
}

impl Connect<Fake> for Arc<Connector> {
    fn connect<'a>(&'a self, key: &'a Key, watch: IdleWatch) -> BoxFuture<'a, Result<Fake>> {
        Box::pin(async move {
            let plan = self
                .plans
                .lock()
                .unwrap()
                .get(key.host())
                .copied()
                .unwrap_or(Plan::Open);
            match plan {
                Plan::Refuse => Err(Error::Io(std::io::ErrorKind::ConnectionRefused.into())),
                Plan::Hang => std::future::pending().await,
                Plan::Open => {
                    self.opened.fetch_add(1, Ordering::SeqCst);
                    let peer = Arc::new(Peer {
                        state: AtomicU8::new(0),
                        closed_by_us: AtomicBool::new(false),
                        watch: Mutex::new(Some(watch)),
                        during_check: Mutex::default(),
                    });
                    self.peers.lock().unwrap().push(peer.clone());
                    Ok(Fake {
                        peer,
                        used: false,
                        hint: None,
                    })
                }
            }
        })
    }
}

fn pool_with(config: PoolConfig) -> (Pool<Fake>, Arc<Connector>) {
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
fn assert_consistent(pool: &Pool<Fake>) {
    let st = pool.inner.lock();
    let (mut idle, mut active, mut connecting, mut pending) = (0, 0, 0, 0);
    for host in st.hosts.values() {
        idle += host.idle_count();
        active += host.active;
        connecting += host.connecting;
        pending += host.waiters.live();
        assert!(!host.is_unused(), "an unused key's entry is removed");
    }
    assert_eq!(
        (idle, active, connecting, pending),
        (st.idle, st.active, st.connecting, st.pending)
    );
    assert_eq!(st.total, st.idle + st.active + st.connecting);
}

/// No waiter is left queued while it could be served.
fn assert_no_stranded_waiter(pool: &Pool<Fake>) {
    let st = pool.inner.lock();
    let cfg = &pool.inner.config;
    let global_full = cfg.max_connections.is_some_and(|m| st.total >= m);
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
            .is_some_and(|m| host.total() >= m);
        let others_idle = st.hosts.iter().any(|(k, h)| k != key && !h.idle.is_empty());
        assert!(
            per_host_full || (global_full && !others_idle),
            "{key}: a waiter is stranded (per-host full {per_host_full}, global full {global_full}, other idle {others_idle})"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn release_parks_and_the_next_acquire_reuses_lifo() {
    let (pool, connector) = pool_with(PoolConfig::default());
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
    let (pool, _) = pool_with(PoolConfig {
        scheduling: Scheduling::Fifo,
        ..PoolConfig::default()
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
    let (pool, connector) = pool_with(PoolConfig::default());
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
    let (pool, connector) = pool_with(PoolConfig::default());
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
    let (pool, _) = pool_with(PoolConfig::default());
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
    let (pool, _) = pool_with(PoolConfig::default());
    let mut c = pool.acquire(&key("a"), &opts()).await.unwrap();
    c.connection().hint = Some(Duration::from_secs(1));
    c.release(true);
    advance(Duration::from_millis(1_001)).await;
    tokio::task::yield_now().await;
    assert_eq!(pool.stats().counters.closed_by.idle, 1);
}

#[tokio::test(start_paused = true)]
async fn max_lifetime_retires_with_at_most_ten_percent_jitter() {
    let (pool, _) = pool_with(PoolConfig {
        max_lifetime: Duration::from_secs(20),
        idle_timeout: Duration::from_secs(3600),
        ..PoolConfig::default()
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
    let (pool, _) = pool_with(PoolConfig {
        max_uses: 2,
        ..PoolConfig::default()
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
    let (pool, _) = pool_with(PoolConfig {
        max_idle_per_host: 1,
        ..PoolConfig::default()
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
    let (pool, _) = pool_with(PoolConfig {
        max_connections_per_host: Some(2),
        ..PoolConfig::default()
    });
    let k = key("a");
    let held = [
        pool.acquire(&k, &opts()).await.unwrap(),
        pool.acquire(&k, &opts()).await.unwrap(),
    ];
    let order = Arc::new(Mutex::new(Vec::new()));
    let handed: Arc<Mutex<Vec<Pooled<Fake>>>> = Arc::default();
    let mut queued = Vec::new();
    for i in 0..50 {
        let (order, handed) = (order.clone(), handed.clone());
        // Called under the pool's lock: record and keep, nothing more.
        let deliver = move |g: Grant<Fake>| match g {
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
    let (pool, connector) = pool_with(PoolConfig {
        max_connections: Some(1),
        ..PoolConfig::default()
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
    let (pool, connector) = pool_with(PoolConfig {
        max_connections: Some(1),
        ..PoolConfig::default()
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
    let (pool, connector) = pool_with(PoolConfig {
        max_connections: Some(1),
        ..PoolConfig::default()
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
    let (pool, _) = pool_with(PoolConfig {
        max_connections_per_host: Some(1),
        ..PoolConfig::default()
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
    let (pool, _) = pool_with(PoolConfig::default());
    let a1 = Key::parse_url("tcp://a:1").unwrap();
    let a2 = Key::parse_url("tls://a:2").unwrap();
    pool.acquire(&a1, &opts()).await.unwrap().release(true);
    pool.acquire(&a2, &opts()).await.unwrap().release(true);
    pool.acquire(&key("b"), &opts())
        .await
        .unwrap()
        .release(true);
    let held = pool.acquire(&a1, &opts()).await.unwrap();
    assert_eq!(pool.flush_for_host("A").unwrap(), 1);
    assert_eq!(pool.flush_for_host("nobody").unwrap(), 0);
    let s = pool.stats();
    assert_eq!((s.idle, s.active, s.counters.closed_by.flush), (1, 1, 1));
    drop(held);
    assert_consistent(&pool);
}

#[tokio::test(start_paused = true)]
async fn shutdown_cancels_connects_in_progress_at_once() {
    let (pool, connector) = pool_with(PoolConfig::default());
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
    let (pool, connector) = pool_with(PoolConfig {
        max_connections_per_host: Some(1),
        ..PoolConfig::default()
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
    let (pool, connector) = pool_with(PoolConfig {
        max_connections_per_host: Some(1),
        ..PoolConfig::default()
    });
    let k = key("a");
    pool.acquire(&k, &opts()).await.unwrap().release(true);
    let peer = connector.peers.lock().unwrap()[0].clone();
    // While the pool checks the parked connection, an acquire finds no idle
    // connection and no room (the one connection counts): it queues.
    let handed: Arc<Mutex<Option<Pooled<Fake>>>> = Arc::default();
    let queued: Arc<Mutex<Vec<Queued<Fake>>>> = Arc::default();
    let (p, into, waiting) = (pool.clone(), handed.clone(), queued.clone());
    *peer.during_check.lock().unwrap() = Some(Box::new(move || {
        let deliver = move |g: Grant<Fake>| match g {
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
    let (pool, connector) = pool_with(PoolConfig {
        max_connections_per_host: Some(2),
        ..PoolConfig::default()
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
    let (pool, _) = pool_with(PoolConfig {
        max_connections_per_host: Some(1),
        ..PoolConfig::default()
    });
    let k = key("a");
    let held = pool.acquire(&k, &opts()).await.unwrap();
    // A waiter whose thread is gone: it refuses what it is handed.
    let refusing = pool
        .begin_acquire_with(&k, &opts(), |g: Grant<Fake>| Err(g))
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
    let (pool, _) = pool_with(PoolConfig::default());
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
    let (pool, _) = pool_with(PoolConfig {
        max_connections_per_host: Some(1),
        acquire_timeout: Duration::from_millis(500),
        ..PoolConfig::default()
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
    let (pool, _) = pool_with(PoolConfig {
        max_connections_per_host: Some(1),
        ..PoolConfig::default()
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
    let (pool, _) = pool_with(PoolConfig {
        max_idle_per_host: 0,
        ..PoolConfig::default()
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
    let (one, connector) = pool_with(PoolConfig {
        max_connections_per_host: Some(1),
        ..PoolConfig::default()
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
            let (pool, connector) = pool_with(PoolConfig {
                max_connections_per_host: Some(per_host),
                max_connections: Some(global),
                max_idle_per_host: 2,
                ..PoolConfig::default()
            });
            let mut loans: Vec<Pooled<Fake>> = Vec::new();
            let mut queued: Vec<Queued<Fake>> = Vec::new();
            let granted: Arc<Mutex<Vec<Pooled<Fake>>>> = Arc::default();
            let permits: Arc<Mutex<Vec<ConnectSlot<Fake>>>> = Arc::default();
            for op in ops {
                match op {
                    Op::Acquire(h) => {
                        let (sink, rooms) = (granted.clone(), permits.clone());
                        let deliver = move |g: Grant<Fake>| match g {
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
                    Op::Flush(h) => { pool.flush_for_host(&format!("h{h}")).unwrap(); }
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
