//! Name resolution with a short cache and coalescing of concurrent lookups.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use crate::error::{Error, Result};

type Lookup = std::result::Result<Arc<[IpAddr]>, &'static str>;

enum Entry {
    Resolved {
        addrs: Arc<[IpAddr]>,
        expires: Instant,
    },
    /// A lookup is running; later callers wait for its answer.
    InFlight(broadcast::Sender<Lookup>),
}

/// Resolves host names; one lookup per host at a time, answers kept `ttl`.
pub(crate) struct Resolver {
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Resolver {
    pub(crate) fn new(ttl: Duration) -> Resolver {
        Resolver {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) async fn resolve(&self, host: &str) -> Result<Arc<[IpAddr]>> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Arc::from([ip]));
        }
        let mut follower = None;
        {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            match entries.get(host) {
                Some(Entry::Resolved { addrs, expires }) if *expires > Instant::now() => {
                    return Ok(addrs.clone())
                }
                Some(Entry::InFlight(tx)) => follower = Some(tx.subscribe()),
                _ => {
                    entries.insert(host.to_string(), Entry::InFlight(broadcast::channel(1).0));
                }
            }
        }
        let answer = match follower {
            Some(mut rx) => rx.recv().await.unwrap_or(Err("EAI_AGAIN")),
            None => self.lead_lookup(host).await,
        };
        answer.map_err(|code| Error::Dns {
            host: host.to_string(),
            code,
        })
    }

    async fn lead_lookup(&self, host: &str) -> Lookup {
        // If this future is dropped mid-lookup, the guard clears the in-flight
        // entry so followers retry instead of waiting forever.
        struct Clear<'a>(&'a Resolver, &'a str, bool);
        impl Drop for Clear<'_> {
            fn drop(&mut self) {
                if !self.2 {
                    if let Ok(mut entries) = self.0.entries.lock() {
                        entries.remove(self.1);
                    }
                }
            }
        }
        let mut guard = Clear(self, host, false);
        let answer: Lookup = match tokio::net::lookup_host((host, 0)).await {
            Ok(addrs) => {
                let ips: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
                if ips.is_empty() {
                    Err("ENOTFOUND")
                } else {
                    Ok(Arc::from(ips))
                }
            }
            Err(e) if e.to_string().contains("emporary") => Err("EAI_AGAIN"),
            Err(_) => Err("ENOTFOUND"),
        };
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let waiting = match (&answer, self.ttl.is_zero()) {
            (Ok(addrs), false) => entries.insert(
                host.to_string(),
                Entry::Resolved {
                    addrs: addrs.clone(),
                    expires: Instant::now() + self.ttl,
                },
            ),
            _ => entries.remove(host),
        };
        guard.2 = true;
        if let Some(Entry::InFlight(tx)) = waiting {
            let _ = tx.send(answer.clone());
        }
        answer
    }
}

#[cfg(test)]
mod tests {
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
    async fn concurrent_lookups_share_one_answer() {
        let r = Arc::new(Resolver::new(Duration::ZERO));
        let (a, b) = tokio::join!(r.resolve("localhost"), r.resolve("localhost"));
        assert_eq!(a.unwrap(), b.unwrap());
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
}
