//! The per-key circuit breaker and the learned idle timeout, with the
//! events they report.

use super::*;

fn breaker(failures: u32, cooldown_ms: u64) -> PoolLimits {
    PoolLimits {
        circuit_breaker: Some(CircuitBreaker {
            failures,
            cooldown: Duration::from_millis(cooldown_ms),
        }),
        ..PoolLimits::default()
    }
}

/// Every event the pool reports, as `(key host, event)`.
fn record_events(pool: &Pool<Key, Fake>) -> Arc<Mutex<Vec<(String, PoolEvent)>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    pool.on_event(Arc::new(move |key: &Key, event| {
        sink.lock().unwrap().push((key.host().to_string(), event));
    }));
    seen
}

fn circuit_events(seen: &Mutex<Vec<(String, PoolEvent)>>) -> Vec<CircuitState> {
    let seen = seen.lock().unwrap();
    seen.iter()
        .filter_map(|(_, e)| match e {
            PoolEvent::Circuit(s) => Some(*s),
            _ => None,
        })
        .collect()
}

fn refuse(connector: &Connector, host: &str, refuse: bool) {
    let plan = if refuse { Plan::Refuse } else { Plan::Open };
    connector.plans.lock().unwrap().insert(host.into(), plan);
}

#[tokio::test(start_paused = true)]
async fn the_circuit_opens_after_failures_in_a_row_and_fails_at_once_for_that_key_only() {
    let (pool, connector) = pool_with(breaker(3, 1_000));
    let seen = record_events(&pool);
    refuse(&connector, "down", true);
    let k = key("down");
    for _ in 0..3 {
        let e = pool.acquire(&k, &opts()).await.unwrap_err();
        assert_eq!(e.code(), "ECONNREFUSED");
    }
    let e = pool.acquire(&k, &opts()).await.unwrap_err();
    assert_eq!(e.code(), "PCONN_CIRCUIT_OPEN");
    assert_eq!(
        e.cause_code(),
        Some("ECONNREFUSED"),
        "the last failure is the cause"
    );
    assert_eq!(
        pool.stats().hosts["tcp://down:1"].circuit,
        CircuitState::Open
    );
    assert!(
        pool.acquire(&key("up"), &opts()).await.is_ok(),
        "other keys unaffected"
    );
    assert_eq!(circuit_events(&seen), [CircuitState::Open]);
    assert_consistent(&pool);
}

#[tokio::test(start_paused = true)]
async fn waiters_queued_for_a_key_fail_when_its_circuit_opens() {
    let (pool, connector) = pool_with(PoolLimits {
        max_connections_per_host: Some(1),
        ..breaker(1, 1_000)
    });
    refuse(&connector, "down", true);
    let k = key("down");
    let Acquiring::Connect(slot) = pool.begin_acquire(&k, &opts()).unwrap() else {
        panic!("the first acquire connects");
    };
    let Acquiring::Queued(queued) = pool.begin_acquire(&k, &opts()).unwrap() else {
        panic!("the second waits at the limit");
    };
    assert_eq!(slot.open().await.unwrap_err().code(), "ECONNREFUSED");
    let e = queued.wait(&opts()).await.unwrap_err();
    assert_eq!(e.code(), "PCONN_CIRCUIT_OPEN");
    assert_eq!(pool.stats().pending, 0);
    assert_consistent(&pool);
}

#[tokio::test(start_paused = true)]
async fn after_the_cooldown_one_trial_goes_through_and_its_success_closes_the_circuit() {
    let (pool, connector) = pool_with(breaker(1, 1_000));
    let seen = record_events(&pool);
    refuse(&connector, "flaky", true);
    let k = key("flaky");
    assert!(pool.acquire(&k, &opts()).await.is_err());
    advance(Duration::from_millis(999)).await;
    assert_eq!(
        pool.acquire(&k, &opts()).await.unwrap_err().code(),
        "PCONN_CIRCUIT_OPEN"
    );
    advance(Duration::from_millis(1)).await;
    refuse(&connector, "flaky", false);
    let Acquiring::Connect(trial) = pool.begin_acquire(&k, &opts()).unwrap() else {
        panic!("the trial connects");
    };
    assert_eq!(
        pool.stats().hosts["tcp://flaky:1"].circuit,
        CircuitState::HalfOpen
    );
    let e = pool
        .begin_acquire(&k, &opts())
        .err()
        .expect("refused during the trial");
    assert_eq!(e.code(), "PCONN_CIRCUIT_OPEN");
    let conn = trial.open().await.unwrap();
    assert_eq!(
        pool.stats().hosts["tcp://flaky:1"].circuit,
        CircuitState::Closed
    );
    conn.release(true);
    assert!(pool.acquire(&k, &opts()).await.unwrap().reused());
    assert_eq!(
        circuit_events(&seen),
        [
            CircuitState::Open,
            CircuitState::HalfOpen,
            CircuitState::Closed
        ]
    );
    assert_consistent(&pool);
}

#[tokio::test(start_paused = true)]
async fn a_failed_trial_opens_the_circuit_again_and_an_abandoned_one_lets_another_try() {
    let (pool, connector) = pool_with(breaker(2, 500));
    refuse(&connector, "down", true);
    let k = key("down");
    for _ in 0..2 {
        assert!(pool.acquire(&k, &opts()).await.is_err());
    }
    advance(Duration::from_millis(500)).await;
    // A trial given up before it answers decides nothing.
    let Acquiring::Connect(abandoned) = pool.begin_acquire(&k, &opts()).unwrap() else {
        panic!("the trial connects");
    };
    drop(abandoned);
    assert_eq!(
        pool.acquire(&k, &opts()).await.unwrap_err().code(),
        "ECONNREFUSED"
    );
    assert_eq!(
        pool.stats().hosts["tcp://down:1"].circuit,
        CircuitState::Open
    );
    assert_eq!(
        pool.acquire(&k, &opts()).await.unwrap_err().code(),
        "PCONN_CIRCUIT_OPEN"
    );
    assert_consistent(&pool);
}

#[tokio::test(start_paused = true)]
async fn a_connect_begun_before_the_circuit_opened_and_given_up_later_does_not_free_the_trial() {
    let (pool, connector) = pool_with(breaker(1, 500));
    refuse(&connector, "down", true);
    let k = key("down");
    let Acquiring::Connect(failing) = pool.begin_acquire(&k, &opts()).unwrap() else {
        panic!("connects");
    };
    let Acquiring::Connect(stale) = pool.begin_acquire(&k, &opts()).unwrap() else {
        panic!("connects beside it");
    };
    assert!(failing.open().await.is_err(), "opens the circuit");
    advance(Duration::from_millis(500)).await;
    let Acquiring::Connect(_trial) = pool.begin_acquire(&k, &opts()).unwrap() else {
        panic!("the trial connects");
    };
    drop(stale);
    let e = pool
        .begin_acquire(&k, &opts())
        .err()
        .expect("still one trial at a time");
    assert_eq!(e.code(), "PCONN_CIRCUIT_OPEN");
    assert_consistent(&pool);
}

#[tokio::test(start_paused = true)]
async fn an_open_circuit_refuses_idle_connections_on_every_path() {
    let (pool, connector) = pool_with(breaker(1, 60_000));
    let k = key("a");
    let lent = pool.acquire(&k, &opts()).await.unwrap();
    refuse(&connector, "a", true);
    assert!(
        pool.acquire(&k, &opts()).await.is_err(),
        "opens the circuit"
    );
    lent.release(true);
    assert_eq!(pool.stats().idle, 1);
    assert!(
        pool.try_acquire_idle(&k).unwrap().is_none(),
        "request()'s fast path asks the circuit too"
    );
    assert_eq!(
        pool.acquire(&k, &opts()).await.unwrap_err().code(),
        "PCONN_CIRCUIT_OPEN"
    );
    assert_consistent(&pool);
}

#[tokio::test(start_paused = true)]
async fn an_older_trial_given_up_does_not_free_a_newer_one() {
    let (pool, connector) = pool_with(breaker(1, 500));
    refuse(&connector, "down", true);
    let k = key("down");
    let connect = |pool: &Pool<Key, Fake>| match pool.begin_acquire(&k, &opts()) {
        Ok(Acquiring::Connect(slot)) => slot,
        _ => panic!("connects"),
    };
    let failing = connect(&pool);
    let stale = connect(&pool);
    assert!(failing.open().await.is_err(), "opens the circuit");
    advance(Duration::from_millis(500)).await;
    let first_trial = connect(&pool);
    assert!(stale.open().await.is_err(), "opens it again meanwhile");
    advance(Duration::from_millis(500)).await;
    let _second_trial = connect(&pool);
    drop(first_trial);
    let e = pool
        .begin_acquire(&k, &opts())
        .err()
        .expect("the second trial is still the only one");
    assert_eq!(e.code(), "PCONN_CIRCUIT_OPEN");
    assert_consistent(&pool);
}

#[tokio::test(start_paused = true)]
async fn a_bad_setting_is_not_a_failure_of_the_server() {
    let (pool, connector) = pool_with(breaker(1, 1_000));
    connector
        .plans
        .lock()
        .unwrap()
        .insert("a".into(), Plan::BadSetting);
    for _ in 0..3 {
        let e = pool.acquire(&key("a"), &opts()).await.unwrap_err();
        assert_eq!(e.code(), "ERR_INVALID_ARG_VALUE");
    }
    assert_eq!(
        pool.stats().hosts["tcp://a:1"].circuit,
        CircuitState::Closed
    );
}

#[tokio::test(start_paused = true)]
async fn an_acquire_refused_during_the_trial_closes_no_idle_connection_to_make_room() {
    let (pool, connector) = pool_with(PoolLimits {
        max_connections: Some(2),
        ..breaker(1, 500)
    });
    let up = pool.acquire(&key("up"), &opts()).await.unwrap();
    up.release(true);
    refuse(&connector, "down", true);
    let k = key("down");
    assert!(pool.acquire(&k, &opts()).await.is_err());
    advance(Duration::from_millis(500)).await;
    let Acquiring::Connect(_trial) = pool.begin_acquire(&k, &opts()).unwrap() else {
        panic!("the trial connects");
    };
    // At maxConnections, a connect would evict "up"'s idle connection.
    let e = pool
        .begin_acquire(&k, &opts())
        .err()
        .expect("refused during the trial");
    assert_eq!(e.code(), "PCONN_CIRCUIT_OPEN");
    assert_eq!(pool.stats().hosts["tcp://up:1"].idle, 1, "nothing evicted");
    assert_consistent(&pool);
}

#[tokio::test(start_paused = true)]
async fn without_a_breaker_failures_never_refuse() {
    let (pool, connector) = pool_with(PoolLimits::default());
    refuse(&connector, "down", true);
    for _ in 0..10 {
        let e = pool.acquire(&key("down"), &opts()).await.unwrap_err();
        assert_eq!(e.code(), "ECONNREFUSED");
    }
    assert_eq!(
        pool.stats().hosts["tcp://down:1"].circuit,
        CircuitState::Closed
    );
}

/// Park a connection of `k` and let its peer close it `after` that.
async fn closed_by_peer_after(
    pool: &Pool<Key, Fake>,
    connector: &Connector,
    k: &Key,
    after: Duration,
) {
    pool.acquire(k, &opts()).await.unwrap().release(true);
    advance(after).await;
    let peer = connector.peers.lock().unwrap().last().unwrap().clone();
    peer.close();
    tokio::task::yield_now().await;
}

#[tokio::test(start_paused = true)]
async fn a_server_that_closes_idle_connections_early_is_learned_and_beaten() {
    let (pool, connector) = pool_with(PoolLimits::default());
    let seen = record_events(&pool);
    let k = key("a");
    closed_by_peer_after(&pool, &connector, &k, Duration::from_millis(800)).await;
    let learned = pool.stats().hosts["tcp://a:1"].learned_idle_timeout;
    assert_eq!(learned, Some(Duration::from_millis(800)));
    assert!(seen
        .lock()
        .unwrap()
        .iter()
        .any(|(_, e)| *e == PoolEvent::IdleTimeoutLearned(Duration::from_millis(800))));
    // The next parked connection retires at half of it (800 ms - 500 ms is sooner, but too soon).
    pool.acquire(&k, &opts()).await.unwrap().release(true);
    advance(Duration::from_millis(399)).await;
    tokio::task::yield_now().await;
    assert_eq!(pool.stats().idle, 1);
    advance(Duration::from_millis(2)).await;
    tokio::task::yield_now().await;
    assert_eq!(
        pool.stats().idle,
        0,
        "retired before the server would close it"
    );
    assert_eq!(pool.stats().counters.closed_by.idle, 1);
    assert_consistent(&pool);
}

#[tokio::test(start_paused = true)]
async fn learning_can_be_turned_off_and_only_closes_of_idle_connections_teach() {
    let (pool, connector) = pool_with(PoolLimits {
        learn_idle_timeout: false,
        ..PoolLimits::default()
    });
    let k = key("a");
    closed_by_peer_after(&pool, &connector, &k, Duration::from_millis(800)).await;
    assert_eq!(pool.stats().hosts["tcp://a:1"].learned_idle_timeout, None);
    pool.acquire(&k, &opts()).await.unwrap().release(true);
    advance(Duration::from_millis(3_000)).await;
    tokio::task::yield_now().await;
    assert_eq!(pool.stats().idle, 1, "the configured idle timeout holds");

    let (pool, connector) = pool_with(PoolLimits::default());
    let conn = pool.acquire(&k, &opts()).await.unwrap();
    advance(Duration::from_millis(800)).await;
    connector.peers.lock().unwrap()[0].close();
    conn.release(true);
    tokio::task::yield_now().await;
    assert_eq!(
        pool.stats().hosts["tcp://a:1"].learned_idle_timeout,
        None,
        "a close while lent teaches nothing of the idle timeout"
    );
}

#[tokio::test(start_paused = true)]
async fn a_server_restart_closing_every_idle_connection_at_once_teaches_nothing() {
    let (pool, connector) = pool_with(PoolLimits::default());
    let k = key("a");
    // Three connections parked a second apart: idle 3 s, 2 s and 1 s.
    let lent = lend(&pool, &k, 3).await;
    for conn in lent {
        conn.release(true);
        advance(Duration::from_secs(1)).await;
    }
    for peer in connector.peers.lock().unwrap().iter() {
        peer.close();
    }
    tokio::task::yield_now().await;
    let host = &pool.stats().hosts["tcp://a:1"];
    assert_eq!(host.idle, 0, "all three closed");
    assert_eq!(host.learned_idle_timeout, None);
    assert_consistent(&pool);
}

/// `count` connections of `k` on loan at once.
async fn lend(pool: &Pool<Key, Fake>, k: &Key, count: usize) -> Vec<Pooled<Key, Fake>> {
    let mut lent = Vec::new();
    for _ in 0..count {
        lent.push(pool.acquire(k, &opts()).await.unwrap());
    }
    lent
}
