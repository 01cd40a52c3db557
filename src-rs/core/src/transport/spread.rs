//! Spreading a key's connections over every address its name resolved to
//! (`spreadAddresses`): a new connection goes first to the address with
//! the fewest connections of the key (open, or being opened), in DNS order
//! on a tie; an address that failed to connect goes last for
//! `FAILED_COOLDOWN`. Each connection holds a lease on its address, so the
//! counts are exact and `stats()` can show them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::key::Key;

/// How long an address that refused or timed out is tried last.
pub(crate) const FAILED_COOLDOWN: Duration = Duration::from_secs(10);

/// One address of a key.
#[derive(Debug)]
struct Address {
    ip: IpAddr,
    /// Connections open on it.
    open: usize,
    /// Connects that tried it first and are still under way.
    connecting: usize,
    /// Until then it is tried last.
    failed_until: Option<Instant>,
}

impl Address {
    fn is_unused(&self, now: Instant) -> bool {
        self.open == 0 && self.connecting == 0 && self.failed_until.is_none_or(|t| t <= now)
    }
}

/// Every key's addresses that have connections, connects or a cooldown.
#[derive(Default, Debug)]
pub(crate) struct AddressBook {
    keys: Mutex<HashMap<Key, Vec<Address>>>,
}

impl AddressBook {
    fn keys(&self) -> MutexGuard<'_, HashMap<Key, Vec<Address>>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The order in which to try `addrs` for a new connection of `key`;
    /// the first is counted as connecting until the returned guard drops.
    pub(crate) fn plan(self: &Arc<Self>, key: &Key, addrs: &[IpAddr]) -> (Vec<IpAddr>, Attempt) {
        let now = Instant::now();
        let mut keys = self.keys();
        // Cooldowns that ran out on keys no longer connected to go here.
        keys.retain(|_, addresses| {
            addresses.retain(|a| !a.is_unused(now));
            !addresses.is_empty()
        });
        let known = keys.get(key);
        let rank = |ip: &IpAddr| match known.and_then(|v| v.iter().find(|a| a.ip == *ip)) {
            Some(a) => (
                a.failed_until.is_some_and(|t| t > now),
                a.open + a.connecting,
            ),
            None => (false, 0),
        };
        let mut order = addrs.to_vec();
        // Stable: addresses that rank alike keep the resolver's order.
        order.sort_by_key(rank);
        let first = order.first().copied();
        if let Some(ip) = first {
            address(&mut keys, key, ip).connecting += 1;
        }
        let attempt = Attempt {
            book: self.clone(),
            key: key.clone(),
            first,
        };
        (order, attempt)
    }

    /// A connect to `ip` failed: try it last for a while.
    pub(crate) fn failed(&self, key: &Key, ip: IpAddr) {
        let mut keys = self.keys();
        address(&mut keys, key, ip).failed_until = Some(Instant::now() + FAILED_COOLDOWN);
    }

    /// A connection of `key` opened to `ip`; it counts until the lease drops.
    pub(crate) fn lease(self: &Arc<Self>, key: &Key, ip: IpAddr) -> AddressLease {
        let mut keys = self.keys();
        let address = address(&mut keys, key, ip);
        address.open += 1;
        address.failed_until = None;
        AddressLease {
            book: self.clone(),
            key: key.clone(),
            ip,
        }
    }

    /// Each key's addresses with their open connections.
    pub(crate) fn snapshot(&self) -> Vec<(Key, Vec<(IpAddr, usize)>)> {
        self.keys()
            .iter()
            .map(|(k, v)| (k.clone(), v.iter().map(|a| (a.ip, a.open)).collect()))
            .collect()
    }

    /// Change one address's counts, then forget what is no longer used.
    fn update(&self, key: &Key, ip: IpAddr, change: impl FnOnce(&mut Address)) {
        let now = Instant::now();
        let mut keys = self.keys();
        let Some(addresses) = keys.get_mut(key) else {
            return;
        };
        if let Some(a) = addresses.iter_mut().find(|a| a.ip == ip) {
            change(a);
        }
        addresses.retain(|a| !a.is_unused(now));
        if addresses.is_empty() {
            keys.remove(key);
        }
    }
}

fn address<'a>(keys: &'a mut HashMap<Key, Vec<Address>>, key: &Key, ip: IpAddr) -> &'a mut Address {
    let addresses = keys.entry(key.clone()).or_default();
    let at = match addresses.iter().position(|a| a.ip == ip) {
        Some(at) => at,
        None => {
            addresses.push(Address {
                ip,
                open: 0,
                connecting: 0,
                failed_until: None,
            });
            addresses.len() - 1
        }
    };
    &mut addresses[at]
}

/// A connect under way, counted on the address it tries first.
pub(crate) struct Attempt {
    book: Arc<AddressBook>,
    key: Key,
    first: Option<IpAddr>,
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if let Some(ip) = self.first {
            self.book.update(&self.key, ip, |a| {
                a.connecting = a.connecting.saturating_sub(1)
            });
        }
    }
}

/// An open connection, counted on its address until it closes.
#[derive(Debug)]
pub(crate) struct AddressLease {
    book: Arc<AddressBook>,
    key: Key,
    ip: IpAddr,
}

impl Drop for AddressLease {
    fn drop(&mut self) {
        self.book
            .update(&self.key, self.ip, |a| a.open = a.open.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn new_connections_go_to_the_least_used_address_and_failed_ones_go_last() {
        let book = Arc::new(AddressBook::default());
        let key = Key::parse_url("http://svc.test/").unwrap();
        let addrs = [ip("10.0.0.1"), ip("10.0.0.2")];
        let (order, first) = book.plan(&key, &addrs);
        assert_eq!(order, addrs, "DNS order on a tie");
        let (order, second) = book.plan(&key, &addrs);
        assert_eq!(order[0], addrs[1], "the first is being connected to");
        let leases = [book.lease(&key, addrs[0]), book.lease(&key, addrs[1])];
        drop((first, second));
        assert_eq!(book.snapshot()[0].1, [(addrs[0], 1), (addrs[1], 1)]);
        book.failed(&key, addrs[0]);
        drop(leases);
        assert_eq!(book.plan(&key, &addrs).0[0], addrs[1], "failed: tried last");
        tokio::time::advance(FAILED_COOLDOWN).await;
        assert_eq!(book.plan(&key, &addrs).0[0], addrs[0], "cooled down");
        assert!(book.snapshot().is_empty(), "nothing kept once unused");
        // A key never connected to again loses its cooldowns once they ran out.
        let other = Key::parse_url("http://other.test/").unwrap();
        book.failed(&other, addrs[0]);
        tokio::time::advance(FAILED_COOLDOWN).await;
        drop(book.plan(&key, &addrs));
        assert!(book.snapshot().is_empty(), "{:?}", book.snapshot().len());
    }
}
