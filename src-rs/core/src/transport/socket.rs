//! The socket (TCP, or a Unix domain socket) shared by a connection's two
//! halves and its idle watcher.
//!
//! Tokio's streams can wait for readiness through `&self`, so one socket
//! can be read and written at the same time and watched for a peer close
//! while parked idle, without moving it between tasks.
//!
//! Reads clear Tokio's readiness as soon as one comes back short: a short
//! read emptied the receive queue, and any byte that arrives later is a new
//! edge the event loop reports. This saves the second, failing `recv` that
//! reading until `WouldBlock` costs on every response, and it lets a
//! checkout trust the cached readiness instead of asking the kernel.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf, Ready};
use tokio::net::TcpStream;
#[cfg(unix)]
use tokio::net::UnixStream;
use tokio::sync::Notify;

use super::spread::AddressLease;

/// A connected stream socket of either family; both offer the same
/// readiness API, which this forwards.
#[derive(Debug)]
pub(crate) enum Transport {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
}

/// Forward a call to whichever stream `self` holds.
macro_rules! either {
    ($self:expr, $s:ident => $call:expr) => {
        match $self {
            Transport::Tcp($s) => $call,
            #[cfg(unix)]
            Transport::Unix($s) => $call,
        }
    };
}

impl Transport {
    pub(crate) fn try_io<R>(
        &self,
        interest: Interest,
        f: impl FnOnce() -> io::Result<R>,
    ) -> io::Result<R> {
        either!(self, s => s.try_io(interest, f))
    }
    /// Wait until reading would not block; the readiness says whether the
    /// peer has closed its side.
    pub(crate) async fn readable(&self) -> io::Result<Ready> {
        either!(self, s => s.ready(Interest::READABLE).await)
    }
    pub(crate) async fn writable(&self) -> io::Result<()> {
        either!(self, s => s.writable().await)
    }
    pub(crate) fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        either!(self, s => s.poll_read_ready(cx))
    }
    pub(crate) fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        either!(self, s => s.poll_write_ready(cx))
    }
    pub(crate) fn try_write(&self, data: &[u8]) -> io::Result<usize> {
        either!(self, s => s.try_write(data))
    }
    pub(crate) fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        either!(self, s => s.try_read(buf))
    }
    pub(crate) fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        either!(self, s => s.try_write_vectored(bufs))
    }
    /// The socket for system calls Tokio does not wrap (recv, peek, shutdown).
    pub(crate) fn sock(&self) -> SockRef<'_> {
        either!(self, s => SockRef::from(s))
    }
}

/// A connected socket plus the flags its idle watcher reacts to.
#[derive(Debug)]
pub(crate) struct Socket {
    pub(crate) stream: Transport,
    parked: AtomicBool,
    closed: AtomicBool,
    /// Set by the watcher while it waits for the connection to be parked
    /// again; only then does parking need to wake it.
    watcher_waiting: AtomicBool,
    /// Wakes the watcher (see `watcher_waiting`).
    pub(crate) changed: Notify,
    /// Counts the connection on its address while it is open (`spreadAddresses`).
    _address: Option<AddressLease>,
}

impl Socket {
    pub(crate) fn new(stream: Transport) -> Arc<Socket> {
        Socket::leased(stream, None)
    }

    /// A socket counted on its address (`AddressBook::lease`) until it drops.
    pub(crate) fn leased(stream: Transport, address: Option<AddressLease>) -> Arc<Socket> {
        Arc::new(Socket {
            stream,
            parked: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            watcher_waiting: AtomicBool::new(false),
            changed: Notify::new(),
            _address: address,
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
        let _ = self.stream.sock().shutdown(std::net::Shutdown::Both);
        self.changed.notify_one();
    }

    /// Receive into `buf` without waiting; a short read clears the cached
    /// readiness (see the module docs). `WouldBlock` when nothing is there.
    pub(crate) fn recv(&self, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
        let want = buf.len();
        let mut short = None;
        let result = self.stream.try_io(Interest::READABLE, || {
            let n = self.stream.sock().recv(buf)?;
            if n > 0 && n < want {
                short = Some(n);
                // Report "would block" so that Tokio clears the readiness
                // it observed before this read (a later edge is kept).
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        });
        match (result, short) {
            (_, Some(n)) => Ok(n),
            (result, None) => result,
        }
    }

    /// Append what the socket has to `into`'s spare capacity (never zeroed).
    pub(crate) fn recv_into(&self, into: &mut Vec<u8>) -> io::Result<usize> {
        let n = self.recv(into.spare_capacity_mut())?;
        // SAFETY: `recv` (socket2) writes only initialised bytes, and the
        // kernel initialised the first `n` bytes of the spare capacity;
        // `n` is at most its length.
        unsafe { into.set_len(into.len() + n) };
        Ok(n)
    }

    /// Whether the event loop has seen the socket become readable since a
    /// read last cleared that (no system call). False means nothing
    /// arrived that the event loop has harvested: a cheap but not exact
    /// liveness answer (a close in flight may not be harvested yet).
    pub(crate) fn seen_readable(&self) -> bool {
        // `try_io` runs the closure only when Tokio holds readable (or
        // closed) readiness for the socket, and registers no waker; the
        // closure's `Ok` leaves that readiness as it is.
        self.stream.try_io(Interest::READABLE, || Ok(())).is_ok()
    }

    /// Non-blocking look at the receive queue: `Ok(0)` is EOF, `Ok(n)` means
    /// bytes are waiting, `WouldBlock` means nothing arrived.
    pub(crate) fn peek(&self) -> io::Result<usize> {
        let mut byte = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        self.stream.sock().peek(&mut byte)
    }

    /// Write all of `data`, waiting for room when the socket is full (a
    /// plain connection's writes, and a proxy's CONNECT before the
    /// connection exists).
    pub(crate) async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            match self.stream.try_write(data) {
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.stream.writable().await?,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Read exactly `buf.len()` bytes (a SOCKS reply); false if the peer
    /// closed first.
    pub(crate) async fn read_exact(&self, buf: &mut [u8]) -> io::Result<bool> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.stream.try_read(&mut buf[filled..]) {
                Ok(0) => return Ok(false),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.stream.readable().await?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Read one HTTP head, up to and including its blank line (CRLF or a
    /// bare LF: the caller judges the line endings), and not a
    /// byte more (what follows a proxy's answer belongs to the tunnel);
    /// `None` if the peer closed before the head was complete.
    pub(crate) async fn read_head(&self, limit: usize) -> io::Result<Option<Vec<u8>>> {
        let mut peeked = vec![MaybeUninit::<u8>::uninit(); limit];
        loop {
            let ready = self.stream.readable().await?;
            let seen = self.stream.try_io(Interest::READABLE, || {
                let n = self.stream.sock().peek(&mut peeked)?;
                // SAFETY: the kernel initialised the first `n` bytes.
                let bytes = unsafe { std::slice::from_raw_parts(peeked.as_ptr().cast::<u8>(), n) };
                match head_end(bytes) {
                    Some(end) => Ok(Some(end)),
                    None if n == 0 => Ok(None),
                    None if n == limit => Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the answer's head is too large",
                    )),
                    // Incomplete: clear the readiness and wait for more.
                    None => Err(io::ErrorKind::WouldBlock.into()),
                }
            });
            let head_len = match seen {
                Ok(Some(len)) => len,
                Ok(None) => return Ok(None),
                // Closed mid-head: Tokio keeps a closed socket readable, so
                // waiting for more would spin.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && ready.is_read_closed() => {
                    return Ok(None)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            };
            let mut head = vec![MaybeUninit::<u8>::uninit(); head_len];
            let mut got = 0;
            while got < head_len {
                // The bytes were peeked: they are there to receive.
                match self.stream.sock().recv(&mut head[got..])? {
                    0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                    n => got += n,
                }
            }
            // SAFETY: all `head_len` bytes were received (initialised).
            return Ok(Some(
                head.into_iter()
                    .map(|b| unsafe { b.assume_init() })
                    .collect(),
            ));
        }
    }

    /// Like `peek`, but through Tokio so that a "nothing there" answer clears
    /// the readiness Tokio cached; used by the watcher to avoid spinning.
    pub(crate) fn peek_clearing_readiness(&self) -> io::Result<usize> {
        self.stream
            .try_io(tokio::io::Interest::READABLE, || self.peek())
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
            ready!(self.0.stream.poll_read_ready(cx))?;
            // SAFETY: `recv` only writes initialised bytes into the unfilled
            // part (socket2's contract), so exposing it as uninit is sound.
            let unfilled = unsafe { buf.unfilled_mut() };
            match self.0.recv(unfilled) {
                Ok(n) => {
                    // SAFETY: the kernel initialised the first `n` bytes.
                    unsafe { buf.assume_init(n) };
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
            ready!(self.0.stream.poll_write_ready(cx))?;
            match self.0.stream.try_write(data) {
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
            ready!(self.0.stream.poll_write_ready(cx))?;
            match self.0.stream.try_write_vectored(bufs) {
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
        Poll::Ready(self.0.stream.sock().shutdown(std::net::Shutdown::Write))
    }
}

/// Whether `bytes` end with the empty line that ends a head (by the rule
/// of `head_end`): for a head read byte by byte.
pub(crate) fn head_ends_at_tail(bytes: &[u8]) -> bool {
    bytes.ends_with(b"\n\n") || bytes.ends_with(b"\n\r\n")
}

/// The length of the head at the start of `bytes`: up to the end of its
/// first empty line, whether lines end in CRLF or a bare LF.
pub(crate) fn head_end(bytes: &[u8]) -> Option<usize> {
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            match (bytes.get(i + 1), bytes.get(i + 2)) {
                (Some(b'\n'), _) => return Some(i + 2),
                (Some(b'\r'), Some(b'\n')) => return Some(i + 3),
                _ => {}
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_head_ends_at_its_first_empty_line() {
        use super::head_end;
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\n\r\nrest"), Some(19));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\n\nrest"), Some(17));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\nA: b\r\n"), None);
        use super::head_ends_at_tail;
        assert!(head_ends_at_tail(b"HTTP/1.1 200 OK\r\n\r\n"));
        assert!(head_ends_at_tail(b"HTTP/1.1 200 OK\n\n"));
        assert!(!head_ends_at_tail(b"HTTP/1.1 200 OK\r\nA: b\r\n"));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\n\r"), None);
    }
}
