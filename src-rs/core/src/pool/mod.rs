//! The pool: idle lists, limits, waiters, the reaper and the idle watchers.
//!
//! Organization:
//! - `idle_list`: parked connections of one key;
//! - `pooled`: `Pooled` (a connection on loan), `ConnectSlot`, `Grant`;
//! - `cancel`: cancellation of acquires;
//! - `tasks`: the reaper (idle and lifetime deadlines) and the idle watcher
//!   (peer closes while parked);
//! - `stats`: counters and the `stats()` snapshot.
//!
//! All state sits behind one mutex that is held for short, non-blocking
//! steps only; sockets are closed after it is released.

mod cancel;
mod idle_list;
mod pooled;
mod stats;
mod tasks;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::{oneshot, Notify};

pub use cancel::Cancel;
pub use pooled::Pooled;
pub use stats::{CloseReason, ClosedBy, Counters, HostStats, PoolStats};

use crate::config::PoolConfig;
use crate::connection::{Connection, Liveness};
use crate::connector::Connector;
use crate::error::{Error, Result};
use crate::key::Key;
use crate::read_buffer::ReadBuffer;
use crate::socket::SocketCounter;
use cancel::or_cancelled;
use idle_list::{Idle, IdleList};
use pooled::{ConnectSlot, Grant};

static NEXT_POOL_ID: AtomicU64 = AtomicU64::new(1);
static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// Per-acquire options.
#[derive(Debug, Default, Clone)]
pub struct AcquireOptions {
    /// Overrides the pool's `acquire_timeout` (zero = wait forever).
    pub timeout: Option<Duration>,
    pub cancel: Option<Arc<Cancel>>,
    /// Skip idle connections and open a new one (used for retries).
    pub fresh: bool,
    /// Number the hand-over if this acquire ends up waiting for a released
    /// connection (`Pooled::grant_number`): numbers follow grant order with
    /// no gaps among numbered waiters, so a caller that finishes acquires on
    /// several threads can still deliver them in the order they were made.
    pub numbered: bool,
}

/// Called with every closed connection: `(id, key, reason)`.
pub type CloseListener = Box<dyn Fn(u64, &Key, CloseReason) + Send + Sync>;

/// A keep-alive connection pool. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

struct Waiter {
    /// Global arrival order, so capacity freed anywhere goes to the oldest.
    seq: u64,
    tx: oneshot::Sender<Result<Grant>>,
    /// Wants its hand-over numbered (`AcquireOptions::numbered`).
    numbered: bool,
}

#[derive(Default)]
struct Host {
    idle: IdleList,
    active: usize,
    connecting: usize,
    waiters: VecDeque<Waiter>,
    counters: Counters,
}

impl Host {
    fn total(&self) -> usize {
        self.idle.len() + self.active + self.connecting
    }
    fn is_unused(&self) -> bool {
        self.total() == 0 && self.waiters.is_empty()
    }
}

#[derive(Default)]
struct State {
    hosts: HashMap<Key, Host>,
    /// idle + active + connecting over all keys.
    total: usize,
    idle: usize,
    active: usize,
    connecting: usize,
    pending: usize,
    closed: bool,
    counters: Counters,
    next_waiter_seq: u64,
    /// The number the next hand-over to a numbered waiter gets.
    next_grant: u64,
    /// When the reaper is next due, so a nearer deadline can wake it.
    reaper_due: Option<Instant>,
}

/// Connections closed under the lock are dropped (closed) after it.
type Doomed = Vec<(Connection, CloseReason)>;

pub(crate) struct PoolInner {
    pub(crate) id: u64,
    config: PoolConfig,
    connector: Connector,
    state: Mutex<State>,
    sockets: Arc<SocketCounter>,
    runtime: Handle,
    reaper_wake: Arc<Notify>,
    on_close: Option<CloseListener>,
    jitter_seed: AtomicU64,
}

impl Pool {
    /// Create a pool whose background tasks run on `runtime`.
    pub fn new(config: PoolConfig, runtime: Handle) -> Result<Pool> {
        Pool::with_close_listener(config, runtime, None)
    }

    /// Like `new`, with a callback for every closed connection (diagnostics).
    pub fn with_close_listener(
        config: PoolConfig,
        runtime: Handle,
        on_close: Option<CloseListener>,
    ) -> Result<Pool> {
        let connector = Connector::new(&config)?;
        let reaper_wake = Arc::new(Notify::new());
        let inner = Arc::new(PoolInner {
            id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
            config,
            connector,
            state: Mutex::new(State::default()),
            sockets: SocketCounter::new(),
            runtime: runtime.clone(),
            reaper_wake: reaper_wake.clone(),
            on_close,
            jitter_seed: AtomicU64::new(seed()),
        });
        runtime.spawn(tasks::reap(Arc::downgrade(&inner), reaper_wake));
        Ok(Pool { inner })
    }

    pub fn id(&self) -> u64 {
        self.inner.id
    }
    pub fn config(&self) -> &PoolConfig {
        &self.inner.config
    }

    /// The key a URL or a key object maps to under this pool's TLS settings
    /// (a pool-wide `tls.servername` becomes part of every TLS key).
    pub fn effective_key(&self, key: Key) -> Result<Key> {
        match &self.inner.config.tls.servername {
            Some(name) if key.uses_tls() && key.servername().is_none() => key.with_servername(name),
            _ => Ok(key),
        }
    }

    /// Take a live idle connection for `key` if one is parked; never
    /// connects, never queues, never waits.
    pub fn try_acquire_idle(&self, key: &Key) -> Result<Option<Pooled>> {
        let mut doomed = Doomed::new();
        let found = {
            let mut st = self.inner.lock();
            if st.closed {
                return Err(Error::PoolClosed);
            }
            self.inner.take_idle(&mut st, key, &mut doomed)
        };
        self.inner.bury(doomed);
        Ok(found.map(|conn| Pooled::new(conn, self.inner.clone(), true)))
    }

    /// Get a connection for `key`: a live idle one, a new one, or (at a
    /// limit) the next one released, in FIFO order.
    pub async fn acquire(&self, key: &Key, opts: &AcquireOptions) -> Result<Pooled> {
        match self.begin_acquire(key, opts)? {
            Acquiring::Ready(pooled) => Ok(pooled),
            Acquiring::Pending(pending) => pending.finish(opts).await,
        }
    }

    /// The synchronous first half of `acquire`: takes an idle connection,
    /// reserves room to connect, or joins the queue, all before returning,
    /// so queue order is call order even when the second half runs on
    /// another thread.
    pub fn begin_acquire(&self, key: &Key, opts: &AcquireOptions) -> Result<Acquiring> {
        if opts.cancel.as_deref().is_some_and(Cancel::is_cancelled) {
            return Err(Error::Aborted);
        }
        let step = match self.inner.checkout(key, opts.fresh, opts.numbered)? {
            Checkout::Ready(pooled) => return Ok(Acquiring::Ready(pooled)),
            Checkout::Connect(slot) => Step::Connect(slot),
            Checkout::Wait(rx, seq) => {
                let guard = WaitGuard {
                    pool: self.inner.clone(),
                    key: key.clone(),
                    seq,
                    done: false,
                };
                Step::Wait(rx, guard)
            }
        };
        Ok(Acquiring::Pending(PendingAcquire {
            pool: self.inner.clone(),
            step,
        }))
    }

    /// Close every idle connection whose host is `host` (any scheme or port).
    pub fn flush_for_host(&self, host: &str) -> usize {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let mut doomed = Doomed::new();
        {
            let mut st = self.inner.lock();
            let st = &mut *st;
            for (_, h) in st.hosts.iter_mut().filter(|(k, _)| k.host() == host) {
                for idle in h.idle.drain() {
                    doomed.push((idle.conn, CloseReason::Flush));
                }
            }
            st.idle -= doomed.len();
            st.total -= doomed.len();
            st.hosts.retain(|_, h| !h.is_unused());
            self.inner.count_closed(st, &doomed);
        }
        let n = doomed.len();
        self.inner.bury(doomed);
        n
    }

    /// Stop the pool: close idle connections, fail waiters and later
    /// acquires with PCONN_POOL_CLOSED, close active ones on release.
    /// Completes when every socket of the pool is closed.
    pub async fn shutdown(&self) {
        self.close_now();
        self.inner.sockets.all_closed().await;
    }

    /// The synchronous part of `shutdown` (also used at process exit).
    pub fn close_now(&self) {
        let mut doomed = Doomed::new();
        let waiters = {
            let mut st = self.inner.lock();
            let st = &mut *st;
            st.closed = true;
            let mut waiters = Vec::new();
            for h in st.hosts.values_mut() {
                doomed.extend(h.idle.drain().map(|i| (i.conn, CloseReason::Shutdown)));
                waiters.extend(h.waiters.drain(..));
            }
            st.pending = 0;
            st.idle -= doomed.len();
            st.total -= doomed.len();
            st.hosts.retain(|_, h| !h.is_unused());
            self.inner.count_closed(st, &doomed);
            waiters
        };
        for w in waiters {
            let _ = w.tx.send(Err(Error::PoolClosed));
        }
        self.inner.bury(doomed);
        self.inner.reaper_wake.notify_one();
    }

    /// Sockets of this pool not yet closed (connecting, active or idle).
    pub fn open_sockets(&self) -> usize {
        self.inner.sockets.open()
    }

    pub fn stats(&self) -> PoolStats {
        let st = self.inner.lock();
        let hosts = st
            .hosts
            .iter()
            .map(|(k, h)| {
                let s = HostStats {
                    connections: h.idle.len() + h.active,
                    idle: h.idle.len(),
                    active: h.active,
                    connecting: h.connecting,
                    pending: h.waiters.len(),
                    counters: h.counters,
                };
                (k.to_string(), s)
            })
            .collect();
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
}

enum Checkout {
    Ready(Pooled),
    Connect(ConnectSlot),
    Wait(oneshot::Receiver<Result<Grant>>, u64),
}

/// The outcome of [`Pool::begin_acquire`].
#[derive(Debug)]
pub enum Acquiring {
    /// An idle connection, checked and handed out.
    Ready(Pooled),
    /// A connect or a wait to finish with [`PendingAcquire::finish`].
    Pending(PendingAcquire),
}

enum Step {
    Connect(ConnectSlot),
    Wait(oneshot::Receiver<Result<Grant>>, WaitGuard),
}

/// An acquire that holds its place (a reserved slot or a queue position).
/// Dropping it gives the place up.
pub struct PendingAcquire {
    pool: Arc<PoolInner>,
    step: Step,
}

impl std::fmt::Debug for PendingAcquire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let step = match self.step {
            Step::Connect(_) => "connect",
            Step::Wait(..) => "wait",
        };
        f.debug_struct("PendingAcquire")
            .field("step", &step)
            .finish()
    }
}

impl PendingAcquire {
    /// Connect, or wait for a released connection or for room to connect.
    pub async fn finish(self, opts: &AcquireOptions) -> Result<Pooled> {
        let cancel = opts.cancel.as_deref();
        let timeout = opts.timeout.unwrap_or(self.pool.config.acquire_timeout);
        match self.step {
            Step::Connect(slot) => or_cancelled(cancel, self.pool.open(slot)).await,
            Step::Wait(mut rx, mut guard) => {
                let waited = or_cancelled(cancel, guard.wait(&mut rx, timeout)).await;
                let grant = match waited {
                    Ok(grant) => grant,
                    Err(error) => {
                        // Leave the queue first, so nothing new can arrive; a
                        // numbered hand-over that raced with the timeout or the
                        // abort is kept, or its number would go missing.
                        drop(guard);
                        return match rx.try_recv() {
                            Ok(Ok(Grant::Conn(pooled))) if pooled.grant_number().is_some() => {
                                Ok(pooled.arrived())
                            }
                            _ => Err(error),
                        };
                    }
                };
                match grant {
                    Grant::Conn(pooled) => Ok(pooled.arrived()),
                    Grant::Permit(slot) => or_cancelled(cancel, self.pool.open(slot)).await,
                }
            }
        }
    }
}

/// Removes a waiter from its queue if the acquire stops waiting for any
/// reason (timeout, abort, dropped future).
struct WaitGuard {
    pool: Arc<PoolInner>,
    key: Key,
    seq: u64,
    done: bool,
}

impl WaitGuard {
    async fn wait(
        &mut self,
        rx: &mut oneshot::Receiver<Result<Grant>>,
        timeout: Duration,
    ) -> Result<Grant> {
        let outcome = if timeout.is_zero() {
            rx.await
        } else {
            match tokio::time::timeout(timeout, rx).await {
                Ok(r) => r,
                Err(_) => {
                    self.pool.lock().counters.timed_out += 1;
                    return Err(Error::AcquireTimeout {
                        waited_ms: timeout.as_millis() as u64,
                    });
                }
            }
        };
        self.done = true;
        // The sender is only dropped without a message when the pool itself goes away.
        outcome.unwrap_or(Err(Error::PoolClosed))
    }
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        if !self.done {
            self.pool.forget_waiter(&self.key, self.seq);
        }
    }
}

impl PoolInner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves counters, not memory, in doubt;
        // keep serving rather than poisoning every later call.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn can_open(&self, st: &State, host: Option<&Host>) -> bool {
        let per_host = host.map_or(0, Host::total);
        self.config
            .max_connections_per_host
            .is_none_or(|max| per_host < max)
            && self.config.max_connections.is_none_or(|max| st.total < max)
    }

    /// Pop idle connections until a live one turns up; dead ones go to `doomed`.
    fn take_idle(&self, st: &mut State, key: &Key, doomed: &mut Doomed) -> Option<Connection> {
        let host = st.hosts.get_mut(key)?;
        let now = Instant::now();
        let before = doomed.len();
        let mut found = None;
        while let Some(mut idle) = host.idle.pop(self.config.scheduling) {
            let verdict = if idle.deadline <= now {
                Some(if idle.deadline_is_lifetime {
                    CloseReason::Lifetime
                } else {
                    CloseReason::Idle
                })
            } else {
                match idle.conn.probe() {
                    Liveness::Alive => None,
                    Liveness::PeerClosed => Some(CloseReason::Peer),
                    Liveness::UnexpectedBytes => Some(CloseReason::Broken),
                }
            };
            match verdict {
                Some(reason) => doomed.push((idle.conn, reason)),
                None => {
                    found = Some(idle.conn);
                    break;
                }
            }
        }
        if let Some(conn) = found.as_mut() {
            host.active += 1;
            host.counters.reused += 1;
            conn.uses += 1;
            conn.used_since_checkout = false;
            conn.socket.set_parked(false);
        }
        let dead = doomed.len() - before;
        let taken = usize::from(found.is_some());
        st.idle -= dead + taken;
        st.total -= dead;
        st.active += taken;
        st.counters.reused += taken as u64;
        self.count_closed(st, &doomed[before..]);
        found
    }

    fn checkout(self: &Arc<Self>, key: &Key, fresh: bool, numbered: bool) -> Result<Checkout> {
        let mut doomed = Doomed::new();
        let step = {
            let mut st = self.lock();
            let st = &mut *st;
            if st.closed {
                return Err(Error::PoolClosed);
            }
            let idle = if fresh {
                None
            } else {
                self.take_idle(st, key, &mut doomed)
            };
            if let Some(conn) = idle {
                Checkout::Ready(Pooled::new(conn, self.clone(), true))
            } else if self.can_open(st, st.hosts.get(key))
                || self.evict_for_room(st, key, &mut doomed)
            {
                self.reserve_slot(st, key);
                Checkout::Connect(ConnectSlot::new(self.clone(), key.clone()))
            } else if self.config.max_pending.is_some_and(|max| st.pending >= max) {
                return Err(Error::QueueFull {
                    max_pending: st.pending,
                });
            } else {
                let (tx, rx) = oneshot::channel();
                let seq = st.next_waiter_seq;
                st.next_waiter_seq += 1;
                st.pending += 1;
                st.counters.waited += 1;
                let host = st.hosts.entry(key.clone()).or_default();
                host.counters.waited += 1;
                host.waiters.push_back(Waiter { seq, tx, numbered });
                Checkout::Wait(rx, seq)
            }
        };
        self.bury(doomed);
        Ok(step)
    }

    /// At `maxConnections` with idle connections of other keys parked, close
    /// the longest-parked one so this key can connect (as node:http's Agent
    /// does with `maxTotalSockets`).
    fn evict_for_room(&self, st: &mut State, key: &Key, doomed: &mut Doomed) -> bool {
        let per_host_ok = self
            .config
            .max_connections_per_host
            .is_none_or(|max| st.hosts.get(key).map_or(0, Host::total) < max);
        if !per_host_ok {
            return false;
        }
        let victim = st
            .hosts
            .iter_mut()
            .filter(|(k, h)| *k != key && !h.idle.is_empty())
            .min_by_key(|(_, h)| h.idle.earliest_deadline());
        let Some((_, host)) = victim else {
            return false;
        };
        let Some(idle) = host.idle.pop_oldest() else {
            return false;
        };
        st.idle -= 1;
        st.total -= 1;
        let evicted = [(idle.conn, CloseReason::Evicted)];
        self.count_closed(st, &evicted);
        doomed.extend(evicted);
        true
    }

    fn reserve_slot(&self, st: &mut State, key: &Key) {
        st.hosts.entry(key.clone()).or_default().connecting += 1;
        st.connecting += 1;
        st.total += 1;
    }

    /// Open a connection in a reserved slot.
    async fn open(self: &Arc<Self>, slot: ConnectSlot) -> Result<Pooled> {
        // Boxed: the connect future (DNS, happy eyeballs, TLS) is large and
        // only needed on a miss; keeping it out of line keeps every acquire
        // (and every request) future small and cheap to move.
        let opened = Box::pin(self.connector.connect(&slot.key, &self.sockets)).await?;
        let now = Instant::now();
        let conn = Connection {
            id: NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed),
            key: slot.key.clone(),
            stream: opened.stream,
            socket: opened.socket,
            buffered: ReadBuffer::default(),
            retire_at: self.retire_time(now),
            uses: 1,
            remote_addr: opened.remote_addr,
            alpn: opened.alpn,
            idle_timeout_hint: None,
            broken: false,
            used_since_checkout: false,
        };
        self.runtime.spawn(tasks::watch_idle(
            conn.socket.clone(),
            Arc::downgrade(self),
            conn.key.clone(),
            conn.id,
        ));
        {
            let mut st = self.lock();
            if st.closed {
                drop(st);
                drop(conn);
                return Err(Error::PoolClosed); // the slot's Drop frees the room
            }
            let host = st.hosts.entry(slot.key.clone()).or_default();
            host.connecting -= 1;
            host.active += 1;
            host.counters.created += 1;
            st.connecting -= 1;
            st.active += 1;
            st.counters.created += 1;
        }
        slot.fulfil();
        Ok(Pooled::new(conn, self.clone(), false))
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

    /// A connect failed or was abandoned: free its room and pass it on.
    fn connect_failed(self: &Arc<Self>, key: &Key) {
        let mut st = self.lock();
        let st = &mut *st;
        if let Some(host) = st.hosts.get_mut(key) {
            host.connecting -= 1;
        }
        st.connecting -= 1;
        st.total -= 1;
        self.grant_room(st);
        st.hosts.retain(|_, h| !h.is_unused());
    }

    /// Release: close, hand to a waiter, or park (the seed's rules).
    pub(crate) fn put_back(
        self: &Arc<Self>,
        mut conn: Connection,
        keep_alive_ok: bool,
        probe: bool,
    ) {
        let now = Instant::now();
        let max_uses = self.config.max_uses;
        let mut verdict = if !keep_alive_ok || conn.broken {
            Some(CloseReason::Broken)
        } else if (max_uses > 0 && conn.uses >= max_uses)
            || conn.retire_at.is_some_and(|t| t <= now)
        {
            Some(CloseReason::Lifetime)
        } else if !probe || !conn.used_since_checkout {
            // Untouched since the checkout probe: nothing the user left
            // unread (bytes that arrive unasked are caught by the watcher or
            // the next checkout).
            None
        } else {
            match conn.probe() {
                Liveness::Alive => None,
                Liveness::PeerClosed => Some(CloseReason::Peer),
                Liveness::UnexpectedBytes => Some(CloseReason::Broken),
            }
        };
        let mut doomed = Doomed::new();
        {
            let mut st = self.lock();
            let st = &mut *st;
            if st.closed {
                verdict = Some(CloseReason::Shutdown);
            }
            let host = st.hosts.entry(conn.key.clone()).or_default();
            host.active -= 1;
            st.active -= 1;
            match verdict {
                Some(reason) => doomed.push((conn, reason)),
                None => match self.hand_to_waiter(st, conn) {
                    None => {}
                    Some(conn) => {
                        let host = st.hosts.entry(conn.key.clone()).or_default();
                        if host.idle.len() < self.config.max_idle_per_host {
                            let idle = self.park(conn, now);
                            let deadline = idle.deadline;
                            host.idle.push(idle);
                            st.idle += 1;
                            if st.reaper_due.is_none_or(|due| deadline < due) {
                                st.reaper_due = Some(deadline);
                                self.reaper_wake.notify_one();
                            }
                        } else {
                            doomed.push((conn, CloseReason::Evicted));
                        }
                    }
                },
            }
            if !doomed.is_empty() {
                st.total -= 1;
                self.count_closed(st, &doomed);
                self.grant_room(st);
            }
            st.hosts.retain(|_, h| !h.is_unused());
        }
        self.bury(doomed);
    }

    fn park(&self, mut conn: Connection, now: Instant) -> Idle {
        conn.buffered.release_memory();
        let idle_for = conn
            .idle_timeout_hint
            .map_or(self.config.idle_timeout, |h| {
                h.min(self.config.idle_timeout)
            });
        let idle_deadline = now + idle_for;
        let (deadline, deadline_is_lifetime) = match conn.retire_at {
            Some(t) if t < idle_deadline => (t, true),
            _ => (idle_deadline, false),
        };
        conn.socket.set_parked(true);
        Idle {
            conn,
            deadline,
            deadline_is_lifetime,
        }
    }

    /// Give a released connection to the oldest live waiter of its key.
    /// Returns it when nobody is waiting.
    fn hand_to_waiter(
        self: &Arc<Self>,
        st: &mut State,
        mut conn: Connection,
    ) -> Option<Connection> {
        let host = st.hosts.get_mut(&conn.key)?;
        let mut popped = 0;
        conn.used_since_checkout = false;
        while let Some(waiter) = host.waiters.pop_front() {
            popped += 1;
            conn.uses += 1;
            let grant = waiter.numbered.then_some(st.next_grant);
            match waiter.tx.send(Ok(Grant::Conn(Pooled::in_transit(
                conn,
                self.clone(),
                grant,
            )))) {
                Ok(()) => {
                    if grant.is_some() {
                        st.next_grant += 1;
                    }
                    host.active += 1;
                    host.counters.reused += 1;
                    st.active += 1;
                    st.counters.reused += 1;
                    st.pending -= popped;
                    return None;
                }
                Err(returned) => match returned.ok().and_then(Grant::defuse) {
                    Some(mut back) => {
                        back.uses -= 1;
                        conn = back;
                    }
                    None => {
                        st.pending -= popped;
                        return None;
                    }
                },
            }
        }
        st.pending -= popped;
        Some(conn)
    }

    /// Room for a connection freed up: give it to the oldest waiter whose
    /// key may open one more.
    fn grant_room(self: &Arc<Self>, st: &mut State) {
        while st.pending > 0 && self.config.max_connections.is_none_or(|max| st.total < max) {
            let per_host = self.config.max_connections_per_host;
            let oldest = st
                .hosts
                .iter()
                .filter(|(_, h)| {
                    !h.waiters.is_empty() && per_host.is_none_or(|max| h.total() < max)
                })
                .min_by_key(|(_, h)| h.waiters.front().map(|w| w.seq))
                .map(|(k, _)| k.clone());
            let Some(key) = oldest else { return };
            let Some(host) = st.hosts.get_mut(&key) else {
                return;
            };
            let mut popped = 0;
            let mut delivered = false;
            while let Some(waiter) = host.waiters.pop_front() {
                popped += 1;
                let slot = ConnectSlot::new(self.clone(), key.clone());
                match waiter.tx.send(Ok(Grant::Permit(slot))) {
                    Ok(()) => {
                        delivered = true;
                        break;
                    }
                    Err(returned) => {
                        let _ = returned.ok().map(Grant::defuse);
                    }
                }
            }
            st.pending -= popped;
            if delivered {
                self.reserve_slot(st, &key);
            }
        }
    }

    fn forget_waiter(&self, key: &Key, seq: u64) {
        let mut st = self.lock();
        let st = &mut *st;
        if let Some(host) = st.hosts.get_mut(key) {
            if let Some(at) = host.waiters.iter().position(|w| w.seq == seq) {
                host.waiters.remove(at);
                st.pending -= 1;
            }
        }
        st.hosts.retain(|_, h| !h.is_unused());
    }

    /// The idle watcher saw activity on a parked connection: check it and
    /// close it if the peer went away.
    pub(crate) fn check_idle(&self, key: &Key, id: u64) {
        let mut doomed = Doomed::new();
        {
            let mut st = self.lock();
            let st = &mut *st;
            let Some(host) = st.hosts.get_mut(key) else {
                return;
            };
            let Some(mut idle) = host.idle.remove(id) else {
                return;
            };
            match idle.conn.probe() {
                Liveness::Alive => {
                    host.idle.push(idle);
                    return;
                }
                Liveness::PeerClosed => doomed.push((idle.conn, CloseReason::Peer)),
                Liveness::UnexpectedBytes => doomed.push((idle.conn, CloseReason::Broken)),
            }
            st.idle -= 1;
            st.total -= 1;
            self.count_closed(st, &doomed);
            st.hosts.retain(|_, h| !h.is_unused());
        }
        self.bury(doomed);
    }

    /// Close idle connections past their deadline; returns the next deadline.
    pub(crate) fn reap(&self, now: Instant) -> Option<Instant> {
        let mut expired = Vec::new();
        let mut doomed = Doomed::new();
        let next = {
            let mut st = self.lock();
            let st = &mut *st;
            for host in st.hosts.values_mut() {
                host.idle.take_expired(now, &mut expired);
            }
            for idle in expired {
                let reason = if idle.deadline_is_lifetime {
                    CloseReason::Lifetime
                } else {
                    CloseReason::Idle
                };
                doomed.push((idle.conn, reason));
            }
            st.idle -= doomed.len();
            st.total -= doomed.len();
            self.count_closed(st, &doomed);
            st.hosts.retain(|_, h| !h.is_unused());
            let next = st
                .hosts
                .values()
                .filter_map(|h| h.idle.earliest_deadline())
                .min();
            st.reaper_due = next;
            next
        };
        self.bury(doomed);
        next
    }

    fn count_closed(&self, st: &mut State, doomed: &[(Connection, CloseReason)]) {
        for (conn, reason) in doomed {
            st.counters.closed += 1;
            st.counters.closed_by.count(*reason);
            if let Some(host) = st.hosts.get_mut(&conn.key) {
                host.counters.closed += 1;
                host.counters.closed_by.count(*reason);
            }
        }
    }

    /// Close connections (outside the lock) and report each close.
    fn bury(&self, doomed: Doomed) {
        for (conn, reason) in doomed {
            if let Some(listener) = &self.on_close {
                listener(conn.id, &conn.key, reason);
            }
            drop(conn);
        }
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // Let the reaper notice the pool is gone and end.
        self.reaper_wake.notify_one();
    }
}

fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    h.finish() | 1
}
