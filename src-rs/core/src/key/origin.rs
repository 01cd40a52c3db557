//! Origins as users write them: URLs (parsed with the WHATWG rules, as
//! Node's `URL` does), host names and addresses, Unix socket paths.

use std::sync::Arc;

use super::{Key, Scheme};
use crate::error::{Error, Result};

/// The key of a URL's origin: `scheme://host[:port][/path...]`; `tcp` and
/// `tls` URLs need a port.
pub(super) fn parse_origin(url: &str) -> Result<Key> {
    let (scheme, _) = url
        .split_once("://")
        .ok_or_else(|| bad_url(url, "expected scheme://host[:port]"))?;
    let scheme = Scheme::parse(scheme)?;
    let parsed = if scheme.is_http() {
        parse_whatwg(url)?
    } else {
        // `tcp://` and `tls://` are not special schemes: a WHATWG parser
        // would keep their host as opaque text. Parse the authority as an
        // `http` one (host normalisation), the port from the URL as given
        // (an explicit :80 is not a default here).
        let rest = &url[scheme.as_str().len() + 3..];
        let as_http = parse_whatwg(&format!("http://{rest}"))?;
        let as_given = url::Url::parse(url).map_err(|e| bad_url(url, &e.to_string()))?;
        let host = as_http.host_str().unwrap_or_default().to_string();
        return Key::new(scheme, &host, as_given.port(), None);
    };
    let host = parsed.host_str().unwrap_or_default().to_string();
    Key::new(scheme, &host, parsed.port(), None)
}

/// Parse with the WHATWG rules, refusing what a request must not carry.
/// CR, LF, tab and NUL are refused outright (a WHATWG parser would drop
/// the first three silently); so are credentials (send an Authorization
/// header instead).
pub(crate) fn parse_whatwg(input: &str) -> Result<url::Url> {
    if input
        .bytes()
        .any(|b| matches!(b, b'\r' | b'\n' | b'\t' | 0))
    {
        return Err(bad_url(input, "CR, LF, tab and NUL are not allowed"));
    }
    let url = url::Url::parse(input).map_err(|e| bad_url(input, &e.to_string()))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad_url(
            input,
            "credentials in the URL are not supported; send an Authorization header instead",
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad_url(input, "it has no host"));
    }
    Ok(url)
}

/// A host name or address as keys hold it: lower-cased, IDNA, `127.1` is
/// `127.0.0.1`, IPv6 without brackets.
pub fn normalize_host(host: &str) -> Result<String> {
    if host.is_empty() {
        return Err(Error::InvalidArgument("host must not be empty".into()));
    }
    if host.len() > 253 + 2 {
        return Err(Error::InvalidArgument(
            "host is longer than 253 characters".into(),
        ));
    }
    let bracketed = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    match url::Host::parse(&bracketed) {
        Ok(url::Host::Domain(d)) => Ok(d),
        Ok(url::Host::Ipv4(ip)) => Ok(ip.to_string()),
        Ok(url::Host::Ipv6(ip)) => Ok(ip.to_string()),
        Err(e) => Err(Error::InvalidArgument(format!(
            "invalid host {host:?}: {e}"
        ))),
    }
}

/// A Unix socket path: absolute or relative, no NUL, within the kernel's
/// limit (107 bytes on Linux, 103 on macOS).
pub(crate) fn socket_path(path: &str) -> Result<Arc<str>> {
    if path.is_empty() || path.contains('\0') {
        return Err(Error::InvalidArgument(
            "a socket path must be non-empty and hold no NUL".into(),
        ));
    }
    if path.len() > 103 {
        return Err(Error::InvalidArgument(format!(
            "socket path {path:?} is longer than 103 bytes (the limit of sockaddr_un)"
        )));
    }
    Ok(Arc::from(path))
}

/// An invalid-URL error that shows the URL, with any credentials in it
/// masked: error messages end up in logs.
fn bad_url(url: &str, why: &str) -> Error {
    let masked = match (url.find("://"), url.rfind('@')) {
        (Some(start), Some(at)) if !url[start + 3..at].contains(['/', '?', '#']) => {
            format!("{}***{}", &url[..start + 3], &url[at..])
        }
        _ => url.to_string(),
    };
    let shown: String = masked.chars().take(80).collect();
    Error::InvalidArgument(format!("invalid URL {shown:?}: {why}"))
}

pub fn bracket_if_v6(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}
