//! Idle connections: reuse order, liveness at checkout and while parked,
//! idle and lifetime deadlines, the idle cap, flush, quiet keys.

use super::*;

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
