//! pconn-core: a keep-alive connection pool on Tokio and rustls.
//!
//! Organization:
//! - [`key`]: which connections may serve which acquires;
//! - [`config`]: the pool's options and their defaults;
//! - [`pool`]: idle lists, limits, waiters, reaper, stats;
//! - `connector`: DNS, TCP (happy eyeballs), TLS;
//! - [`connection`]: one connection and its liveness check;
//! - [`http1`]: the HTTP/1.1 exchange over a pooled connection;
//! - [`error`]: the one error type and its stable codes.
//!
//! ```no_run
//! # async fn demo() -> pconn_core::Result<()> {
//! use pconn_core::{Key, Pool, PoolConfig, AcquireOptions};
//! let pool = Pool::new(PoolConfig::default(), tokio::runtime::Handle::current())?;
//! let key = Key::parse_url("http://127.0.0.1:8080")?;
//! let mut conn = pool.acquire(&key, &AcquireOptions::default()).await?;
//! conn.connection()?.write_all(b"PING\r\n").await?;
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
mod read_buffer;
mod socket;

pub use config::{PoolConfig, Scheduling, TlsOptions};
pub use connection::Connection;
pub use error::{Error, Result, TlsReason};
pub use key::{Key, Scheme};
pub use pool::{
    AcquireOptions, Acquiring, Cancel, CloseReason, PendingAcquire, Pool, PoolStats, Pooled,
};
