//! The pool: idle lists, limits, waiters, capacity, the reaper.
//!
//! Organization:
//! - `poolable`: what the pool asks of a connection (`Poolable`) and of a
//!   connector (`Connect`); the pool is generic over both;
//! - `entry`: a connection with its bookkeeping (id, key, uses, lifetime);
//! - `idle_list`: parked connections of one key;
//! - `waiters`: acquires of one key waiting at a limit;
//! - `pooled`: `Pooled` (a loan), `ConnectSlot` (reserved room), `Grant`;
//! - `handle`: the users of one pool (one, or one per thread of a shared pool);
//! - `shared`: named pools shared by every thread of the process;
//! - `cancel`: cancellation (the Rust side of AbortSignal);
//! - `tasks`: the reaper;
//! - `stats`: counters, their history, and the `stats()` snapshot.
//!
//! All state sits behind one mutex, held for short steps that never block,
//! never touch a socket and, on the acquire and release paths, never scan
//! every key (only `flushForHost`, `stats` and closing the pool do); liveness checks and
//! closes happen after it is released. Every change that frees capacity
//! (a close, a reap, a flush, a failed or abandoned connect, a waiter that
//! leaves) goes through `grant_capacity`, which serves waiters at once.

pub mod cancel;
mod entry;
mod handle;
mod idle_list;
mod poolable;
mod pooled;
mod shared;
mod stats;
mod tasks;
#[cfg(test)]
mod tests;
mod waiters;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

pub use cancel::Cancel;
pub use poolable::{BoxFuture, Connect, IdleWatch, Liveness, Poolable};
pub use pooled::{ConnectSlot, Grant, Pooled};
pub use shared::shared;
pub use stats::{CloseReason, ClosedBy, Counters, HostStats, PoolStats, HOST_HISTORY_LIMIT};
pub use waiters::Deliver;

use crate::config::PoolConfig;
use crate::error::{Error, Result};
use crate::key::{Key, KeyMap, Route};
use cancel::or_cancelled;
use entry::Entry;
use handle::HandleState;
use idle_list::{Idle, IdleList};
use poolable::IdleCheck;
use stats::History;
use waiters::{Waiter, WaiterQueue};

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
    /// Skip idle connections and open a new one (used for retries).
    pub fresh: bool,
    /// The caller retries on a fresh connection when the one it got turns
    /// out to be closed (an idempotent HTTP request), so the checkout may
    /// trust the event loop's view of the socket instead of asking the
    /// kernel: no system call on the hot path.
    pub retry_on_stale: bool,
}

/// Called with every connection the pool closes: `(id, key, reason)`.
pub type CloseListener = Arc<dyn Fn(u64, &Key, CloseReason) + Send + Sync>;

/// A keep-alive connection pool. Clones share the pool and the handle.
pub struct Pool<C: Poolable> {
    inner: Arc<PoolInner<C>>,
    handle: Arc<HandleGuard<C>>,
}

impl<C: Poolable> Clone for Pool<C> {
    fn clone(&self) -> Self {
        Pool {
            inner: self.inner.clone(),
            handle: self.handle.clone(),
        }
    }
}

/// Closes its handle when the last clone of a `Pool` goes away.
struct HandleGuard<C: Poolable> {
    state: Arc<HandleState>,
    pool: Arc<PoolInner<C>>,
}

impl<C: Poolable> Drop for HandleGuard<C> {
    fn drop(&mut self) {
        self.pool.close_handle(&self.state);
        self.pool.forget_listener(&self.state);
    }
}

/// The outcome of [`Pool::begin_acquire`].
pub enum Acquiring<C: Poolable> {
    /// An idle connection, checked and handed out.
    Ready(Pooled<C>),
    /// Room was reserved: open the connection with [`ConnectSlot::open`].
    Connect(ConnectSlot<C>),
    /// The acquire waits in the queue at a limit.
    Queued(Queued<C>),
}

/// An acquire waiting in the queue. Dropping it leaves the queue.
pub struct Queued<C: Poolable> {
    pool: Arc<PoolInner<C>>,
    handle: Arc<HandleState>,
    key: Key,
    seq: u64,
    /// Where the grant arrives, for [`Pool::begin_acquire`]; callers of
    /// [`Pool::begin_acquire_with`] get it in their callback instead.
    rx: Option<oneshot::Receiver<Grant<C>>>,
    done: bool,
}

impl<C: Poolable> Queued<C> {
    /// Leave the queue because of `why`. Returns the callback given to
    /// `begin_acquire_with` when it had not been called yet (the caller
    /// reports `why` through it); `None` when a grant was already delivered.
    pub fn withdraw(&mut self, why: &Error) -> Option<Deliver<C>> {
        self.done = true;
        let timed_out = matches!(why, Error::AcquireTimeout { .. });
        self.pool.withdraw(&self.key, self.seq, timed_out)
    }

    /// How long this acquire may wait: `opts.timeout`, else the pool's
    /// `acquire_timeout` (zero: forever).
    pub fn timeout(&self, opts: &AcquireOptions) -> Duration {
        opts.timeout.unwrap_or(self.pool.config.acquire_timeout)
    }

    /// Completes when the handle this acquire waits through is closed.
    pub async fn handle_closed(&self) {
        self.handle.closing.cancelled().await
    }

    /// Wait for a grant (acquires begun with `begin_acquire`), bounded by
    /// the timeout and the cancel of `opts`, then open a permitted connect.
    pub async fn wait(mut self, opts: &AcquireOptions) -> Result<Pooled<C>> {
        let Some(mut rx) = self.rx.take() else {
            return Err(Error::InvalidArgument(
                "this acquire reports through its callback".into(),
            ));
        };
        let timeout = self.timeout(opts);
        let waited = tokio::select! {
            biased;
            g = &mut rx => Ok(g.unwrap_or(Grant::Failed(Error::PoolClosed))),
            _ = cancel::fired(opts.cancel.as_deref()) => Err(Error::Aborted),
            _ = self.handle.closing.cancelled() => Err(Error::PoolClosed),
            _ = cancel::after(timeout) => Err(Error::AcquireTimeout { waited_ms: timeout.as_millis() as u64 }),
        };
        let grant = match waited {
            Ok(grant) => {
                self.done = true;
                grant
            }
            Err(error) => {
                // A grant that raced with the failure is given back as it
                // drops (a connection in transit is parked again).
                if self.withdraw(&error).is_none() {
                    drop(rx.try_recv());
                }
                return Err(error);
            }
        };
        match grant {
            Grant::Conn(pooled) => Ok(pooled.received()),
            Grant::Permit(slot) => or_cancelled(opts.cancel.as_deref(), slot.open()).await,
            Grant::Failed(error) => Err(error),
        }
    }
}

impl<C: Poolable> Drop for Queued<C> {
    fn drop(&mut self) {
        if !self.done {
            self.pool.withdraw(&self.key, self.seq, false);
        }
    }
}

/// How a queued acquire is told about its grant.
enum Delivery<F> {
    Channel,
    Callback(F),
}

struct Host<C: Poolable> {
    idle: IdleList<C>,
    /// Parked connections out for a liveness check (still counted idle).
    checking: usize,
    active: usize,
    connecting: usize,
    waiters: WaiterQueue<C>,
    counters: Counters,
    /// Queued in `State::ready`.
    in_ready: bool,
    /// Queued in `State::evictable`.
    in_evictable: bool,
    /// The deadline this key has in `State::deadlines`.
    scheduled: Option<Instant>,
}

impl<C: Poolable> Host<C> {
    fn new(counters: Counters) -> Host<C> {
        Host {
            idle: IdleList::default(),
            checking: 0,
            active: 0,
            connecting: 0,
            waiters: WaiterQueue::default(),
            counters,
            in_ready: false,
            in_evictable: false,
            scheduled: None,
        }
    }
    fn idle_count(&self) -> usize {
        self.idle.len() + self.checking
    }
    fn total(&self) -> usize {
        self.idle_count() + self.active + self.connecting
    }
    fn is_unused(&self) -> bool {
        self.total() == 0 && self.waiters.live() == 0
    }
}

/// A key's next deadline, in the reaper's heap.
struct Due {
    at: Instant,
    key: Key,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

struct State<C: Poolable> {
    hosts: KeyMap<Host<C>>,
    history: History,
    /// idle + active + connecting over all keys.
    total: usize,
    idle: usize,
    active: usize,
    connecting: usize,
    pending: usize,
    closed: bool,
    counters: Counters,
    /// Keys with waiters that only `maxConnections` holds back, in the
    /// order they became so (entries may be stale: checked when reached).
    ready: VecDeque<Key>,
    /// Keys that parked connections, for eviction under `maxConnections`
    /// (kept only when that limit is set; entries may be stale).
    evictable: VecDeque<Key>,
    /// Each key's earliest idle deadline (stale entries are skipped).
    deadlines: BinaryHeap<Reverse<Due>>,
    next_seq: u64,
    /// When the reaper is next due, so that a nearer deadline wakes it.
    reaper_due: Option<Instant>,
}

impl<C: Poolable> Default for State<C> {
    fn default() -> Self {
        State {
            hosts: KeyMap::default(),
            history: History::default(),
            total: 0,
            idle: 0,
            active: 0,
            connecting: 0,
            pending: 0,
            closed: false,
            counters: Counters::default(),
            ready: VecDeque::new(),
            evictable: VecDeque::new(),
            deadlines: BinaryHeap::new(),
            next_seq: 0,
            reaper_due: None,
        }
    }
}

impl<C: Poolable> State<C> {
    /// The host of `key`, created (with its remembered counters) if needed.
    fn host_mut(&mut self, key: &Key) -> &mut Host<C> {
        let history = &mut self.history;
        self.hosts
            .entry(key.clone())
            .or_insert_with(|| Host::new(history.take(key)))
    }

    /// Drop the entry of a key that has nothing left (its counters are kept).
    fn settle(&mut self, key: &Key) {
        if self.hosts.get(key).is_some_and(Host::is_unused) {
            if let Some((key, host)) = self.hosts.remove_entry(key) {
                self.history.keep(key, host.counters);
            }
        }
    }

    /// Count closes, per reason, for the pool and each key.
    fn count_closed(&mut self, closed: &[(Entry<C>, CloseReason)]) {
        for (entry, reason) in closed {
            self.counters.closed += 1;
            self.counters.closed_by.count(*reason);
            if let Some(host) = self.hosts.get_mut(&entry.key) {
                host.counters.closed += 1;
                host.counters.closed_by.count(*reason);
            }
        }
    }
}

/// Connections closed under the lock are dropped (closed) after it.
type Doomed<C> = Vec<(Entry<C>, CloseReason)>;

pub(crate) struct PoolInner<C: Poolable> {
    pub(crate) id: u64,
    config: PoolConfig,
    pub(crate) connector: Box<dyn Connect<C>>,
    state: Mutex<State<C>>,
    reaper_wake: Arc<Notify>,
    /// Fired when the pool closes: connects in progress give up.
    pub(crate) closing: Cancel,
    /// Notified when the pool is closed and its last connection is gone.
    drained: Notify,
    /// Handles not yet closed; the pool closes with the last.
    open_handles: AtomicUsize,
    listeners: RwLock<Vec<(u64, CloseListener)>>,
    jitter_seed: AtomicU64,
}

impl<C: Poolable> Pool<C> {
    /// A pool whose background task (the reaper) runs on `runtime`.
    pub fn new(config: PoolConfig, runtime: &Handle, connector: impl Connect<C>) -> Pool<C> {
        let reaper_wake = Arc::new(Notify::new());
        let inner = Arc::new(PoolInner {
            id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
            config,
            connector: Box::new(connector),
            state: Mutex::new(State::default()),
            reaper_wake: reaper_wake.clone(),
            closing: Cancel::new(),
            drained: Notify::new(),
            open_handles: AtomicUsize::new(0),
            listeners: RwLock::new(Vec::new()),
            jitter_seed: AtomicU64::new(seed()),
        });
        runtime.spawn(tasks::reap(Arc::downgrade(&inner), reaper_wake));
        inner.open_handles.store(1, Ordering::Release);
        Pool::with_handle(inner)
    }

    fn with_handle(inner: Arc<PoolInner<C>>) -> Pool<C> {
        Pool {
            handle: Arc::new(HandleGuard {
                state: Arc::new(HandleState::new()),
                pool: inner.clone(),
            }),
            inner,
        }
    }

    /// A new handle on an open pool; `None` once its last handle closed.
    fn join(inner: Arc<PoolInner<C>>) -> Option<Pool<C>> {
        inner
            .open_handles
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n > 0).then_some(n + 1)
            })
            .ok()?;
        Some(Pool::with_handle(inner))
    }

    /// Another handle on the same pool: same connections and limits, its
    /// own `shutdown` (see [`shared`]). `None` if the pool is closed.
    pub fn new_handle(&self) -> Option<Pool<C>> {
        Pool::join(self.inner.clone())
    }

    pub fn id(&self) -> u64 {
        self.inner.id
    }

    pub fn config(&self) -> &PoolConfig {
        &self.inner.config
    }

    /// Report every connection this pool closes to `listener`, until this
    /// handle is dropped or closed for process exit: the closes of its own
    /// shutdown are reported (they may be buried on another thread after
    /// the shutdown saw the pool drained).
    pub fn on_close(&self, listener: CloseListener) {
        if let Ok(mut listeners) = self.inner.listeners.write() {
            listeners.push((self.handle.state.id, listener));
        }
    }

    /// The key a URL or a key object maps to under this pool's settings: a
    /// pool-wide `tls.servername` becomes part of every TLS key, and a key
    /// the proxy policy covers goes through its proxy.
    pub fn effective_key(&self, key: Key) -> Result<Key> {
        let config = &self.inner.config;
        let key = match &config.tls.servername {
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

    /// Take a live parked connection for `key` if there is one; never
    /// connects, never queues.
    pub fn try_acquire_idle(&self, key: &Key) -> Result<Option<Pooled<C>>> {
        let inner = &self.inner;
        loop {
            let mut doomed = Doomed::new();
            let candidate = {
                let mut st = inner.lock();
                if st.closed || self.handle.state.is_closed() {
                    return Err(Error::PoolClosed);
                }
                inner.take_idle(&mut st, key, &mut doomed)
            };
            inner.bury(doomed);
            let Some(entry) = candidate else {
                return Ok(None);
            };
            if let Some(pooled) = self.vet(entry, true) {
                return Ok(Some(pooled));
            }
        }
    }

    /// Check a parked connection taken for a checkout (outside the lock):
    /// lend it if it is alive, close it otherwise.
    fn vet(&self, mut entry: Entry<C>, exact: bool) -> Option<Pooled<C>> {
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

    /// Get a connection for `key`: a live idle one, a new one, or (at a
    /// limit) the next one released or allowed, in FIFO order.
    pub async fn acquire(&self, key: &Key, opts: &AcquireOptions) -> Result<Pooled<C>> {
        match self.begin_acquire(key, opts)? {
            Acquiring::Ready(pooled) => Ok(pooled),
            Acquiring::Connect(slot) => or_cancelled(opts.cancel.as_deref(), slot.open()).await,
            Acquiring::Queued(queued) => queued.wait(opts).await,
        }
    }

    /// The synchronous first half of `acquire`: takes an idle connection,
    /// reserves room to connect, or joins the queue (finish with
    /// [`Queued::wait`]), all before returning, so queue order is call order.
    pub fn begin_acquire(&self, key: &Key, opts: &AcquireOptions) -> Result<Acquiring<C>> {
        self.checkout(key, opts, Delivery::<fn(Grant<C>) -> _>::Channel)
    }

    /// Like `begin_acquire`, but a queued acquire is told through `deliver`,
    /// called under the pool's lock in grant order: callers that forward
    /// grants elsewhere (another thread's event loop) keep that order.
    pub fn begin_acquire_with<F>(
        &self,
        key: &Key,
        opts: &AcquireOptions,
        deliver: F,
    ) -> Result<Acquiring<C>>
    where
        F: FnOnce(Grant<C>) -> std::result::Result<(), Grant<C>> + Send + 'static,
    {
        self.checkout(key, opts, Delivery::Callback(deliver))
    }

    fn checkout<F>(
        &self,
        key: &Key,
        opts: &AcquireOptions,
        mut delivery: Delivery<F>,
    ) -> Result<Acquiring<C>>
    where
        F: FnOnce(Grant<C>) -> std::result::Result<(), Grant<C>> + Send + 'static,
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
            let mut doomed = Doomed::new();
            let step = inner.checkout_step(key, opts.fresh, handle, &mut delivery, &mut doomed);
            inner.bury(doomed);
            match step? {
                Step::Candidate(entry) => {
                    if let Some(pooled) = self.vet(entry, !opts.retry_on_stale) {
                        return Ok(Acquiring::Ready(pooled));
                    }
                }
                Step::Connect => {
                    let slot = ConnectSlot::new(inner.clone(), handle.clone(), key.clone());
                    return Ok(Acquiring::Connect(slot));
                }
                Step::Queued(seq, rx) => {
                    return Ok(Acquiring::Queued(Queued {
                        pool: inner.clone(),
                        handle: handle.clone(),
                        key: key.clone(),
                        seq,
                        rx,
                        done: false,
                    }))
                }
            }
        }
    }

    /// Close every idle connection whose host is `host` (any scheme or
    /// port), normalised as keys' hosts are; returns how many. This one
    /// call looks at every key.
    pub fn flush_for_host(&self, host: &str) -> Result<usize> {
        let host = crate::key::normalize_host(host.trim_start_matches('[').trim_end_matches(']'))?;
        Ok(self.inner.flush_for_host(&host))
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

/// What one locked step of `checkout` decided.
enum Step<C: Poolable> {
    /// A parked connection to check (outside the lock) before handing out.
    Candidate(Entry<C>),
    /// Room reserved.
    Connect,
    Queued(u64, Option<oneshot::Receiver<Grant<C>>>),
}

impl<C: Poolable> PoolInner<C> {
    fn lock(&self) -> MutexGuard<'_, State<C>> {
        // A panic while holding the lock leaves counters, not memory, in
        // doubt; keep serving rather than poisoning every later call.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn per_host_room(&self, host: &Host<C>) -> bool {
        self.config
            .max_connections_per_host
            .is_none_or(|max| host.total() < max)
    }

    fn global_room(&self, st: &State<C>) -> bool {
        self.config.max_connections.is_none_or(|max| st.total < max)
    }

    fn checkout_step<F>(
        self: &Arc<Self>,
        key: &Key,
        fresh: bool,
        handle: &Arc<HandleState>,
        delivery: &mut Delivery<F>,
        doomed: &mut Doomed<C>,
    ) -> Result<Step<C>>
    where
        F: FnOnce(Grant<C>) -> std::result::Result<(), Grant<C>> + Send + 'static,
    {
        let mut st = self.lock();
        let st = &mut *st;
        if st.closed {
            return Err(Error::PoolClosed);
        }
        if !fresh {
            if let Some(entry) = self.take_idle(st, key, doomed) {
                return Ok(Step::Candidate(entry));
            }
        }
        // A retry's fresh connection, at the key's limit, takes the room of
        // the key's longest-parked connection (likely as stale as the one
        // that failed) rather than queue behind connections it must skip.
        let room = st.hosts.get(key).is_none_or(|h| self.per_host_room(h))
            || (fresh && close_oldest_idle(st, key, doomed));
        if room && (self.global_room(st) || self.evict_idle(st, key, doomed)) {
            self.reserve(st, key);
            return Ok(Step::Connect);
        }
        if self.config.max_pending.is_some_and(|max| st.pending >= max) {
            return Err(Error::QueueFull {
                max_pending: st.pending,
            });
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        let (deliver, rx): (Deliver<C>, _) = match std::mem::replace(delivery, Delivery::Channel) {
            Delivery::Callback(f) => (Box::new(f), None),
            Delivery::Channel => {
                let (tx, rx) = oneshot::channel();
                (Box::new(move |g| tx.send(g)), Some(rx))
            }
        };
        st.pending += 1;
        st.counters.waited += 1;
        let host = st.host_mut(key);
        host.counters.waited += 1;
        host.waiters.push(Waiter {
            seq,
            deliver,
            handle: handle.clone(),
        });
        if room {
            self.mark_ready(st, key);
        }
        Ok(Step::Queued(seq, rx))
    }

    /// Pop parked connections until one is not past its deadline; expired
    /// ones go to `doomed`. The one returned counts as active (and reused)
    /// until its liveness check says otherwise.
    fn take_idle(
        self: &Arc<Self>,
        st: &mut State<C>,
        key: &Key,
        doomed: &mut Doomed<C>,
    ) -> Option<Entry<C>> {
        let host = st.hosts.get_mut(key)?;
        let now = Instant::now();
        let before = doomed.len();
        let mut found = None;
        while let Some(idle) = host.idle.pop(self.config.scheduling) {
            if idle.deadline <= now {
                let reason = idle_close_reason(&idle);
                doomed.push((idle.entry, reason));
            } else {
                found = Some(idle.entry);
                break;
            }
        }
        let expired = doomed.len() - before;
        if let Some(entry) = found.as_mut() {
            entry.uses += 1;
            host.active += 1;
            host.counters.reused += 1;
            st.active += 1;
            st.counters.reused += 1;
        }
        st.idle -= expired + usize::from(found.is_some());
        st.total -= expired;
        if expired > 0 {
            st.count_closed(&doomed[before..]);
            self.grant_capacity(st, Some(key), doomed);
        }
        found
    }

    /// A checkout candidate failed its liveness check: close it and free its room.
    fn close_candidate(self: &Arc<Self>, entry: Entry<C>, reason: CloseReason) {
        let mut doomed = vec![(entry, reason)];
        {
            let mut st = self.lock();
            let st = &mut *st;
            let key = doomed[0].0.key.clone();
            if let Some(host) = st.hosts.get_mut(&key) {
                host.active -= 1;
                host.counters.reused -= 1;
            }
            st.active -= 1;
            st.total -= 1;
            st.counters.reused -= 1;
            st.count_closed(&doomed);
            self.grant_capacity(st, Some(&key), &mut doomed);
            st.settle(&key);
            self.note_drained(st);
        }
        self.bury(doomed);
    }

    fn reserve(&self, st: &mut State<C>, key: &Key) {
        st.host_mut(key).connecting += 1;
        st.connecting += 1;
        st.total += 1;
    }

    /// A connect succeeded; false if the pool closed meanwhile.
    fn opened(&self, key: &Key) -> bool {
        let mut st = self.lock();
        if st.closed {
            return false;
        }
        let st = &mut *st;
        let host = st.host_mut(key);
        host.connecting -= 1;
        host.active += 1;
        host.counters.created += 1;
        st.connecting -= 1;
        st.active += 1;
        st.counters.created += 1;
        true
    }

    /// A connect failed or was given up: free its room and pass it on.
    fn connect_failed(self: &Arc<Self>, key: &Key) {
        let mut doomed = Doomed::new();
        {
            let mut st = self.lock();
            let st = &mut *st;
            if let Some(host) = st.hosts.get_mut(key) {
                host.connecting -= 1;
            }
            st.connecting -= 1;
            st.total -= 1;
            self.grant_capacity(st, Some(key), &mut doomed);
            st.settle(key);
            self.note_drained(st);
        }
        self.bury(doomed);
    }

    /// Put `key` in the ready queue if it has waiters and room of its own.
    fn mark_ready(&self, st: &mut State<C>, key: &Key) {
        let Some(host) = st.hosts.get_mut(key) else {
            return;
        };
        if host.in_ready || host.waiters.live() == 0 || !self.per_host_room(host) {
            return;
        }
        host.in_ready = true;
        st.ready.push_back(key.clone());
        if st.ready.len() > 2 * st.hosts.len() + 64 {
            compact(&mut st.ready, &mut st.hosts, in_ready);
        }
    }

    /// Whether `key` has a waiter that could open a connection now but for
    /// `maxConnections`.
    fn is_ready(&self, st: &State<C>, key: &Key) -> bool {
        st.hosts
            .get(key)
            .is_some_and(|h| h.waiters.live() > 0 && self.per_host_room(h))
    }

    /// Whether some waiter is held back by `maxConnections` alone (stale
    /// entries at the front of the ready queue are dropped on the way).
    fn ready_waiter_blocked(&self, st: &mut State<C>) -> bool {
        if self.global_room(st) {
            return false;
        }
        while let Some(key) = st.ready.front().cloned() {
            if self.is_ready(st, &key) {
                return true;
            }
            st.ready.pop_front();
            if let Some(host) = st.hosts.get_mut(&key) {
                host.in_ready = false;
            }
        }
        false
    }

    /// The one place where freed capacity reaches waiters: `freed` (if
    /// any) just lost a connection or a connect; every key whose waiters
    /// may now open a connection gets a permit, oldest-ready first,
    /// closing idle connections of other keys when only `maxConnections`
    /// stands in the way.
    fn grant_capacity(
        self: &Arc<Self>,
        st: &mut State<C>,
        freed: Option<&Key>,
        doomed: &mut Doomed<C>,
    ) {
        if let Some(key) = freed {
            self.mark_ready(st, key);
        }
        while let Some(key) = st.ready.front().cloned() {
            if !self.is_ready(st, &key) {
                st.ready.pop_front();
                if let Some(host) = st.hosts.get_mut(&key) {
                    host.in_ready = false;
                }
                continue;
            }
            if !self.global_room(st) && !self.evict_idle(st, &key, doomed) {
                return;
            }
            st.ready.pop_front();
            if let Some(host) = st.hosts.get_mut(&key) {
                host.in_ready = false;
            }
            self.grant_permit(st, &key);
            self.mark_ready(st, &key);
        }
    }

    /// Give room to connect to the oldest live waiter of `key`.
    fn grant_permit(self: &Arc<Self>, st: &mut State<C>, key: &Key) {
        let Some(host) = st.hosts.get_mut(key) else {
            return;
        };
        while let Some(waiter) = host.waiters.pop() {
            st.pending -= 1;
            let slot = ConnectSlot::new(self.clone(), waiter.handle, key.clone());
            match (waiter.deliver)(Grant::Permit(slot)) {
                Ok(()) => {
                    self.reserve(st, key);
                    return;
                }
                Err(grant) => {
                    grant.reclaim();
                }
            }
        }
    }

    /// Close the longest-parked idle connection of a key other than
    /// `except`, to make room under `maxConnections` (as node:http's Agent
    /// does with `maxTotalSockets`).
    fn evict_idle(&self, st: &mut State<C>, except: &Key, doomed: &mut Doomed<C>) -> bool {
        if self.config.max_connections.is_none() {
            return false;
        }
        let mut skipped = None;
        let mut evicted = false;
        while let Some(key) = st.evictable.pop_front() {
            let Some(host) = st.hosts.get_mut(&key) else {
                continue;
            };
            host.in_evictable = false;
            if host.idle.is_empty() {
                continue;
            }
            if key == *except {
                host.in_evictable = true;
                skipped = Some(key);
                continue;
            }
            let more = host.idle.len() > 1;
            host.in_evictable = more;
            close_oldest_idle(st, &key, doomed);
            if more {
                st.evictable.push_back(key.clone());
            }
            st.settle(&key);
            evicted = true;
            break;
        }
        if let Some(key) = skipped {
            st.evictable.push_back(key);
        }
        evicted
    }

    /// Release: close, hand to a waiter, or park (see `docs/ARCHITECTURE.md`).
    pub(crate) fn put_back(
        self: &Arc<Self>,
        mut entry: Entry<C>,
        keep_alive_ok: bool,
        probe: bool,
    ) {
        let now = Instant::now();
        let max_uses = self.config.max_uses;
        let mut verdict = if !keep_alive_ok || entry.conn.is_broken() {
            Some(CloseReason::Broken)
        } else if (max_uses > 0 && entry.uses >= max_uses)
            || entry.retire_at.is_some_and(|t| t <= now)
        {
            Some(CloseReason::Lifetime)
        } else if !probe || !entry.conn.was_used() {
            // Untouched since the checkout check, or an exchange that read
            // exactly to the end of its message: nothing left unread.
            None
        } else {
            entry.conn.liveness(true).close_reason()
        };
        let mut doomed = Doomed::new();
        {
            let mut st = self.lock();
            let st = &mut *st;
            let key = entry.key.clone();
            if let Some(host) = st.hosts.get_mut(&key) {
                host.active -= 1;
            }
            st.active -= 1;
            if st.closed {
                verdict = Some(CloseReason::Shutdown);
            }
            match verdict {
                Some(reason) => self.close_released(st, entry, reason, &mut doomed),
                None => self.place_healthy(st, entry, &mut doomed, |pool, st, entry| {
                    pool.park(st, entry, now)
                }),
            }
            st.settle(&key);
            self.note_drained(st);
        }
        self.bury(doomed);
    }

    /// Where a healthy connection nobody holds goes (a release, or a
    /// parked one that passed its check): to the oldest waiter of its key;
    /// closed when another key's waiter needs the room more than this key
    /// needs an idle connection, or above `maxIdlePerHost`; else `park`ed.
    fn place_healthy(
        self: &Arc<Self>,
        st: &mut State<C>,
        entry: Entry<C>,
        doomed: &mut Doomed<C>,
        park: impl FnOnce(&Self, &mut State<C>, Entry<C>),
    ) {
        let Some(entry) = self.hand_to_waiter(st, entry) else {
            return;
        };
        let parked = st.hosts.get(&entry.key).map_or(0, |h| h.idle.len());
        if self.ready_waiter_blocked(st) || parked >= self.config.max_idle_per_host {
            self.close_released(st, entry, CloseReason::Evicted, doomed);
        } else {
            park(self, st, entry);
        }
    }

    fn close_released(
        self: &Arc<Self>,
        st: &mut State<C>,
        entry: Entry<C>,
        reason: CloseReason,
        doomed: &mut Doomed<C>,
    ) {
        let key = entry.key.clone();
        st.total -= 1;
        let closed = [(entry, reason)];
        st.count_closed(&closed);
        doomed.extend(closed);
        self.grant_capacity(st, Some(&key), doomed);
    }

    /// Park a connection idle from `now`.
    fn park(&self, st: &mut State<C>, entry: Entry<C>, now: Instant) {
        let idle_for = entry
            .conn
            .idle_timeout_hint()
            .map_or(self.config.idle_timeout, |h| {
                h.min(self.config.idle_timeout)
            });
        let idle_deadline = now + idle_for;
        let (deadline, deadline_is_lifetime) = match entry.retire_at {
            Some(t) if t < idle_deadline => (t, true),
            _ => (idle_deadline, false),
        };
        self.park_until(st, entry, deadline, deadline_is_lifetime);
    }

    /// Park a connection until `deadline`: on its key's idle list, in the
    /// reaper's schedule and among the keys eviction can take from.
    fn park_until(
        &self,
        st: &mut State<C>,
        mut entry: Entry<C>,
        deadline: Instant,
        deadline_is_lifetime: bool,
    ) {
        entry.conn.park();
        let key = entry.key.clone();
        let track_evictable = self.config.max_connections.is_some();
        let host = st.host_mut(&key);
        host.idle.push(Idle {
            entry,
            deadline,
            deadline_is_lifetime,
        });
        let reschedule = host.scheduled.is_none_or(|at| deadline < at);
        if reschedule {
            host.scheduled = Some(deadline);
        }
        let add_evictable = track_evictable && !host.in_evictable;
        if add_evictable {
            host.in_evictable = true;
        }
        st.idle += 1;
        if add_evictable {
            st.evictable.push_back(key.clone());
            if st.evictable.len() > 2 * st.hosts.len() + 64 {
                compact(&mut st.evictable, &mut st.hosts, in_evictable);
            }
        }
        if reschedule {
            st.deadlines.push(Reverse(Due { at: deadline, key }));
            if st.reaper_due.is_none_or(|due| deadline < due) {
                st.reaper_due = Some(deadline);
                self.reaper_wake.notify_one();
            }
        }
    }

    /// Give a released connection to the oldest live waiter of its key.
    /// Returns it when nobody takes it.
    fn hand_to_waiter(
        self: &Arc<Self>,
        st: &mut State<C>,
        mut entry: Entry<C>,
    ) -> Option<Entry<C>> {
        let key = entry.key.clone();
        let host = st.hosts.get_mut(&key)?;
        while let Some(waiter) = host.waiters.pop() {
            st.pending -= 1;
            entry.uses += 1;
            let pooled = Pooled::new(entry, self.clone(), waiter.handle, true).in_transit();
            match (waiter.deliver)(Grant::Conn(pooled)) {
                Ok(()) => {
                    host.active += 1;
                    host.counters.reused += 1;
                    st.active += 1;
                    st.counters.reused += 1;
                    return None;
                }
                Err(grant) => match grant.reclaim() {
                    Some(mut back) => {
                        back.uses -= 1;
                        entry = back;
                    }
                    None => return None,
                },
            }
        }
        Some(entry)
    }

    /// Remove a waiter that gave up; its callback if it was still queued.
    fn withdraw(&self, key: &Key, seq: u64, timed_out: bool) -> Option<Deliver<C>> {
        let mut st = self.lock();
        let st = &mut *st;
        let waiter = st.hosts.get_mut(key)?.waiters.withdraw(seq)?;
        st.pending -= 1;
        if timed_out {
            st.counters.timed_out += 1;
            if let Some(host) = st.hosts.get_mut(key) {
                host.counters.timed_out += 1;
            }
        }
        st.settle(key);
        Some(waiter.deliver)
    }

    /// The idle watcher saw activity on a parked connection: check it
    /// (outside the lock) and close it if the peer went away.
    fn check_parked(self: &Arc<Self>, key: &Key, id: u64) {
        let mut idle = {
            let mut st = self.lock();
            let Some(host) = st.hosts.get_mut(key) else {
                return;
            };
            let Some(idle) = host.idle.remove(id) else {
                return;
            };
            host.checking += 1;
            idle
        };
        let verdict = idle.entry.conn.liveness(true).close_reason();
        let mut doomed = Doomed::new();
        {
            let mut st = self.lock();
            let st = &mut *st;
            let verdict = if st.closed {
                Some(CloseReason::Shutdown)
            } else {
                verdict
            };
            st.host_mut(key).checking -= 1;
            st.idle -= 1;
            let Idle {
                mut entry,
                deadline,
                deadline_is_lifetime,
            } = idle;
            match verdict {
                // Back as if released, keeping its deadline: while it was
                // out, a waiter may have queued, the reaper or eviction may
                // have passed its key by.
                None => {
                    entry.conn.unpark();
                    self.place_healthy(st, entry, &mut doomed, |pool, st, entry| {
                        pool.park_until(st, entry, deadline, deadline_is_lifetime)
                    });
                }
                Some(reason) => self.close_released(st, entry, reason, &mut doomed),
            }
            st.settle(key);
            self.note_drained(st);
        }
        self.bury(doomed);
    }

    /// Close idle connections past their deadline; returns the next one.
    pub(crate) fn reap(self: &Arc<Self>, now: Instant) -> Option<Instant> {
        let mut doomed = Doomed::new();
        let next = {
            let mut st = self.lock();
            let st = &mut *st;
            while let Some(Reverse(due)) = st.deadlines.peek() {
                if due.at > now {
                    break;
                }
                let Some(Reverse(due)) = st.deadlines.pop() else {
                    break;
                };
                let Some(host) = st.hosts.get_mut(&due.key) else {
                    continue;
                };
                if host.scheduled != Some(due.at) {
                    continue; // superseded by a nearer deadline
                }
                let mut expired = Vec::new();
                host.idle.take_expired(now, &mut expired);
                host.scheduled = host.idle.earliest_deadline();
                if let Some(at) = host.scheduled {
                    st.deadlines.push(Reverse(Due {
                        at,
                        key: due.key.clone(),
                    }));
                }
                let before = doomed.len();
                doomed.extend(expired.into_iter().map(|i| {
                    let reason = idle_close_reason(&i);
                    (i.entry, reason)
                }));
                let n = doomed.len() - before;
                st.idle -= n;
                st.total -= n;
                st.count_closed(&doomed[before..]);
                self.grant_capacity(st, Some(&due.key), &mut doomed);
                st.settle(&due.key);
            }
            self.note_drained(st);
            st.reaper_due = st.deadlines.peek().map(|Reverse(d)| d.at);
            st.reaper_due
        };
        self.bury(doomed);
        next
    }

    fn flush_for_host(self: &Arc<Self>, host: &str) -> usize {
        let mut doomed = Doomed::new();
        let flushed = {
            let mut st = self.lock();
            let st = &mut *st;
            let keys: Vec<Key> = st
                .hosts
                .iter()
                .filter(|(k, h)| k.host() == host && !h.idle.is_empty())
                .map(|(k, _)| k.clone())
                .collect();
            for key in &keys {
                if let Some(h) = st.hosts.get_mut(key) {
                    let before = doomed.len();
                    doomed.extend(h.idle.drain().map(|i| (i.entry, CloseReason::Flush)));
                    let n = doomed.len() - before;
                    st.idle -= n;
                    st.total -= n;
                    st.count_closed(&doomed[before..]);
                }
            }
            let flushed = doomed.len();
            for key in &keys {
                self.grant_capacity(st, Some(key), &mut doomed);
                st.settle(key);
            }
            self.note_drained(st);
            flushed
        };
        self.bury(doomed);
        flushed
    }

    fn close_handle(&self, handle: &HandleState) {
        if handle.close() && self.open_handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.close_pool();
        }
    }

    /// Stop reporting closes to `handle`'s listener.
    fn forget_listener(&self, handle: &HandleState) {
        if let Ok(mut listeners) = self.listeners.write() {
            listeners.retain(|(id, _)| *id != handle.id);
        }
    }

    /// Close the pool: idle connections now, waiters and connects in
    /// progress fail with PCONN_POOL_CLOSED, active ones close on release.
    fn close_pool(&self) {
        let mut doomed = Doomed::new();
        let waiters = {
            let mut st = self.lock();
            let st = &mut *st;
            if st.closed {
                return;
            }
            st.closed = true;
            let mut waiters = Vec::new();
            for host in st.hosts.values_mut() {
                doomed.extend(host.idle.drain().map(|i| (i.entry, CloseReason::Shutdown)));
                waiters.extend(host.waiters.drain());
                host.in_ready = false;
            }
            st.ready.clear();
            st.evictable.clear();
            st.deadlines.clear();
            st.pending = 0;
            st.idle -= doomed.len();
            st.total -= doomed.len();
            st.count_closed(&doomed);
            let keys: Vec<Key> = st.hosts.keys().cloned().collect();
            for key in &keys {
                st.settle(key);
            }
            self.note_drained(st);
            waiters
        };
        self.closing.cancel();
        for waiter in waiters {
            drop((waiter.deliver)(Grant::Failed(Error::PoolClosed)));
        }
        self.bury(doomed);
        self.reaper_wake.notify_one();
    }

    fn note_drained(&self, st: &State<C>) {
        if st.closed && st.total == 0 {
            self.drained.notify_waiters();
        }
    }

    /// Completes once the pool is closed and holds no connection.
    async fn all_closed(&self) {
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            {
                let st = self.lock();
                if !st.closed || st.total == 0 {
                    return;
                }
            }
            drained.await;
        }
    }

    fn stats(&self) -> PoolStats {
        let st = self.lock();
        let mut hosts: std::collections::BTreeMap<String, HostStats> = st
            .history
            .iter()
            .map(|(k, c)| {
                let quiet = HostStats {
                    counters: *c,
                    ..HostStats::default()
                };
                (k.to_string(), quiet)
            })
            .collect();
        for (k, h) in &st.hosts {
            let s = HostStats {
                connections: h.idle_count() + h.active,
                idle: h.idle_count(),
                active: h.active,
                connecting: h.connecting,
                pending: h.waiters.live(),
                counters: h.counters,
            };
            hosts.insert(k.to_string(), s);
        }
        PoolStats {
            connections: st.idle + st.active,
            idle: st.idle,
            active: st.active,
            connecting: st.connecting,
            pending: st.pending,
            counters: st.counters,
            hosts,
        }
    }

    /// `maxLifetimeMs` minus up to 10% (at most 10 s) of random jitter, so
    /// connections made together do not all retire together.
    fn retire_time(&self, now: Instant) -> Option<Instant> {
        let life = self.config.max_lifetime;
        if life.is_zero() {
            return None;
        }
        let span = (life / 10).min(Duration::from_secs(10)).as_millis() as u64;
        let jitter = if span == 0 {
            0
        } else {
            self.next_random() % span
        };
        Some(now + life - Duration::from_millis(jitter))
    }

    fn next_random(&self) -> u64 {
        // xorshift64: cheap, good enough to spread deadlines.
        let mut x = self.jitter_seed.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.jitter_seed.store(x, Ordering::Relaxed);
        x
    }

    /// Close connections (outside the lock) and report each close.
    fn bury(&self, doomed: Doomed<C>) {
        if doomed.is_empty() {
            return;
        }
        let listeners = self.listeners.read().ok();
        for (entry, reason) in doomed {
            if let Some(listeners) = &listeners {
                for (_, listener) in listeners.iter() {
                    listener(entry.id, &entry.key, reason);
                }
            }
            drop(entry);
        }
    }
}

impl<C: Poolable> IdleCheck for PoolInner<C> {
    fn check_idle(self: Arc<Self>, key: &Key, id: u64) {
        self.check_parked(key, id);
    }
}

impl<C: Poolable> Drop for PoolInner<C> {
    fn drop(&mut self) {
        // Let the reaper notice the pool is gone and end.
        self.reaper_wake.notify_one();
    }
}

fn idle_close_reason<C>(idle: &Idle<C>) -> CloseReason {
    if idle.deadline_is_lifetime {
        CloseReason::Lifetime
    } else {
        CloseReason::Idle
    }
}

fn in_ready<C: Poolable>(host: &mut Host<C>) -> &mut bool {
    &mut host.in_ready
}

fn in_evictable<C: Poolable>(host: &mut Host<C>) -> &mut bool {
    &mut host.in_evictable
}

/// Rebuild a lazy key queue: each key still present, once.
/// Close `key`'s longest-parked idle connection, if it has one.
fn close_oldest_idle<C: Poolable>(st: &mut State<C>, key: &Key, doomed: &mut Doomed<C>) -> bool {
    let Some(idle) = st.hosts.get_mut(key).and_then(|h| h.idle.pop_oldest()) else {
        return false;
    };
    st.idle -= 1;
    st.total -= 1;
    let victim = [(idle.entry, CloseReason::Evicted)];
    st.count_closed(&victim);
    doomed.extend(victim);
    true
}

fn compact<C: Poolable>(
    queue: &mut VecDeque<Key>,
    hosts: &mut KeyMap<Host<C>>,
    flag: fn(&mut Host<C>) -> &mut bool,
) {
    let old = std::mem::take(queue);
    for h in hosts.values_mut() {
        *flag(h) = false;
    }
    for key in old {
        if let Some(h) = hosts.get_mut(&key) {
            let f = flag(h);
            if !*f {
                *f = true;
                queue.push_back(key);
            }
        }
    }
}

fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::time::Instant::now().elapsed().as_nanos() as u64);
    h.finish() | 1
}
