//! Name resolution: the system resolver (getaddrinfo, on Tokio's blocking
//! pool, as Node runs it on libuv's), its errors classified by their EAI
//! kind; concurrent lookups of one name share one lookup; answers are kept
//! `dnsCacheMs`, and the cache is pruned as it grows.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::{Error, Result};

/// Why a lookup failed: the errno-like name Node gives the failure, and
/// the underlying error's message when there is one (a `lookup` option
/// that threw).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupFailure {
    pub code: &'static str,
    pub cause: Option<Arc<str>>,
}

impl LookupFailure {
    pub fn new(code: &'static str) -> LookupFailure {
        LookupFailure { code, cause: None }
    }

    pub fn with_cause(code: &'static str, cause: &str) -> LookupFailure {
        LookupFailure {
            code,
            cause: Some(Arc::from(cause)),
        }
    }
}

/// A lookup's answer: addresses, or why there are none.
pub type LookupAnswer = std::result::Result<Arc<[IpAddr]>, LookupFailure>;
type Answer = LookupAnswer;

/// How names are looked up: the system resolver, the pool's `lookup`
/// option, or a fake in tests.
pub type LookupFn =
    Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = LookupAnswer> + Send>> + Send + Sync>;

/// A resolver given instead of the system's (the `lookup` pool option).
/// Any two compare equal: a shared pool keeps the first thread's.
#[derive(Clone)]
pub struct Lookup(pub LookupFn);

impl PartialEq for Lookup {
    fn eq(&self, _: &Lookup) -> bool {
        true
    }
}

impl Eq for Lookup {}

impl std::fmt::Debug for Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lookup(..)")
    }
}

/// Most names kept; past it, expired answers go, then the oldest.
const CACHE_LIMIT: usize = 1024;

/// What the resolver holds for one name.
enum Name {
    Resolved {
        addrs: Arc<[IpAddr]>,
        expires: Instant,
    },
    /// A lookup is running; followers wait on it. Only its lead replaces
    /// or removes it (`prune` keeps lookups in flight).
    InFlight {
        done: watch::Receiver<Option<Answer>>,
    },
}

/// Resolves host names; one lookup per name at a time, answers kept `ttl`.
pub(crate) struct Resolver {
    ttl: Duration,
    lookup: LookupFn,
    entries: Mutex<HashMap<String, Name>>,
}

enum Role {
    Lead(watch::Sender<Option<Answer>>),
    Follow(watch::Receiver<Option<Answer>>),
}

impl Resolver {
    pub(crate) fn new(ttl: Duration) -> Resolver {
        Resolver::with_lookup(ttl, Arc::new(|host| Box::pin(system_lookup(host))))
    }

    pub(crate) fn with_lookup(ttl: Duration, lookup: LookupFn) -> Resolver {
        Resolver {
            ttl,
            lookup,
            entries: Mutex::default(),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Name>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) async fn resolve(&self, host: &str) -> Result<Arc<[IpAddr]>> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Arc::from([ip]));
        }
        loop {
            let role = {
                let mut entries = self.entries();
                match entries.get(host) {
                    Some(Name::Resolved { addrs, expires }) if *expires > Instant::now() => {
                        return Ok(addrs.clone())
                    }
                    Some(Name::InFlight { done, .. }) => Role::Follow(done.clone()),
                    _ => {
                        let (tx, rx) = watch::channel(None);
                        entries.insert(host.to_string(), Name::InFlight { done: rx });
                        Role::Lead(tx)
                    }
                }
            };
            let answer = match role {
                Role::Lead(done) => self.lead(host, done).await,
                Role::Follow(mut done) => match done.wait_for(Option::is_some).await {
                    Ok(answer) => answer
                        .clone()
                        .unwrap_or(Err(LookupFailure::new("EAI_AGAIN"))),
                    // The leading lookup was cancelled: look again.
                    Err(_) => continue,
                },
            };
            return answer.map_err(|failure| Error::Dns {
                host: host.to_string(),
                code: failure.code,
                cause: failure.cause.map(|c| c.to_string()),
            });
        }
    }

    async fn lead(&self, host: &str, done: watch::Sender<Option<Answer>>) -> Answer {
        // Cancelled mid-lookup: the entry goes and `done` drops with it, so
        // followers look again instead of waiting forever.
        struct Abandon<'a> {
            resolver: &'a Resolver,
            host: &'a str,
            armed: bool,
        }
        impl Drop for Abandon<'_> {
            fn drop(&mut self) {
                if self.armed {
                    self.resolver.entries().remove(self.host);
                }
            }
        }
        let mut abandon = Abandon {
            resolver: self,
            host,
            armed: true,
        };
        let answer = (self.lookup)(host.to_string()).await;
        abandon.armed = false;
        {
            let mut entries = self.entries();
            match (&answer, self.ttl.is_zero()) {
                (Ok(addrs), false) => {
                    let expires = Instant::now() + self.ttl;
                    entries.insert(
                        host.to_string(),
                        Name::Resolved {
                            addrs: addrs.clone(),
                            expires,
                        },
                    );
                    prune(&mut entries);
                }
                _ => {
                    entries.remove(host);
                }
            }
        }
        done.send_replace(Some(answer.clone()));
        answer
    }

    #[cfg(test)]
    fn cached(&self) -> usize {
        self.entries().len()
    }
}

/// Keep the cache under `CACHE_LIMIT`: expired answers first, then the
/// answers that expire soonest, down to three quarters of the limit (so the
/// work is amortised over many inserts).
fn prune(entries: &mut HashMap<String, Name>) {
    if entries.len() <= CACHE_LIMIT {
        return;
    }
    let now = Instant::now();
    entries.retain(|_, e| !matches!(e, Name::Resolved { expires, .. } if *expires <= now));
    let keep = CACHE_LIMIT * 3 / 4;
    if entries.len() <= keep {
        return;
    }
    let mut expiries: Vec<Instant> = entries
        .values()
        .filter_map(|e| match e {
            Name::Resolved { expires, .. } => Some(*expires),
            Name::InFlight { .. } => None,
        })
        .collect();
    let drop_count = entries.len() - keep;
    if drop_count >= expiries.len() {
        entries.retain(|_, e| matches!(e, Name::InFlight { .. }));
        return;
    }
    let (_, cut, _) = expiries.select_nth_unstable(drop_count);
    let cut = *cut;
    entries.retain(|_, e| !matches!(e, Name::Resolved { expires, .. } if *expires <= cut));
}

/// getaddrinfo on the blocking pool.
async fn system_lookup(host: String) -> Answer {
    let found = tokio::task::spawn_blocking(move || {
        let hints = dns_lookup::AddrInfoHints {
            socktype: dns_lookup::SockType::Stream.into(),
            ..dns_lookup::AddrInfoHints::default()
        };
        dns_lookup::getaddrinfo(Some(&host), None, Some(hints)).map(|infos| {
            let mut ips: Vec<IpAddr> = Vec::new();
            for ip in infos.filter_map(|i| i.ok()).map(|i| i.sockaddr.ip()) {
                if !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
            ips
        })
    })
    .await;
    match found {
        Ok(Ok(ips)) if ips.is_empty() => Err(LookupFailure::new("ENOTFOUND")),
        Ok(Ok(ips)) => Ok(Arc::from(ips)),
        Ok(Err(e)) => Err(LookupFailure::new(lookup_code(e.kind()))),
        Err(_) => Err(LookupFailure::new("EAI_AGAIN")), // the blocking pool shut down
    }
}

/// Node's name for a getaddrinfo failure (`dns.lookup` errors).
fn lookup_code(kind: dns_lookup::LookupErrorKind) -> &'static str {
    use dns_lookup::LookupErrorKind::*;
    match kind {
        Again => "EAI_AGAIN",
        NoName | NoData => "ENOTFOUND",
        Fail => "EAI_FAIL",
        Memory => "EAI_MEMORY",
        Family => "EAI_FAMILY",
        _ => "EAI_SYSTEM",
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::sync::Notify;

    use super::*;

    #[tokio::test]
    async fn ip_literals_skip_lookup_and_names_resolve() {
        let r = Resolver::new(Duration::from_secs(5));
        assert_eq!(
            &*r.resolve("127.0.0.1").await.unwrap(),
            &["127.0.0.1".parse::<IpAddr>().unwrap()]
        );
        let local = r.resolve("localhost").await.unwrap();
        assert!(local.iter().all(|ip| ip.is_loopback()));
    }

    #[tokio::test]
    async fn unknown_names_are_enotfound() {
        let r = Resolver::new(Duration::ZERO);
        let err = r.resolve("no-such-host.invalid").await.unwrap_err();
        assert!(
            matches!(err.code(), "ENOTFOUND" | "EAI_AGAIN"),
            "{}",
            err.code()
        );
    }

    #[test]
    fn failures_are_classified_by_kind() {
        use dns_lookup::LookupErrorKind::*;
        assert_eq!(lookup_code(NoName), "ENOTFOUND");
        assert_eq!(lookup_code(NoData), "ENOTFOUND");
        assert_eq!(lookup_code(Again), "EAI_AGAIN");
        assert_eq!(lookup_code(Fail), "EAI_FAIL");
    }

    /// A lookup that counts its calls and answers when `gate` is notified.
    fn gated(calls: Arc<AtomicUsize>, gate: Arc<Notify>) -> LookupFn {
        Arc::new(move |_host| {
            let (calls, gate) = (calls.clone(), gate.clone());
            Box::pin(async move {
                calls.fetch_add(1, Ordering::SeqCst);
                gate.notified().await;
                Ok(Arc::from(["10.0.0.1".parse::<IpAddr>().unwrap()]))
            })
        })
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_lookups_share_one() {
        let (calls, gate) = (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()));
        let r = Resolver::with_lookup(Duration::ZERO, gated(calls.clone(), gate.clone()));
        let opener = async {
            tokio::task::yield_now().await;
            gate.notify_waiters();
        };
        let (a, b, ()) = tokio::join!(r.resolve("db"), r.resolve("db"), opener);
        assert_eq!(a.unwrap(), b.unwrap());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn followers_of_a_cancelled_lookup_look_again() {
        let (calls, gate) = (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()));
        let r = Arc::new(Resolver::with_lookup(
            Duration::ZERO,
            gated(calls.clone(), gate.clone()),
        ));
        let leader = tokio::spawn({
            let r = r.clone();
            async move { r.resolve("db").await.map(|_| ()) }
        });
        tokio::task::yield_now().await;
        let follower = tokio::spawn({
            let r = r.clone();
            async move { r.resolve("db").await }
        });
        tokio::task::yield_now().await;
        leader.abort();
        let _ = leader.await;
        // The follower leads a new lookup; let it answer.
        while calls.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        gate.notify_waiters();
        assert!(
            follower.await.unwrap().is_ok(),
            "the follower got an answer, not EAI_AGAIN"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn answers_expire_and_the_cache_stays_bounded() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counting: LookupFn = {
            let calls = calls.clone();
            Arc::new(move |_| {
                calls.fetch_add(1, Ordering::SeqCst);
                Box::pin(async { Ok(Arc::from(["10.0.0.1".parse::<IpAddr>().unwrap()])) })
            })
        };
        let r = Resolver::with_lookup(Duration::from_secs(1), counting);
        r.resolve("a").await.unwrap();
        r.resolve("a").await.unwrap();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "the second answer came from the cache"
        );
        tokio::time::advance(Duration::from_millis(1001)).await;
        r.resolve("a").await.unwrap();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "an expired answer is looked up again"
        );
        for i in 0..(CACHE_LIMIT * 3) {
            r.resolve(&format!("host-{i}")).await.unwrap();
        }
        assert!(r.cached() <= CACHE_LIMIT, "{} names cached", r.cached());
    }
}
