//! Response heads: parsing (httparse, strict) and what they say about the
//! body's framing and the connection's reuse (RFC 9112 §6.3, §9.3).

use std::time::Duration;

use crate::error::{Error, Result};

/// Default largest response head (status line + headers + blank line), as
/// node's `maxHeaderSize`.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most header lines accepted in one head (node:http's default limit).
pub const MAX_HEADERS: usize = 2000;
/// Header lines parsed without a heap allocation; more take a second pass.
const USUAL_HEADERS: usize = 64;

/// A parsed response head: the bytes as received (header names
/// lower-cased in place) and where each part lies in them. Nothing is
/// decoded or allocated per header: values are bytes (ISO-8859-1 when shown
/// as text, as node:http does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub version: HttpVersion,
    raw: Vec<u8>,
    reason: Span,
    headers: Vec<(Span, Span)>,
}

/// A range of `ResponseHead::raw`.
type Span = (u32, u32);

/// The protocol a response came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    Http10,
    Http11,
    Http2,
}

/// How the body that follows a head is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// Read until the server closes; the connection cannot be reused.
    UntilClose,
}

fn parse_error(why: impl Into<String>) -> Error {
    Error::HttpParse(why.into())
}

/// Parse a head at the start of `buf`, of at most `max_bytes`: `Ok(None)`
/// means more bytes are needed.
pub fn parse_head(buf: &[u8], max_bytes: usize) -> Result<Option<(ResponseHead, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; USUAL_HEADERS];
    match parse_with(buf, max_bytes, &mut headers) {
        Err(httparse::Error::TooManyHeaders) => {
            let mut many = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
            match parse_with(buf, max_bytes, &mut many) {
                Err(httparse::Error::TooManyHeaders) => {
                    Err(parse_error(format!("more than {MAX_HEADERS} headers")))
                }
                other => other.map_err(|e| parse_error(e.to_string()))?,
            }
        }
        other => other.map_err(|e| parse_error(e.to_string()))?,
    }
}

fn parse_with<'b>(
    buf: &'b [u8],
    max_bytes: usize,
    headers: &mut [httparse::Header<'b>],
) -> std::result::Result<Result<Option<(ResponseHead, usize)>>, httparse::Error> {
    let too_large = || {
        parse_error(format!(
            "response head is larger than {max_bytes} bytes (maxHeaderSize)"
        ))
    };
    let mut response = httparse::Response::new(headers);
    Ok(match response.parse(buf)? {
        httparse::Status::Partial if buf.len() >= max_bytes => Err(too_large()),
        httparse::Status::Partial => Ok(None),
        httparse::Status::Complete(len) if len > max_bytes => Err(too_large()),
        httparse::Status::Complete(len) => {
            // httparse hands out slices of `buf`: keep their offsets. An
            // empty part may be a static "" instead (a status line without
            // a reason phrase): it becomes an empty span.
            let at = |part: &[u8]| span_in(buf, part);
            let raw = buf[..len].to_vec();
            let headers: Vec<(Span, Span)> = response
                .headers
                .iter()
                .map(|h| (at(h.name.as_bytes()), at(h.value)))
                .collect();
            let status = response.code.unwrap_or(0);
            if status < 100 {
                return Ok(Err(parse_error(format!(
                    "invalid status code {status:03}: it must be 100 to 999"
                ))));
            }
            let head = ResponseHead {
                status,
                version: match response.version {
                    Some(0) => HttpVersion::Http10,
                    _ => HttpVersion::Http11,
                },
                reason: at(response.reason.unwrap_or("").as_bytes()),
                raw,
                headers,
            };
            Ok(Some((head, len)))
        }
    })
}

/// Where `part` lies in `buf`; an empty span when it is not inside it.
fn span_in(buf: &[u8], part: &[u8]) -> Span {
    let base = buf.as_ptr() as usize;
    let start = (part.as_ptr() as usize).wrapping_sub(base);
    match start.checked_add(part.len()) {
        Some(end) if start <= buf.len() && end <= buf.len() => (start as u32, end as u32),
        _ => (0, 0),
    }
}

impl ResponseHead {
    /// A head that did not arrive as HTTP/1.x bytes (HTTP/2's decoded
    /// fields), laid out as `name: value` lines with no reason phrase, so
    /// it reads like a parsed one. Refused past `max_bytes` (counted as an
    /// HTTP/1.1 head would be) or [`MAX_HEADERS`] fields.
    pub fn from_fields<'a>(
        status: u16,
        version: HttpVersion,
        fields: impl Iterator<Item = (&'a [u8], &'a [u8])>,
        max_bytes: usize,
    ) -> Result<ResponseHead> {
        // The status line and the blank line an HTTP/1.1 head would have.
        let mut size = "HTTP/1.1 200 \r\n\r\n".len();
        let mut raw = Vec::new();
        let mut headers = Vec::new();
        for (name, value) in fields {
            size += name.len() + value.len() + 4;
            if size > max_bytes {
                return Err(parse_error(format!(
                    "response head is larger than {max_bytes} bytes (maxHeaderSize)"
                )));
            }
            if headers.len() == MAX_HEADERS {
                return Err(parse_error(format!("more than {MAX_HEADERS} headers")));
            }
            let at = |raw: &Vec<u8>| raw.len() as u32;
            let name_start = at(&raw);
            raw.extend(name.iter().map(u8::to_ascii_lowercase));
            let name_end = at(&raw);
            raw.extend_from_slice(b": ");
            let value_start = at(&raw);
            raw.extend_from_slice(value);
            let value_end = at(&raw);
            raw.extend_from_slice(b"\r\n");
            headers.push(((name_start, name_end), (value_start, value_end)));
        }
        Ok(ResponseHead {
            status,
            version,
            raw,
            reason: (0, 0),
            headers,
        })
    }

    /// Lower-case every header name in place (what `request()` and `fetch`
    /// show; the undici Agent keeps the wire's case for `rawHeaders`).
    pub fn lowercase_names(&mut self) {
        for &((start, end), _) in &self.headers {
            self.raw[start as usize..end as usize].make_ascii_lowercase();
        }
    }

    fn span(&self, (start, end): Span) -> &[u8] {
        &self.raw[start as usize..end as usize]
    }

    /// The reason phrase, as sent.
    pub fn reason(&self) -> &[u8] {
        self.span(self.reason)
    }

    /// Every header line in order: name (as sent, until
    /// `lowercase_names`), value as sent.
    pub fn headers(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> + '_ {
        self.headers
            .iter()
            .map(|&(n, v)| (self.span(n), self.span(v)))
    }

    /// Every value of header `name` (lower-case), split on commas.
    fn tokens<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .flat_map(|(_, v)| v.split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|t| !t.is_empty())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.tokens(name)
            .any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
    }

    /// An interim response (1xx other than 101) precedes the real one.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }

    /// The body's framing and whether that framing allows reuse.
    pub fn framing(&self, request_method: &str) -> Result<(Framing, bool)> {
        if request_method.eq_ignore_ascii_case("HEAD")
            || (100..200).contains(&self.status)
            || self.status == 204
            || self.status == 304
        {
            return Ok((Framing::None, self.status != 101));
        }
        let has_length = self
            .headers()
            .any(|(n, _)| n.eq_ignore_ascii_case(b"content-length"));
        if let Some(last) = self.tokens("transfer-encoding").last() {
            // Transfer-Encoding wins over Content-Length, but a message with
            // both (or TE in HTTP/1.0) may be a smuggling attempt: never reuse.
            let reusable = !has_length && self.version == HttpVersion::Http11;
            return Ok(if last.eq_ignore_ascii_case(b"chunked") {
                (Framing::Chunked, reusable)
            } else {
                (Framing::UntilClose, false)
            });
        }
        if has_length {
            let mut length = None;
            for value in self.tokens("content-length") {
                let n = decimal(value).ok_or_else(|| {
                    parse_error(format!(
                        "invalid content-length {:?}",
                        String::from_utf8_lossy(value)
                    ))
                })?;
                if length.is_some_and(|l| l != n) {
                    return Err(parse_error("differing content-length values"));
                }
                length = Some(n);
            }
            return match length {
                Some(n) => Ok((Framing::Length(n), true)),
                None => Err(parse_error("empty content-length")),
            };
        }
        Ok((Framing::UntilClose, false))
    }

    /// Whether the server lets the connection be reused (HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`;
    /// HTTP/2 says so with GOAWAY, not per response).
    pub fn allows_keep_alive(&self) -> bool {
        match self.version {
            HttpVersion::Http11 => !self.has_token("connection", "close"),
            HttpVersion::Http10 => self.has_token("connection", "keep-alive"),
            HttpVersion::Http2 => true,
        }
    }

    /// `Keep-Alive: timeout=N`, in seconds, as the server announced it.
    pub fn keep_alive_timeout(&self) -> Option<Duration> {
        self.tokens("keep-alive").find_map(|t| {
            let eq = t.iter().position(|&b| b == b'=')?;
            let (k, v) = (t[..eq].trim_ascii(), t[eq + 1..].trim_ascii());
            if !k.eq_ignore_ascii_case(b"timeout") {
                return None;
            }
            let v = v
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(v);
            decimal(v).map(Duration::from_secs)
        })
    }
}

/// An unsigned decimal of at most 19 digits (fits a u64), nothing else:
/// a Content-Length, sent or received.
pub(super) fn decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> ResponseHead {
        parse_head(raw.as_bytes(), MAX_HEAD_BYTES)
            .unwrap()
            .unwrap()
            .0
    }

    #[test]
    fn parses_status_headers_and_length() {
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nX-A: 2\r\n\r\nhello");
        assert_eq!(
            (h.status, h.version, h.reason()),
            (200, HttpVersion::Http11, &b"OK"[..])
        );
        assert_eq!(
            h.headers().nth(1),
            Some((&b"X-A"[..], &b"1"[..])),
            "as sent"
        );
        assert_eq!(h.headers().len(), 3);
        let mut lowered = h.clone();
        lowered.lowercase_names();
        assert_eq!(lowered.headers().nth(1), Some((&b"x-a"[..], &b"1"[..])));
        assert_eq!(h.framing("GET").unwrap(), (Framing::Length(5), true));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le", MAX_HEAD_BYTES)
            .unwrap()
            .is_none());
    }

    #[test]
    fn fields_of_another_protocol_read_as_a_parsed_head() {
        let fields: [(&[u8], &[u8]); 2] = [(b"Content-Length", b"2"), (b"x-a", b"b")];
        let h =
            ResponseHead::from_fields(200, HttpVersion::Http2, fields.into_iter(), 1024).unwrap();
        let got: Vec<_> = h.headers().collect();
        assert_eq!(
            got,
            vec![
                (&b"content-length"[..], &b"2"[..]),
                (&b"x-a"[..], &b"b"[..])
            ]
        );
        assert_eq!(
            (h.reason(), h.framing("GET").unwrap()),
            (&b""[..], (Framing::Length(2), true))
        );
        assert!(h.allows_keep_alive());
        let big: [(&[u8], &[u8]); 1] = [(b"x", &[b'v'; 2000])];
        let err =
            ResponseHead::from_fields(200, HttpVersion::Http2, big.into_iter(), 1024).unwrap_err();
        assert!(err.to_string().contains("maxHeaderSize"));
    }

    #[test]
    fn framing_rules() {
        let both =
            head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(both.framing("GET").unwrap(), (Framing::Chunked, false));
        let close = head("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(close.framing("GET").unwrap(), (Framing::UntilClose, false));
        let no_body = head("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(no_body.framing("GET").unwrap().0, Framing::None);
        assert_eq!(
            head("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n")
                .framing("HEAD")
                .unwrap()
                .0,
            Framing::None
        );
        let same = head("HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(same.framing("GET").unwrap().0, Framing::Length(3));
        for bad in ["3, 4", "-1", "+3", "0x3", "", "99999999999999999999"] {
            let h = head(&format!("HTTP/1.1 200 OK\r\nContent-Length: {bad}\r\n\r\n"));
            assert!(h.framing("GET").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keep_alive_rules() {
        assert!(head("HTTP/1.1 200 OK\r\n\r\n").allows_keep_alive());
        assert!(!head("HTTP/1.1 200 OK\r\nConnection: Close\r\n\r\n").allows_keep_alive());
        assert!(!head("HTTP/1.0 200 OK\r\n\r\n").allows_keep_alive());
        assert!(head("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n").allows_keep_alive());
        let ka = head("HTTP/1.1 200 OK\r\nKeep-Alive: max=5, timeout=3\r\n\r\n");
        assert_eq!(ka.keep_alive_timeout(), Some(Duration::from_secs(3)));
    }

    #[test]
    fn malformed_heads_are_refused() {
        for raw in [
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/2.0 200 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
            "garbage\r\n\r\n",
        ] {
            assert!(
                parse_head(raw.as_bytes(), MAX_HEAD_BYTES).is_err(),
                "{raw:?}"
            );
        }
        let huge = format!(
            "HTTP/1.1 200 OK\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_HEAD_BYTES)
        );
        assert!(parse_head(huge.as_bytes(), MAX_HEAD_BYTES).is_err());
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        let head = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
        assert!(parse_head(head.as_bytes(), usize::MAX).is_err());
    }

    #[test]
    fn up_to_two_thousand_headers_parse_within_the_size_limit() {
        let many: String = (0..MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        let head = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
        let (parsed, _) = parse_head(head.as_bytes(), 64 * 1024).unwrap().unwrap();
        assert_eq!(parsed.headers().len(), MAX_HEADERS);
        assert!(
            parse_head(head.as_bytes(), MAX_HEAD_BYTES).is_err(),
            "too large for 16 KiB"
        );
    }
}
