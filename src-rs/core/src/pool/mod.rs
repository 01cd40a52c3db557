//! The pool: idle lists, multiplexed connections, limits, waiters,
//! capacity, the reaper. Generic over its key and its connection, and
//! configured by its limits alone: it opens nothing itself (a `Connect`
//! does) and knows nothing of sockets, TLS or HTTP.
//!
//! Organization:
//! - `key`, `poolable`, `limits`: what the pool asks of keys, connections
//!   and connectors, and its settings;
//! - `state`, `gauges`, `entry`, `idle_list`, `waiters`: the state behind
//!   the lock;
//! - `checkout`, `release`, `capacity`, `reaper`, `closing`: the steps
//!   that change it, each a short section under the lock;
//! - `pooled`, `queued`: what callers hold (a loan, reserved room, a grant,
//!   a place in the queue);
//! - `handle`: the users of one pool (one, or one per thread of a shared pool);
//! - `cancel`: cancellation (the Rust side of AbortSignal);
//! - `stats`: counters, their history, and the `stats()` snapshot.
//!
//! All state sits behind one mutex, held for short steps that never block,
//! never touch a socket and, on the acquire and release paths, never scan
//! every key (only `flush`, `stats` and closing the pool do); liveness
//! checks, closes and the delivery of grants to waiters happen after it is
//! released (`Aftermath`). Every change that frees capacity (a close, a
//! reap, a flush, a failed or abandoned connect, a waiter that leaves, a
//! stream that ends) goes through `grant_capacity` or `serve_streams`,
//! which serve waiters at once.

pub mod cancel;
mod capacity;
mod checkout;
mod circuit;
mod closing;
mod entry;
mod events;
mod gauges;
mod handle;
mod idle_list;
mod key;
mod learned_idle;
mod limits;
mod poolable;
mod pooled;
mod queued;
mod reaper;
mod release;
mod state;
mod stats;
#[cfg(test)]
mod tests;
mod waiters;
mod warm;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::Notify;

pub use cancel::Cancel;
pub use circuit::{CircuitBreaker, CircuitState};
pub use events::{EventListener, PoolEvent};
pub use key::PoolKey;
pub use limits::{PoolLimits, Scheduling};
pub use poolable::{BoxFuture, Connect, IdleWatch, Liveness, Poolable};
pub use pooled::{ConnectSlot, Grant, Pooled};
pub use queued::Queued;
pub use stats::{CloseReason, ClosedBy, Counters, HostStats, PoolStats, HOST_HISTORY_LIMIT};
pub use waiters::Deliver;

use crate::error::{Error, Result};
use cancel::or_cancelled;
use checkout::Step;
use entry::Entry;
use handle::HandleState;
use poolable::IdleCheck;
use state::{Aftermath, State};

static NEXT_POOL_ID: AtomicU64 = AtomicU64::new(1);
static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) fn next_connection_id() -> u64 {
    NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed)
}

/// Per-acquire options.
#[derive(Debug, Default, Clone)]
pub struct AcquireOptions {
    /// Overrides the pool's `acquire_timeout` (zero = wait forever).
    pub timeout: Option<Duration>,
    pub cancel: Option<Arc<Cancel>>,
    /// Skip idle and multiplexed connections and open a new one (retries).
    pub fresh: bool,
    /// The caller retries on a fresh connection when the one it got turns
    /// out to be closed (an idempotent HTTP request), so the checkout may
    /// trust the event loop's view of the socket instead of asking the
    /// kernel: no system call on the hot path.
    pub retry_on_stale: bool,
}

/// A keep-alive connection pool. Clones share the pool and the handle.
pub struct Pool<K: PoolKey, C: Poolable> {
    inner: Arc<PoolInner<K, C>>,
    handle: Arc<HandleGuard<K, C>>,
}

impl<K: PoolKey, C: Poolable> Clone for Pool<K, C> {
    fn clone(&self) -> Self {
        Pool {
            inner: self.inner.clone(),
            handle: self.handle.clone(),
        }
    }
}

/// Closes its handle when the last clone of a `Pool` goes away.
struct HandleGuard<K: PoolKey, C: Poolable> {
    state: Arc<HandleState>,
    pool: Arc<PoolInner<K, C>>,
}

impl<K: PoolKey, C: Poolable> Drop for HandleGuard<K, C> {
    fn drop(&mut self) {
        self.pool.close_handle(&self.state);
        self.pool.forget_listener(&self.state);
    }
}

/// A pool held without keeping it open.
pub struct WeakPool<K: PoolKey, C: Poolable>(std::sync::Weak<PoolInner<K, C>>);

impl<K: PoolKey, C: Poolable> WeakPool<K, C> {
    /// A new handle on the pool, unless it is gone or its last handle closed.
    pub fn new_handle(&self) -> Option<Pool<K, C>> {
        Pool::join(self.0.upgrade()?)
    }

    /// Whether the pool is gone.
    pub fn is_gone(&self) -> bool {
        self.0.strong_count() == 0
    }
}

/// The outcome of [`Pool::begin_acquire`].
pub enum Acquiring<K: PoolKey, C: Poolable> {
    /// An idle connection (checked) or a stream of a multiplexed one.
    Ready(Pooled<K, C>),
    /// Room was reserved: open the connection with [`ConnectSlot::open`].
    Connect(ConnectSlot<K, C>),
    /// The acquire waits in the queue at a limit.
    Queued(Queued<K, C>),
}

/// How a queued acquire is told about its grant.
pub(crate) enum Delivery<F> {
    Channel,
    Callback(F),
}

pub(crate) struct PoolInner<K: PoolKey, C: Poolable> {
    pub(crate) id: u64,
    pub(crate) limits: PoolLimits,
    pub(crate) connector: Box<dyn Connect<K, C>>,
    state: Mutex<State<K, C>>,
    /// Taken before the state lock is released by a step that granted
    /// something, and held while the grants are delivered: grants reach
    /// waiters in the order they were made, with the state lock free.
    delivery: Mutex<()>,
    reaper_wake: Arc<Notify>,
    /// Fired when the pool closes: connects in progress give up.
    pub(crate) closing: Cancel,
    /// Notified when the pool is closed and its last connection is gone.
    drained: Notify,
    /// Handles not yet closed; the pool closes with the last.
    open_handles: AtomicUsize,
    listeners: RwLock<Vec<(u64, EventListener<K>)>>,
    jitter_seed: AtomicU64,
    /// Where the pool's own tasks run (the reaper, top-ups).
    runtime: Handle,
    /// The user of the connections the pool opens on its own (top-ups to
    /// `min_idle_per_host`); it never closes but with the pool.
    own_handle: Arc<HandleState>,
    /// The pool itself, for the tasks a locked step starts.
    me: std::sync::Weak<PoolInner<K, C>>,
}

impl<K: PoolKey, C: Poolable> Pool<K, C> {
    /// A pool whose background task (the reaper) runs on `runtime`.
    pub fn new(limits: PoolLimits, runtime: &Handle, connector: impl Connect<K, C>) -> Pool<K, C> {
        let reaper_wake = Arc::new(Notify::new());
        let inner = Arc::new_cyclic(|me| PoolInner {
            id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
            limits,
            connector: Box::new(connector),
            state: Mutex::new(State::default()),
            delivery: Mutex::new(()),
            reaper_wake: reaper_wake.clone(),
            closing: Cancel::new(),
            drained: Notify::new(),
            open_handles: AtomicUsize::new(0),
            listeners: RwLock::new(Vec::new()),
            jitter_seed: AtomicU64::new(reaper::seed()),
            runtime: runtime.clone(),
            own_handle: Arc::new(HandleState::new()),
            me: me.clone(),
        });
        runtime.spawn(reaper::reap(Arc::downgrade(&inner), reaper_wake));
        inner.open_handles.store(1, Ordering::Release);
        Pool::with_handle(inner)
    }

    fn with_handle(inner: Arc<PoolInner<K, C>>) -> Pool<K, C> {
        Pool {
            handle: Arc::new(HandleGuard {
                state: Arc::new(HandleState::new()),
                pool: inner.clone(),
            }),
            inner,
        }
    }

    /// Another handle on the same pool: same connections and limits, its
    /// own `shutdown` (for a pool shared by several threads). `None` once
    /// the pool's last handle has closed.
    pub fn new_handle(&self) -> Option<Pool<K, C>> {
        Pool::join(self.inner.clone())
    }

    fn join(inner: Arc<PoolInner<K, C>>) -> Option<Pool<K, C>> {
        inner
            .open_handles
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n > 0).then_some(n + 1)
            })
            .ok()?;
        Some(Pool::with_handle(inner))
    }

    /// This pool, held without keeping it open (for a registry of shared
    /// pools).
    pub fn downgrade(&self) -> WeakPool<K, C> {
        WeakPool(Arc::downgrade(&self.inner))
    }

    pub fn id(&self) -> u64 {
        self.inner.id
    }

    pub fn limits(&self) -> &PoolLimits {
        &self.inner.limits
    }

    /// Report every event of this pool (every connection it closes, idle
    /// timeouts learned, circuits opening and closing) to `listener`, until
    /// this handle is dropped or closed for process exit: the closes of its
    /// own shutdown are reported (they may be buried on another thread
    /// after the shutdown saw the pool drained).
    pub fn on_event(&self, listener: EventListener<K>) {
        if let Ok(mut listeners) = self.inner.listeners.write() {
            listeners.push((self.handle.state.id, listener));
        }
    }

    /// Take a live parked connection for `key` if there is one; never
    /// connects, never queues, never lends a stream.
    pub fn try_acquire_idle(&self, key: &K) -> Result<Option<Pooled<K, C>>> {
        let inner = &self.inner;
        loop {
            if self.handle.state.is_closed() {
                return Err(Error::PoolClosed);
            }
            let Some(entry) = inner.take_idle_step(key)? else {
                return Ok(None);
            };
            if let Some(pooled) = self.vet(entry, true) {
                return Ok(Some(pooled));
            }
        }
    }

    /// Check a parked connection taken for a checkout (outside the lock):
    /// lend it if it is alive, close it otherwise.
    fn vet(&self, mut entry: Entry<K, C>, exact: bool) -> Option<Pooled<K, C>> {
        match entry.conn.liveness(exact).close_reason() {
            None => {
                entry.conn.unpark();
                let handle = self.handle.state.clone();
                Some(Pooled::new(entry, self.inner.clone(), handle, true))
            }
            Some(reason) => {
                self.inner.close_candidate(entry, reason);
                None
            }
        }
    }

    /// Get a connection for `key`: a stream of a multiplexed connection
    /// with room, a live idle one, a new one, or (at a limit) the next one
    /// released or allowed, in FIFO order.
    pub async fn acquire(&self, key: &K, opts: &AcquireOptions) -> Result<Pooled<K, C>> {
        match self.begin_acquire(key, opts)? {
            Acquiring::Ready(pooled) => Ok(pooled),
            Acquiring::Connect(slot) => or_cancelled(opts.cancel.as_deref(), slot.open()).await,
            Acquiring::Queued(queued) => queued.wait(opts).await,
        }
    }

    /// The synchronous first half of `acquire`: takes a connection, reserves
    /// room to connect, or joins the queue (finish with [`Queued::wait`]),
    /// all before returning, so queue order is call order.
    pub fn begin_acquire(&self, key: &K, opts: &AcquireOptions) -> Result<Acquiring<K, C>> {
        self.checkout(key, opts, Delivery::<fn(Grant<K, C>) -> _>::Channel)
    }

    /// Like `begin_acquire`, but a queued acquire is told through `deliver`,
    /// called in grant order after the pool's lock is released: callers
    /// that forward grants elsewhere (another thread's event loop) keep
    /// that order.
    pub fn begin_acquire_with<F>(
        &self,
        key: &K,
        opts: &AcquireOptions,
        deliver: F,
    ) -> Result<Acquiring<K, C>>
    where
        F: FnOnce(Grant<K, C>) -> std::result::Result<(), Grant<K, C>> + Send + 'static,
    {
        self.checkout(key, opts, Delivery::Callback(deliver))
    }

    fn checkout<F>(
        &self,
        key: &K,
        opts: &AcquireOptions,
        mut delivery: Delivery<F>,
    ) -> Result<Acquiring<K, C>>
    where
        F: FnOnce(Grant<K, C>) -> std::result::Result<(), Grant<K, C>> + Send + 'static,
    {
        if opts.cancel.as_deref().is_some_and(Cancel::is_cancelled) {
            return Err(Error::Aborted);
        }
        let handle = &self.handle.state;
        if handle.is_closed() {
            return Err(Error::PoolClosed);
        }
        let inner = &self.inner;
        loop {
            match inner.checkout_step(key, opts.fresh, handle, &mut delivery)? {
                Step::Stream(pooled) => return Ok(Acquiring::Ready(pooled)),
                Step::Candidate(entry) => {
                    if let Some(pooled) = self.vet(entry, !opts.retry_on_stale) {
                        return Ok(Acquiring::Ready(pooled));
                    }
                }
                Step::Connect { trial } => {
                    let slot = ConnectSlot::new(inner.clone(), handle.clone(), key.clone(), trial);
                    return Ok(Acquiring::Connect(slot));
                }
                Step::Queued(seq, rx) => {
                    return Ok(Acquiring::Queued(Queued::new(
                        inner.clone(),
                        handle.clone(),
                        key.clone(),
                        seq,
                        rx,
                    )))
                }
            }
        }
    }

    /// Open connections of `key` (in parallel, within every limit) until
    /// `count` are idle; resolves with the number idle then. Fails only
    /// when none is idle, with the last connect's error (or
    /// PCONN_CIRCUIT_OPEN, PCONN_POOL_CLOSED).
    pub async fn warm(&self, key: &K, count: usize) -> Result<usize> {
        if self.handle.state.is_closed() {
            return Err(Error::PoolClosed);
        }
        self.inner.warm(key, count, &self.handle.state).await
    }

    /// Close every idle connection (parked, or multiplexed with no stream)
    /// whose key `matches`; returns how many. This one call looks at every
    /// key. Connections in use are untouched.
    pub fn flush(&self, matches: impl Fn(&K) -> bool) -> usize {
        self.inner.flush(matches)
    }

    /// Close this handle: its waiting acquires fail with PCONN_POOL_CLOSED,
    /// later acquires too; its loans go back as they are released. With the
    /// last handle the pool closes: idle connections now, active ones as
    /// they are released, connects in progress at once. Completes when this
    /// handle has nothing on loan and, if the pool closed, when every
    /// connection is gone.
    pub async fn shutdown(&self) {
        self.inner.close_handle(&self.handle.state);
        self.handle.state.all_returned().await;
        self.inner.all_closed().await;
    }

    /// The synchronous part of `shutdown`, for process exit.
    pub fn close_now(&self) {
        self.inner.close_handle(&self.handle.state);
        self.inner.forget_listener(&self.handle.state);
    }

    pub fn stats(&self) -> PoolStats {
        self.inner.stats()
    }
}

impl<K: PoolKey, C: Poolable> PoolInner<K, C> {
    fn lock(&self) -> MutexGuard<'_, State<K, C>> {
        // A panic while holding the lock leaves counters, not memory, in
        // doubt; keep serving rather than poisoning every later call.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// End a locked step: release `st` and do what it left to do.
    fn unlock(&self, st: MutexGuard<'_, State<K, C>>, mut after: Aftermath<K, C>) {
        let top_ups = std::mem::take(&mut after.top_ups);
        if after.handoffs.is_empty() {
            drop(st);
            self.bury(after.closes, after.events);
        } else {
            // Taken before the state lock is let go: a step that grants
            // later delivers after this one.
            let delivering = self.delivery.lock().unwrap_or_else(|p| p.into_inner());
            drop(st);
            self.deliver(delivering, after);
        }
        if !top_ups.is_empty() {
            if let Some(pool) = self.me.upgrade() {
                for key in top_ups {
                    pool.top_up(key);
                }
            }
        }
    }

    fn deliver(&self, delivering: MutexGuard<'_, ()>, after: Aftermath<K, C>) {
        let mut refused = Vec::new();
        for (deliver, grant) in after.handoffs {
            if let Err(grant) = deliver(grant) {
                refused.push(grant);
            }
        }
        drop(delivering);
        // A grant nobody took goes back as it drops, under the state lock
        // again: only now that the delivery lock is free.
        drop(refused);
        self.bury(after.closes, after.events);
    }

    /// Close connections (outside the lock), reporting each close, then
    /// report the other events.
    fn bury(&self, closes: Vec<(Entry<K, C>, CloseReason)>, events: Vec<(K, PoolEvent)>) {
        if closes.is_empty() && events.is_empty() {
            return;
        }
        let listeners = self.listeners.read().ok();
        let report = |key: &K, event: PoolEvent| {
            for (_, listener) in listeners.iter().flat_map(|l| l.iter()) {
                listener(key, event);
            }
        };
        for (entry, reason) in closes {
            let id = entry.id;
            report(&entry.key, PoolEvent::Closed { id, reason });
            drop(entry);
        }
        for (key, event) in events {
            report(&key, event);
        }
    }

    /// Stop reporting closes to `handle`'s listener.
    fn forget_listener(&self, handle: &HandleState) {
        if let Ok(mut listeners) = self.listeners.write() {
            listeners.retain(|(id, _)| *id != handle.id);
        }
    }
}

impl<K: PoolKey, C: Poolable> IdleCheck<K> for PoolInner<K, C> {
    fn check_idle(self: Arc<Self>, key: &K, id: u64) {
        self.check_parked(key, id);
    }
}

impl<K: PoolKey, C: Poolable> Drop for PoolInner<K, C> {
    fn drop(&mut self) {
        // Let the reaper notice the pool is gone and end.
        self.reaper_wake.notify_one();
    }
}
