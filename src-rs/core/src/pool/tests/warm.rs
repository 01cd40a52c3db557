//! Pre-warming: `warm` and the top-ups of `min_idle_per_host`.

use super::*;

/// Let spawned tasks (top-ups, connects) run to their next wait.
async fn settle_tasks() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn warm_opens_until_count_are_idle_within_the_limits() {
    let (pool, connector) = pool_with(PoolLimits {
        max_connections_per_host: Some(3),
        ..PoolLimits::default()
    });
    let k = key("a");
    assert_eq!(
        pool.warm(&k, 5).await.unwrap(),
        3,
        "the per-key limit holds"
    );
    assert_eq!(connector.opened.load(Ordering::SeqCst), 3);
    assert_eq!(
        pool.warm(&k, 2).await.unwrap(),
        3,
        "enough idle: nothing opened"
    );
    assert_eq!(connector.opened.load(Ordering::SeqCst), 3);
    let c = pool.acquire(&k, &opts()).await.unwrap();
    assert!(c.reused());
    assert_consistent(&pool);
}

#[tokio::test(start_paused = true)]
async fn warm_fails_only_when_nothing_is_idle() {
    let (pool, connector) = pool_with(PoolLimits::default());
    connector
        .plans
        .lock()
        .unwrap()
        .insert("down".into(), Plan::Refuse);
    let e = pool.warm(&key("down"), 2).await.unwrap_err();
    assert_eq!(e.code(), "ECONNREFUSED");
    assert_eq!(pool.stats().connecting, 0, "the room went back");
    assert_consistent(&pool);
}

#[tokio::test(start_paused = true)]
async fn min_idle_tops_a_key_up_after_its_first_connect_and_after_closes() {
    let (pool, connector) = pool_with(PoolLimits {
        min_idle_per_host: 2,
        ..PoolLimits::default()
    });
    let k = key("a");
    pool.acquire(&k, &opts()).await.unwrap().release(true);
    settle_tasks().await;
    assert_eq!(pool.stats().idle, 2);
    assert_eq!(connector.opened.load(Ordering::SeqCst), 2);
    let peers = connector.peers.lock().unwrap().clone();
    for peer in &peers {
        peer.close();
    }
    settle_tasks().await;
    assert_eq!(pool.stats().idle, 2, "replaced");
    assert_eq!(connector.opened.load(Ordering::SeqCst), 4);
    // One closes while the top-up for another is under way: both replaced.
    let peers = connector.peers.lock().unwrap()[2..].to_vec();
    peers[0].close();
    tokio::task::yield_now().await;
    peers[1].close();
    settle_tasks().await;
    assert_eq!(pool.stats().idle, 2, "replaced while topping up");
    assert_eq!(connector.opened.load(Ordering::SeqCst), 6);
    // The idle timeout closes them: replaced again.
    advance(Duration::from_millis(4_001)).await;
    settle_tasks().await;
    assert_eq!(pool.stats().idle, 2);
    assert_eq!(pool.stats().counters.closed_by.idle, 2);
    assert_consistent(&pool);
}

#[tokio::test(start_paused = true)]
async fn min_idle_replaces_an_idle_connection_taken_by_an_acquire() {
    let (pool, connector) = pool_with(PoolLimits {
        min_idle_per_host: 2,
        max_connections_per_host: Some(3),
        ..PoolLimits::default()
    });
    let k = key("a");
    pool.acquire(&k, &opts()).await.unwrap().release(true);
    settle_tasks().await;
    let held = pool.acquire(&k, &opts()).await.unwrap();
    assert!(held.reused());
    settle_tasks().await;
    assert_eq!(pool.stats().idle, 2, "two idle beside the one on loan");
    assert_eq!(connector.opened.load(Ordering::SeqCst), 3);
    let second = pool.acquire(&k, &opts()).await.unwrap();
    settle_tasks().await;
    assert_eq!(pool.stats().idle, 1, "the per-key limit holds");
    assert_eq!(connector.opened.load(Ordering::SeqCst), 3);
    drop((held, second));
    assert_consistent(&pool);
}

#[tokio::test(start_paused = true)]
async fn min_idle_leaves_a_key_with_an_open_circuit_alone() {
    let (pool, connector) = pool_with(PoolLimits {
        min_idle_per_host: 2,
        circuit_breaker: Some(CircuitBreaker {
            failures: 1,
            cooldown: Duration::from_secs(60),
        }),
        ..PoolLimits::default()
    });
    let k = key("a");
    let conn = pool.acquire(&k, &opts()).await.unwrap();
    connector
        .plans
        .lock()
        .unwrap()
        .insert("a".into(), Plan::Refuse);
    settle_tasks().await;
    // The top-up's connect failed and opened the circuit.
    assert_eq!(pool.stats().hosts["tcp://a:1"].circuit, CircuitState::Open);
    let opened = connector.opened.load(Ordering::SeqCst);
    conn.release(true);
    connector.peers.lock().unwrap()[0].close();
    settle_tasks().await;
    assert_eq!(
        connector.opened.load(Ordering::SeqCst),
        opened,
        "no top-up while open"
    );
    assert_consistent(&pool);
}

#[tokio::test(start_paused = true)]
async fn min_idle_above_max_idle_keeps_max_idle_and_opens_nothing_more() {
    let (pool, connector) = pool_with(PoolLimits {
        min_idle_per_host: 4,
        max_idle_per_host: 2,
        ..PoolLimits::default()
    });
    let k = key("a");
    pool.acquire(&k, &opts()).await.unwrap().release(true);
    for _ in 0..10 {
        settle_tasks().await;
        advance(Duration::from_millis(100)).await;
    }
    assert_eq!(pool.stats().idle, 2);
    assert_eq!(
        connector.opened.load(Ordering::SeqCst),
        2,
        "no connection opened only to be closed at release"
    );
    assert_eq!(pool.warm(&k, 10).await.unwrap(), 2, "warm keeps to it too");
    assert_eq!(connector.opened.load(Ordering::SeqCst), 2);
    assert_consistent(&pool);
}
