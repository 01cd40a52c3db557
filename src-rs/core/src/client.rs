//! A pool of pconn's connections together with how they are opened and
//! routed: what a JavaScript `Pool` holds. The pool decides when to
//! connect; the client's `Connector` connects, and its routing decides
//! which key a request goes under (a pool-wide TLS name, a proxy).
//!
//! Also the one deliberate process-wide table of the crate: pools shared
//! by every JavaScript thread, by name. Each thread that opens a name gets
//! its own handle onto the same pool (same connections, same limits); the
//! pool closes when its last handle does.

use std::ops::Deref;
use std::sync::{Arc, Mutex};

use tokio::runtime::Handle;

use crate::config::PoolConfig;
use crate::error::{Error, Result};
use crate::key::{normalize_host, Key, Route};
use crate::pool::PoolStats;
use crate::pool::WeakPool;
use crate::transport::{AddressBook, Connection, Connector};
use crate::Pool;

/// A pool and its configuration. Dereferences to the pool (acquire,
/// release, stats, shutdown).
#[derive(Clone)]
pub struct Client {
    pool: Pool,
    config: Arc<PoolConfig>,
    /// With `spreadAddresses`: the connector's count of connections per address.
    addresses: Option<Arc<AddressBook>>,
}

impl Deref for Client {
    type Target = Pool;

    fn deref(&self) -> &Pool {
        &self.pool
    }
}

impl Client {
    /// A pool of its own, whose reaper runs on `runtime`.
    pub fn new(config: PoolConfig, runtime: &Handle) -> Result<Client> {
        let connector = Connector::new(&config.connect)?;
        let addresses = connector.address_book();
        let pool = Pool::new(config.limits.clone(), runtime, connector);
        Ok(Client {
            pool,
            config: Arc::new(config),
            addresses,
        })
    }

    /// A handle onto the process-wide pool called `name`, created with
    /// `config` by the first caller. Later callers must pass the same
    /// options; a pool whose last handle closed is replaced.
    pub fn shared(name: &str, config: PoolConfig, runtime: &Handle) -> Result<Client> {
        let mut registry = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
        registry.retain(|shared| !shared.pool.is_gone());
        let found = registry.iter().find(|shared| shared.name == name);
        if let Some(shared) = found {
            if let Some(pool) = shared.pool.new_handle() {
                if *shared.config != config {
                    return Err(Error::InvalidArgument(format!(
                        "a shared pool named {name:?} already exists with different options; \
                         every thread must pass the same options for the same name"
                    )));
                }
                let (config, addresses) = (shared.config.clone(), shared.addresses.clone());
                return Ok(Client {
                    pool,
                    config,
                    addresses,
                });
            }
        }
        let client = Client::new(config, runtime)?;
        registry.retain(|shared| shared.name != name);
        registry.push(Shared {
            name: name.to_string(),
            config: client.config.clone(),
            pool: client.pool.downgrade(),
            addresses: client.addresses.clone(),
        });
        Ok(client)
    }

    /// The pool's gauges and totals, with each key's connections per
    /// address (`spreadAddresses`).
    pub fn stats(&self) -> PoolStats {
        let mut stats = self.pool.stats();
        for (key, addresses) in self.addresses.iter().flat_map(|b| b.snapshot()) {
            if let Some(host) = stats.hosts.get_mut(&key.to_string()) {
                host.add_addresses(&addresses);
            }
        }
        stats
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// The key a URL or a key object maps to under this pool's settings: a
    /// pool-wide `tls.servername` becomes part of every TLS key, and a key
    /// the proxy policy covers goes through its proxy.
    pub fn effective_key(&self, key: Key) -> Result<Key> {
        let config = &self.config;
        let key = match &config.connect.tls.servername {
            Some(name) if key.uses_tls() && key.servername().is_none() => {
                key.with_servername(name)?
            }
            _ => key,
        };
        if !matches!(key.route(), Route::Direct) {
            return Ok(key);
        }
        Ok(
            match config.proxy.as_ref().and_then(|p| p.route_for(&key)) {
                Some(proxy) => key.with_proxy(proxy),
                None => key,
            },
        )
    }

    /// The key an HTTP request goes under: `effective_key`, offering
    /// HTTP/2 on `https` when the pool allows it. (Raw acquires use
    /// `effective_key` alone: their connections carry the caller's bytes.)
    pub fn request_key(&self, key: Key) -> Result<Key> {
        Ok(self.effective_key(key)?.with_http2(self.config.allow_h2))
    }

    /// Close every idle connection whose host is `host` (any scheme or
    /// port), normalised as keys' hosts are; returns how many.
    pub fn flush_for_host(&self, host: &str) -> Result<usize> {
        let host = normalize_host(host.trim_start_matches('[').trim_end_matches(']'))?;
        Ok(self.pool.flush(|key| key.host() == host))
    }
}

/// A pool shared by name.
struct Shared {
    name: String,
    config: Arc<PoolConfig>,
    pool: WeakPool<Key, Connection>,
    addresses: Option<Arc<AddressBook>>,
}

static REGISTRY: Mutex<Vec<Shared>> = Mutex::new(Vec::new());
