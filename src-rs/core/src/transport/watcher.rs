//! The idle watcher: one task per connection that, while the connection is
//! parked, reports any readiness (FIN, RST, stray bytes, TLS records) to
//! the pool, so a server that closes an idle connection has it dropped at
//! once, not at the next acquire. While the connection is in use it sleeps
//! until it is parked again; taking a parked connection out does not wake
//! it, so a hot connection costs it nothing.

use std::sync::Arc;

use super::socket::Socket;
use crate::key::Key;
use crate::pool::IdleWatch;

pub(crate) async fn watch(socket: Arc<Socket>, pool: IdleWatch<Key>) {
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
        if socket.stream.readable().await.is_err() {
            return;
        }
        if socket.is_closed() || !socket.is_parked() {
            continue;
        }
        match socket.peek_clearing_readiness() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            _ => {
                if !pool.activity() {
                    return;
                }
            }
        }
    }
}
