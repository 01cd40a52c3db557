//! One error type for the whole core, and the stable codes users switch on.

use std::fmt;
use std::io;

/// Why a TLS handshake failed, in words a user can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsReason {
    /// The peer's certificate chain does not lead to a trusted root.
    UnknownIssuer,
    /// The certificate is valid but not for the name we asked for.
    HostnameMismatch,
    /// The certificate has expired.
    Expired,
    /// The certificate's validity starts in the future.
    NotYetValid,
    /// No common protocol version or cipher suite, or the peer spoke garbage.
    Protocol,
    /// Any other certificate problem (bad signature, revoked, malformed),
    /// ours included: the server refused our client certificate.
    BadCertificate,
    /// The server requires a client certificate and we sent none.
    CertificateRequired,
    /// The configured CA, certificate or key could not be used.
    Config,
}

impl TlsReason {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsReason::UnknownIssuer => "unknown-issuer",
            TlsReason::HostnameMismatch => "hostname-mismatch",
            TlsReason::Expired => "expired",
            TlsReason::NotYetValid => "not-yet-valid",
            TlsReason::Protocol => "protocol",
            TlsReason::BadCertificate => "bad-certificate",
            TlsReason::CertificateRequired => "certificate-required",
            TlsReason::Config => "config",
        }
    }
}

/// Every failure the core reports. `code()` is the contract's string code.
#[derive(Debug)]
pub enum Error {
    /// A caller-supplied value is malformed (bad URL, header with CR/LF, ...).
    InvalidArgument(String),
    PoolClosed,
    QueueFull {
        max_pending: usize,
    },
    AcquireTimeout {
        waited_ms: u64,
    },
    ConnectTimeout {
        timeout_ms: u64,
    },
    /// `detail` is rustls' own words (the error's cause); `node_code` what
    /// Node calls the same certificate failure; `subject` the refused
    /// certificate's common name.
    Tls {
        reason: TlsReason,
        detail: String,
        node_code: Option<&'static str>,
        subject: Option<String>,
    },
    AlreadyReleased,
    /// The connection belongs to a different pool.
    ForeignConnection,
    /// The peer closed (or reset) while a request was in flight.
    SocketClosed(String),
    /// The peer closed in the middle of a chunked response body (a
    /// `SocketClosed` whose `reason` says so, for undici's `HTTPParserError`).
    ChunkedEof,
    HeadersTimeout {
        timeout_ms: u64,
    },
    BodyTimeout {
        timeout_ms: u64,
    },
    HttpParse(String),
    Aborted,
    /// Name resolution failed; `code` keeps the errno-like name (ENOTFOUND,
    /// EAI_AGAIN), `cause` the message of a `lookup` option's failure.
    Dns {
        host: String,
        code: &'static str,
        cause: Option<String>,
    },
    /// A TCP connect failed; the address of the last attempt.
    Connect {
        address: std::net::SocketAddr,
        source: io::Error,
    },
    /// A connect to a Unix domain socket failed.
    UnixConnect {
        path: String,
        source: io::Error,
    },
    /// An HTTP proxy refused or botched a tunnel; `status` is its answer's.
    Proxy {
        proxy: String,
        status: Option<u16>,
        message: String,
    },
    Io(io::Error),
    /// The key's circuit breaker is open after `failures` connect failures
    /// in a row (or half-open, its trial connect under way); the last
    /// failure's code and message are the cause.
    CircuitOpen {
        failures: u32,
        half_open: bool,
        cause_code: &'static str,
        cause: String,
    },
}

impl Error {
    /// The stable code of the contract (`PCONN_*`, errno names, `ABORT_ERR`).
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidArgument(_) => "ERR_INVALID_ARG_VALUE",
            Error::PoolClosed => "PCONN_POOL_CLOSED",
            Error::QueueFull { .. } => "PCONN_QUEUE_FULL",
            Error::AcquireTimeout { .. } => "PCONN_ACQUIRE_TIMEOUT",
            Error::ConnectTimeout { .. } => "PCONN_CONNECT_TIMEOUT",
            Error::Tls { .. } => "PCONN_TLS",
            Error::AlreadyReleased => "PCONN_ALREADY_RELEASED",
            Error::ForeignConnection => "ERR_INVALID_ARG_VALUE",
            Error::SocketClosed(_) | Error::ChunkedEof => "PCONN_SOCKET_CLOSED",
            Error::HeadersTimeout { .. } => "PCONN_HEADERS_TIMEOUT",
            Error::BodyTimeout { .. } => "PCONN_BODY_TIMEOUT",
            Error::HttpParse(_) => "PCONN_HTTP_PARSE",
            Error::Aborted => "ABORT_ERR",
            Error::Dns { code, .. } => code,
            Error::Proxy { .. } => "PCONN_PROXY",
            Error::CircuitOpen { .. } => "PCONN_CIRCUIT_OPEN",
            Error::Connect { source, .. }
            | Error::UnixConnect { source, .. }
            | Error::Io(source) => io_code(source),
        }
    }

    /// The system call that failed, as Node names it (`connect`,
    /// `getaddrinfo`), for the failures Node gives one.
    pub fn syscall(&self) -> Option<&'static str> {
        match self {
            Error::Connect { .. } | Error::UnixConnect { .. } => Some("connect"),
            Error::Dns { .. } => Some("getaddrinfo"),
            _ => None,
        }
    }

    /// Node's `errno` for the failure: the negated OS error number, or
    /// libuv's number for a name that does not resolve.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Connect { source, .. }
            | Error::UnixConnect { source, .. }
            | Error::Io(source) => source.raw_os_error().map(|n| -n),
            Error::Dns { code, .. } => match *code {
                "ENOTFOUND" => Some(-3008), // UV_EAI_NONAME
                "EAI_AGAIN" => Some(-3001), // UV_EAI_AGAIN
                _ => None,
            },
            _ => None,
        }
    }

    /// The peer's address, when the failure happened at one.
    pub fn address(&self) -> Option<std::net::SocketAddr> {
        match self {
            Error::Connect { address, .. } => Some(*address),
            _ => None,
        }
    }

    /// The message of the lower-level error this one stands for (the
    /// operating system's, or rustls'), when there is one.
    pub fn source_message(&self) -> Option<String> {
        match self {
            Error::Connect { source, .. }
            | Error::UnixConnect { source, .. }
            | Error::Io(source) => Some(source.to_string()),
            Error::Tls { detail, .. } => Some(detail.clone()),
            Error::Dns { cause, .. } => cause.clone(),
            Error::CircuitOpen { cause, .. } if !cause.is_empty() => Some(cause.clone()),
            _ => None,
        }
    }

    /// The code of the error this one stands for, when it has its own
    /// (the last connect failure behind an open circuit; Node's code for a
    /// certificate failure).
    pub fn cause_code(&self) -> Option<&'static str> {
        match self {
            Error::CircuitOpen {
                cause_code, cause, ..
            } if !cause.is_empty() => Some(cause_code),
            Error::Tls { node_code, .. } => *node_code,
            _ => None,
        }
    }

    /// The status a proxy answered a tunnel request with.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Proxy { status, .. } => *status,
            _ => None,
        }
    }

    /// Extra detail for errors that have one (the TLS failure reason).
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Error::Tls { reason, .. } => Some(reason.as_str()),
            Error::ChunkedEof => Some("chunked-eof"),
            _ => None,
        }
    }

    /// Whether the failure happened before the peer could have seen a request,
    /// or on a connection the peer had already dropped: the cases a retry on a
    /// fresh connection is allowed to cover.
    pub fn is_stale_connection(&self) -> bool {
        matches!(self, Error::SocketClosed(_))
            || matches!(self, Error::Io(e) if matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::UnexpectedEof
            ))
    }
}

/// Map an I/O error to the errno name Node users know.
fn io_code(e: &io::Error) -> &'static str {
    use io::ErrorKind::*;
    if let Some(name) = e.raw_os_error().and_then(errno_name) {
        return name;
    }
    match e.kind() {
        ConnectionRefused => "ECONNREFUSED",
        ConnectionReset => "ECONNRESET",
        ConnectionAborted => "ECONNABORTED",
        BrokenPipe => "EPIPE",
        TimedOut => "ETIMEDOUT",
        AddrNotAvailable => "EADDRNOTAVAIL",
        HostUnreachable => "EHOSTUNREACH",
        NetworkUnreachable => "ENETUNREACH",
        NotFound => "ENOENT",
        PermissionDenied => "EACCES",
        UnexpectedEof => "PCONN_SOCKET_CLOSED",
        _ => "EIO",
    }
}

/// Names for OS errors that have no `ErrorKind` of their own.
fn errno_name(errno: i32) -> Option<&'static str> {
    #[cfg(unix)]
    let name = match errno {
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::ENOBUFS => "ENOBUFS",
        libc::EHOSTDOWN => "EHOSTDOWN",
        libc::ENETDOWN => "ENETDOWN",
        _ => return None,
    };
    #[cfg(windows)]
    let name = match errno {
        10024 => "EMFILE",  // WSAEMFILE
        10055 => "ENOBUFS", // WSAENOBUFS
        10050 => "ENETDOWN",
        10064 => "EHOSTDOWN",
        _ => return None,
    };
    #[cfg(not(any(unix, windows)))]
    let name = {
        let _ = errno;
        return None;
    };
    Some(name)
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument(m) => write!(f, "{m}"),
            Error::PoolClosed => write!(f, "the pool is closed (shutdownAll was called); create a new Pool to make more connections"),
            Error::QueueFull { max_pending } => write!(f, "too many waiting acquires (maxPending is {max_pending}); raise maxPending or maxConnectionsPerHost, or shed load"),
            Error::AcquireTimeout { waited_ms } => write!(f, "no connection became available within acquireTimeoutMs ({waited_ms} ms); are connections being released?"),
            Error::ConnectTimeout { timeout_ms } => write!(f, "connect did not complete within connectTimeoutMs ({timeout_ms} ms)"),
            Error::Tls { reason, detail, subject, .. } => write_tls(f, *reason, detail, subject.as_deref()),
            Error::AlreadyReleased => write!(f, "this connection was already released to the pool; acquire a new one"),
            Error::ForeignConnection => write!(f, "this connection belongs to another pool; release it to the pool that acquired it"),
            Error::SocketClosed(m) => write!(f, "the peer closed the connection: {m}"),
            Error::ChunkedEof => write!(f, "the peer closed the connection: the server closed it in the middle of a chunked body (the response is incomplete)"),
            Error::HeadersTimeout { timeout_ms } => write!(f, "response headers did not arrive within headersTimeoutMs ({timeout_ms} ms)"),
            Error::BodyTimeout { timeout_ms } => write!(f, "the body stalled for more than bodyTimeoutMs ({timeout_ms} ms): the server stopped sending the response, or stopped reading the request"),
            Error::HttpParse(m) => write!(f, "malformed HTTP response: {m}"),
            Error::Aborted => write!(f, "the operation was aborted"),
            Error::Dns { host, code, .. } => write!(f, "getaddrinfo {code} {host}: the name could not be resolved; check the host name and the resolver"),
            Error::Connect { address, source } => write!(f, "connect {} {address}: {source}", io_code(source)),
            Error::UnixConnect { path, source } => write!(f, "connect {} {path}: {source}", io_code(source)),
            Error::Proxy { proxy, message, .. } => write!(f, "the proxy {proxy} {message}"),
            Error::Io(e) => write!(f, "{e}"),
            Error::CircuitOpen { failures, half_open: false, .. } => write!(f, "the circuit breaker is open after {failures} connect failures in a row: requests fail at once until circuitBreaker.cooldownMs has passed and a trial connect succeeds"),
            Error::CircuitOpen { half_open: true, .. } => write!(f, "the circuit breaker is half-open: its trial connect is under way, other requests fail at once until it succeeds"),
        }
    }
}

/// A TLS failure in words: what went wrong with whose certificate, and
/// what to do about it (rustls' own words are the error's cause).
fn write_tls(
    f: &mut fmt::Formatter<'_>,
    reason: TlsReason,
    detail: &str,
    subject: Option<&str>,
) -> fmt::Result {
    let cert = match subject {
        Some(cn) => format!("the server's certificate (CN={cn})"),
        None => "the server's certificate".to_string(),
    };
    write!(f, "TLS handshake failed ({}): ", reason.as_str())?;
    match reason {
        TlsReason::UnknownIssuer => write!(f, "{cert} is not signed by a trusted authority (self-signed, or its issuer is missing); trust its CA with tls.ca"),
        TlsReason::HostnameMismatch => write!(f, "{cert} is not valid for this host name; check the URL's host or tls.servername"),
        TlsReason::Expired => write!(f, "{cert} has expired"),
        TlsReason::NotYetValid => write!(f, "{cert} is not valid yet; check the certificate and this machine's clock"),
        TlsReason::BadCertificate if subject.is_some() => write!(f, "{cert} was refused ({detail})"),
        TlsReason::BadCertificate => write!(f, "a certificate was refused ({detail}); if it was ours, check tls.cert and tls.key"),
        TlsReason::CertificateRequired => write!(f, "the server requires a client certificate; set tls.cert and tls.key"),
        TlsReason::Protocol => write!(f, "the server and pconn agree on no TLS version or cipher suite, or the peer does not speak TLS ({detail})"),
        TlsReason::Config => write!(f, "{detail}"),
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

pub type Result<T> = std::result::Result<T, Error>;
