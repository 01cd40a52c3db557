//! pconn-core: a keep-alive connection pool on Tokio and rustls.
//!
//! Organization, in layers (a module uses only those above it):
//! - [`error`]: the one error type and its stable codes;
//! - [`key`]: which connections may serve which acquires, and origin parsing;
//! - [`pool`]: idle lists, multiplexed connections, limits, waiters,
//!   capacity, reaper, stats, generic over key and connection;
//! - [`http1::codec`]: HTTP/1.1 bytes: encoding, parsing, body decoding;
//! - [`transport`]: DNS, TCP (happy eyeballs), proxies, TLS, and the
//!   connection the pool keeps (HTTP/2 connections through the h2 crate);
//! - [`config`]: a pool's whole configuration;
//! - [`exchange`]: one HTTP exchange over a pooled connection (HTTP/1.1, or
//!   a stream of an HTTP/2 one);
//! - [`client`]: a pool with its connector and routing, and shared pools.
//!
//! ```no_run
//! # async fn demo() -> pconn_core::Result<()> {
//! use pconn_core::{AcquireOptions, Client, Key, PoolConfig};
//! let pool = Client::new(PoolConfig::default(), &tokio::runtime::Handle::current())?;
//! let key = Key::parse_url("tcp://127.0.0.1:6379")?;
//! let mut conn = pool.acquire(&key, &AcquireOptions::default()).await?;
//! conn.connection().io().write_all(b"PING\r\n").await?;
//! conn.release(true);
//! # Ok(()) }
//! ```

pub mod client;
pub mod config;
pub mod error;
pub mod exchange;
pub mod http1;
pub mod key;
pub mod pool;
pub mod transport;

pub use client::Client;
pub use config::PoolConfig;
pub use error::{Error, Result, TlsReason};
pub use key::{Key, Scheme};
pub use pool::{AcquireOptions, Cancel, CloseReason, PoolLimits, PoolStats, Scheduling};
pub use transport::{ConnectOptions, Connection, TlsOptions, Trust};

/// A pool of TCP and TLS connections (see [`pool::Pool`]).
pub type Pool = pool::Pool<Key, Connection>;
/// A TCP or TLS connection on loan.
pub type Pooled = pool::Pooled<Key, Connection>;
/// How an acquire of pconn's pool goes on (see [`pool::Acquiring`]).
pub type Acquiring = pool::Acquiring<Key, Connection>;
/// Room reserved to open one of pconn's connections.
pub type ConnectSlot = pool::ConnectSlot<Key, Connection>;
/// What a waiting acquire of pconn's pool receives.
pub type Grant = pool::Grant<Key, Connection>;
/// An acquire of pconn's pool waiting in its queue.
pub type Queued = pool::Queued<Key, Connection>;
