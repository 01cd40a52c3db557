//! Where a request goes: the pool key of its origin and the request target
//! (path and query), from one WHATWG URL parse.

use crate::error::{Error, Result};
use crate::key::{parse_whatwg, Key, Scheme};

/// A parsed request URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub key: Key,
    /// Path and query, percent-encoded as a WHATWG URL parser encodes them
    /// (the fragment is dropped).
    pub path: String,
}

impl Target {
    /// Parse an absolute `http:` or `https:` URL. Hosts are normalised as
    /// keys are; CR, LF, tab, NUL and credentials are refused.
    pub fn parse(url: &str) -> Result<Target> {
        let parsed = parse_whatwg(url)?;
        let scheme = Scheme::parse(parsed.scheme())?;
        if !scheme.is_http() {
            return Err(Error::InvalidArgument(format!(
                "request() speaks http: and https:, not {}: (use acquire() for tcp and tls)",
                scheme.as_str()
            )));
        }
        let host = parsed.host_str().unwrap_or_default();
        let key = Key::new(scheme, host, parsed.port(), None)?;
        let mut path = parsed.path().to_string();
        if let Some(query) = parsed.query() {
            path.push('?');
            path.push_str(query);
        }
        Ok(Target { key, path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_origin_and_target_as_whatwg_does() {
        let t = Target::parse("HTTP://Example.com:80/a b/ü?q=1 2#frag").unwrap();
        assert_eq!(t.key, Key::parse_url("http://example.com").unwrap());
        assert_eq!(t.path, "/a%20b/%C3%BC?q=1%202");
        assert_eq!(Target::parse("https://h").unwrap().path, "/");
        assert_eq!(
            Target::parse("http://h\\x").unwrap().path,
            "/x",
            "a backslash is a slash in http URLs"
        );
    }

    #[test]
    fn refuses_what_a_request_must_not_carry() {
        for url in [
            "tcp://h:1/",
            "http://u:p@h/",
            "http://h/a\r\nb",
            "http://h/\0",
            "http://h:+80/",
            "/relative",
        ] {
            assert_eq!(
                Target::parse(url).unwrap_err().code(),
                "ERR_INVALID_ARG_VALUE",
                "{url}"
            );
        }
    }
}
