//! `NativeConnection`: one checkout of a pooled connection.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use std::net::SocketAddr;

use pconn_core::{Error, Key, Pooled};
use tokio::sync::Mutex;

use crate::bridge::Value;
use crate::errors::throw;
use crate::pool::start;

/// One loan of a connection. Operations run one at a time; a release while
/// one is running takes effect (as a close) when it ends.
#[napi]
pub struct NativeConnection {
    slot: Arc<Slot>,
    id: f64,
    key: Key,
    reused: bool,
    uses: f64,
    remote: SocketAddr,
    alpn: Option<Vec<u8>>,
    pool_id: u64,
}

struct Slot {
    pooled: Mutex<Option<Pooled>>,
    released: AtomicBool,
}

impl NativeConnection {
    pub(crate) fn new(pooled: Pooled) -> pconn_core::Result<NativeConnection> {
        let conn = pooled.connection_ref()?;
        Ok(NativeConnection {
            id: conn.id() as f64,
            key: conn.key().clone(),
            reused: pooled.reused(),
            uses: conn.uses() as f64,
            remote: conn.remote_addr(),
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
            pool_id: pooled.pool_id(),
            slot: Arc::new(Slot {
                pooled: Mutex::new(Some(pooled)),
                released: AtomicBool::new(false),
            }),
        })
    }

    pub(crate) fn release_to(&self, pool_id: u64, keep_alive_ok: bool) -> pconn_core::Result<()> {
        if pool_id != self.pool_id {
            return Err(Error::ForeignConnection);
        }
        if self.slot.released.swap(true, Ordering::AcqRel) {
            return Err(Error::AlreadyReleased);
        }
        // Busy: the running operation sees `released` and closes it when done.
        if let Ok(mut guard) = self.slot.pooled.try_lock() {
            if let Some(pooled) = guard.take() {
                pooled.release(keep_alive_ok);
            }
        }
        Ok(())
    }

    fn check_open(&self) -> napi::Result<Arc<Slot>> {
        if self.slot.released.load(Ordering::Acquire) {
            return Err(throw(Error::AlreadyReleased));
        }
        Ok(self.slot.clone())
    }
}

impl Slot {
    /// Run `op` on the connection, then honour a release that came meanwhile.
    async fn with<T>(
        &self,
        op: impl AsyncFnOnce(&mut pconn_core::Connection) -> std::io::Result<T>,
    ) -> pconn_core::Result<T> {
        let mut guard = self.pooled.lock().await;
        let pooled = guard.as_mut().ok_or(Error::AlreadyReleased)?;
        let result = op(pooled.connection()?).await;
        if self.released.load(Ordering::Acquire) {
            if let Some(pooled) = guard.take() {
                pooled.release(false);
            }
        }
        Ok(result?)
    }
}

#[napi]
impl NativeConnection {
    #[napi(getter)]
    pub fn id(&self) -> f64 {
        self.id
    }
    #[napi(getter)]
    pub fn key(&self) -> String {
        self.key.to_string()
    }
    #[napi(getter)]
    pub fn reused(&self) -> bool {
        self.reused
    }
    #[napi(getter)]
    pub fn uses(&self) -> f64 {
        self.uses
    }
    #[napi(getter)]
    pub fn remote_address(&self) -> String {
        self.remote.ip().to_string()
    }
    #[napi(getter)]
    pub fn remote_port(&self) -> u32 {
        u32::from(self.remote.port())
    }
    #[napi(getter)]
    pub fn alpn_protocol(&self) -> Option<String> {
        self.alpn
            .as_deref()
            .map(|p| String::from_utf8_lossy(p).into_owned())
    }
    #[napi(getter)]
    pub fn released(&self) -> bool {
        self.slot.released.load(Ordering::Acquire)
    }

    /// Write and flush `data`. Returns true when the socket took it all at
    /// once (no completion follows); otherwise the rest is written in the
    /// background and completes at the bridge under `id`.
    #[napi(catch_unwind)]
    pub fn write(&self, id: u32, data: Buffer) -> napi::Result<bool> {
        let slot = self.check_open()?;
        let mut done = 0;
        if let Ok(mut guard) = slot.pooled.try_lock() {
            if let Some(pooled) = guard.as_mut() {
                let conn = pooled.connection().map_err(throw)?;
                let (taken, flushed) = conn.try_write_now(&data).map_err(|e| throw(e.into()))?;
                if taken == data.len() && flushed {
                    return Ok(true);
                }
                done = taken;
            }
        }
        let rest = data[done..].to_vec();
        start(id, async move {
            slot.with(async |c| c.write_all(&rest).await).await?;
            Ok(Value::Done)
        })?;
        Ok(false)
    }

    /// Read the next chunk (null at EOF); completes at the bridge under `id`.
    #[napi(catch_unwind)]
    pub fn read(&self, id: u32) -> napi::Result<()> {
        let slot = self.check_open()?;
        start(id, async move {
            Ok(Value::Bytes(
                slot.with(async |c| c.read_chunk().await).await?,
            ))
        })
    }
}
