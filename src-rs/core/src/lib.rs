//! pconn-core: a keep-alive connection pool on Tokio and rustls.
//!
//! Organization:
//! - [`key`]: which connections may serve which acquires;
//! - [`config`]: the pool's options and their defaults;
//! - [`pool`]: idle lists, limits, waiters, capacity, reaper, stats (generic
//!   over the connection type);
//! - `connector`: DNS, TCP (happy eyeballs), TLS;
//! - [`connection`]: one TCP or TLS connection and its liveness check;
//! - [`http1`]: the HTTP/1.1 exchange over a pooled connection;
//! - [`error`]: the one error type and its stable codes.
//!
//! ```no_run
//! # async fn demo() -> pconn_core::Result<()> {
//! use pconn_core::{AcquireOptions, Key, Pool, PoolConfig};
//! let pool = Pool::build(PoolConfig::default(), &tokio::runtime::Handle::current())?;
//! let key = Key::parse_url("tcp://127.0.0.1:6379")?;
//! let mut conn = pool.acquire(&key, &AcquireOptions::default()).await?;
//! conn.connection().io().write_all(b"PING\r\n").await?;
//! conn.release(true);
//! # Ok(()) }
//! ```

pub mod config;
pub mod connection;
mod connector;
pub mod error;
pub mod http1;
pub mod key;
pub mod pool;
pub mod proxy;

pub use config::{PoolConfig, Scheduling, TlsOptions, Trust};
pub use connection::Connection;
pub use error::{Error, Result, TlsReason};
pub use key::{Key, Scheme};
pub use pool::{AcquireOptions, Acquiring, Cancel, CloseReason, Grant, PoolStats, Queued};

/// A pool of TCP and TLS connections (see [`pool::Pool`]).
pub type Pool = pool::Pool<Connection>;
/// A TCP or TLS connection on loan.
pub type Pooled = pool::Pooled<Connection>;
