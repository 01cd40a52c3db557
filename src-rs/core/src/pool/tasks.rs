//! The pool's background tasks: the reaper and the per-connection watcher.
//! Both hold only weak references, so a dropped pool ends them.

use std::sync::{Arc, Weak};

use tokio::sync::Notify;

use super::PoolInner;
use crate::key::Key;
use crate::socket::Socket;

/// Closes idle connections at their deadlines. Sleeps until the nearest
/// deadline; a release with a nearer one wakes it early.
pub(crate) async fn reap(pool: Weak<PoolInner>, wake: Arc<Notify>) {
    loop {
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let next = match pool.upgrade() {
            Some(inner) => inner.reap(tokio::time::Instant::now().into_std()),
            None => return,
        };
        match next {
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at.into()) => {}
                    _ = notified => {}
                }
            }
            None => notified.await,
        }
    }
}

/// Watches one connection for its whole life. While it is parked, any
/// readiness (FIN, RST, stray bytes, TLS records) triggers a check, so a
/// server that closes an idle connection has it dropped at once, not at the
/// next acquire. While it is in use, the watcher sleeps until it is parked
/// again; taking a parked connection out does not wake it.
pub(crate) async fn watch_idle(socket: Arc<Socket>, pool: Weak<PoolInner>, key: Key, id: u64) {
    loop {
        if socket.is_closed() {
            return;
        }
        if !socket.is_parked() {
            // In use: wait for the next park (or the close).
            socket.set_watcher_waiting(true);
            loop {
                let changed = socket.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if socket.is_closed() || socket.is_parked() {
                    break;
                }
                changed.await;
            }
            socket.set_watcher_waiting(false);
            continue;
        }
        // Parked: the socket has nothing to say until the peer acts. A close
        // shuts the socket down, which also makes it readable.
        if socket.tcp.readable().await.is_err() {
            return;
        }
        if socket.is_closed() || !socket.is_parked() {
            continue;
        }
        match socket.peek_clearing_readiness() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            _ => match pool.upgrade() {
                Some(inner) => inner.check_idle(&key, id),
                None => return,
            },
        }
    }
}
