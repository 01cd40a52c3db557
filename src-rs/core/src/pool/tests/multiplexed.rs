//! Multiplexed connections: streams up to the peer's limit, a new
//! connection only when every one is full, going away, one connect at a
//! time for a key that may multiplex.

use super::*;

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
