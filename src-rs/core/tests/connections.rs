//! The pool over real sockets: what a server on 127.0.0.1 sees when the
//! pool reuses, closes, flushes and shuts down connections, and what the
//! idle watcher notices. The pool's rules themselves are tested in
//! `src/pool/tests.rs` with a fake connection and a paused clock.

mod common;

use std::time::Duration;

use common::{eventually, pool, Cmd, Server};
use pconn_core::{AcquireOptions, PoolConfig, PoolLimits};

fn opts() -> AcquireOptions {
    AcquireOptions::default()
}

fn limits(limits: PoolLimits) -> PoolConfig {
    PoolConfig {
        limits,
        ..PoolConfig::default()
    }
}

#[tokio::test]
async fn released_connection_is_reused_lifo() {
    let server = Server::start().await;
    let pool = pool(PoolConfig::default());
    let key = server.key();
    let a = pool.acquire(&key, &opts()).await.unwrap();
    let b = pool.acquire(&key, &opts()).await.unwrap();
    let (a_id, b_id) = (a.id(), b.id());
    a.release(true);
    b.release(true);
    let mut c = pool.acquire(&key, &opts()).await.unwrap();
    assert!(c.reused());
    assert_eq!(c.id(), b_id, "LIFO hands out the last released");
    assert_ne!(a_id, b_id);
    c.connection().io().write_all(b"ping").await.unwrap();
    assert_eq!(
        c.connection().io().read_chunk().await.unwrap().unwrap(),
        b"ping"
    );
    c.release(true);
    assert_eq!(server.accepted(), 2);
    let stats = pool.stats();
    assert_eq!(
        (
            stats.idle,
            stats.active,
            stats.counters.created,
            stats.counters.reused
        ),
        (2, 0, 2, 1)
    );
}

#[tokio::test]
async fn idle_connection_closed_by_server_is_dropped_by_the_watcher() {
    let server = Server::start().await;
    let pool = pool(PoolConfig::default());
    let key = server.key();
    pool.acquire(&key, &opts()).await.unwrap().release(true);
    assert_eq!(pool.stats().idle, 1);
    server.tell_all(Cmd::Close);
    eventually("the watcher drops the dead idle connection", || {
        pool.stats().idle == 0
    })
    .await;
    assert_eq!(pool.stats().counters.closed_by.peer, 1);
    let c = pool.acquire(&key, &opts()).await.unwrap();
    assert!(!c.reused());
    assert_eq!(server.accepted(), 2);
}

#[tokio::test]
async fn stray_bytes_on_an_idle_connection_close_it() {
    let server = Server::start().await;
    let pool = pool(PoolConfig::default());
    let key = server.key();
    pool.acquire(&key, &opts()).await.unwrap().release(true);
    server.tell_all(Cmd::Send(b"surprise".to_vec()));
    eventually("stray bytes close the idle connection", || {
        pool.stats().idle == 0
    })
    .await;
    assert_eq!(pool.stats().counters.closed_by.broken, 1);
    eventually("server sees the close", || server.closed() == 1).await;
}

#[tokio::test]
async fn release_with_keep_alive_false_closes() {
    let server = Server::start().await;
    let pool = pool(PoolConfig::default());
    pool.acquire(&server.key(), &opts())
        .await
        .unwrap()
        .release(false);
    let s = pool.stats();
    assert_eq!(
        (s.idle, s.connections, s.counters.closed_by.broken),
        (0, 0, 1)
    );
    eventually("server sees the close", || server.closed() == 1).await;
}

#[tokio::test]
async fn release_with_unread_bytes_closes() {
    let server = Server::start().await;
    let pool = pool(PoolConfig::default());
    let mut c = pool.acquire(&server.key(), &opts()).await.unwrap();
    c.connection().io().write_all(b"echo me").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.release(true);
    assert_eq!(pool.stats().idle, 0);
    eventually("server sees the close", || server.closed() == 1).await;
}

#[tokio::test]
async fn flush_for_host_closes_idle_only() {
    let server = Server::start().await;
    let pool = pool(PoolConfig::default());
    let key = server.key();
    let a = pool.acquire(&key, &opts()).await.unwrap();
    let b = pool.acquire(&key, &opts()).await.unwrap();
    a.release(true);
    assert_eq!(pool.flush_for_host("other.example").unwrap(), 0);
    assert_eq!(
        pool.flush_for_host("127.1").unwrap(),
        1,
        "normalised as keys are"
    );
    let s = pool.stats();
    assert_eq!((s.idle, s.active, s.counters.closed_by.flush), (0, 1, 1));
    eventually("server sees one close", || server.closed() == 1).await;
    b.release(true);
}

#[tokio::test]
async fn global_limit_evicts_idle_of_other_keys() {
    let a = Server::start().await;
    let b = Server::start().await;
    let pool = pool(limits(PoolLimits {
        max_connections: Some(1),
        ..PoolLimits::default()
    }));
    pool.acquire(&a.key(), &opts()).await.unwrap().release(true);
    let c = pool.acquire(&b.key(), &opts()).await.unwrap();
    assert_eq!(pool.stats().counters.closed_by.evicted, 1);
    c.release(true);
    eventually("a's connection closed", || a.closed() == 1).await;
}

#[tokio::test]
async fn connect_refused_frees_the_slot() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let pool = pool(limits(PoolLimits {
        max_connections_per_host: Some(1),
        ..PoolLimits::default()
    }));
    let key = pconn_core::Key::parse_url(&format!("tcp://127.0.0.1:{port}")).unwrap();
    for _ in 0..3 {
        assert_eq!(
            pool.acquire(&key, &opts()).await.unwrap_err().code(),
            "ECONNREFUSED"
        );
    }
    let s = pool.stats();
    assert_eq!((s.connecting, s.connections, s.pending), (0, 0, 0));
}

#[tokio::test]
async fn shutdown_rejects_waiters_and_closes_on_release() {
    let server = Server::start().await;
    let pool = pool(limits(PoolLimits {
        max_connections_per_host: Some(1),
        ..PoolLimits::default()
    }));
    let key = server.key();
    let held = pool.acquire(&key, &opts()).await.unwrap();
    let p2 = pool.clone();
    let k2 = key.clone();
    let waiter = tokio::spawn(async move {
        p2.acquire(&k2, &AcquireOptions::default())
            .await
            .map(|_| ())
    });
    eventually("waiter queued", || pool.stats().pending == 1).await;
    let p3 = pool.clone();
    let shutdown = tokio::spawn(async move { p3.shutdown().await });
    assert_eq!(
        waiter.await.unwrap().unwrap_err().code(),
        "PCONN_POOL_CLOSED"
    );
    assert_eq!(
        pool.acquire(&key, &opts()).await.unwrap_err().code(),
        "PCONN_POOL_CLOSED"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        !shutdown.is_finished(),
        "an active connection keeps shutdown pending"
    );
    held.release(true);
    shutdown.await.unwrap();
    let s = pool.stats();
    assert_eq!((s.connections, s.connecting), (0, 0));
    assert_eq!(pool.stats().counters.closed_by.shutdown, 1);
    eventually("server sees the close", || server.closed() == 1).await;
}

#[tokio::test]
async fn dropped_without_release_closes_and_frees_capacity() {
    let server = Server::start().await;
    let pool = pool(limits(PoolLimits {
        max_connections_per_host: Some(1),
        ..PoolLimits::default()
    }));
    let key = server.key();
    drop(pool.acquire(&key, &opts()).await.unwrap());
    let c = pool.acquire(&key, &opts()).await.unwrap();
    assert!(!c.reused());
    assert_eq!(pool.stats().counters.closed_by.broken, 1);
}
