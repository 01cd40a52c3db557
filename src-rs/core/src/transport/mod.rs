//! Transport: how a key's connections are opened and carried. DNS, TCP
//! with happy eyeballs, Unix sockets, proxy tunnels, TLS, and the
//! connection the pool keeps (two halves that work at once, a read-ahead
//! buffer, a liveness check, an idle watcher).
//!
//! Organization:
//! - `connector`: `Connector`, the pool's `Connect`, and `ConnectOptions`;
//! - `dns`, `happy_eyeballs`, `spread`: cached, coalesced resolution (or
//!   the `lookup` option); racing the addresses; spreading connections
//!   over them;
//! - `tls`: the rustls configuration, trust, and failure reasons;
//! - `proxy`, `socks5`: which keys go through a proxy, and the tunnel
//!   (HTTP `CONNECT` or SOCKS5);
//! - `connection`: `Connection` and its halves (`Duplex`, `ReadSide`, `WriteSide`);
//! - `http2`: an HTTP/2 connection's task, streams, GOAWAY and PING;
//! - `socket`, `read_buffer`, `watcher`: the socket under a connection,
//!   bytes read and not consumed, the watcher of a parked connection.

mod cert_facts;
mod connection;
mod connector;
mod dns;
mod happy_eyeballs;
mod http2;
mod proxy;
mod read_buffer;
mod socket;
mod socks5;
mod spread;
mod tls;
mod watcher;

pub use connection::{Connection, Duplex, OpenTimes, ReadSide, WriteSide, READ_CHUNK};
pub use connector::{ConnectOptions, Connector};
pub use dns::{Lookup, LookupAnswer, LookupFailure, LookupFn};
pub use http2::{h2_error, Http2};
pub use proxy::{parse_connect_answer, ProxyPolicy};
pub(crate) use spread::AddressBook;
pub use tls::{TlsOptions, Trust};

use crate::error::Error;

/// An I/O error of a connection as the core reports it: a TLS failure
/// inside it (an alert, a certificate the server refused) keeps its reason.
pub(crate) fn io_error(e: std::io::Error) -> Error {
    tls::tls_failure(&e).unwrap_or(Error::Io(e))
}
