//! Checkout: a stream of a multiplexed connection with room, else a parked
//! connection (checked outside the lock), else room to connect, else a
//! place in the queue. And what follows a connect: the new connection is
//! lent, and a multiplexed one serves the key's waiters at once.

use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::circuit::{CircuitBreaker, CircuitState, Trial};
use super::entry::Entry;
use super::events::PoolEvent;
use super::gauges::Slot;
use super::handle::HandleState;
use super::key::PoolKey;
use super::poolable::Poolable;
use super::pooled::{Grant, Pooled};
use super::state::{Aftermath, Host, SharedConn, Sharing, State};
use super::stats::CloseReason;
use super::waiters::{Deliver, Waiter};
use super::{Delivery, PoolInner};
use crate::error::{Error, Result, TlsReason};

/// The error of an acquire the key's circuit refuses (the key's entry,
/// made to ask, is settled again).
fn refusal<K: PoolKey, C: Poolable>(st: &mut State<K, C>, key: &K) -> Error {
    let error = st.host_mut(key).circuit.refusal();
    st.settle(key);
    error
}

/// What one locked step of a checkout decided.
pub(crate) enum Step<K: PoolKey, C: Poolable> {
    /// A stream of a multiplexed connection.
    Stream(Pooled<K, C>),
    /// A parked connection to check (outside the lock) before handing out.
    Candidate(Entry<K, C>),
    /// Room reserved (for the half-open circuit's trial, when `trial`).
    Connect {
        trial: Option<Trial>,
    },
    Queued(u64, Option<oneshot::Receiver<Grant<K, C>>>),
}

impl<K: PoolKey, C: Poolable> PoolInner<K, C> {
    pub(crate) fn checkout_step<F>(
        self: &Arc<Self>,
        key: &K,
        fresh: bool,
        handle: &Arc<HandleState>,
        delivery: &mut Delivery<F>,
    ) -> Result<Step<K, C>>
    where
        F: FnOnce(Grant<K, C>) -> std::result::Result<(), Grant<K, C>> + Send + 'static,
    {
        let mut guard = self.lock();
        let mut after = Aftermath::new();
        let step = self.decide(&mut guard, key, fresh, handle, delivery, &mut after);
        self.unlock(guard, after);
        step
    }

    fn decide<F>(
        self: &Arc<Self>,
        st: &mut State<K, C>,
        key: &K,
        fresh: bool,
        handle: &Arc<HandleState>,
        delivery: &mut Delivery<F>,
        after: &mut Aftermath<K, C>,
    ) -> Result<Step<K, C>>
    where
        F: FnOnce(Grant<K, C>) -> std::result::Result<(), Grant<K, C>> + Send + 'static,
    {
        if st.closed {
            return Err(Error::PoolClosed);
        }
        let breaker = self.limits.circuit_breaker.is_some();
        if breaker && !self.circuit_admits(st, key, after) {
            return Err(refusal(st, key));
        }
        if !fresh {
            if let Some(pooled) = self.take_stream(st, key, handle) {
                return Ok(Step::Stream(pooled));
            }
            if let Some(entry) = self.take_idle(st, key, after) {
                return Ok(Step::Candidate(entry));
            }
        }
        // A retry's fresh connection, at the key's limit, takes the room of
        // the key's longest-parked connection (likely as stale as the one
        // that failed) rather than queue behind connections it must skip.
        // The circuit is asked first: a connect it refuses makes no room.
        let circuit_lets_connect = !breaker || st.host_mut(key).circuit.may_connect();
        let room = circuit_lets_connect
            && (st.hosts.get(key).is_none_or(|h| self.may_connect(key, h))
                || (fresh && self.close_oldest_idle(st, key, after)));
        if room && (self.global_room(st) || self.evict_idle(st, key, after)) {
            let trial = st.host_mut(key).circuit.connecting();
            st.entered(key, Slot::Connecting);
            return Ok(Step::Connect { trial });
        }
        if breaker && !st.host_mut(key).circuit.may_queue() {
            return Err(refusal(st, key));
        }
        if self.limits.max_pending.is_some_and(|max| st.pending >= max) {
            return Err(Error::QueueFull {
                max_pending: st.pending,
            });
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        let (deliver, rx): (Deliver<K, C>, _) = match std::mem::replace(delivery, Delivery::Channel)
        {
            Delivery::Callback(f) => (Box::new(f), None),
            Delivery::Channel => {
                let (tx, rx) = oneshot::channel();
                (Box::new(move |g| tx.send(g)), Some(rx))
            }
        };
        st.pending += 1;
        st.count(key, |c| &mut c.waited);
        st.host_mut(key).waiters.push(Waiter {
            seq,
            deliver,
            handle: handle.clone(),
        });
        if room {
            self.mark_ready(st, key);
        }
        Ok(Step::Queued(seq, rx))
    }

    /// Whether the multiplexed connection can take one more stream now.
    pub(crate) fn stream_room(&self, shared: &SharedConn<K, C>, now: Instant) -> bool {
        shared
            .entry
            .conn
            .streams()
            .is_some_and(|limit| shared.loans < limit)
            && !shared.entry.conn.is_broken()
            && !shared.entry.is_spent(self.limits.max_uses, now)
    }

    /// Lend a stream of one of `key`'s multiplexed connections with room,
    /// the oldest first (streams gather on few connections).
    pub(crate) fn take_stream(
        self: &Arc<Self>,
        st: &mut State<K, C>,
        key: &K,
        handle: &Arc<HandleState>,
    ) -> Option<Pooled<K, C>> {
        let now = Instant::now();
        let host = st.hosts.get_mut(key)?;
        let at = host.shared.iter().position(|s| self.stream_room(s, now))?;
        let shared = &mut host.shared[at];
        let conn = shared.entry.conn.share()?;
        shared.loans += 1;
        shared.entry.uses += 1;
        shared.idle_deadline = None;
        let pooled = Pooled::stream(conn, &shared.entry, self.clone(), handle.clone(), true);
        if shared.loans == 1 {
            st.moved(key, Slot::SharedIdle, Slot::SharedBusy);
        }
        st.entered(key, Slot::Stream);
        st.count(key, |c| &mut c.reused);
        Some(pooled)
    }

    /// Lend streams of `key`'s multiplexed connections to its waiters, in
    /// queue order, while one has room.
    pub(crate) fn serve_streams(
        self: &Arc<Self>,
        st: &mut State<K, C>,
        key: &K,
        after: &mut Aftermath<K, C>,
    ) {
        let now = Instant::now();
        loop {
            let Some(host) = st.hosts.get_mut(key) else {
                return;
            };
            if !host.shared.iter().any(|s| self.stream_room(s, now)) {
                return;
            }
            let Some(waiter) = host.waiters.pop() else {
                return;
            };
            st.pending -= 1;
            let Some(pooled) = self.take_stream(st, key, &waiter.handle) else {
                return;
            };
            after
                .handoffs
                .push((waiter.deliver, Grant::Conn(pooled.in_transit())));
        }
    }

    /// Take a parked connection for `key` if there is one (for a caller
    /// that will not connect or queue).
    pub(crate) fn take_idle_step(self: &Arc<Self>, key: &K) -> Result<Option<Entry<K, C>>> {
        let mut guard = self.lock();
        if guard.closed {
            return Err(Error::PoolClosed);
        }
        let mut after = Aftermath::new();
        // An open circuit refuses idle connections too: the caller's usual
        // checkout then fails with its error.
        let breaker = self.limits.circuit_breaker.is_some();
        let entry = if breaker && !self.circuit_admits(&mut guard, key, &mut after) {
            None
        } else {
            self.take_idle(&mut guard, key, &mut after)
        };
        self.unlock(guard, after);
        Ok(entry)
    }

    /// Pop parked connections until one is not past its deadline; expired
    /// ones close. The one returned counts as active (and reused) until its
    /// liveness check says otherwise.
    pub(crate) fn take_idle(
        self: &Arc<Self>,
        st: &mut State<K, C>,
        key: &K,
        after: &mut Aftermath<K, C>,
    ) -> Option<Entry<K, C>> {
        let now = Instant::now();
        let scheduling = self.limits.scheduling;
        let mut expired = false;
        let mut found = loop {
            let Some(idle) = st.hosts.get_mut(key).and_then(|h| h.idle.pop(scheduling)) else {
                break None;
            };
            if idle.deadline > now {
                break Some(idle.entry);
            }
            let reason = idle.close_reason();
            st.left(key, Slot::Idle);
            after.close(st, idle.entry, reason);
            expired = true;
        };
        if let Some(entry) = found.as_mut() {
            entry.uses += 1;
            st.moved(key, Slot::Idle, Slot::Active);
            st.count(key, |c| &mut c.reused);
            self.top_up_if_needed(st, key, after);
        }
        if expired {
            self.grant_capacity(st, Some(key), after);
        }
        found
    }

    /// A checkout candidate failed its liveness check: close it and free its room.
    pub(crate) fn close_candidate(self: &Arc<Self>, entry: Entry<K, C>, reason: CloseReason) {
        let mut guard = self.lock();
        let st = &mut *guard;
        let mut after = Aftermath::new();
        let key = entry.key.clone();
        st.left(&key, Slot::Active);
        // It was counted as reused when it was taken.
        if let Some(host) = st.hosts.get_mut(&key) {
            host.counters.reused -= 1;
        }
        st.counters.reused -= 1;
        if reason == CloseReason::Peer {
            self.learn_idle_timeout(st, &key, entry.parked_at, &mut after);
        }
        after.close(st, entry, reason);
        self.grant_capacity(st, Some(&key), &mut after);
        self.top_up_if_needed(st, &key, &mut after);
        st.settle(&key);
        self.note_drained(st);
        self.unlock(guard, after);
    }

    /// A connect succeeded: lend the connection (a stream of it, if it is
    /// multiplexed, and serve the key's waiters from it too). PCONN_POOL_CLOSED
    /// if the pool closed meanwhile (the connection closes as it drops).
    pub(crate) fn opened(
        self: &Arc<Self>,
        entry: Entry<K, C>,
        handle: &Arc<HandleState>,
    ) -> Result<Pooled<K, C>> {
        let mut guard = self.lock();
        let st = &mut *guard;
        let mut after = Aftermath::new();
        let key = entry.key.clone();
        if st.closed {
            st.left(&key, Slot::Connecting);
            st.settle(&key);
            self.note_drained(st);
            self.unlock(guard, after);
            return Err(Error::PoolClosed);
        }
        st.count(&key, |c| &mut c.created);
        if let Some(to) = st.host_mut(&key).circuit.succeeded() {
            after.report(&key, PoolEvent::Circuit(to));
        }
        let pooled = match entry.conn.share() {
            Some(conn) if entry.conn.streams().is_some() => {
                st.moved(&key, Slot::Connecting, Slot::SharedBusy);
                st.entered(&key, Slot::Stream);
                let pooled = Pooled::stream(conn, &entry, self.clone(), handle.clone(), false);
                let host = st.host_mut(&key);
                host.sharing = Sharing::Multiplexed;
                host.shared.push(SharedConn {
                    entry,
                    loans: 1,
                    idle_deadline: None,
                });
                self.serve_streams(st, &key, &mut after);
                pooled
            }
            _ => {
                st.moved(&key, Slot::Connecting, Slot::Active);
                st.host_mut(&key).sharing = Sharing::Exclusive;
                Pooled::new(entry, self.clone(), handle.clone(), false)
            }
        };
        // Waiters the one-connect-at-a-time rule held back may connect now.
        self.grant_capacity(st, Some(&key), &mut after);
        self.top_up_if_needed(st, &key, &mut after);
        self.unlock(guard, after);
        Ok(pooled)
    }

    /// A connect failed (`error`) or was given up (`None`): free its room
    /// and pass it on; a failure counts against the key's circuit (and a
    /// half-open circuit's `trial` given up lets another be tried).
    pub(crate) fn connect_failed(
        self: &Arc<Self>,
        key: &K,
        error: Option<&Error>,
        trial: Option<Trial>,
    ) {
        let mut guard = self.lock();
        let st = &mut *guard;
        let mut after = Aftermath::new();
        st.left(key, Slot::Connecting);
        if let Some(breaker) = &self.limits.circuit_breaker {
            self.count_against_circuit(st, key, breaker, error, trial, &mut after);
        }
        self.grant_capacity(st, Some(key), &mut after);
        st.settle(key);
        self.note_drained(st);
        self.unlock(guard, after);
    }

    /// Whether the key's circuit lets an acquire on (an open circuit whose
    /// cooldown passed turns half-open here).
    fn circuit_admits(&self, st: &mut State<K, C>, key: &K, after: &mut Aftermath<K, C>) -> bool {
        let (admitted, transition) = st.host_mut(key).circuit.admit(Instant::now());
        if let Some(to) = transition {
            after.report(key, PoolEvent::Circuit(to));
        }
        admitted
    }

    /// A connect of `key` failed (or was abandoned, `None`): the circuit
    /// counts it, and when it opens, the key's waiters fail at once.
    fn count_against_circuit(
        &self,
        st: &mut State<K, C>,
        key: &K,
        breaker: &CircuitBreaker,
        error: Option<&Error>,
        trial: Option<Trial>,
        after: &mut Aftermath<K, C>,
    ) {
        let host = st.host_mut(key);
        // A bad argument (a proxy URL's credentials, a TLS setting) says
        // nothing of the server: only failures to reach it count.
        let Some(error) = error.filter(|e| {
            !matches!(
                e,
                Error::InvalidArgument(_)
                    | Error::Tls {
                        reason: TlsReason::Config,
                        ..
                    }
            )
        }) else {
            // Only the trial's own end frees the trial: a connect begun
            // before the circuit opened may be given up meanwhile.
            if let Some(trial) = trial {
                host.circuit.abandoned(trial);
            }
            return;
        };
        if host
            .circuit
            .failed(breaker, error, Instant::now())
            .is_none()
        {
            return;
        }
        after.report(key, PoolEvent::Circuit(CircuitState::Open));
        let mut failed = 0;
        while let Some(waiter) = host.waiters.pop() {
            let refusal = host.circuit.refusal();
            after
                .handoffs
                .push((waiter.deliver, Grant::Failed(refusal)));
            failed += 1;
        }
        st.pending -= failed;
    }

    /// Whether `key` may open one more connection now (per-key limit, and
    /// a multiplexed key opens one at a time).
    pub(crate) fn may_connect(&self, key: &K, host: &Host<K, C>) -> bool {
        let room = self
            .limits
            .max_connections_per_host
            .is_none_or(|max| host.gauges.total() < max);
        room && !self.one_at_a_time(key, host)
    }

    /// A connect is in progress for a key whose connections are (or may
    /// be) multiplexed: the next acquires wait for it, it may carry them all.
    fn one_at_a_time(&self, key: &K, host: &Host<K, C>) -> bool {
        host.gauges.connecting > 0
            && match host.sharing {
                Sharing::Multiplexed => true,
                Sharing::Exclusive => false,
                Sharing::Unknown => self.connector.may_multiplex(key),
            }
    }
}
