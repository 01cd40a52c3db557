//! Opening connections: DNS, TCP (happy eyeballs), socket options, TLS.
//!
//! Organization:
//! - `dns`: cached, coalesced name resolution;
//! - `happy_eyeballs`: racing the resolved addresses;
//! - `tls`: the rustls config and handshake error reasons.

mod dns;
mod happy_eyeballs;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio_rustls::TlsConnector;

use crate::config::PoolConfig;
use crate::connection::Stream;
use crate::error::{Error, Result};
use crate::key::Key;
use crate::socket::{SharedTcp, Socket, SocketCounter};

/// A freshly opened stream and what was learned while opening it.
pub(crate) struct Opened {
    pub(crate) stream: Stream,
    pub(crate) socket: Arc<Socket>,
    pub(crate) remote_addr: SocketAddr,
    pub(crate) alpn: Option<Vec<u8>>,
}

/// Opens TCP and TLS connections for keys, with one pool's settings.
pub(crate) struct Connector {
    resolver: dns::Resolver,
    tls: Option<TlsConnector>,
    no_delay: bool,
    keep_alive: Duration,
    connect_timeout: Duration,
}

impl Connector {
    pub(crate) fn new(config: &PoolConfig) -> Result<Connector> {
        Ok(Connector {
            resolver: dns::Resolver::new(config.dns_cache),
            tls: Some(TlsConnector::from(tls::client_config(&config.tls)?)),
            no_delay: config.no_delay,
            keep_alive: config.keep_alive_initial_delay,
            connect_timeout: config.connect_timeout,
        })
    }

    /// Resolve, connect and (for TLS keys) handshake, within `connectTimeoutMs`.
    pub(crate) async fn connect(&self, key: &Key, counter: &Arc<SocketCounter>) -> Result<Opened> {
        let timeout_ms = self.connect_timeout.as_millis() as u64;
        match tokio::time::timeout(self.connect_timeout, self.open(key, counter)).await {
            Ok(result) => result,
            Err(_) => Err(Error::ConnectTimeout { timeout_ms }),
        }
    }

    async fn open(&self, key: &Key, counter: &Arc<SocketCounter>) -> Result<Opened> {
        let addrs = self.resolver.resolve(key.host()).await?;
        let (tcp, remote_addr) = happy_eyeballs::connect(&addrs, key.port()).await?;
        let sock = SockRef::from(&tcp);
        sock.set_tcp_nodelay(self.no_delay)?;
        if !self.keep_alive.is_zero() {
            sock.set_keepalive(true)?;
            sock.set_tcp_keepalive(&TcpKeepalive::new().with_time(self.keep_alive))?;
        }
        let socket = Socket::new(tcp, counter.clone());
        let shared = SharedTcp(socket.clone());
        if !key.uses_tls() {
            return Ok(Opened {
                stream: Stream::Plain(shared),
                socket,
                remote_addr,
                alpn: None,
            });
        }
        let connector = self
            .tls
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("TLS is not configured".into()))?;
        let name = tls::server_name(key.tls_name())?;
        let tls = connector
            .connect(name, shared)
            .await
            .map_err(tls::handshake_error)?;
        let alpn = tls.get_ref().1.alpn_protocol().map(|p| p.to_vec());
        Ok(Opened {
            stream: Stream::Tls(Box::new(tls)),
            socket,
            remote_addr,
            alpn,
        })
    }
}
