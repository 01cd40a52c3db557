//! Everything a JavaScript `Pool` is configured with: the pool's limits, how
//! its connections are opened, which keys go through a proxy, and the HTTP
//! limits of `request()`. Each part has its defaults where it is used; a
//! shared pool's options are compared as a whole.

use crate::http1::codec::MAX_HEAD_BYTES;
use crate::pool::PoolLimits;
use crate::transport::{ConnectOptions, ProxyPolicy};

/// Every option of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    pub limits: PoolLimits,
    pub connect: ConnectOptions,
    /// Which keys go through an HTTP proxy (None: every key is direct).
    pub proxy: Option<ProxyPolicy>,
    /// Largest HTTP response head `request()` accepts (status line, headers
    /// and blank line), as node's `maxHeaderSize`.
    pub max_header_size: usize,
    /// HTTPS requests offer HTTP/2 (ALPN `h2`, then `http/1.1`); the server
    /// chooses. undici 8's `allowH2`, and its default.
    pub allow_h2: bool,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            limits: PoolLimits::default(),
            connect: ConnectOptions::default(),
            proxy: None,
            max_header_size: MAX_HEAD_BYTES,
            allow_h2: true,
        }
    }
}
