//! The `lookup` pool option: names resolved by a JavaScript function. The
//! I/O thread asks through a threadsafe function, `(id, hostname)`; the
//! façade runs the user's function and answers with
//! `NativePool::answer_lookup(id, addresses, error)`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use napi::bindgen_prelude::{FnArgs, Function};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use pconn_core::transport::{LookupAnswer, LookupFailure, LookupFn};
use tokio::sync::oneshot;

/// `(id, hostname)` to the façade, as two arguments; weak: it keeps no
/// event loop alive.
type Args = FnArgs<(u32, String)>;
type Ask = ThreadsafeFunction<Args, (), Args, Status, false, true>;

/// One pool's JavaScript resolver and the lookups waiting for it.
pub(crate) struct JsLookup {
    ask: Ask,
    waiting: Mutex<HashMap<u32, oneshot::Sender<LookupAnswer>>>,
    next_id: AtomicU32,
}

impl JsLookup {
    pub(crate) fn new(ask: Function<'_, Args, ()>) -> napi::Result<Arc<JsLookup>> {
        let ask = ask
            .build_threadsafe_function::<Args>()
            .callee_handled::<false>()
            .weak::<true>()
            .build()?;
        Ok(Arc::new(JsLookup {
            ask,
            waiting: Mutex::default(),
            next_id: AtomicU32::new(0),
        }))
    }

    fn waiting(&self) -> MutexGuard<'_, HashMap<u32, oneshot::Sender<LookupAnswer>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The resolver the pool's connector uses.
    pub(crate) fn resolver(self: &Arc<Self>) -> LookupFn {
        let lookup = self.clone();
        Arc::new(move |host| {
            let lookup = lookup.clone();
            Box::pin(async move { lookup.ask(host).await })
        })
    }

    async fn ask(&self, host: String) -> LookupAnswer {
        let (tx, rx) = oneshot::channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.waiting().insert(id, tx);
        // However this ends (answered, or the connect given up at its
        // timeout or abort while the user's function never answers), the
        // entry goes.
        let _entry = Waiting { lookup: self, id };
        let status = self
            .ask
            .call((id, host).into(), ThreadsafeFunctionCallMode::NonBlocking);
        if status != Status::Ok {
            return Err(LookupFailure::with_cause(
                "ENOTFOUND",
                "the pool's lookup function cannot be called any more (the thread that made the pool exited)",
            ));
        }
        rx.await.unwrap_or_else(|_| {
            Err(LookupFailure::with_cause(
                "ENOTFOUND",
                "the lookup was never answered",
            ))
        })
    }

    /// Lookups asked and not yet answered or given up.
    pub(crate) fn waiting_count(&self) -> usize {
        self.waiting().len()
    }

    /// The façade's answer to lookup `id`: addresses, or the message of
    /// what the user's function threw.
    pub(crate) fn answer(&self, id: u32, addresses: Option<Vec<String>>, error: Option<String>) {
        let Some(tx) = self.waiting().remove(&id) else {
            return;
        };
        let answer = match (addresses, error) {
            (_, Some(message)) => Err(LookupFailure::with_cause("ENOTFOUND", &message)),
            (Some(addresses), None) => parse(&addresses),
            (None, None) => Err(LookupFailure::with_cause(
                "ENOTFOUND",
                "lookup answered no addresses",
            )),
        };
        // The connect may have given up meanwhile.
        let _ = tx.send(answer);
    }
}

/// One asked lookup's entry in `waiting`, removed when the asking ends.
struct Waiting<'a> {
    lookup: &'a JsLookup,
    id: u32,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.lookup.waiting().remove(&self.id);
    }
}

/// A lookup's answer as IP addresses (at least one, each valid).
fn parse(addresses: &[String]) -> LookupAnswer {
    let mut ips: Vec<IpAddr> = Vec::with_capacity(addresses.len());
    for text in addresses {
        let Ok(ip) = text.trim_start_matches('[').trim_end_matches(']').parse() else {
            let why = format!("lookup answered {text:?}, which is not an IP address");
            return Err(LookupFailure::with_cause("ENOTFOUND", &why));
        };
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    if ips.is_empty() {
        return Err(LookupFailure::with_cause(
            "ENOTFOUND",
            "lookup answered no addresses",
        ));
    }
    Ok(Arc::from(ips))
}
