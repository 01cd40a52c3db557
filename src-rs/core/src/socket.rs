//! The TCP socket shared by a connection and its idle watcher.
//!
//! Tokio's `TcpStream` can wait for readiness through `&self`, so one socket
//! can be read by the connection while in use and watched for a peer close
//! while parked idle, without moving it between tasks.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};

/// Counts the sockets a pool owns, so shutdown can wait until all are closed.
#[derive(Debug)]
pub(crate) struct SocketCounter(watch::Sender<usize>);

impl SocketCounter {
    pub(crate) fn new() -> Arc<SocketCounter> {
        Arc::new(SocketCounter(watch::Sender::new(0)))
    }
    pub(crate) fn open(&self) -> usize {
        *self.0.borrow()
    }
    pub(crate) async fn all_closed(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

/// A connected TCP socket plus the flags its idle watcher reacts to.
#[derive(Debug)]
pub(crate) struct Socket {
    pub(crate) tcp: TcpStream,
    parked: AtomicBool,
    closed: AtomicBool,
    /// Set by the watcher while it waits for the connection to be parked
    /// again; only then does parking need to wake it.
    watcher_waiting: AtomicBool,
    /// Wakes the watcher (see `watcher_waiting`).
    pub(crate) changed: Notify,
    counter: Arc<SocketCounter>,
}

impl Socket {
    pub(crate) fn new(tcp: TcpStream, counter: Arc<SocketCounter>) -> Arc<Socket> {
        counter.0.send_modify(|n| *n += 1);
        Arc::new(Socket {
            tcp,
            parked: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            watcher_waiting: AtomicBool::new(false),
            changed: Notify::new(),
            counter,
        })
    }

    pub(crate) fn is_parked(&self) -> bool {
        self.parked.load(Ordering::SeqCst)
    }
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
    /// Parking wakes the watcher only if it is waiting for that; taking a
    /// connection out never does (the watcher notices on its own when the
    /// socket next becomes readable). So a hot connection costs no wake-ups.
    ///
    /// Both sides store then load (`parked` here, `watcher_waiting` in the
    /// watcher), so both use SeqCst: with weaker orderings each could miss
    /// the other's store and the watcher would sleep through the park.
    pub(crate) fn set_parked(&self, parked: bool) {
        self.parked.store(parked, Ordering::SeqCst);
        if parked && self.watcher_waiting.load(Ordering::SeqCst) {
            self.changed.notify_one();
        }
    }

    /// The watcher announces it waits for the next park (or close).
    pub(crate) fn set_watcher_waiting(&self, waiting: bool) {
        self.watcher_waiting.store(waiting, Ordering::SeqCst);
    }
    /// Send FIN now; the descriptor itself closes when the last owner drops.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let _ = SockRef::from(&self.tcp).shutdown(std::net::Shutdown::Both);
        self.changed.notify_one();
    }

    /// Non-blocking look at the receive queue: `Ok(0)` is EOF, `Ok(n)` means
    /// bytes are waiting, `WouldBlock` means nothing arrived.
    pub(crate) fn peek(&self) -> io::Result<usize> {
        let mut byte = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        SockRef::from(&self.tcp).peek(&mut byte)
    }

    /// Like `peek`, but through Tokio so that a "nothing there" answer clears
    /// the readiness Tokio cached; used by the watcher to avoid spinning.
    pub(crate) fn peek_clearing_readiness(&self) -> io::Result<usize> {
        self.tcp
            .try_io(tokio::io::Interest::READABLE, || self.peek())
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.counter.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// `AsyncRead + AsyncWrite` over a shared socket (what rustls and the
/// connection read and write through).
#[derive(Debug, Clone)]
pub(crate) struct SharedTcp(pub(crate) Arc<Socket>);

impl AsyncRead for SharedTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.0.tcp.poll_read_ready(cx))?;
            match self.0.tcp.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for SharedTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.tcp.poll_write_ready(cx))?;
            match self.0.tcp.try_write(data) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.tcp.poll_write_ready(cx))?;
            match self.0.tcp.try_write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(SockRef::from(&self.0.tcp).shutdown(std::net::Shutdown::Write))
    }
}
