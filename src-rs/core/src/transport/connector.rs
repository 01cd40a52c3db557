//! Opening connections: DNS, TCP (happy eyeballs), socket options, Unix
//! sockets, proxy tunnels, TLS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::connection::{Connection, OpenTimes, Stream, Tls};
use super::http2;
use super::socket::{SharedTcp, Socket, Transport};
use super::spread::{AddressBook, AddressLease};
use super::tls::{self, TlsOptions};
use super::{dns, happy_eyeballs, proxy};
use crate::error::{Error, Result};
use crate::key::{Key, ProxyKind, ProxyRoute, Route};
use crate::pool::{BoxFuture, Connect, IdleWatch};

/// How a pool's connections are opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Zero = no limit.
    pub connect_timeout: Duration,
    /// Zero = resolve on every connect.
    pub dns_cache: Duration,
    pub no_delay: bool,
    /// Zero = TCP keep-alive off.
    pub keep_alive_initial_delay: Duration,
    pub tls: TlsOptions,
    /// New connections of a key go to the least used of its addresses.
    pub spread_addresses: bool,
    /// Resolves names instead of the system resolver.
    pub lookup: Option<dns::Lookup>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Duration::from_millis(10_000),
            dns_cache: Duration::ZERO,
            no_delay: true,
            keep_alive_initial_delay: Duration::from_millis(1_000),
            tls: TlsOptions {
                reject_unauthorized: true,
                ..TlsOptions::default()
            },
            spread_addresses: true,
            lookup: None,
        }
    }
}

/// A socket connected (and tunnelled), on its way to being a connection.
struct Reached {
    socket: Arc<Socket>,
    remote_addr: Option<SocketAddr>,
    opened: OpenTimes,
}

/// Opens TCP and TLS connections for keys, with one pool's settings.
pub struct Connector {
    resolver: dns::Resolver,
    /// For `tls` keys: the ALPN protocols as configured.
    tls: TlsConnector,
    /// For `https` keys that do not offer HTTP/2 (raw acquires, `allowH2:
    /// false`): the same without `h2` (a server would pick it and then see
    /// HTTP/1.1).
    tls_http1: TlsConnector,
    /// For `https` keys of requests that may use HTTP/2: `h2`, then
    /// `http/1.1`; the server's choice decides the connection's protocol.
    tls_h2: TlsConnector,
    no_delay: bool,
    keep_alive: Duration,
    connect_timeout: Duration,
    /// With `spreadAddresses`: each key's connections per address.
    addresses: Option<Arc<AddressBook>>,
}

impl Connector {
    pub fn new(config: &ConnectOptions) -> Result<Connector> {
        // Built once (a 'system' store is read from disk, PEM is parsed).
        let tls = tls::client_config(&config.tls)?;
        let mut http1 = (*tls).clone();
        http1.alpn_protocols.retain(|p| p.as_slice() != b"h2");
        let mut h2 = (*tls).clone();
        h2.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let resolver = match &config.lookup {
            Some(lookup) => dns::Resolver::with_lookup(config.dns_cache, lookup.0.clone()),
            None => dns::Resolver::new(config.dns_cache),
        };
        Ok(Connector {
            resolver,
            tls: TlsConnector::from(tls),
            tls_http1: TlsConnector::from(Arc::new(http1)),
            tls_h2: TlsConnector::from(Arc::new(h2)),
            no_delay: config.no_delay,
            keep_alive: config.keep_alive_initial_delay,
            connect_timeout: config.connect_timeout,
            addresses: config
                .spread_addresses
                .then(|| Arc::new(AddressBook::default())),
        })
    }

    /// Each key's connections per address (with `spreadAddresses`), for
    /// `stats()`.
    pub(crate) fn address_book(&self) -> Option<Arc<AddressBook>> {
        self.addresses.clone()
    }

    /// Resolve, connect and (for TLS keys) handshake, within
    /// `connectTimeoutMs` (zero: no limit).
    async fn connect_within(&self, key: &Key, watch: IdleWatch<Key>) -> Result<Connection> {
        if self.connect_timeout.is_zero() {
            return self.open(key, watch).await;
        }
        let timeout_ms = self.connect_timeout.as_millis() as u64;
        match tokio::time::timeout(self.connect_timeout, self.open(key, watch)).await {
            Ok(result) => result,
            Err(_) => Err(Error::ConnectTimeout { timeout_ms }),
        }
    }

    async fn open(&self, key: &Key, watch: IdleWatch<Key>) -> Result<Connection> {
        let start = Instant::now();
        let (socket, remote_addr) = match key.route() {
            Route::Proxy(proxy) if proxy.kind == ProxyKind::Https => {
                return self.open_through_tls_proxy(key, proxy, watch, start).await;
            }
            Route::Direct => self.tcp(key, key.host(), key.port()).await?,
            #[cfg(unix)]
            Route::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(&**path)
                    .await
                    .map_err(|source| Error::UnixConnect {
                        path: path.to_string(),
                        source,
                    })?;
                (Socket::new(Transport::Unix(stream)), None)
            }
            #[cfg(not(unix))]
            Route::Unix(_) => {
                return Err(Error::InvalidArgument(
                    "Unix domain sockets are not supported on this platform".into(),
                ))
            }
            Route::Proxy(proxy) => {
                // socks5:// resolves the target here; socks5h:// and HTTP
                // proxies are given its name.
                let resolved = match proxy.kind {
                    ProxyKind::Socks5 { remote_dns: false } => {
                        self.resolver.resolve(key.host()).await?.first().copied()
                    }
                    _ => None,
                };
                let opened = self.tcp(key, &proxy.host, proxy.port).await?;
                proxy::tunnel(&opened.0, key, proxy, resolved).await?;
                opened
            }
        };
        let connected = Instant::now();
        let mut opened = OpenTimes {
            connect: connected - start,
            tls: Duration::ZERO,
        };
        if !key.uses_tls() {
            return Ok(Connection::new(
                Stream::Plain,
                socket,
                remote_addr,
                None,
                opened,
                watch,
            ));
        }
        let through = SharedTcp(socket.clone());
        let tls = self.handshake(key, through).await?;
        opened.tls = connected.elapsed();
        let reached = Reached {
            socket,
            remote_addr,
            opened,
        };
        self.secured(key, tls, Tls::Direct, reached, watch).await
    }

    /// Through an `https://` proxy: TLS to the proxy, `CONNECT` inside it,
    /// then (for a TLS key) TLS to the target inside that.
    async fn open_through_tls_proxy(
        &self,
        key: &Key,
        proxy: &ProxyRoute,
        watch: IdleWatch<Key>,
        start: Instant,
    ) -> Result<Connection> {
        let (socket, remote_addr) = self.tcp(key, &proxy.host, proxy.port).await?;
        let name = tls::server_name(&proxy.host)?;
        let mut to_proxy = self
            .tls_http1
            .connect(name, SharedTcp(socket.clone()))
            .await
            .map_err(tls::handshake_error)?;
        proxy::tunnel_over(&mut to_proxy, key, proxy).await?;
        let connected = Instant::now();
        let mut opened = OpenTimes {
            connect: connected - start,
            tls: Duration::ZERO,
        };
        if !key.uses_tls() {
            let stream = Stream::Tls(Box::new(Tls::Direct(to_proxy)));
            return Ok(Connection::new(
                stream,
                socket,
                remote_addr,
                None,
                opened,
                watch,
            ));
        }
        let tls = self.handshake(key, to_proxy).await?;
        opened.tls = connected.elapsed();
        let nested = |tls| Tls::Nested(Box::new(tls));
        let reached = Reached {
            socket,
            remote_addr,
            opened,
        };
        self.secured(key, tls, nested, reached, watch).await
    }

    /// The TLS handshake with `key`'s host over `io`.
    async fn handshake<S>(&self, key: &Key, io: S) -> Result<TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let name = tls::server_name(key.tls_name())?;
        let connector = if key.offers_http2() {
            &self.tls_h2
        } else if key.scheme().is_http() {
            &self.tls_http1
        } else {
            &self.tls
        };
        connector
            .connect(name, io)
            .await
            .map_err(tls::handshake_error)
    }

    /// The connection over an established TLS session: HTTP/2 when the
    /// server chose it, else a stream (`wrap` says how it sits on the socket).
    async fn secured<S>(
        &self,
        key: &Key,
        tls: TlsStream<S>,
        wrap: impl FnOnce(TlsStream<S>) -> Tls,
        reached: Reached,
        watch: IdleWatch<Key>,
    ) -> Result<Connection>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Reached {
            socket,
            remote_addr,
            opened,
        } = reached;
        let alpn = tls.get_ref().1.alpn_protocol().map(|p| p.to_vec());
        if key.offers_http2() && alpn.as_deref() == Some(b"h2") {
            let h2 = http2::handshake(tls, socket.clone(), watch).await?;
            return Ok(Connection::http2(h2, socket, remote_addr, opened));
        }
        let stream = Stream::Tls(Box::new(wrap(tls)));
        Ok(Connection::new(
            stream,
            socket,
            remote_addr,
            alpn,
            opened,
            watch,
        ))
    }

    /// Resolve `host` and connect to it over TCP for `key` (to the least
    /// used of its addresses, with `spreadAddresses`), with the socket
    /// options.
    async fn tcp(
        &self,
        key: &Key,
        host: &str,
        port: u16,
    ) -> Result<(Arc<Socket>, Option<SocketAddr>)> {
        let addrs = self.resolver.resolve(host).await?;
        let Some(book) = &self.addresses else {
            let (tcp, remote_addr) = happy_eyeballs::connect(&addrs, port, &mut |_| {}).await?;
            return self.configured(tcp, remote_addr, None);
        };
        let (order, _attempt) = book.plan(key, &addrs);
        // Told as each fails: a connect timeout may drop this future.
        let (tcp, remote_addr) =
            happy_eyeballs::connect(&order, port, &mut |ip| book.failed(key, ip)).await?;
        let lease = book.lease(key, remote_addr.ip());
        self.configured(tcp, remote_addr, Some(lease))
    }

    /// A connected TCP stream with the pool's socket options, as a socket.
    fn configured(
        &self,
        tcp: tokio::net::TcpStream,
        remote_addr: SocketAddr,
        lease: Option<AddressLease>,
    ) -> Result<(Arc<Socket>, Option<SocketAddr>)> {
        let sock = SockRef::from(&tcp);
        sock.set_tcp_nodelay(self.no_delay)?;
        if !self.keep_alive.is_zero() {
            sock.set_keepalive(true)?;
            sock.set_tcp_keepalive(&TcpKeepalive::new().with_time(self.keep_alive))?;
        }
        Ok((
            Socket::leased(Transport::Tcp(tcp), lease),
            Some(remote_addr),
        ))
    }
}

impl Connect<Key, Connection> for Connector {
    fn connect<'a>(
        &'a self,
        key: &'a Key,
        watch: IdleWatch<Key>,
    ) -> BoxFuture<'a, Result<Connection>> {
        // Boxed: the connect future (DNS, happy eyeballs, TLS) is large and
        // only needed on a miss; acquire futures stay small.
        Box::pin(self.connect_within(key, watch))
    }

    fn may_multiplex(&self, key: &Key) -> bool {
        key.offers_http2()
    }
}
