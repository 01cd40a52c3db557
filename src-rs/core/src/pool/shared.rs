//! Pools shared by every JavaScript thread of the process, by name.
//!
//! The one deliberate process-wide table of the crate: each thread that
//! opens `name` gets its own handle onto the same pool (same connections,
//! same limits); the pool closes when its last handle does.

use std::sync::{Arc, Mutex, Weak};

use tokio::runtime::Handle;

use super::{Pool, PoolInner};
use crate::config::PoolConfig;
use crate::connection::Connection;
use crate::error::{Error, Result};

type Registry = Vec<(String, Weak<PoolInner<Connection>>)>;

static REGISTRY: Mutex<Registry> = Mutex::new(Vec::new());

/// A handle onto the process-wide pool called `name`, created with
/// `config` by the first caller. Later callers must pass the same options.
pub fn shared(name: &str, config: PoolConfig, runtime: &Handle) -> Result<Pool<Connection>> {
    let mut registry = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    registry.retain(|(_, pool)| pool.strong_count() > 0);
    let existing = registry
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, pool)| pool.upgrade());
    // A pool whose last handle closed takes no new handles: start anew.
    if let Some(pool) = existing.and_then(Pool::join) {
        if *pool.config() != config {
            return Err(Error::InvalidArgument(format!(
                "a shared pool named {name:?} already exists with different options; \
                 every thread must pass the same options for the same name"
            )));
        }
        return Ok(pool);
    }
    let pool = Pool::build(config, runtime)?;
    registry.retain(|(n, _)| n != name);
    registry.push((name.to_string(), Arc::downgrade(&pool.inner)));
    Ok(pool)
}
