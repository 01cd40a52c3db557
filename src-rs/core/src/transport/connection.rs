//! One TCP, Unix-socket or TLS connection: two halves that work at the same time (a
//! pending read never blocks a write), a read-ahead buffer, and what the
//! pool asks of it (liveness, parking). Or an HTTP/2 connection, whose bytes
//! belong to its protocol task and which the pool lends as streams.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio::sync::{Mutex, MutexGuard};
use tokio_rustls::client::TlsStream;

use super::http2::Http2;
use super::io_error;
use super::read_buffer::ReadBuffer;
use super::socket::{SharedTcp, Socket};
use super::watcher;
use crate::error::{Error, Result};
use crate::key::Key;
use crate::pool::{IdleWatch, Liveness, Poolable};

/// Size of one `read()` chunk handed to users.
pub const READ_CHUNK: usize = 64 * 1024;

/// The TLS stream under a connection: over the socket, or (through an
/// `https://` proxy) inside the TLS stream to the proxy.
// The sizes differ, but a `Tls` only ever lives boxed (`Stream::Tls`), and
// the direct stream, every HTTPS request's, stays one pointer away.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Tls {
    Direct(TlsStream<SharedTcp>),
    Nested(Box<TlsStream<TlsStream<SharedTcp>>>),
}

impl AsyncRead for Tls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Tls::Direct(s) => Pin::new(s).poll_read(cx, buf),
            Tls::Nested(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Tls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Tls::Direct(s) => Pin::new(s).poll_write(cx, buf),
            Tls::Nested(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Tls::Direct(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Tls::Nested(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Tls::Direct(s) => s.is_write_vectored(),
            Tls::Nested(s) => s.is_write_vectored(),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Tls::Direct(s) => Pin::new(s).poll_flush(cx),
            Tls::Nested(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Tls::Direct(s) => Pin::new(s).poll_shutdown(cx),
            Tls::Nested(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// How a connection's bytes reach the socket.
pub(crate) enum Stream {
    Plain,
    Tls(Box<Tls>),
}

/// How long opening a connection took, by stage.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenTimes {
    /// DNS, TCP (and a proxy's tunnel), or the Unix socket's connect.
    pub connect: Duration,
    /// The TLS handshake (zero without TLS).
    pub tls: Duration,
}

/// A live connection. The pool owns it while idle; a `Pooled` lends it
/// out (an HTTP/2 one, a handle per stream).
pub struct Connection {
    io: Arc<Duplex>,
    /// Set when the connection speaks HTTP/2: its bytes are the protocol
    /// task's, `io` only describes it (peer, open times, close).
    http2: Option<Http2>,
    /// A shorter idle timeout announced by the server (`Keep-Alive: timeout=N`).
    idle_timeout_hint: Option<Duration>,
}

/// The two halves of a connection. Each half is locked only by the task
/// using it, so one task can wait for bytes while another writes.
pub struct Duplex {
    socket: Arc<Socket>,
    opened: OpenTimes,
    /// None for a Unix socket.
    remote_addr: Option<SocketAddr>,
    alpn: Option<Vec<u8>>,
    reader: Mutex<Reader>,
    writer: Mutex<Writer>,
    /// The halves carry the user's bytes (false for HTTP/2, whose task
    /// owns the stream: a raw read or write would corrupt it).
    raw: bool,
    /// An I/O error, EOF or a half-close made the stream unusable (for reuse).
    broken: AtomicBool,
    /// Anything was read or written since the checkout.
    used: AtomicBool,
}

struct Reader {
    tls: Option<ReadHalf<Tls>>,
    /// Bytes read from the stream that the current user has not consumed.
    buffered: ReadBuffer,
}

struct Writer {
    tls: Option<WriteHalf<Tls>>,
}

impl Connection {
    /// A connection over `stream`, watched by a task on the current
    /// runtime while it is parked.
    pub(crate) fn new(
        stream: Stream,
        socket: Arc<Socket>,
        remote_addr: Option<SocketAddr>,
        alpn: Option<Vec<u8>>,
        opened: OpenTimes,
        watch: IdleWatch<Key>,
    ) -> Connection {
        tokio::spawn(watcher::watch(socket.clone(), watch));
        let (read_tls, write_tls) = match stream {
            Stream::Plain => (None, None),
            Stream::Tls(tls) => {
                let (r, w) = tokio::io::split(*tls);
                (Some(r), Some(w))
            }
        };
        Connection {
            io: Arc::new(Duplex::new(
                socket,
                remote_addr,
                alpn,
                opened,
                (read_tls, write_tls),
                true,
            )),
            http2: None,
            idle_timeout_hint: None,
        }
    }

    /// A connection that speaks HTTP/2 through `http2` (which owns its
    /// stream); no idle watcher, the protocol task reports its end.
    pub(crate) fn http2(
        http2: Http2,
        socket: Arc<Socket>,
        remote_addr: Option<SocketAddr>,
        opened: OpenTimes,
    ) -> Connection {
        Connection {
            io: Arc::new(Duplex::new(
                socket,
                remote_addr,
                Some(b"h2".to_vec()),
                opened,
                (None, None),
                false,
            )),
            http2: Some(http2),
            idle_timeout_hint: None,
        }
    }

    /// The HTTP/2 connection, when it speaks HTTP/2.
    pub fn as_http2(&self) -> Option<&Http2> {
        self.http2.as_ref()
    }

    /// Both halves, shareable with other tasks for as long as the loan lasts.
    pub fn io(&self) -> &Arc<Duplex> {
        &self.io
    }
    /// The peer's address (the proxy's, for a tunnel); None for a Unix socket.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.io.remote_addr
    }
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.io.alpn.as_deref()
    }
    /// How long opening this connection took.
    pub fn opened(&self) -> OpenTimes {
        self.io.opened
    }

    /// Lower this connection's idle deadline (a server's Keep-Alive hint).
    pub fn set_idle_timeout_hint(&mut self, hint: Duration) {
        self.idle_timeout_hint = Some(hint);
    }
}

impl Duplex {
    fn new(
        socket: Arc<Socket>,
        remote_addr: Option<SocketAddr>,
        alpn: Option<Vec<u8>>,
        opened: OpenTimes,
        (read_tls, write_tls): (Option<ReadHalf<Tls>>, Option<WriteHalf<Tls>>),
        raw: bool,
    ) -> Duplex {
        Duplex {
            opened,
            socket,
            remote_addr,
            alpn,
            reader: Mutex::new(Reader {
                tls: read_tls,
                buffered: ReadBuffer::default(),
            }),
            writer: Mutex::new(Writer { tls: write_tls }),
            raw,
            broken: AtomicBool::new(false),
            used: AtomicBool::new(false),
        }
    }

    /// Refuse raw bytes on a connection whose protocol task owns the stream.
    fn check_raw(&self) -> Result<()> {
        if self.raw {
            Ok(())
        } else {
            Err(Error::InvalidArgument(
                "this connection speaks HTTP/2: its bytes belong to the protocol".into(),
            ))
        }
    }

    /// The read half; waits while another task reads.
    pub async fn read_side(&self) -> ReadSide<'_> {
        ReadSide {
            io: self,
            half: self.reader.lock().await,
        }
    }

    /// The read half if no other task holds it.
    pub fn try_read_side(&self) -> Option<ReadSide<'_>> {
        Some(ReadSide {
            io: self,
            half: self.reader.try_lock().ok()?,
        })
    }

    /// The write half; waits while another task writes.
    pub async fn write_side(&self) -> WriteSide<'_> {
        WriteSide {
            io: self,
            half: self.writer.lock().await,
        }
    }

    /// The write half if no other task holds it.
    pub fn try_write_side(&self) -> Option<WriteSide<'_>> {
        Some(WriteSide {
            io: self,
            half: self.writer.try_lock().ok()?,
        })
    }

    /// Write all of `data` (waits for the write half).
    pub async fn write_all(&self, data: &[u8]) -> Result<()> {
        self.write_side().await.write_all(data).await
    }

    /// Half-close: shut the sending side down once earlier writes are out
    /// (TLS sends close_notify first); reading goes on until the peer
    /// closes. The connection is not pooled again.
    pub async fn shutdown_write(&self) -> Result<()> {
        self.write_side().await.shutdown().await
    }

    /// The next chunk received, or `None` at EOF (waits for the read half).
    pub async fn read_chunk(&self) -> Result<Option<Vec<u8>>> {
        self.read_side().await.read_chunk().await
    }

    /// Close the socket now (FIN); a read or write in flight fails or ends.
    pub fn close(&self) {
        self.broken.store(true, Ordering::Release);
        self.socket.close();
    }

    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    fn mark_broken(&self) {
        self.broken.store(true, Ordering::Release);
    }

    fn mark_used(&self) {
        self.used.store(true, Ordering::Relaxed);
    }

    /// Cheap liveness check of an idle connection. Unless `exact`, trusts
    /// the event loop's readiness (no system call); otherwise, or when the
    /// event loop saw something, peeks at the receive queue once.
    ///
    /// TLS peers may legitimately send records while we are idle (TLS 1.3
    /// session tickets), so pending bytes on a TLS socket are first fed
    /// through rustls without blocking; only application data or EOF count.
    fn liveness(&self, exact: bool) -> Liveness {
        if self.is_broken() || self.socket.is_closed() {
            return Liveness::PeerClosed;
        }
        let Ok(mut reader) = self.reader.try_lock() else {
            return Liveness::UnexpectedBytes; // someone is still reading
        };
        if !reader.buffered.is_empty() {
            return Liveness::UnexpectedBytes;
        }
        if !exact && !self.socket.seen_readable() {
            return Liveness::Alive;
        }
        match self.socket.peek() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Liveness::Alive,
            Err(_) | Ok(0) => Liveness::PeerClosed,
            Ok(_) => match reader.tls.as_mut() {
                None => Liveness::UnexpectedBytes,
                Some(tls) => {
                    let mut scratch = [0u8; 512];
                    let mut buf = ReadBuf::new(&mut scratch);
                    let mut cx = Context::from_waker(Waker::noop());
                    match Pin::new(tls).poll_read(&mut cx, &mut buf) {
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

/// The read half of a connection, held by one task.
pub struct ReadSide<'a> {
    io: &'a Duplex,
    half: MutexGuard<'a, Reader>,
}

impl ReadSide<'_> {
    /// Bytes read and not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        self.half.buffered.filled()
    }

    /// Mark `n` buffered bytes as consumed.
    pub fn consume(&mut self, n: usize) {
        self.half.buffered.consume(n);
    }

    /// Read up to `want` more bytes into the buffer; returns how many
    /// (0 = EOF, after which the connection is marked broken).
    pub async fn fill(&mut self, want: usize) -> Result<usize> {
        self.io.check_raw()?;
        self.io.mark_used();
        let Reader { tls, buffered } = &mut *self.half;
        let into = buffered.appendable(want);
        let result = match tls {
            None => read_plain(&self.io.socket, into).await,
            Some(tls) => tls.read_buf(into).await,
        };
        if matches!(result, Ok(0) | Err(_)) {
            self.io.mark_broken();
        }
        result.map_err(io_error)
    }

    /// `fill` without waiting: `None` when nothing can be read right now.
    pub fn fill_now(&mut self, want: usize) -> Option<Result<usize>> {
        let mut cx = Context::from_waker(Waker::noop());
        match std::pin::pin!(self.fill(want)).poll(&mut cx) {
            Poll::Ready(result) => Some(result),
            Poll::Pending => None,
        }
    }

    /// The next chunk of bytes, or `None` at EOF.
    pub async fn read_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        if self.half.buffered.is_empty() && self.fill(READ_CHUNK).await? == 0 {
            return Ok(None);
        }
        Ok(Some(self.half.buffered.take_all()))
    }
}

/// Wait for readability, then append what the socket has.
async fn read_plain(socket: &Socket, into: &mut Vec<u8>) -> io::Result<usize> {
    loop {
        socket.stream.readable().await?;
        match socket.recv_into(into) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

/// The write half of a connection, held by one task.
pub struct WriteSide<'a> {
    io: &'a Duplex,
    half: MutexGuard<'a, Writer>,
}

impl WriteSide<'_> {
    /// Write all of `data` and flush it to the socket.
    pub async fn write_all(&mut self, data: &[u8]) -> Result<()> {
        self.io.check_raw()?;
        self.io.mark_used();
        let result = match self.half.tls.as_mut() {
            None => self.io.socket.write_all(data).await,
            Some(tls) => match tls.write_all(data).await {
                Ok(()) => tls.flush().await,
                Err(e) => Err(e),
            },
        };
        if result.is_err() {
            self.io.mark_broken();
        }
        result.map_err(io_error)
    }

    /// Shut the sending side down (see `Duplex::shutdown_write`).
    pub async fn shutdown(&mut self) -> Result<()> {
        self.io.check_raw()?;
        self.io.mark_broken();
        let result = match self.half.tls.as_mut() {
            None => self
                .io
                .socket
                .stream
                .sock()
                .shutdown(std::net::Shutdown::Write),
            Some(tls) => tls.shutdown().await,
        };
        result.map_err(io_error)
    }

    /// Write as much of `data` as the socket takes right now, without
    /// waiting (from any thread). Returns how many bytes were taken and
    /// whether they are all on the socket (TLS may keep encrypted bytes
    /// buffered when the socket is full); finish with `write_all` of the rest.
    pub fn try_write_now(&mut self, data: &[u8]) -> Result<(usize, bool)> {
        self.io.check_raw()?;
        self.io.mark_used();
        let result = match self.half.tls.as_mut() {
            None => match self.io.socket.stream.try_write(data) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok((0, true)),
                other => other.map(|n| (n, true)),
            },
            Some(tls) => {
                let mut cx = Context::from_waker(Waker::noop());
                match Pin::new(&mut *tls).poll_write(&mut cx, data) {
                    Poll::Pending => Ok((0, true)),
                    Poll::Ready(Err(e)) => Err(e),
                    Poll::Ready(Ok(n)) => match Pin::new(tls).poll_flush(&mut cx) {
                        Poll::Pending => Ok((n, false)),
                        Poll::Ready(Ok(())) => Ok((n, true)),
                        Poll::Ready(Err(e)) => Err(e),
                    },
                }
            }
        };
        if result.is_err() {
            self.io.mark_broken();
        }
        result.map_err(io_error)
    }
}

impl Poolable for Connection {
    fn liveness(&mut self, exact: bool) -> Liveness {
        match &self.http2 {
            Some(h2) if h2.is_closed() => Liveness::PeerClosed,
            Some(_) => Liveness::Alive,
            None => self.io.liveness(exact),
        }
    }
    fn is_broken(&self) -> bool {
        self.io.is_broken() || self.http2.as_ref().is_some_and(Http2::is_closed)
    }
    fn was_used(&self) -> bool {
        self.io.used.load(Ordering::Relaxed)
    }
    fn park(&mut self) {
        if let Ok(mut reader) = self.io.reader.try_lock() {
            reader.buffered.release_memory();
        }
        self.io.socket.set_parked(true);
    }
    fn unpark(&mut self) {
        self.io.used.store(false, Ordering::Relaxed);
        self.io.socket.set_parked(false);
    }
    fn idle_timeout_hint(&self) -> Option<Duration> {
        self.idle_timeout_hint
    }
    fn streams(&self) -> Option<usize> {
        self.http2.as_ref().map(Http2::streams)
    }
    fn share(&self) -> Option<Connection> {
        let http2 = self.http2.clone()?;
        Some(Connection {
            io: self.io.clone(),
            http2: Some(http2),
            idle_timeout_hint: self.idle_timeout_hint,
        })
    }
}

/// Dropping a connection closes it, from any thread and without blocking: a
/// TLS close_notify when it fits in the socket buffer, then FIN. The idle
/// watcher sees the close flag and lets go of the descriptor.
impl Drop for Connection {
    fn drop(&mut self) {
        if self.http2.is_some() {
            // One handle of several: the last one ends the protocol task
            // and closes the socket (`Http2`).
            return;
        }
        if let Ok(mut writer) = self.io.writer.try_lock() {
            if let Some(tls) = writer.tls.as_mut() {
                let mut cx = Context::from_waker(Waker::noop());
                let _ = Pin::new(tls).poll_shutdown(&mut cx);
            }
        }
        self.io.close();
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("remote_addr", &self.io.remote_addr)
            .finish()
    }
}
