//! Closing: shutdown of a pool and of one handle of a shared pool.

use super::*;

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
async fn shutdown_reports_its_own_closes() {
    let (pool, _) = pool_with(PoolLimits::default());
    let closes = Arc::new(Mutex::new(Vec::new()));
    let seen = closes.clone();
    pool.on_event(Arc::new(move |_: &Key, event| {
        if let PoolEvent::Closed { id, reason } = event {
            seen.lock().unwrap().push((id, reason))
        }
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
