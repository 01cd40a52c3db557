//! TCP connect over every resolved address, IPv6 and IPv4 raced (RFC 8305).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

use crate::error::Error;

/// How long one attempt gets before the next address is tried in parallel.
const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// Interleave families, starting with the resolver's first choice.
fn interleave(addrs: &[IpAddr]) -> Vec<IpAddr> {
    let Some(first) = addrs.first() else {
        return Vec::new();
    };
    let (mut same, mut other): (Vec<IpAddr>, Vec<IpAddr>) =
        addrs.iter().partition(|a| a.is_ipv6() == first.is_ipv6());
    let mut out = Vec::with_capacity(addrs.len());
    same.reverse();
    other.reverse();
    while !same.is_empty() || !other.is_empty() {
        out.extend(same.pop());
        out.extend(other.pop());
    }
    out
}

async fn connect_one(addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.connect(addr).await
}

/// Connect to the first address that answers; a new attempt starts every
/// `ATTEMPT_DELAY` or as soon as one fails. Losing attempts are cancelled.
/// `failed` hears, as it happens, of each address that refused, and of
/// each one still silent when a later one answered (it would cost the
/// next connect `ATTEMPT_DELAY` again); a failure names the last address
/// tried.
pub(crate) async fn connect(
    addrs: &[IpAddr],
    port: u16,
    failed: &mut (dyn FnMut(IpAddr) + Send),
) -> Result<(TcpStream, SocketAddr), Error> {
    let mut queue = interleave(addrs)
        .into_iter()
        .map(|ip| SocketAddr::new(ip, port));
    let mut attempts = JoinSet::new();
    let mut last_error = None;
    // Addresses tried, in order, until each answers or fails.
    let mut pending: Vec<IpAddr> = Vec::new();
    loop {
        if let Some(addr) = queue.next() {
            pending.push(addr.ip());
            attempts.spawn(async move {
                connect_one(addr)
                    .await
                    .map(|s| (s, addr))
                    .map_err(|e| (e, addr))
            });
        } else if attempts.is_empty() {
            return Err(match last_error {
                Some((source, address)) => Error::Connect { address, source },
                None => Error::Io(io::Error::new(
                    io::ErrorKind::NotFound,
                    "no address to connect to",
                )),
            });
        }
        let more_to_try = queue.len() > 0;
        tokio::select! {
            Some(done) = attempts.join_next() => match done {
                Ok(Ok(won)) => {
                    // Those tried before the winner and still silent lost.
                    let winner = won.1.ip();
                    pending.iter().take_while(|&&ip| ip != winner).for_each(|&ip| failed(ip));
                    return Ok(won);
                }
                Ok(Err((error, address))) => {
                    pending.retain(|&ip| ip != address.ip());
                    failed(address.ip());
                    last_error = Some((error, address));
                }
                Err(join) => return Err(Error::Io(io::Error::other(join))),
            },
            _ = tokio::time::sleep(ATTEMPT_DELAY), if more_to_try => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_alternate_starting_with_the_first() {
        let v6: IpAddr = "::1".parse().unwrap();
        let v4a: IpAddr = "127.0.0.1".parse().unwrap();
        let v4b: IpAddr = "127.0.0.2".parse().unwrap();
        assert_eq!(interleave(&[v4a, v4b, v6]), vec![v4a, v6, v4b]);
        assert_eq!(interleave(&[v6, v4a, v4b]), vec![v6, v4a, v4b]);
    }

    #[tokio::test]
    async fn a_dead_address_falls_through_to_a_live_one() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // 127.0.0.2 has no listener on this port: refused at once, then 127.0.0.1 wins.
        let addrs = ["127.0.0.2".parse().unwrap(), "127.0.0.1".parse().unwrap()];
        let mut failed = Vec::new();
        let (_, addr) = connect(&addrs, port, &mut |ip| failed.push(ip))
            .await
            .unwrap();
        assert_eq!(addr.ip().to_string(), "127.0.0.1");
        assert_eq!(failed, [addrs[0]]);
    }

    #[tokio::test]
    async fn an_address_still_silent_when_a_later_one_answers_counts_as_failed() {
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = live.local_addr().unwrap().port();
        // A listener that never accepts, its queue filled: further SYNs are
        // dropped, as a host that is down drops them.
        let silent = TcpSocket::new_v4().unwrap();
        silent
            .bind(SocketAddr::new("127.0.0.2".parse().unwrap(), port))
            .unwrap();
        let silent = silent.listen(1).unwrap();
        let mut fillers = Vec::new();
        for _ in 0..4 {
            fillers.push(tokio::spawn(connect_one(silent.local_addr().unwrap())));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let addrs = ["127.0.0.2".parse().unwrap(), "127.0.0.1".parse().unwrap()];
        let mut failed = Vec::new();
        let (_, addr) = connect(&addrs, port, &mut |ip| failed.push(ip))
            .await
            .unwrap();
        assert_eq!(addr.ip().to_string(), "127.0.0.1");
        assert_eq!(
            failed,
            [addrs[0]],
            "the silent address lost to the live one"
        );
        fillers.iter().for_each(tokio::task::JoinHandle::abort);
    }
}
