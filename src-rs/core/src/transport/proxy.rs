//! Proxies: which keys go through one (a pool's `proxy` setting, or the
//! `HTTP_PROXY` family of environment variables) and the tunnel every
//! proxied connection starts with: HTTP `CONNECT`, or a SOCKS5 `CONNECT`.
//!
//! Every proxied connection is a tunnel, plain HTTP included (as undici's
//! `ProxyAgent` does by default): the proxy sees only the target's host and
//! port, and TLS runs end to end through it.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::socket::{head_ends_at_tail, Socket};
use super::socks5;
use crate::error::{Error, Result};
use crate::http1::codec::{parse_head, MAX_HEAD_BYTES};
use crate::key::{bracket_if_v6, Key, ProxyKind, ProxyRoute, Scheme};

/// Which keys of a pool go through which proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyPolicy {
    http: Option<Arc<ProxyRoute>>,
    https: Option<Arc<ProxyRoute>>,
    /// For `tcp` and `tls` keys (only an explicit proxy URL sets it).
    raw: Option<Arc<ProxyRoute>>,
    no_proxy: NoProxy,
}

impl ProxyPolicy {
    /// Every key (HTTP, HTTPS and raw TCP/TLS) through the proxy at `url`.
    pub fn fixed(url: &str) -> Result<ProxyPolicy> {
        let route = Arc::new(ProxyRoute::parse(url)?);
        Ok(ProxyPolicy {
            http: Some(route.clone()),
            https: Some(route.clone()),
            raw: Some(route),
            no_proxy: NoProxy::default(),
        })
    }

    /// As undici's `EnvHttpProxyAgent`, from a variable lookup (the
    /// process environment in use): `http_proxy` / `HTTP_PROXY` for http
    /// keys, `https_proxy` / `HTTPS_PROXY` (else the HTTP proxy) for https
    /// keys, lower case first and an empty value meaning none; `no_proxy` /
    /// `NO_PROXY` exempts hosts. Raw `tcp` and `tls` keys stay direct.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<ProxyPolicy> {
        // The value and the name of the variable it came from.
        let pick = |lower: &'static str, upper: &'static str| {
            let named = |name: &'static str| var(name).map(|v| (v, name));
            named(lower)
                .or_else(|| named(upper))
                .filter(|(v, _)| !v.is_empty())
        };
        let route = |v: Option<(String, &'static str)>| {
            v.map(|(url, name)| {
                ProxyRoute::parse(&url)
                    .map(Arc::new)
                    .map_err(|e| Error::InvalidArgument(format!("{name}: {e}")))
            })
            .transpose()
        };
        let http = route(pick("http_proxy", "HTTP_PROXY"))?;
        let https = route(pick("https_proxy", "HTTPS_PROXY"))?.or_else(|| http.clone());
        Ok(ProxyPolicy {
            http,
            https,
            raw: None,
            no_proxy: NoProxy::parse(
                &pick("no_proxy", "NO_PROXY")
                    .map(|(v, _)| v)
                    .unwrap_or_default(),
            ),
        })
    }

    /// The proxy `key`'s connections go through, if any.
    pub fn route_for(&self, key: &Key) -> Option<Arc<ProxyRoute>> {
        let route = match key.scheme() {
            Scheme::Http => self.http.as_ref(),
            Scheme::Https => self.https.as_ref(),
            Scheme::Tcp | Scheme::Tls => self.raw.as_ref(),
            Scheme::Unix => None,
        }?;
        (!self.no_proxy.exempts(key.host(), key.port())).then(|| route.clone())
    }
}

/// `NO_PROXY` entries, matched as undici matches them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct NoProxy {
    /// `*`: nothing is proxied.
    all: bool,
    /// (lower-cased host or domain suffix, port if the entry named one).
    entries: Vec<(String, Option<u16>)>,
}

impl NoProxy {
    fn parse(list: &str) -> NoProxy {
        let mut out = NoProxy::default();
        for entry in list.split([',', ' ', '\t', '\n']).filter(|e| !e.is_empty()) {
            if entry == "*" {
                out.all = true;
                continue;
            }
            let (host, port) = match entry.rsplit_once(':') {
                Some((h, p))
                    if !p.is_empty()
                        && p.bytes().all(|b| b.is_ascii_digit())
                        && !h.ends_with(':') =>
                {
                    (h, p.parse().ok())
                }
                _ => (entry, None),
            };
            let host = host.trim_start_matches("*.").trim_start_matches('.');
            let host = host.trim_start_matches('[').trim_end_matches(']');
            out.entries.push((host.to_ascii_lowercase(), port));
        }
        out
    }

    /// Whether `host:port` goes direct: the host is an entry or a
    /// subdomain of one, and the entry names no other port.
    fn exempts(&self, host: &str, port: u16) -> bool {
        self.all
            || self.entries.iter().any(|(entry, entry_port)| {
                entry_port.is_none_or(|p| p == port)
                    && (host == entry
                        || host
                            .strip_suffix(entry.as_str())
                            .is_some_and(|rest| rest.ends_with('.')))
            })
    }
}

/// Ask the proxy on `socket` for a tunnel to `key`'s host and port (to
/// `resolved` instead of the host name, when given: `socks5://`). On
/// success the socket carries the target's bytes; a refusal is
/// `PCONN_PROXY` (with the status of an HTTP proxy's answer).
pub(crate) async fn tunnel(
    socket: &Socket,
    key: &Key,
    proxy: &ProxyRoute,
    resolved: Option<IpAddr>,
) -> Result<()> {
    match proxy.kind {
        ProxyKind::Http | ProxyKind::Https => http_tunnel(socket, key, proxy).await,
        ProxyKind::Socks5 { .. } => socks5::tunnel(socket, key, proxy, resolved).await,
    }
}

/// An HTTP proxy's `CONNECT` tunnel over the raw socket.
async fn http_tunnel(socket: &Socket, key: &Key, proxy: &ProxyRoute) -> Result<()> {
    let (authority, request) = connect_request(key, proxy);
    socket.write_all(request.as_bytes()).await?;
    let head = match socket.read_head(MAX_HEAD_BYTES).await {
        Ok(head) => head,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            return Err(too_large(proxy, &authority))
        }
        Err(e) => return Err(e.into()),
    };
    judge_answer(head.as_deref(), proxy, &authority)
}

/// The same tunnel through a TLS connection to an `https://` proxy: the
/// answer is read byte by byte, so that nothing of the tunnel is taken.
pub(crate) async fn tunnel_over<S>(io: &mut S, key: &Key, proxy: &ProxyRoute) -> Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (authority, request) = connect_request(key, proxy);
    io.write_all(request.as_bytes()).await?;
    io.flush().await?;
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    // The same end of head as on the raw socket (a bare LF too, judged
    // later), looked for only where it can have appeared: at a new LF.
    while !(byte[0] == b'\n' && head_ends_at_tail(&head)) {
        if head.len() >= MAX_HEAD_BYTES {
            return Err(too_large(proxy, &authority));
        }
        if io.read(&mut byte).await? == 0 {
            return judge_answer(None, proxy, &authority);
        }
        head.push(byte[0]);
    }
    judge_answer(Some(&head), proxy, &authority)
}

/// The target's authority, and the `CONNECT` request for it.
fn connect_request(key: &Key, proxy: &ProxyRoute) -> (String, String) {
    let authority = format!("{}:{}", bracket_if_v6(key.host()), key.port());
    let mut request = format!(
        "CONNECT {authority} HTTP/1.1\r\nhost: {authority}\r\nproxy-connection: keep-alive\r\n"
    );
    if let Some(auth) = &proxy.authorization {
        request.push_str(&format!("proxy-authorization: {auth}\r\n"));
    }
    request.push_str("\r\n");
    (authority, request)
}

fn refused(proxy: &ProxyRoute, status: Option<u16>, message: String) -> Error {
    Error::Proxy {
        proxy: proxy.to_string(),
        status,
        message,
    }
}

fn too_large(proxy: &ProxyRoute, authority: &str) -> Error {
    refused(
        proxy,
        None,
        format!("answered CONNECT {authority} with a head over {MAX_HEAD_BYTES} bytes"),
    )
}

/// The tunnel is open on a 2xx answer; anything else is `PCONN_PROXY`.
fn judge_answer(head: Option<&[u8]>, proxy: &ProxyRoute, authority: &str) -> Result<()> {
    let Some(head) = head else {
        return Err(refused(
            proxy,
            None,
            format!("closed the connection before answering CONNECT {authority}"),
        ));
    };
    let Some((status, reason)) = parse_connect_answer(head) else {
        return Err(refused(
            proxy,
            None,
            format!("sent a malformed answer to CONNECT {authority}"),
        ));
    };
    match status {
        200..=299 => Ok(()),
        status => Err(refused(
            proxy,
            Some(status),
            format!("answered {status} {reason} to CONNECT {authority}"),
        )),
    }
}

/// A proxy's answer to CONNECT (one whole head): its status and reason, or
/// `None` when it is malformed. Lines end in CRLF (RFC 9112 §2.2): a bare
/// LF is a proxy this client does not understand, not a tunnel to trust.
pub fn parse_connect_answer(head: &[u8]) -> Option<(u16, String)> {
    let bare_lf = head
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || head[i - 1] != b'\r'));
    if bare_lf {
        return None;
    }
    let (answer, _) = parse_head(head, MAX_HEAD_BYTES).ok()??;
    let reason = String::from_utf8_lossy(answer.reason()).into_owned();
    Some((answer.status, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    fn key(url: &str) -> Key {
        Key::parse_url(url).unwrap()
    }

    #[test]
    fn credentials_become_basic_authorization() {
        let route = ProxyRoute::parse("http://us%40er:p%3Ass@Proxy.example:3128").unwrap();
        assert_eq!(route.host, "proxy.example");
        assert_eq!(route.port, 3128);
        assert_eq!(
            route.authorization.as_deref(),
            Some("Basic dXNAZXI6cDpzcw==")
        );
        assert_eq!(
            route.to_string(),
            "http://proxy.example:3128",
            "no credentials shown"
        );
        let tls = ProxyRoute::parse("https://p").unwrap();
        assert_eq!((tls.kind, tls.port), (ProxyKind::Https, 443));
        let socks = ProxyRoute::parse("socks5h://u:p@Socks.example").unwrap();
        assert_eq!(socks.kind, ProxyKind::Socks5 { remote_dns: true });
        assert_eq!(socks.to_string(), "socks5h://socks.example:1080");
        assert_eq!(socks.credentials, Some(("u".into(), "p".into())));
        let local = ProxyRoute::parse("socks5://10.0.0.1:9050").unwrap();
        assert_eq!(local.kind, ProxyKind::Socks5 { remote_dns: false });
        assert!(ProxyRoute::parse("ftp://p:1").is_err());
    }

    #[test]
    fn a_bad_proxy_variable_is_named() {
        let err = ProxyPolicy::from_env(env(&[("HTTPS_PROXY", "ftp://p:1")])).unwrap_err();
        assert!(err.to_string().starts_with("HTTPS_PROXY: "), "{err}");
    }

    #[test]
    fn env_picks_lower_case_first_and_https_falls_back_to_http() {
        let policy = ProxyPolicy::from_env(env(&[
            ("http_proxy", "http://a:1"),
            ("HTTP_PROXY", "http://b:2"),
        ]))
        .unwrap();
        assert_eq!(policy.route_for(&key("http://x")).unwrap().host, "a");
        assert_eq!(policy.route_for(&key("https://x")).unwrap().host, "a");
        assert!(
            policy.route_for(&key("tcp://x:5")).is_none(),
            "raw keys stay direct"
        );
        let empty = ProxyPolicy::from_env(env(&[("http_proxy", ""), ("HTTP_PROXY", "http://b:2")]))
            .unwrap();
        assert!(
            empty.route_for(&key("http://x")).is_none(),
            "an empty lower-case value means none"
        );
    }

    #[test]
    fn no_proxy_matches_hosts_suffixes_and_ports() {
        let policy = ProxyPolicy::from_env(env(&[
            ("HTTP_PROXY", "http://p:1"),
            (
                "NO_PROXY",
                "internal.example, .corp.example *.svc 127.0.0.1:8080 [::1]",
            ),
        ]))
        .unwrap();
        let proxied = |url: &str| policy.route_for(&key(url)).is_some();
        assert!(!proxied("http://internal.example/"));
        assert!(!proxied("http://a.internal.example/"));
        assert!(proxied("http://notinternal.example/"));
        assert!(!proxied("http://x.corp.example/"));
        assert!(!proxied("http://db.svc/"));
        assert!(!proxied("http://127.0.0.1:8080/"));
        assert!(proxied("http://127.0.0.1:8081/"));
        assert!(!proxied("http://[::1]:9/"));
        assert!(proxied("http://example.com/"));
        let all =
            ProxyPolicy::from_env(env(&[("HTTP_PROXY", "http://p:1"), ("no_proxy", "*")])).unwrap();
        assert!(all.route_for(&key("http://example.com/")).is_none());
    }
}
