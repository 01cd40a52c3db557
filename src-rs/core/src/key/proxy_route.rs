//! A proxy as part of a key's route: where it is and the credentials that
//! tunnels through it carry (tunnels with other credentials are not shared).

use base64::Engine;
use percent_encoding::percent_decode_str;

use super::origin::bracket_if_v6;
use crate::error::{Error, Result};

/// How a proxy is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyKind {
    /// An HTTP proxy: a `CONNECT` tunnel.
    Http,
    /// The same over TLS to the proxy (`https://`).
    Https,
    /// A SOCKS5 proxy: `socks5h://` sends the host name for the proxy to
    /// resolve, `socks5://` resolves it here first.
    Socks5 { remote_dns: bool },
}

/// A proxy as a key's route: where it is and how to authenticate.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ProxyRoute {
    pub kind: ProxyKind,
    /// Lower-cased; IPv6 literals without brackets.
    pub host: String,
    pub port: u16,
    /// The `Proxy-Authorization` value (`Basic ...`), from the proxy URL's
    /// credentials: tunnels opened with other credentials are not shared.
    pub authorization: Option<String>,
    /// The user name and password, for SOCKS5's own authentication.
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Display for ProxyRoute {
    /// `scheme://host:port`, never the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match self.kind {
            ProxyKind::Http => "http",
            ProxyKind::Https => "https",
            ProxyKind::Socks5 { remote_dns: true } => "socks5h",
            ProxyKind::Socks5 { remote_dns: false } => "socks5",
        };
        write!(f, "{scheme}://{}:{}", bracket_if_v6(&self.host), self.port)
    }
}

impl ProxyRoute {
    /// Parse `http://[user:pass@]host[:port]` (port 80 by default),
    /// `https://` (443), `socks5://` or `socks5h://` (1080).
    pub fn parse(url: &str) -> Result<ProxyRoute> {
        let bad = |why: &str| Error::InvalidArgument(format!("invalid proxy URL: {why}"));
        let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        let (kind, default_port) = match parsed.scheme() {
            "http" => (ProxyKind::Http, 80),
            "socks5" => (ProxyKind::Socks5 { remote_dns: false }, 1080),
            "socks5h" => (ProxyKind::Socks5 { remote_dns: true }, 1080),
            "https" => (ProxyKind::Https, 443),
            other => {
                return Err(bad(&format!(
                    "{other}:// is not a proxy scheme pconn speaks (http, https, socks5, socks5h)"
                )))
            }
        };
        let host = match parsed.host() {
            // socks5h:// is not a special scheme: its host is left as typed.
            Some(url::Host::Domain(d)) => super::origin::normalize_host(d)?,
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(bad("it has no host")),
        };
        let credentials = if parsed.username().is_empty() && parsed.password().is_none() {
            None
        } else {
            let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
            Some((
                decode(parsed.username()),
                decode(parsed.password().unwrap_or("")),
            ))
        };
        let authorization = credentials.as_ref().map(|(user, pass)| {
            let pair = format!("{user}:{pass}");
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        });
        Ok(ProxyRoute {
            kind,
            host,
            port: parsed.port().unwrap_or(default_port),
            authorization,
            credentials,
        })
    }
}
