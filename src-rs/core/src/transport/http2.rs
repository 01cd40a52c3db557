//! An HTTP/2 connection (ALPN `h2`). The h2 crate speaks the protocol
//! (framing, HPACK, flow control, SETTINGS); this module runs its
//! connection task and tells the pool what it needs to share the
//! connection: how many streams it takes now, whether it is going away or
//! gone, and whether it still answers after a quiet period (PING).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::client::SendRequest;
use h2::{Ping, PingPong};
use tokio::sync::Notify;

use super::io_error;
use super::socket::Socket;
use crate::error::{Error, Result};
use crate::key::Key;
use crate::pool::IdleWatch;

/// Streams one connection carries at most, whatever the server allows.
const MAX_STREAMS: usize = 1000;
/// Assumed until the server's SETTINGS say otherwise (RFC 9113 §6.5.2
/// recommends servers allow at least 100).
const INITIAL_STREAMS: usize = 100;
/// Receive windows: how much of a stream's (and the connection's) body
/// may wait unread; larger than the protocol's 64 KiB so a fast server is
/// not held up by window updates, bounded so a slow reader costs little.
const STREAM_WINDOW: u32 = 1 << 20;
const CONNECTION_WINDOW: u32 = 4 << 20;

/// What the connection task and every handle share.
struct State {
    /// The connection task ended: closed, failed, or stopped.
    closed: AtomicBool,
    /// The server sent GOAWAY: no new streams.
    going_away: AtomicBool,
    /// When a stream last made progress, in ms since `epoch`.
    last_active: AtomicU64,
    epoch: Instant,
    /// Ends the connection task (the last handle went).
    stop: Notify,
}

impl State {
    fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_active.store(ms, Ordering::Relaxed);
    }
}

/// One HTTP/2 connection; clones are handles onto it (one per stream
/// loan). When the last handle goes, the connection task ends.
#[derive(Clone)]
pub struct Http2 {
    shared: Arc<Shared>,
}

struct Shared {
    send: SendRequest<Bytes>,
    state: Arc<State>,
    /// PING is one at a time.
    pings: tokio::sync::Mutex<PingPong>,
    socket: Arc<Socket>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.state.stop.notify_one();
        self.socket.close();
    }
}

/// The h2 crate's error as pconn's: I/O errors keep their errno, a reset
/// or GOAWAY says so, anything else (and a reset or GOAWAY the h2 crate
/// sent itself, its verdict on what the server sent) is a protocol error.
pub fn h2_error(e: h2::Error) -> Error {
    if e.is_io() {
        return match e.into_io() {
            Some(io) => io_error(io),
            None => Error::SocketClosed("the HTTP/2 connection failed".into()),
        };
    }
    let reason = e
        .reason()
        .map_or_else(|| "no reason".to_string(), |r| format!("{r:?}"));
    if e.is_library() {
        Error::HttpParse(format!("HTTP/2 protocol error: {e}"))
    } else if e.is_go_away() {
        Error::SocketClosed(format!(
            "the server is closing the HTTP/2 connection (GOAWAY, {reason})"
        ))
    } else if e.is_reset() {
        Error::SocketClosed(format!("the server reset the HTTP/2 stream ({reason})"))
    } else {
        Error::HttpParse(format!("HTTP/2 protocol error: {e}"))
    }
}

/// Start HTTP/2 on a connection whose TLS handshake chose `h2`: send the
/// preface, run the connection task, and wait for the server's first
/// SETTINGS (a PING's answer comes after them), so the number of streams
/// the pool lends on it is the server's from the start.
pub(crate) async fn handshake<T>(io: T, socket: Arc<Socket>, watch: IdleWatch<Key>) -> Result<Http2>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, mut connection) = h2::client::Builder::new()
        .enable_push(false)
        .initial_max_send_streams(INITIAL_STREAMS)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .handshake::<_, Bytes>(io)
        .await
        .map_err(h2_error)?;
    let pings = connection
        .ping_pong()
        .ok_or_else(|| Error::HttpParse("HTTP/2 PING is not available".into()))?;
    let state = Arc::new(State {
        closed: AtomicBool::new(false),
        going_away: AtomicBool::new(false),
        last_active: AtomicU64::new(0),
        epoch: Instant::now(),
        stop: Notify::new(),
    });
    let task_state = state.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = connection => {}
            _ = task_state.stop.notified() => {}
        }
        task_state.closed.store(true, Ordering::Release);
        // The pool closes it if no stream is left on it.
        watch.activity();
    });
    let h2 = Http2 {
        shared: Arc::new(Shared {
            send,
            state,
            pings: tokio::sync::Mutex::new(pings),
            socket,
        }),
    };
    h2.ping(None).await?;
    Ok(h2)
}

impl Http2 {
    /// A handle to open a stream with (wait for `ready` first).
    pub fn sender(&self) -> SendRequest<Bytes> {
        self.shared.send.clone()
    }

    /// How many streams it takes at once now: the server's limit, or 0
    /// once it is going away or gone.
    pub fn streams(&self) -> usize {
        if self.is_closed() || self.shared.state.going_away.load(Ordering::Acquire) {
            return 0;
        }
        self.shared.send.current_max_send_streams().min(MAX_STREAMS)
    }

    pub fn is_closed(&self) -> bool {
        self.shared.state.closed.load(Ordering::Acquire)
    }

    /// The server refused a new stream (GOAWAY, or the connection is
    /// gone): take no more.
    pub fn stop_taking_streams(&self) {
        self.shared.state.going_away.store(true, Ordering::Release);
    }

    /// A stream made progress.
    pub fn touch(&self) {
        self.shared.state.touch();
    }

    /// How long no stream has made progress.
    pub fn quiet_for(&self) -> Duration {
        let state = &self.shared.state;
        let last = state.last_active.load(Ordering::Relaxed);
        state
            .epoch
            .elapsed()
            .saturating_sub(Duration::from_millis(last))
    }

    /// Check that the server still answers: a PING, within `limit` if
    /// given. A connection that does not answer is closed (its task ends,
    /// the pool drops it); the error says why.
    pub async fn ping(&self, limit: Option<Duration>) -> Result<()> {
        let mut pings = self.shared.pings.lock().await;
        self.ping_locked(&mut pings, limit).await
    }

    /// `ping` if the connection has been quiet for `quiet`; requests that
    /// wait behind a PING in flight take its answer instead of their own.
    pub async fn ping_if_quiet(&self, quiet: Duration, limit: Duration) -> Result<()> {
        if self.quiet_for() < quiet {
            return Ok(());
        }
        let mut pings = self.shared.pings.lock().await;
        if self.quiet_for() < quiet {
            return Ok(());
        }
        self.ping_locked(&mut pings, Some(limit)).await
    }

    async fn ping_locked(&self, pings: &mut PingPong, limit: Option<Duration>) -> Result<()> {
        let pong = pings.ping(Ping::opaque());
        let answered = match limit {
            None => pong.await.map_err(h2_error),
            Some(limit) => match tokio::time::timeout(limit, pong).await {
                Ok(answer) => answer.map_err(h2_error),
                Err(_) => Err(Error::SocketClosed(format!(
                    "the server did not answer an HTTP/2 PING within {} ms",
                    limit.as_millis()
                ))),
            },
        };
        match answered {
            Ok(_) => {
                self.touch();
                Ok(())
            }
            Err(error) => {
                let state = &self.shared.state;
                state.closed.store(true, Ordering::Release);
                state.stop.notify_one();
                Err(error)
            }
        }
    }
}

impl std::fmt::Debug for Http2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http2")
            .field("closed", &self.is_closed())
            .field("streams", &self.streams())
            .finish()
    }
}
