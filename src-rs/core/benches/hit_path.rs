//! The pool's hit path: acquire an idle connection and release it, with one
//! key and with 1,000 keys (each its own listener), in Rust alone.
//!
//! Two checkouts are measured: the exact one `acquire()` makes (one
//! non-blocking `recv(MSG_PEEK)` at the socket, which the seed semantics
//! require), and the one `request()` makes, which trusts the event loop's
//! readiness (no system call) because a request that meets a closed
//! connection is retried on a fresh one.

use criterion::{criterion_group, criterion_main, Criterion};
use pconn_core::{AcquireOptions, Acquiring, Client, Key, PoolConfig, PoolLimits};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;

/// `count` listeners that accept and hold connections; returns their keys.
fn listeners(rt: &Runtime, count: usize) -> Vec<Key> {
    rt.block_on(async {
        let mut keys = Vec::with_capacity(count);
        for _ in 0..count {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let port = listener.local_addr().expect("addr").port();
            keys.push(Key::parse_url(&format!("tcp://127.0.0.1:{port}")).expect("key"));
            tokio::spawn(async move {
                let mut held = Vec::new();
                while let Ok((s, _)) = listener.accept().await {
                    held.push(s);
                }
            });
        }
        keys
    })
}

fn hit_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let keys = listeners(&rt, 1000);
    // Long idle timeout: the 1,000 parked connections must outlive the whole run.
    let config = PoolConfig {
        limits: PoolLimits {
            idle_timeout: std::time::Duration::from_secs(3600),
            ..PoolLimits::default()
        },
        ..PoolConfig::default()
    };
    let pool = Client::new(config, rt.handle()).expect("pool");
    let exact = AcquireOptions::default();
    rt.block_on(async {
        for key in &keys {
            pool.acquire(key, &exact)
                .await
                .expect("connect")
                .release(true);
        }
    });
    let trusting = AcquireOptions {
        retry_on_stale: true,
        ..AcquireOptions::default()
    };
    let mut group = c.benchmark_group("acquire+release (idle hit)");
    for (checkout, opts) in [("exact peek", &exact), ("readiness only", &trusting)] {
        for (keys_in_use, n) in [("1 key", 1usize), ("1000 keys", 1000)] {
            let mut i = 0usize;
            group.bench_function(format!("{checkout}, {keys_in_use}"), |b| {
                b.iter(|| {
                    let key = &keys[i % n];
                    i += 1;
                    match pool.begin_acquire(key, opts) {
                        Ok(Acquiring::Ready(conn)) => conn.release(true),
                        _ => panic!("expected an idle connection"),
                    }
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, hit_path);
criterion_main!(benches);
