//! Request validation and encoding: nothing with CR, LF or NUL ever reaches
//! the wire, and pconn alone decides the framing headers.

use bytes::Bytes;

use crate::error::{Error, Result};

use super::response::decimal;

/// What to send as the request body.
pub enum RequestBody {
    Empty,
    /// Sent with `Content-Length`; can be resent on a retry.
    Bytes(Bytes),
    /// Sent chunk by chunk as they come (chunked, or with the user's
    /// `Content-Length`); the receiver's end ends the body.
    Stream(tokio::sync::mpsc::Receiver<Vec<u8>>),
}

/// How the body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body and no length header (GET and the like).
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

impl RequestBody {
    /// Whether the body can be sent again (a retry needs that).
    pub fn is_replayable(&self) -> bool {
        !matches!(self, RequestBody::Stream(_))
    }
}

/// A validated request head.
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: String,
    pub path: String,
    /// Header lines as given (names validated), framing headers excluded.
    pub headers: Vec<(String, String)>,
    /// The user asked for `Connection: close`.
    pub close: bool,
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

fn invalid(what: &str, value: &str) -> Error {
    let shown: String = value.chars().take(60).collect();
    Error::InvalidArgument(format!(
        "invalid {what} {shown:?}: CR, LF, NUL and (in names) separators are not allowed"
    ))
}

/// Methods whose requests may be sent twice without changing the outcome
/// (RFC 9110 §9.2.2).
pub fn is_idempotent_method(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE" | "TRACE"
    )
}

impl RequestHead {
    /// Validate a request. Header names are tokens; values, the method and
    /// the path carry no CR, LF or NUL.
    pub fn new(method: &str, path: &str, headers: Vec<(String, String)>) -> Result<RequestHead> {
        if !is_token(method) {
            return Err(invalid("method", method));
        }
        let path_ok =
            (path.starts_with('/') || path == "*") && path.bytes().all(|b| b > b' ' && b != 0x7f);
        if !path_ok {
            return Err(Error::InvalidArgument(format!(
                "invalid path {:?}: it must start with '/' and hold no spaces or control characters",
                path.chars().take(60).collect::<String>()
            )));
        }
        let mut close = false;
        let mut hosts = 0;
        for (name, value) in &headers {
            if !is_token(name) {
                return Err(invalid("header name", name));
            }
            if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
                return Err(invalid("header value", value));
            }
            if value.chars().any(|c| u32::from(c) > 0xff) {
                return Err(Error::InvalidArgument(format!(
                    "invalid header value for {name:?}: characters above U+00FF cannot be sent \
                     (header values are Latin-1, as in node:http); percent-encode them"
                )));
            }
            if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(Error::InvalidArgument(
                    "transfer-encoding is set by pconn: pass a stream body for chunked encoding"
                        .into(),
                ));
            }
            if name.eq_ignore_ascii_case("host") {
                hosts += 1;
                if hosts > 1 {
                    return Err(Error::InvalidArgument(
                        "more than one host header: a request has exactly one Host".into(),
                    ));
                }
            }
            if name.eq_ignore_ascii_case("connection") {
                close |= value
                    .split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("close"));
            }
        }
        Ok(RequestHead {
            method: method.to_string(),
            path: path.to_string(),
            headers,
            close,
        })
    }

    /// The value of header `name` as the caller gave it, if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// How `body` goes on the wire, checked against a user-given
    /// Content-Length (a stream body with one is sent with that length).
    pub fn framing(&self, body: &RequestBody) -> Result<BodyFraming> {
        let given = match self.header("content-length") {
            None => None,
            Some(v) => {
                let v = v.trim();
                let n = decimal(v.as_bytes()).ok_or_else(|| {
                    Error::InvalidArgument(format!("content-length {v:?} is not a number"))
                })?;
                Some(n)
            }
        };
        let sends_length = matches!(self.method.as_str(), "POST" | "PUT" | "PATCH");
        match (body, given) {
            (RequestBody::Bytes(b), Some(n)) if b.len() as u64 != n => {
                Err(Error::InvalidArgument(format!(
                    "content-length {n} does not match the body ({} bytes)",
                    b.len()
                )))
            }
            (RequestBody::Bytes(b), _) => Ok(BodyFraming::Length(b.len() as u64)),
            (RequestBody::Empty, Some(0)) => Ok(BodyFraming::Length(0)),
            (RequestBody::Empty, Some(n)) => Err(Error::InvalidArgument(format!(
                "content-length {n} does not match the body (none)"
            ))),
            (RequestBody::Empty, None) if sends_length => Ok(BodyFraming::Length(0)),
            (RequestBody::Empty, None) => Ok(BodyFraming::None),
            (RequestBody::Stream(_), Some(n)) => Ok(BodyFraming::Length(n)),
            (RequestBody::Stream(_), None) => Ok(BodyFraming::Chunked),
        }
    }

    /// The head as it goes on the wire, with Host (`host_header`, unless
    /// the request has one) and framing headers added.
    pub fn encode(&self, host_header: &str, framing: BodyFraming) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.headers.len() * 32);
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.path.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        if self.header("host").is_none() {
            out.extend_from_slice(b"host: ");
            out.extend_from_slice(host_header.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if !self.close && self.header("connection").is_none() {
            // As undici and node:http's keep-alive Agent send it: some
            // HTTP/1.0 servers and proxies keep the connection only then.
            out.extend_from_slice(b"connection: keep-alive\r\n");
        }
        for (name, value) in &self.headers {
            if name.eq_ignore_ascii_case("content-length") {
                continue;
            }
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            push_latin1(&mut out, value);
            out.extend_from_slice(b"\r\n");
        }
        match framing {
            BodyFraming::Length(n) => {
                out.extend_from_slice(b"content-length: ");
                out.extend_from_slice(n.to_string().as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            BodyFraming::None => {}
            BodyFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// A header value as node:http sends it: one byte per character (every
/// character was checked to be at most U+00FF).
fn push_latin1(out: &mut Vec<u8>, value: &str) {
    if value.is_ascii() {
        out.extend_from_slice(value.as_bytes());
    } else {
        out.extend(value.chars().map(|c| u32::from(c) as u8));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "example.com:8080";

    #[test]
    fn encodes_host_and_content_length() {
        let head = RequestHead::new("POST", "/x?y=1", vec![("x-a".into(), "1".into())]).unwrap();
        let body = RequestBody::Bytes(Bytes::from_static(b"hi"));
        let wire = head.encode(HOST, head.framing(&body).unwrap());
        assert_eq!(
            String::from_utf8(wire).unwrap(),
            "POST /x?y=1 HTTP/1.1\r\nhost: example.com:8080\r\nconnection: keep-alive\r\nx-a: 1\r\ncontent-length: 2\r\n\r\n"
        );
    }

    #[test]
    fn keep_alive_is_said_unless_the_caller_speaks_of_the_connection() {
        let wire = |headers: Vec<(String, String)>| {
            let head = RequestHead::new("GET", "/", headers).unwrap();
            String::from_utf8(head.encode(HOST, BodyFraming::None)).unwrap()
        };
        assert!(wire(vec![]).contains("connection: keep-alive\r\n"));
        let close = wire(vec![("Connection".into(), "close".into())]);
        assert!(close.contains("Connection: close\r\n") && !close.contains("keep-alive"));
        let own = wire(vec![("connection".into(), "x-thing".into())]);
        assert_eq!(own.matches("connection:").count(), 1, "{own}");
    }

    #[test]
    fn refuses_injection_in_every_part() {
        for (m, p, h, v) in [
            ("GE T", "/", "a", "b"),
            ("GET\r\n", "/", "a", "b"),
            ("GET", "/a b", "a", "b"),
            ("GET", "/\r\nx", "a", "b"),
            ("GET", "no-slash", "a", "b"),
            ("GET", "/", "a\r\nb", "c"),
            ("GET", "/", "a:", "c"),
            ("GET", "/", "a", "b\r\nx: y"),
            ("GET", "/", "a", "b\0"),
            ("GET", "/", "a", "b\nc"),
            ("GET", "/", "transfer-encoding", "chunked"),
        ] {
            let r = RequestHead::new(m, p, vec![(h.into(), v.into())]);
            assert_eq!(
                r.err().map(|e| e.code()),
                Some("ERR_INVALID_ARG_VALUE"),
                "{m:?} {p:?} {h:?} {v:?}"
            );
        }
    }

    #[test]
    fn content_length_must_match_and_frames_a_stream() {
        let head =
            RequestHead::new("POST", "/", vec![("Content-Length".into(), "3".into())]).unwrap();
        let framing = |b| head.framing(&b);
        assert_eq!(
            framing(RequestBody::Bytes(Bytes::from_static(b"abc"))).unwrap(),
            BodyFraming::Length(3)
        );
        assert!(framing(RequestBody::Bytes(Bytes::from_static(b"ab"))).is_err());
        let (_, rx) = tokio::sync::mpsc::channel(1);
        assert_eq!(
            framing(RequestBody::Stream(rx)).unwrap(),
            BodyFraming::Length(3)
        );
        let (_, rx) = tokio::sync::mpsc::channel(1);
        let get = RequestHead::new("GET", "/", vec![]).unwrap();
        assert_eq!(
            get.framing(&RequestBody::Stream(rx)).unwrap(),
            BodyFraming::Chunked
        );
        assert_eq!(get.framing(&RequestBody::Empty).unwrap(), BodyFraming::None);
    }

    #[test]
    fn header_values_go_out_as_latin1_and_wider_characters_are_refused() {
        let head = RequestHead::new("GET", "/", vec![("x-a".into(), "caf\u{e9}".into())]).unwrap();
        let wire = head.encode(HOST, BodyFraming::None);
        assert!(wire.ends_with(b"x-a: caf\xe9\r\n\r\n"));
        for wide in ["\u{100}", "\u{20ac}", "\u{1f600}"] {
            let r = RequestHead::new("GET", "/", vec![("x-a".into(), wide.into())]);
            assert_eq!(
                r.err().map(|e| e.code()),
                Some("ERR_INVALID_ARG_VALUE"),
                "{wide:?}"
            );
        }
    }

    #[test]
    fn two_host_headers_are_refused() {
        let two = vec![("Host".into(), "a".into()), ("host".into(), "b".into())];
        assert_eq!(
            RequestHead::new("GET", "/", two).err().map(|e| e.code()),
            Some("ERR_INVALID_ARG_VALUE")
        );
    }
}
