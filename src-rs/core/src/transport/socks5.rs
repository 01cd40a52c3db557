//! The SOCKS5 `CONNECT` (RFC 1928), with user name and password
//! authentication (RFC 1929) when the proxy URL has credentials.

use std::net::IpAddr;

use super::socket::Socket;
use crate::error::{Error, Result};
use crate::key::{Key, ProxyRoute};

const VERSION: u8 = 5;
const NO_AUTH: u8 = 0;
const USER_PASS: u8 = 2;
const CONNECT: u8 = 1;
const IPV4: u8 = 1;
const DOMAIN: u8 = 3;
const IPV6: u8 = 4;

/// Why a SOCKS5 proxy refused a connect (RFC 1928 §6).
fn reply_text(code: u8) -> &'static str {
    match code {
        1 => "general failure",
        2 => "connection not allowed by its rules",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused by the target",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "an unknown reply code",
    }
}

/// Open a tunnel to `key`'s host (or `resolved`) through the SOCKS5 proxy
/// on `socket`.
pub(crate) async fn tunnel(
    socket: &Socket,
    key: &Key,
    proxy: &ProxyRoute,
    resolved: Option<IpAddr>,
) -> Result<()> {
    let refused = |what: String| Error::Proxy {
        proxy: proxy.to_string(),
        status: None,
        message: what,
    };
    let read = |n: usize| async move {
        let mut buf = vec![0u8; n];
        match socket.read_exact(&mut buf).await? {
            true => Ok(buf),
            false => Err(refused(
                "closed the connection during the SOCKS5 handshake".into(),
            )),
        }
    };
    let method = if proxy.credentials.is_some() {
        USER_PASS
    } else {
        NO_AUTH
    };
    socket.write_all(&[VERSION, 1, method]).await?;
    let chosen = read(2).await?;
    if chosen[0] != VERSION || chosen[1] != method {
        return Err(refused(match proxy.credentials {
            Some(_) => "refused user name and password authentication".into(),
            None => {
                "requires authentication: put the user name and password in the proxy URL".into()
            }
        }));
    }
    if let Some((user, pass)) = &proxy.credentials {
        let (user, pass) = (user.as_bytes(), pass.as_bytes());
        if user.len() > 255 || pass.len() > 255 {
            return Err(Error::InvalidArgument(
                "SOCKS5 user names and passwords are at most 255 bytes".into(),
            ));
        }
        let mut auth = vec![1, user.len() as u8];
        auth.extend_from_slice(user);
        auth.push(pass.len() as u8);
        auth.extend_from_slice(pass);
        socket.write_all(&auth).await?;
        if read(2).await?[1] != 0 {
            return Err(refused("refused the user name or password".into()));
        }
    }
    let mut request = vec![VERSION, CONNECT, 0];
    match resolved.or_else(|| key.host().parse().ok()) {
        Some(IpAddr::V4(ip)) => {
            request.push(IPV4);
            request.extend_from_slice(&ip.octets());
        }
        Some(IpAddr::V6(ip)) => {
            request.push(IPV6);
            request.extend_from_slice(&ip.octets());
        }
        None => {
            let host = key.host().as_bytes();
            if host.len() > 255 {
                return Err(Error::InvalidArgument(
                    "host names for SOCKS5 are at most 255 bytes".into(),
                ));
            }
            request.push(DOMAIN);
            request.push(host.len() as u8);
            request.extend_from_slice(host);
        }
    }
    request.extend_from_slice(&key.port().to_be_bytes());
    socket.write_all(&request).await?;
    let reply = read(4).await?;
    if reply[0] != VERSION {
        return Err(refused("sent a malformed SOCKS5 reply".into()));
    }
    if reply[1] != 0 {
        let target = format!("{}:{}", key.host(), key.port());
        return Err(refused(format!(
            "refused the SOCKS5 connect to {target}: {}",
            reply_text(reply[1])
        )));
    }
    // The address the proxy bound, then its port: read and dropped.
    let bound = match reply[3] {
        IPV4 => 4,
        IPV6 => 16,
        DOMAIN => usize::from(read(1).await?[0]),
        _ => return Err(refused("sent a malformed SOCKS5 reply".into())),
    };
    read(bound + 2).await?;
    Ok(())
}
