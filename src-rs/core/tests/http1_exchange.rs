//! The HTTP/1.1 exchange against raw servers that answer at awkward moments.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pconn_core::exchange::{self, Prepared, RequestOptions};
use pconn_core::http1::{RequestBody, RequestHead};
use pconn_core::{AcquireOptions, Client, Key, PoolConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A server that answers every request head with a small 200 at once and
/// counts connections.
async fn quick_server() -> (Key, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let key = Key::parse_url(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                loop {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if sock.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (key, accepted)
}

fn get(key: &Key) -> Prepared {
    let head = RequestHead::new("GET", "/", Vec::new()).unwrap();
    Prepared::new(key, head, RequestBody::Empty, &RequestOptions::default()).unwrap()
}

/// Regression: a request written ahead (`start_now`) whose response is
/// already waiting when the exchange starts is not an "early response"
/// (which would make the connection unusable for the next request).
#[tokio::test]
async fn a_response_waiting_after_a_request_written_ahead_keeps_the_connection() {
    let (key, accepted) = quick_server().await;
    let pool = Client::new(PoolConfig::default(), &tokio::runtime::Handle::current()).unwrap();
    pool.acquire(&key, &AcquireOptions::default())
        .await
        .unwrap()
        .release(true);
    for _ in 0..20 {
        let prepared = get(&key);
        let first =
            exchange::start_now(&pool, &key, &prepared).expect("an idle connection to write on");
        // Let the answer arrive before the exchange looks for it.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let mut response = exchange::send_prepared(
            &pool,
            &key,
            prepared,
            Some(first),
            &RequestOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(response.head.status, 200);
        assert_eq!(response.body.next_chunk_ready(), b"ok");
        assert!(response.body.is_complete());
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "every request reused the one connection"
    );
    assert_eq!(pool.stats().counters.closed, 0);
}
