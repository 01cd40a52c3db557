//! Pool keys: which connections may serve which acquires.
//!
//! A key is `(scheme, host, port)` plus the TLS identity (servername
//! override) and the route (direct, a Unix socket, or a proxy), so a
//! plaintext connection never serves a TLS acquire, a TLS session made for
//! one name never serves another, and a tunnel through a proxy never serves
//! a direct request.

use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};
use std::sync::{Arc, OnceLock};

mod origin;
mod proxy_route;

use crate::error::{Error, Result};
pub use origin::{bracket_if_v6, normalize_host};
pub(crate) use origin::{parse_whatwg, socket_path};
pub use proxy_route::{ProxyKind, ProxyRoute};

/// The protocols a pool can connect for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
    Tcp,
    Tls,
    /// Raw bytes over a Unix domain socket (see [`Key::unix`]).
    Unix,
}

impl Scheme {
    pub fn parse(s: &str) -> Result<Scheme> {
        match s.to_ascii_lowercase().as_str() {
            "http" => Ok(Scheme::Http),
            "https" => Ok(Scheme::Https),
            "tcp" => Ok(Scheme::Tcp),
            "tls" => Ok(Scheme::Tls),
            "unix" => Ok(Scheme::Unix),
            other => Err(Error::InvalidArgument(format!(
                "unsupported scheme {other:?}: use http, https, tcp, tls or unix"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Tcp => "tcp",
            Scheme::Tls => "tls",
            Scheme::Unix => "unix",
        }
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, Scheme::Https | Scheme::Tls)
    }

    /// `http` or `https`: the schemes `request()` speaks.
    pub fn is_http(self) -> bool {
        matches!(self, Scheme::Http | Scheme::Https)
    }

    /// http 80, https 443; raw protocols have no default and need a port.
    pub fn default_port(self) -> Option<u16> {
        match self {
            Scheme::Http => Some(80),
            Scheme::Https => Some(443),
            Scheme::Tcp | Scheme::Tls | Scheme::Unix => None,
        }
    }
}

/// How a key's connections reach their server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Route {
    /// Resolve the host and connect over TCP.
    Direct,
    /// Connect to this Unix domain socket; the host only names the server
    /// (the Host header and the TLS name).
    Unix(Arc<str>),
    /// Through an HTTP proxy's `CONNECT` tunnel.
    Proxy(Arc<ProxyRoute>),
}

#[derive(Debug, Clone)]
struct KeyParts {
    scheme: Scheme,
    /// Lower-cased; IPv6 literals without brackets.
    host: String,
    port: u16,
    /// TLS name to present and verify, when it differs from `host`.
    servername: Option<String>,
    route: Route,
    /// An `https` key of requests that may use HTTP/2 (its connections
    /// offer `h2`); raw acquires never are, so they never get an HTTP/2
    /// connection. Not shown: both kinds display as the origin.
    http2: bool,
    /// The Host header value, computed once (it goes into every request).
    host_header: String,
    /// A hash of the identity, computed once: maps keyed by `Key` hash
    /// nothing per lookup (see [`DigestHasher`]).
    digest: u64,
}

impl KeyParts {
    /// What identifies a key (`host_header` is derived from these).
    fn identity(&self) -> (Scheme, &str, u16, Option<&str>, &Route, bool) {
        (
            self.scheme,
            &self.host,
            self.port,
            self.servername.as_deref(),
            &self.route,
            self.http2,
        )
    }
}

impl PartialEq for KeyParts {
    fn eq(&self, other: &Self) -> bool {
        self.digest == other.digest && self.identity() == other.identity()
    }
}

impl Eq for KeyParts {}

impl Hash for KeyParts {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.digest);
    }
}

/// The digest of a key's identity: SipHash with this process's random
/// keys, so hosts chosen to collide cannot be computed in advance.
fn digest(identity: impl Hash) -> u64 {
    static SEED: OnceLock<RandomState> = OnceLock::new();
    SEED.get_or_init(RandomState::new).hash_one(identity)
}

/// Hashes a [`Key`] by its digest (a key writes only that).
#[derive(Default)]
pub struct KeyDigestHasher(u64);

impl Hasher for KeyDigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only reached by a key type that does not write its digest.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// How maps keyed by [`Key`] hash: they take its digest, hashing nothing
/// per lookup.
pub type DigestHasher = BuildHasherDefault<KeyDigestHasher>;

/// A normalized, cheap-to-clone pool key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Key(Arc<KeyParts>);

impl Key {
    /// Build a key from parts, validating and normalizing each (hosts as a
    /// WHATWG URL parser does: lower-cased, IDNA, `127.1` is `127.0.0.1`).
    pub fn new(
        scheme: Scheme,
        host: &str,
        port: Option<u16>,
        servername: Option<&str>,
    ) -> Result<Key> {
        if scheme == Scheme::Unix {
            return Err(Error::InvalidArgument(
                "a unix key is made from a socket path: { scheme: 'unix', path }".into(),
            ));
        }
        let host = normalize_host(host)?;
        let port = match port.or(scheme.default_port()) {
            Some(0) => {
                return Err(Error::InvalidArgument(
                    "port must be an integer between 1 and 65535".into(),
                ))
            }
            Some(p) => p,
            None => {
                return Err(Error::InvalidArgument(format!(
                    "a {} key needs a port",
                    scheme.as_str()
                )))
            }
        };
        let servername = match servername {
            None => None,
            Some(_) if !scheme.uses_tls() => {
                return Err(Error::InvalidArgument(
                    "servername only applies to https and tls keys".into(),
                ))
            }
            Some(name) => {
                let name = normalize_host(name)?;
                (name != host).then_some(name)
            }
        };
        let host_header = if Some(port) == scheme.default_port() {
            bracket_if_v6(&host)
        } else {
            format!("{}:{port}", bracket_if_v6(&host))
        };
        Ok(Key::assemble(
            scheme,
            host,
            port,
            servername,
            Route::Direct,
            host_header,
        ))
    }

    fn assemble(
        scheme: Scheme,
        host: String,
        port: u16,
        servername: Option<String>,
        route: Route,
        host_header: String,
    ) -> Key {
        let mut parts = KeyParts {
            scheme,
            host,
            port,
            servername,
            route,
            http2: false,
            host_header,
            digest: 0,
        };
        // The identity equality compares: equal keys hash alike.
        parts.digest = digest(parts.identity());
        Key(Arc::new(parts))
    }

    /// A key for raw bytes over the Unix domain socket at `path`.
    pub fn unix(path: &str) -> Result<Key> {
        let path = socket_path(path)?;
        Ok(Key::assemble(
            Scheme::Unix,
            "localhost".into(),
            0,
            None,
            Route::Unix(path),
            "localhost".into(),
        ))
    }

    /// The same key, its connections made through the Unix domain socket
    /// at `path` (HTTP over a socket: the host stays in the Host header).
    pub fn with_socket_path(&self, path: &str) -> Result<Key> {
        if self.0.scheme == Scheme::Unix {
            return Err(Error::InvalidArgument(
                "a unix key already has its path".into(),
            ));
        }
        let path = socket_path(path)?;
        Ok(self.with_route(Route::Unix(path)))
    }

    /// The same key, its connections tunnelled through `proxy`.
    pub fn with_proxy(&self, proxy: Arc<ProxyRoute>) -> Key {
        self.with_route(Route::Proxy(proxy))
    }

    fn with_route(&self, route: Route) -> Key {
        let p = &self.0;
        let key = Key::assemble(
            p.scheme,
            p.host.clone(),
            p.port,
            p.servername.clone(),
            route,
            p.host_header.clone(),
        );
        key.with_http2(p.http2)
    }

    /// The same key for requests that may (or may not) use HTTP/2; only an
    /// `https` key can.
    pub fn with_http2(&self, on: bool) -> Key {
        let on = on && self.0.scheme == Scheme::Https;
        if self.0.http2 == on {
            return self.clone();
        }
        let mut parts = (*self.0).clone();
        parts.http2 = on;
        parts.digest = digest(parts.identity());
        Key(Arc::new(parts))
    }

    /// Whether this key's connections offer HTTP/2.
    pub fn offers_http2(&self) -> bool {
        self.0.http2
    }

    /// How this key's connections reach their server.
    pub fn route(&self) -> &Route {
        &self.0.route
    }

    /// Parse `scheme://host[:port][/path...]` (a WHATWG URL); only the
    /// origin is kept. `tcp` and `tls` URLs need a port.
    pub fn parse_url(url: &str) -> Result<Key> {
        origin::parse_origin(url)
    }

    /// The same key with a TLS servername override.
    pub fn with_servername(&self, servername: &str) -> Result<Key> {
        let named = Key::new(
            self.scheme(),
            &self.0.host,
            Some(self.0.port),
            Some(servername),
        )?;
        Ok(named.with_route(self.0.route.clone()))
    }

    pub fn scheme(&self) -> Scheme {
        self.0.scheme
    }
    pub fn host(&self) -> &str {
        &self.0.host
    }
    pub fn port(&self) -> u16 {
        self.0.port
    }
    pub fn uses_tls(&self) -> bool {
        self.0.scheme.uses_tls()
    }
    /// The name sent in SNI and checked against the certificate.
    pub fn tls_name(&self) -> &str {
        self.0.servername.as_deref().unwrap_or(&self.0.host)
    }
    pub fn servername(&self) -> Option<&str> {
        self.0.servername.as_deref()
    }

    /// `host:port` as it goes in a Host header (brackets for IPv6, port only
    /// when it differs from the scheme's default).
    pub fn host_header(&self) -> &str {
        &self.0.host_header
    }
}

impl fmt::Display for Key {
    /// `scheme://host:port`, then what else identifies the key after `#`
    /// (`servername=`, `socket=`, `proxy=`); a raw Unix key is `unix:path`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.0;
        if let (Scheme::Unix, Route::Unix(path)) = (p.scheme, &p.route) {
            return write!(f, "unix:{path}");
        }
        write!(
            f,
            "{}://{}:{}",
            p.scheme.as_str(),
            bracket_if_v6(&p.host),
            p.port
        )?;
        let mut sep = '#';
        if let Some(name) = &p.servername {
            write!(f, "{sep}servername={name}")?;
            sep = '&';
        }
        match &p.route {
            Route::Direct => Ok(()),
            Route::Unix(path) => write!(f, "{sep}socket={path}"),
            Route::Proxy(proxy) => write!(f, "{sep}proxy={proxy}"),
        }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Arbitrary input never panics; what parses re-parses to the same key.
        #[test]
        fn parsing_never_panics_and_round_trips(input in ".{0,80}") {
            if let Ok(key) = Key::parse_url(&input) {
                let again = Key::parse_url(&key.to_string().replace("#servername=", "/")).unwrap();
                prop_assert_eq!(again, key);
            }
        }

        /// Well-formed URLs parse, lower-cased, with the port they name.
        #[test]
        fn valid_urls_parse(host in "[a-zA-Z]([a-zA-Z0-9-]{0,20}[a-zA-Z0-9])?(\\.[a-zA-Z]{2,6}){0,2}",
                            port in 1u16.., path in "(/[a-z0-9]{0,8}){0,3}") {
            let key = Key::parse_url(&format!("https://{host}:{port}{path}")).unwrap();
            prop_assert_eq!(key.host(), host.to_ascii_lowercase());
            prop_assert_eq!(key.port(), port);
            prop_assert!(key.uses_tls());
        }
    }

    #[test]
    fn scheme_and_host_are_lower_cased_and_ports_default() {
        let a = Key::parse_url("HTTPS://Example.COM/path?q").unwrap();
        let b = Key::new(Scheme::Https, "example.com", Some(443), None).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "https://example.com:443");
        assert_eq!(Key::parse_url("http://h").unwrap().port(), 80);
    }

    #[test]
    fn tls_and_plaintext_keys_differ() {
        let tcp = Key::new(Scheme::Tcp, "h", Some(5), None).unwrap();
        let tls = Key::new(Scheme::Tls, "h", Some(5), None).unwrap();
        assert_ne!(tcp, tls);
        let named = tls.with_servername("other").unwrap();
        assert_ne!(tls, named);
        assert_eq!(named.tls_name(), "other");
    }

    #[test]
    fn an_http2_key_is_another_key_shown_as_the_same_origin() {
        let plain = Key::parse_url("https://example.com/").unwrap();
        let h2 = plain.with_http2(true);
        assert!(h2.offers_http2() && !plain.offers_http2());
        assert_ne!(plain, h2);
        assert_eq!(plain.to_string(), h2.to_string());
        assert_eq!(h2.with_http2(false), plain);
        let proxied = h2.with_socket_path("/tmp/s").unwrap();
        assert!(proxied.offers_http2(), "kept across a route change");
        let http = Key::parse_url("http://example.com/").unwrap();
        assert!(
            !http.with_http2(true).offers_http2(),
            "only https offers h2"
        );
    }

    #[test]
    fn ipv6_literals_are_normalized() {
        let k = Key::parse_url("http://[::1]:8080/").unwrap();
        assert_eq!(k.host(), "::1");
        assert_eq!(k.port(), 8080);
        assert_eq!(k.host_header(), "[::1]:8080");
        assert_eq!(
            k,
            Key::new(Scheme::Http, "[0:0::1]", Some(8080), None).unwrap()
        );
    }

    #[test]
    fn hosts_are_normalized_as_whatwg_urls_are() {
        let loopback = Key::parse_url("http://127.0.0.1/").unwrap();
        for same in [
            "http://127.1/",
            "http://0x7f000001/",
            "HTTP://127.0.0.1:80/x",
            "http://127.0.0.1./",
        ] {
            let key = Key::parse_url(same).unwrap();
            assert_eq!(key.host().trim_end_matches('.'), loopback.host(), "{same}");
        }
        assert_eq!(
            Key::parse_url("tcp://127.1:5432").unwrap(),
            Key::new(Scheme::Tcp, "127.0.0.1", Some(5432), None).unwrap()
        );
        assert_eq!(
            Key::parse_url("tcp://h:80").unwrap().port(),
            80,
            "an explicit :80 is kept for tcp"
        );
        assert_eq!(
            Key::parse_url("https://BÜCHER.example/").unwrap().host(),
            "xn--bcher-kva.example"
        );
    }

    #[test]
    fn credentials_are_masked_in_errors() {
        let err = Key::parse_url("http://user:secret@h/")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("http://***@h/") && !err.contains("secret"),
            "{err}"
        );
    }

    #[test]
    fn bad_input_is_refused() {
        for url in [
            "ftp://h/",
            "http//h",
            "http://",
            "http://h:0/",
            "http://h:99999/",
            "http://h:x/",
            "http://h:+80/",
            "http://u@h/",
            "http://u:p@h/",
            "http://h\r\n/",
            "http://h\t/",
            "http://[::1/",
            "tcp://h",
        ] {
            let err = Key::parse_url(url).unwrap_err();
            assert_eq!(err.code(), "ERR_INVALID_ARG_VALUE", "{url}");
        }
        assert!(Key::new(Scheme::Tcp, "h", Some(1), Some("x")).is_err());
    }
}
