//! Pool options and their defaults: the one home of every default (the
//! JavaScript façade reads them from here through the binding).

use std::time::Duration;

use crate::proxy::ProxyPolicy;

/// Which idle connection `acquire` takes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheduling {
    /// Most recently released first: keeps few connections warm, lets the rest expire.
    #[default]
    Lifo,
    /// Least recently released first: spreads load over every connection.
    Fifo,
}

/// Which certificates a pool trusts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Trust {
    /// The Mozilla roots (webpki-roots), plus the certificates of the PEM
    /// file named by `NODE_EXTRA_CA_CERTS`, as Node does.
    #[default]
    Default,
    /// These PEM certificates only. A server certificate that is exactly
    /// one of them is trusted even when it is a self-signed CA certificate
    /// (as `openssl req -x509` makes); its name is still checked.
    Pem(Vec<u8>),
    /// The operating system's store.
    System,
}

/// TLS settings shared by every TLS connection of a pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    pub ca: Trust,
    /// PEM client certificate chain and its private key (mutual TLS).
    pub cert_pem: Option<Vec<u8>>,
    pub key_pem: Option<Vec<u8>>,
    /// `false` disables certificate and hostname checks. Dangerous: only for tests.
    pub reject_unauthorized: bool,
    /// Name to send in SNI and verify, instead of the key's host.
    pub servername: Option<String>,
    /// ALPN protocols to offer, in order of preference.
    pub alpn: Vec<Vec<u8>>,
}

/// Every option of a pool. `None` means "no limit" for the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    pub max_idle_per_host: usize,
    pub max_connections_per_host: Option<usize>,
    pub max_connections: Option<usize>,
    pub max_pending: Option<usize>,
    pub idle_timeout: Duration,
    /// Zero = unlimited.
    pub max_lifetime: Duration,
    /// Zero = unlimited.
    pub max_uses: u64,
    pub scheduling: Scheduling,
    /// Zero = no limit.
    pub connect_timeout: Duration,
    /// Zero = wait forever.
    pub acquire_timeout: Duration,
    /// Zero = resolve on every connect.
    pub dns_cache: Duration,
    pub tls: TlsOptions,
    /// Largest HTTP response head `request()` accepts (status line, headers
    /// and blank line), as node's `maxHeaderSize`.
    pub max_header_size: usize,
    /// Which keys go through an HTTP proxy (None: every key is direct).
    pub proxy: Option<ProxyPolicy>,
    pub no_delay: bool,
    /// Zero = TCP keep-alive off.
    pub keep_alive_initial_delay: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_idle_per_host: 256,
            max_connections_per_host: None,
            max_connections: None,
            max_pending: None,
            idle_timeout: Duration::from_millis(4_000),
            max_lifetime: Duration::ZERO,
            max_uses: 0,
            scheduling: Scheduling::Lifo,
            connect_timeout: Duration::from_millis(10_000),
            acquire_timeout: Duration::ZERO,
            dns_cache: Duration::ZERO,
            tls: TlsOptions {
                reject_unauthorized: true,
                ..TlsOptions::default()
            },
            max_header_size: crate::http1::MAX_HEAD_BYTES,
            proxy: None,
            no_delay: true,
            keep_alive_initial_delay: Duration::from_millis(1_000),
        }
    }
}
