//! A proxy as part of a key's route: where it is and the credentials that
//! tunnels through it carry (tunnels with other credentials are not shared).

use base64::Engine;
use percent_encoding::percent_decode_str;

use super::origin::bracket_if_v6;
use crate::error::{Error, Result};

/// An HTTP proxy as a key's route: where it is and how to authenticate.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ProxyRoute {
    /// Lower-cased; IPv6 literals without brackets.
    pub host: String,
    pub port: u16,
    /// The `Proxy-Authorization` value (`Basic ...`), from the proxy URL's
    /// credentials: tunnels opened with other credentials are not shared.
    pub authorization: Option<String>,
}

impl std::fmt::Display for ProxyRoute {
    /// `http://host:port`, never the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}:{}", bracket_if_v6(&self.host), self.port)
    }
}

impl ProxyRoute {
    /// Parse `http://[user:pass@]host[:port]` (port 80 by default).
    pub fn parse(url: &str) -> Result<ProxyRoute> {
        let bad = |why: &str| Error::InvalidArgument(format!("invalid proxy URL: {why}"));
        let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        if parsed.scheme() != "http" {
            return Err(bad(
                "only http:// proxies are supported (TLS to the proxy is not)",
            ));
        }
        let host = match parsed.host() {
            Some(url::Host::Domain(d)) => d.to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(bad("it has no host")),
        };
        let authorization = if parsed.username().is_empty() && parsed.password().is_none() {
            None
        } else {
            let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
            let pair = format!(
                "{}:{}",
                decode(parsed.username()),
                decode(parsed.password().unwrap_or(""))
            );
            Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            ))
        };
        Ok(ProxyRoute {
            host,
            port: parsed.port_or_known_default().unwrap_or(80),
            authorization,
        })
    }
}
