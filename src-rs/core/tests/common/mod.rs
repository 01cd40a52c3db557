//! Real loopback servers for the integration tests, counting what they saw.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pconn_core::{Client, Key, PoolConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// What a test can tell the server to do to its open connections.
#[derive(Clone)]
pub enum Cmd {
    Close,
    Send(Vec<u8>),
}

/// An echo server that counts connections opened and closed.
pub struct Server {
    pub port: u16,
    accepted: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
    controls: Arc<Mutex<Vec<mpsc::UnboundedSender<Cmd>>>>,
}

impl Server {
    pub async fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = Server {
            port,
            accepted: Arc::default(),
            closed: Arc::default(),
            controls: Arc::default(),
        };
        let (accepted, closed, controls) = (
            server.accepted.clone(),
            server.closed.clone(),
            server.controls.clone(),
        );
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                let (tx, mut rx) = mpsc::unbounded_channel();
                controls.lock().unwrap().push(tx);
                let closed = closed.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    loop {
                        tokio::select! {
                            r = sock.read(&mut buf) => match r {
                                Ok(0) | Err(_) => break,
                                Ok(n) => if sock.write_all(&buf[..n]).await.is_err() { break },
                            },
                            cmd = rx.recv() => match cmd {
                                Some(Cmd::Send(bytes)) => { let _ = sock.write_all(&bytes).await; }
                                Some(Cmd::Close) | None => break,
                            },
                        }
                    }
                    closed.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        server
    }

    pub fn key(&self) -> Key {
        Key::parse_url(&format!("tcp://127.0.0.1:{}", self.port)).unwrap()
    }
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
    pub fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }
    /// Apply `cmd` to every connection the server has accepted.
    pub fn tell_all(&self, cmd: Cmd) {
        for tx in self.controls.lock().unwrap().iter() {
            let _ = tx.send(cmd.clone());
        }
    }
}

pub fn pool(config: PoolConfig) -> Client {
    Client::new(config, &tokio::runtime::Handle::current()).unwrap()
}

/// Poll `cond` for up to two seconds.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..400 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for: {what}");
}
