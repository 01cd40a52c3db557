//! Waiters and capacity: queue order, limits, eviction, freed room
//! passed on, timeouts and aborts, grants delivered after the lock.

use super::*;

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
