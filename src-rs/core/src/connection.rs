//! One pooled TCP or TLS connection: its stream, its read-ahead buffer and
//! the bookkeeping the pool needs (uses, age, liveness).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_rustls::client::TlsStream;

use crate::key::Key;
use crate::read_buffer::ReadBuffer;
use crate::socket::{SharedTcp, Socket};

/// Size of one `read()` chunk handed to users.
pub const READ_CHUNK: usize = 64 * 1024;

/// Plain TCP or rustls over TCP.
pub(crate) enum Stream {
    Plain(SharedTcp),
    Tls(Box<TlsStream<SharedTcp>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, data),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, data),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Append what the socket has into `into`'s spare capacity, waiting for
/// readiness first; the spare capacity is never zeroed.
async fn read_plain(tcp: &tokio::net::TcpStream, into: &mut Vec<u8>) -> io::Result<usize> {
    loop {
        tcp.readable().await?;
        match tcp.try_read_buf(into) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

/// What a cheap check of an idle connection found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    Alive,
    /// EOF or reset from the peer.
    PeerClosed,
    /// Application bytes nobody asked for: the stream is out of sync.
    UnexpectedBytes,
}

/// A live connection. The pool owns it while idle; a `Pooled` lends it out.
pub struct Connection {
    pub(crate) id: u64,
    pub(crate) key: Key,
    pub(crate) stream: Stream,
    pub(crate) socket: Arc<Socket>,
    /// Bytes read from the stream that the current user has not consumed.
    pub(crate) buffered: ReadBuffer,
    /// When `maxLifetimeMs` (with its jitter) retires this connection.
    pub(crate) retire_at: Option<Instant>,
    pub(crate) uses: u64,
    pub(crate) remote_addr: SocketAddr,
    pub(crate) alpn: Option<Vec<u8>>,
    /// A shorter idle timeout announced by the server (`Keep-Alive: timeout=N`).
    pub(crate) idle_timeout_hint: Option<Duration>,
    /// Set when an I/O error or EOF made the stream unusable.
    pub(crate) broken: bool,
    /// Whether anything was read or written since the checkout (release
    /// only peeks at the socket for unread bytes when it was).
    pub(crate) used_since_checkout: bool,
}

impl Connection {
    pub fn id(&self) -> u64 {
        self.id
    }
    pub fn key(&self) -> &Key {
        &self.key
    }
    pub fn uses(&self) -> u64 {
        self.uses
    }
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote_addr
    }
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.alpn.as_deref()
    }
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Lower this connection's idle deadline (a server's Keep-Alive hint).
    pub fn set_idle_timeout_hint(&mut self, hint: Duration) {
        self.idle_timeout_hint = Some(hint);
    }

    /// Write all of `data` and flush it to the socket.
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.used_since_checkout = true;
        let result = async {
            self.stream.write_all(data).await?;
            self.stream.flush().await
        }
        .await;
        if result.is_err() {
            self.broken = true;
        }
        result
    }

    /// Write as much of `data` as the socket takes right now, without
    /// waiting and from any thread. Returns how many bytes were taken and
    /// whether they are all on the socket (TLS may keep encrypted bytes
    /// buffered when the socket is full); finish with `write_all` of the rest.
    pub fn try_write_now(&mut self, data: &[u8]) -> io::Result<(usize, bool)> {
        self.used_since_checkout = true;
        let result = match &mut self.stream {
            Stream::Plain(tcp) => match tcp.0.tcp.try_write(data) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok((0, true)),
                other => other.map(|n| (n, true)),
            },
            Stream::Tls(tls) => {
                let (tcp, session) = tls.get_mut();
                let sock = socket2::SockRef::from(&tcp.0.tcp);
                io::Write::write(&mut session.writer(), data).and_then(|taken| {
                    while session.wants_write() {
                        match session.write_tls(&mut &*sock) {
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            other => other?,
                        };
                    }
                    Ok((taken, !session.wants_write()))
                })
            }
        };
        if result.is_err() {
            self.broken = true;
        }
        result
    }

    /// The next chunk of bytes, or `None` at EOF.
    pub async fn read_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        if self.buffered.is_empty() && self.fill_buffer(READ_CHUNK).await? == 0 {
            return Ok(None);
        }
        Ok(Some(self.buffered.take_all()))
    }

    /// Read up to `want` more bytes into `self.buffered`; returns how many
    /// (0 = EOF, after which the connection is marked broken).
    pub(crate) async fn fill_buffer(&mut self, want: usize) -> io::Result<usize> {
        self.used_since_checkout = true;
        let into = self.buffered.appendable(want);
        let result = match &mut self.stream {
            Stream::Plain(tcp) => read_plain(&tcp.0.tcp, into).await,
            Stream::Tls(tls) => tls.read_buf(into).await,
        };
        if matches!(result, Ok(0) | Err(_)) {
            self.broken = true;
        }
        result
    }

    /// Cheap liveness check for an idle connection: one non-blocking peek.
    ///
    /// TLS peers may legitimately send records while we are idle (TLS 1.3
    /// session tickets), so pending bytes on a TLS socket are first fed
    /// through rustls without blocking; only application data or EOF count.
    pub(crate) fn probe(&mut self) -> Liveness {
        if self.broken || self.socket.is_closed() {
            return Liveness::PeerClosed;
        }
        if !self.buffered.is_empty() {
            return Liveness::UnexpectedBytes;
        }
        match self.socket.peek() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Liveness::Alive,
            Err(_) | Ok(0) => Liveness::PeerClosed,
            Ok(_) => match &mut self.stream {
                Stream::Plain(_) => Liveness::UnexpectedBytes,
                Stream::Tls(tls) => {
                    let mut scratch = [0u8; 512];
                    let mut buf = ReadBuf::new(&mut scratch);
                    let mut cx = Context::from_waker(Waker::noop());
                    match Pin::new(tls.as_mut()).poll_read(&mut cx, &mut buf) {
                        Poll::Pending => Liveness::Alive,
                        Poll::Ready(Ok(())) if buf.filled().is_empty() => Liveness::PeerClosed,
                        Poll::Ready(Ok(())) => Liveness::UnexpectedBytes,
                        Poll::Ready(Err(_)) => Liveness::PeerClosed,
                    }
                }
            },
        }
    }
}

/// Dropping a connection closes it, from any thread and without blocking: a
/// TLS close_notify when it fits in the socket buffer, then FIN. The idle
/// watcher sees the close flag and lets go of the descriptor.
impl Drop for Connection {
    fn drop(&mut self) {
        if let Stream::Tls(tls) = &mut self.stream {
            let (tcp, session) = tls.get_mut();
            session.send_close_notify();
            let sock = socket2::SockRef::from(&tcp.0.tcp);
            let _ = session.write_tls(&mut &*sock);
        }
        self.socket.close();
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("key", &self.key)
            .field("uses", &self.uses)
            .finish()
    }
}
