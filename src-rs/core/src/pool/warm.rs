//! Pre-warming: `warm(key, count)` opens connections until `count` are
//! idle for a key, and `min_idle_per_host` keeps that many idle for every
//! key in use, replacing those that are taken or close. Both stay within
//! every limit and never connect for a key whose circuit breaker is not
//! closed.

use std::sync::Arc;

use tokio::task::JoinSet;

use super::circuit::CircuitState;
use super::gauges::Slot;
use super::handle::HandleState;
use super::key::PoolKey;
use super::poolable::Poolable;
use super::pooled::ConnectSlot;
use super::state::{Aftermath, Host, State};
use super::PoolInner;
use crate::error::{Error, Result};

/// A key's idle connections: parked, or multiplexed with no stream.
fn idle_count<K: PoolKey, C: Poolable>(host: &Host<K, C>) -> usize {
    host.idle.len() + host.shared.iter().filter(|s| s.loans == 0).count()
}

impl<K: PoolKey, C: Poolable> PoolInner<K, C> {
    /// Reserve room to open connections until `wanted` would be idle for
    /// `key` (fewer at a limit; one at a time for a key that may
    /// multiplex). PCONN_CIRCUIT_OPEN if its circuit is not closed.
    fn reserve_warm(
        self: &Arc<Self>,
        key: &K,
        wanted: usize,
        handle: &Arc<HandleState>,
    ) -> Result<Vec<ConnectSlot<K, C>>> {
        let mut guard = self.lock();
        let st = &mut *guard;
        if st.closed {
            return Err(Error::PoolClosed);
        }
        let host = st.host_mut(key);
        if host.circuit.state() != CircuitState::Closed {
            let error = host.circuit.refusal();
            st.settle(key);
            return Err(error);
        }
        let had = idle_count(host);
        // More than `max_idle_per_host` would be closed again when parked.
        let wanted = wanted.min(self.limits.max_idle_per_host);
        let mut slots = Vec::new();
        while had + slots.len() < wanted
            && st.hosts.get(key).is_some_and(|h| self.may_connect(key, h))
            && self.global_room(st)
        {
            st.entered(key, Slot::Connecting);
            // Warming needs a closed circuit (above): never a trial.
            slots.push(ConnectSlot::new(
                self.clone(),
                handle.clone(),
                key.clone(),
                None,
            ));
        }
        st.settle(key);
        drop(guard);
        Ok(slots)
    }

    /// Open connections of `key` until `wanted` are idle, in parallel, and
    /// park them (a waiter that queued meanwhile gets one instead).
    async fn warm_until(
        self: &Arc<Self>,
        key: &K,
        wanted: usize,
        handle: &Arc<HandleState>,
    ) -> Result<Warmed> {
        let mut connects = JoinSet::new();
        for slot in self.reserve_warm(key, wanted, handle)? {
            connects.spawn(slot.open());
        }
        let mut warmed = Warmed {
            opened: 0,
            last_error: None,
        };
        while let Some(opened) = connects.join_next().await {
            match opened {
                Ok(Ok(pooled)) => {
                    warmed.opened += 1;
                    pooled.release(true);
                }
                Ok(Err(e)) => warmed.last_error = Some(e),
                Err(e) => warmed.last_error = Some(Error::Io(std::io::Error::other(e))),
            }
        }
        Ok(warmed)
    }

    /// `warm(key, count)`: until `count` are idle. The number idle then;
    /// the last connect error if none is.
    pub(crate) async fn warm(
        self: &Arc<Self>,
        key: &K,
        count: usize,
        handle: &Arc<HandleState>,
    ) -> Result<usize> {
        let warmed = self.warm_until(key, count, handle).await?;
        let idle = self.lock().hosts.get(key).map_or(0, idle_count);
        match warmed.last_error {
            Some(e) if idle == 0 => Err(e),
            _ => Ok(idle),
        }
    }

    /// After `key` opened, lent or lost a connection: if it has fewer than
    /// `min_idle_per_host` idle, top it up once the lock is released (one
    /// top-up at a time per key).
    pub(crate) fn top_up_if_needed(
        &self,
        st: &mut State<K, C>,
        key: &K,
        after: &mut Aftermath<K, C>,
    ) {
        let min = self.limits.idle_floor();
        if min == 0 || st.closed {
            return;
        }
        let Some(host) = st.hosts.get_mut(key) else {
            return;
        };
        if host.topping_up
            || idle_count(host) >= min
            || host.circuit.state() != CircuitState::Closed
        {
            return;
        }
        host.topping_up = true;
        after.top_ups.push(key.clone());
    }

    /// Top `key` up to `min_idle_per_host` idle connections in the
    /// background, again while connections go meanwhile and every connect
    /// works (a
    /// failed connect counts against the key's circuit and is not tried
    /// again until the key's next open or close). Its loans go back at once.
    pub(crate) fn top_up(self: &Arc<Self>, key: K) {
        let pool = self.clone();
        self.runtime.spawn(async move {
            let handle = pool.own_handle.clone();
            let min = pool.limits.idle_floor();
            loop {
                let progress = match pool.warm_until(&key, min, &handle).await {
                    Ok(w) => w.opened > 0 && w.last_error.is_none(),
                    Err(_) => false,
                };
                let mut st = pool.lock();
                let short = !st.closed
                    && st.hosts.get(&key).is_some_and(|h| {
                        idle_count(h) < min && h.circuit.state() == CircuitState::Closed
                    });
                if progress && short {
                    continue;
                }
                if let Some(host) = st.hosts.get_mut(&key) {
                    host.topping_up = false;
                }
                st.settle(&key);
                return;
            }
        });
    }
}

/// What a warm-up did.
struct Warmed {
    opened: usize,
    last_error: Option<Error>,
}
