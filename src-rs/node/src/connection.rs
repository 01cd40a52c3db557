//! `NativeConnection`: one loan of a pooled connection, full duplex.
//!
//! A read and a write run at the same time (each half has its own lock).
//! Writes queue in call order and go out whole: one completes only once
//! all its bytes are on the socket, the next starts after it; `end()`
//! (the half-close) queues behind them the same way. A release
//! while a read or write is in flight, or while a message is partly
//! written, closes the connection at once: the operations fail and the
//! socket closes.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use pconn_core::transport::Duplex;
use pconn_core::{Cancel, Error, Key, Pooled};

use crate::bridge::{Failure, OpId, Outcome};
use crate::errors::{internal, throw, Code};
use crate::scope::Scope;

#[napi]
pub struct NativeConnection {
    loan: Arc<Loan>,
    id: f64,
    reused: bool,
    uses: f64,
    alpn: Option<String>,
}

struct Loan {
    /// The connection until it is released; operations borrow its halves
    /// for their duration only, so a released loan keeps no socket open.
    pooled: Mutex<Option<Pooled>>,
    pool_id: u64,
    /// Named by errors of this loan's operations.
    key: Key,
    /// The peer's address; None for a Unix socket.
    remote: Option<SocketAddr>,
    released: AtomicBool,
    /// Reads in flight.
    reading: AtomicUsize,
    writes: Mutex<Writes>,
    /// Fired by a release during I/O: operations in flight stop.
    stop: Cancel,
    scope: Arc<Scope>,
}

/// What a queued write sends.
enum Outgoing {
    Bytes(Vec<u8>),
    /// The half-close (`end()`), after every earlier write.
    End,
}

#[derive(Default)]
struct Writes {
    /// Waiting writes, in call order: (operation id, what it sends).
    queue: VecDeque<(OpId, Outgoing)>,
    /// A writer task is draining the queue.
    writing: bool,
    /// The write it is on.
    current: Option<OpId>,
}

impl Loan {
    fn writes(&self) -> MutexGuard<'_, Writes> {
        self.writes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connection's halves, unless the loan ended.
    fn io(&self) -> Option<Arc<Duplex>> {
        let pooled = self.pooled.lock().unwrap_or_else(|p| p.into_inner());
        pooled.as_ref().map(|p| p.connection_ref().io().clone())
    }

    fn is_busy(&self) -> bool {
        let writes = self.writes();
        self.reading.load(Ordering::SeqCst) > 0 || writes.writing || !writes.queue.is_empty()
    }

    /// End the loan: return the connection, or close it when I/O is in
    /// flight (its state is unknown).
    fn end(&self, keep_alive_ok: bool) -> pconn_core::Result<()> {
        if self.released.swap(true, Ordering::SeqCst) {
            return Err(Error::AlreadyReleased);
        }
        let busy = self.is_busy();
        let pooled = self.pooled.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(pooled) = pooled {
            if busy {
                self.stop.cancel();
                pooled.connection_ref().io().close();
            }
            pooled.release(keep_alive_ok && !busy);
        }
        Ok(())
    }

    /// Queue a write, starting the task that drains the queue if none is.
    fn queue_write(
        self: &Arc<Self>,
        writes: &mut Writes,
        io: Arc<Duplex>,
        id: OpId,
        outgoing: Outgoing,
    ) -> napi::Result<(), Code> {
        writes.queue.push_back((id, outgoing));
        if writes.writing {
            return Ok(());
        }
        writes.writing = true;
        let loan = self.clone();
        self.scope
            .spawn_quiet(self.clone().drain_writes(io), move |message| {
                loan.fail_writes(&message)
            })
            .map_err(internal)
    }

    /// After a panic of the writer task: fail the write it was on and every
    /// queued one (their Promises would never settle otherwise).
    fn fail_writes(&self, message: &str) {
        let mut writes = self.writes();
        writes.writing = false;
        let ids = writes
            .current
            .take()
            .into_iter()
            .chain(writes.queue.drain(..).map(|(id, _)| id));
        for id in ids.collect::<Vec<_>>() {
            self.scope.complete_panicked(id, message);
        }
    }

    /// Write queued writes one after the other until the queue is empty.
    async fn drain_writes(self: Arc<Self>, io: Arc<Duplex>) {
        loop {
            let (id, outgoing) = {
                let mut writes = self.writes();
                match writes.queue.pop_front() {
                    Some((id, outgoing)) => {
                        writes.current = Some(id);
                        (id, outgoing)
                    }
                    None => {
                        writes.writing = false;
                        writes.current = None;
                        return;
                    }
                }
            };
            let sent = async {
                match &outgoing {
                    Outgoing::Bytes(bytes) => io.write_all(bytes).await,
                    Outgoing::End => io.shutdown_write().await,
                }
            };
            let written = tokio::select! {
                biased;
                _ = self.stop.cancelled() => Err(Error::AlreadyReleased),
                r = sent => r,
            };
            let outcome = match written {
                Ok(()) => Outcome::Done,
                Err(error) => Outcome::Failed(Failure::on(&self.key, self.remote, error)),
            };
            self.scope.complete(id, outcome);
        }
    }
}

impl NativeConnection {
    pub(crate) fn new(pooled: Pooled, scope: &Arc<Scope>) -> NativeConnection {
        let pooled = pooled.received();
        let conn = pooled.connection_ref();
        let remote = conn.remote_addr();
        let alpn = conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        NativeConnection {
            id: pooled.id() as f64,
            reused: pooled.reused(),
            uses: pooled.uses() as f64,
            alpn,
            loan: Arc::new(Loan {
                pool_id: pooled.pool_id(),
                key: pooled.key().clone(),
                remote,
                pooled: Mutex::new(Some(pooled)),
                released: AtomicBool::new(false),
                reading: AtomicUsize::new(0),
                writes: Mutex::default(),
                stop: Cancel::new(),
                scope: scope.clone(),
            }),
        }
    }

    pub(crate) fn release_to(&self, pool_id: u64, keep_alive_ok: bool) -> pconn_core::Result<()> {
        if pool_id != self.loan.pool_id {
            return Err(Error::ForeignConnection);
        }
        self.loan.end(keep_alive_ok)
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
        self.loan.key.to_string()
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
    pub fn remote_address(&self) -> Option<String> {
        self.loan.remote.map(|a| a.ip().to_string())
    }
    #[napi(getter)]
    pub fn remote_port(&self) -> Option<u32> {
        self.loan.remote.map(|a| u32::from(a.port()))
    }
    #[napi(getter)]
    pub fn alpn_protocol(&self) -> Option<String> {
        self.alpn.clone()
    }
    #[napi(getter)]
    pub fn released(&self) -> bool {
        self.loan.released.load(Ordering::SeqCst)
    }

    /// Queue `data` for writing. Returns true when the socket took it all
    /// at once (nothing else was queued; no completion follows); otherwise
    /// it completes `id` once all of it is on the socket, after every
    /// earlier write.
    #[napi(catch_unwind)]
    pub fn write(&self, id: f64, data: Buffer) -> napi::Result<bool, Code> {
        let loan = &self.loan;
        let mut writes = loan.writes();
        // Checked under the write lock: a release either sees this write
        // queued (and closes) or this write sees the release (and refuses).
        let io = match loan.io() {
            Some(io) if !loan.released.load(Ordering::SeqCst) => io,
            _ => return Err(throw(Error::AlreadyReleased)),
        };
        let mut rest = &data[..];
        if !writes.writing && writes.queue.is_empty() {
            if let Some(mut half) = io.try_write_side() {
                match half.try_write_now(&data) {
                    Ok((taken, true)) if taken == data.len() => return Ok(true),
                    Ok((taken, _)) => rest = &data[taken..],
                    Err(e) => {
                        // Reported as the queued path reports it, naming the peer.
                        let failed = Failure::on(&loan.key, loan.remote, e);
                        loan.scope.complete(id, Outcome::Failed(failed));
                        return Ok(false);
                    }
                }
            }
        }
        loan.queue_write(&mut writes, io, id, Outgoing::Bytes(rest.to_vec()))?;
        Ok(false)
    }

    /// Half-close after every earlier write: completes `id` once the
    /// sending side is shut down. Reads go on until the peer closes; the
    /// connection is not pooled again.
    #[napi(catch_unwind)]
    pub fn end(&self, id: f64) -> napi::Result<(), Code> {
        let loan = &self.loan;
        let mut writes = loan.writes();
        let io = match loan.io() {
            Some(io) if !loan.released.load(Ordering::SeqCst) => io,
            _ => return Err(throw(Error::AlreadyReleased)),
        };
        loan.queue_write(&mut writes, io, id, Outgoing::End)
    }

    /// Read the next chunk (null at EOF); completes `id`.
    #[napi(catch_unwind)]
    pub fn read(&self, id: f64) -> napi::Result<(), Code> {
        let loan = self.loan.clone();
        // Counted before the release check: a release either sees this
        // read (and closes) or this read sees the release (and refuses).
        loan.reading.fetch_add(1, Ordering::SeqCst);
        let io = match loan.io() {
            Some(io) if !loan.released.load(Ordering::SeqCst) => io,
            _ => {
                loan.reading.fetch_sub(1, Ordering::SeqCst);
                return Err(throw(Error::AlreadyReleased));
            }
        };
        let scope = loan.scope.clone();
        scope
            .spawn(id, async move {
                let read = tokio::select! {
                    biased;
                    _ = loan.stop.cancelled() => Err(Error::AlreadyReleased),
                    r = io.read_chunk() => r,
                };
                loan.reading.fetch_sub(1, Ordering::SeqCst);
                match read {
                    Ok(bytes) => Outcome::Bytes(bytes),
                    Err(error) => Outcome::Failed(Failure::on(&loan.key, loan.remote, error)),
                }
            })
            .map_err(internal)
    }
}

/// A loan never released (the object was garbage-collected, or its thread
/// ended) closes its connection: its state is unknown.
impl Drop for NativeConnection {
    fn drop(&mut self) {
        if !self.loan.released.load(Ordering::SeqCst) {
            drop(self.loan.end(false));
        }
    }
}
