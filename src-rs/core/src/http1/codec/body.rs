//! Response body framing: Content-Length, chunked (with trailers) and
//! read-until-close. A framing error is sticky: a failed decoder never
//! reports the connection as reusable.

use super::response::Framing;
use crate::error::{Error, Result};

/// Longest chunk-size line (size, extensions, CRLF) accepted.
const MAX_SIZE_LINE: usize = 4096;
/// Most trailer bytes accepted.
const MAX_TRAILER_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Chunked {
    /// Reading a chunk-size line.
    Size(Vec<u8>),
    Data(u64),
    /// The CRLF after a chunk's data; `true` once CR was seen.
    DataEnd(bool),
    /// Reading trailer lines; the current one so far.
    Trailer(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Length(u64),
    Chunked(Chunked),
    UntilClose,
    Done,
    Failed,
}

/// Turns the bytes after a response head into body bytes.
#[derive(Debug, Clone)]
pub struct BodyDecoder {
    state: State,
    trailers: Vec<(String, String)>,
    trailer_bytes: usize,
}

fn framing_error(why: &str) -> Error {
    Error::HttpParse(format!("bad chunked body: {why}"))
}

impl BodyDecoder {
    pub fn new(framing: Framing) -> BodyDecoder {
        let state = match framing {
            Framing::None | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunked(Chunked::Size(Vec::new())),
            Framing::UntilClose => State::UntilClose,
        };
        BodyDecoder {
            state,
            trailers: Vec::new(),
            trailer_bytes: 0,
        }
    }

    /// The body is complete. Never true after a framing error; a
    /// read-until-close body completes at EOF (its connection is not
    /// reusable, which the framing, not the decoder, says).
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    pub fn trailers(&self) -> &[(String, String)] {
        &self.trailers
    }

    /// Decode from `input`, appending body bytes to `out`; returns how many
    /// input bytes were consumed. Stops at the end of the body.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize> {
        let result = self.step(input, out);
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    /// The peer closed: fine for read-until-close, an error otherwise.
    pub fn on_eof(&mut self) -> Result<()> {
        match self.state {
            State::UntilClose => {
                // Complete, but the connection is gone: not reusable.
                self.state = State::Done;
                Ok(())
            }
            State::Done => Ok(()),
            State::Chunked(_) => {
                self.state = State::Failed;
                Err(Error::ChunkedEof)
            }
            _ => {
                self.state = State::Failed;
                Err(Error::SocketClosed(
                    "the server closed the connection before the body was complete".into(),
                ))
            }
        }
    }

    fn step(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize> {
        let mut used = 0;
        while used < input.len() {
            let rest = &input[used..];
            match &mut self.state {
                State::Done => break,
                State::Failed => {
                    return Err(Error::HttpParse("the body already failed to decode".into()))
                }
                State::UntilClose => {
                    out.extend_from_slice(rest);
                    used += rest.len();
                }
                State::Length(remaining) => {
                    let take = rest
                        .len()
                        .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                    out.extend_from_slice(&rest[..take]);
                    used += take;
                    *remaining -= take as u64;
                    if *remaining == 0 {
                        self.state = State::Done;
                    }
                }
                State::Chunked(chunked) => {
                    let (n, finished) = step_chunked(
                        chunked,
                        rest,
                        out,
                        &mut self.trailers,
                        &mut self.trailer_bytes,
                    )?;
                    used += n;
                    if finished {
                        self.state = State::Done;
                    }
                }
            }
        }
        Ok(used)
    }
}

/// Take bytes up to and including LF into `line`; returns (consumed, complete).
fn take_line(line: &mut Vec<u8>, input: &[u8], limit: usize) -> Result<(usize, bool)> {
    match input.iter().position(|&b| b == b'\n') {
        Some(i) => {
            line.extend_from_slice(&input[..=i]);
            if line.len() > limit {
                return Err(framing_error("line too long"));
            }
            if line.len() < 2 || line[line.len() - 2] != b'\r' {
                return Err(framing_error("line not ended by CRLF"));
            }
            line.truncate(line.len() - 2);
            if line.contains(&b'\r') {
                return Err(framing_error("bare CR"));
            }
            Ok((i + 1, true))
        }
        None => {
            line.extend_from_slice(input);
            if line.len() > limit {
                return Err(framing_error("line too long"));
            }
            Ok((input.len(), false))
        }
    }
}

fn parse_size(line: &[u8]) -> Result<u64> {
    let digits_end = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    let (digits, ext) = line.split_at(digits_end);
    if digits.is_empty() || digits.len() > 16 {
        return Err(framing_error("invalid chunk size"));
    }
    let ext = ext.trim_ascii_start();
    if !ext.is_empty() && ext[0] != b';' {
        return Err(framing_error("invalid chunk size"));
    }
    let text = std::str::from_utf8(digits).map_err(|_| framing_error("invalid chunk size"))?;
    u64::from_str_radix(text, 16).map_err(|_| framing_error("invalid chunk size"))
}

/// One step of the chunked decoder on `input`: bytes consumed, and whether
/// the body (trailers included) ended.
fn step_chunked(
    state: &mut Chunked,
    input: &[u8],
    out: &mut Vec<u8>,
    trailers: &mut Vec<(String, String)>,
    trailer_bytes: &mut usize,
) -> Result<(usize, bool)> {
    match state {
        Chunked::Size(line) => {
            let (used, complete) = take_line(line, input, MAX_SIZE_LINE)?;
            if complete {
                let size = parse_size(line)?;
                *state = if size == 0 {
                    Chunked::Trailer(Vec::new())
                } else {
                    Chunked::Data(size)
                };
            }
            Ok((used, false))
        }
        Chunked::Data(remaining) => {
            let take = input
                .len()
                .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
            out.extend_from_slice(&input[..take]);
            *remaining -= take as u64;
            if *remaining == 0 {
                *state = Chunked::DataEnd(false);
            }
            Ok((take, false))
        }
        Chunked::DataEnd(seen_cr) => match (input[0], *seen_cr) {
            (b'\r', false) => {
                *seen_cr = true;
                Ok((1, false))
            }
            (b'\n', true) => {
                *state = Chunked::Size(Vec::new());
                Ok((1, false))
            }
            _ => Err(framing_error("chunk data not followed by CRLF")),
        },
        Chunked::Trailer(line) => {
            let (used, complete) = take_line(line, input, MAX_TRAILER_BYTES)?;
            *trailer_bytes += used;
            if *trailer_bytes > MAX_TRAILER_BYTES {
                return Err(framing_error("trailers too large"));
            }
            if complete {
                if line.is_empty() {
                    return Ok((used, true));
                }
                let text: String = line.iter().map(|&b| b as char).collect();
                let (name, value) = text
                    .split_once(':')
                    .ok_or_else(|| framing_error("malformed trailer"))?;
                let valid_name = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
                if !valid_name {
                    return Err(framing_error("malformed trailer name"));
                }
                trailers.push((name.to_ascii_lowercase(), value.trim().to_string()));
                line.clear();
            }
            Ok((used, false))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(framing: Framing, input: &[u8]) -> Result<(Vec<u8>, usize, BodyDecoder)> {
        let mut d = BodyDecoder::new(framing);
        let mut out = Vec::new();
        let used = d.decode(input, &mut out)?;
        Ok((out, used, d))
    }

    #[test]
    fn content_length_stops_at_the_length() {
        let (out, used, d) = decode_all(Framing::Length(5), b"helloEXTRA").unwrap();
        assert_eq!(
            (out.as_slice(), used, d.is_done()),
            (&b"hello"[..], 5, true)
        );
    }

    #[test]
    fn chunked_with_extensions_and_trailers() {
        let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: abc\r\nX-Two: 2\r\n\r\nNEXT";
        let (out, used, d) = decode_all(Framing::Chunked, wire).unwrap();
        assert_eq!(out, b"hello world");
        assert_eq!(used, wire.len() - 4);
        assert!(d.is_done());
        assert_eq!(
            d.trailers(),
            &[("x-sum".into(), "abc".into()), ("x-two".into(), "2".into())]
        );
    }

    #[test]
    fn chunked_errors_are_sticky() {
        for bad in [
            &b"zz\r\n"[..],
            b"5\r\nhelloXX",
            b"5\nhello\r\n",
            b"11111111111111111\r\n",
            b"5\r\r\n",
        ] {
            let mut d = BodyDecoder::new(Framing::Chunked);
            assert!(d.decode(bad, &mut Vec::new()).is_err(), "{bad:?}");
            assert!(!d.is_done());
            assert!(d.decode(b"0\r\n\r\n", &mut Vec::new()).is_err());
        }
    }

    #[test]
    fn eof_ends_only_close_delimited_bodies() {
        let mut d = BodyDecoder::new(Framing::UntilClose);
        d.decode(b"abc", &mut Vec::new()).unwrap();
        assert!(d.on_eof().is_ok());
        let mut d = BodyDecoder::new(Framing::Length(10));
        d.decode(b"abc", &mut Vec::new()).unwrap();
        assert_eq!(d.on_eof().unwrap_err().code(), "PCONN_SOCKET_CLOSED");
    }

    fn chunk_encode(body: &[u8], sizes: &[usize]) -> Vec<u8> {
        let mut wire = Vec::new();
        let mut rest = body;
        let mut i = 0;
        while !rest.is_empty() {
            let n = sizes.get(i).copied().unwrap_or(7).clamp(1, rest.len());
            wire.extend_from_slice(format!("{n:x}\r\n").as_bytes());
            wire.extend_from_slice(&rest[..n]);
            wire.extend_from_slice(b"\r\n");
            rest = &rest[n..];
            i += 1;
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        wire
    }

    proptest! {
        /// After any framing error nothing is reusable (arbitrary bytes are
        /// fuzzed through every decoder in `tests/fuzz_parsers.rs`).
        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..2048), split in 0usize..2048) {
            for framing in [Framing::Chunked, Framing::Length(100), Framing::UntilClose] {
                let mut d = BodyDecoder::new(framing);
                let mut out = Vec::new();
                let split = split.min(input.len());
                let first = d.decode(&input[..split], &mut out);
                let second = first.as_ref().ok().map(|_| d.decode(&input[split..], &mut out));
                if first.is_err() || matches!(second, Some(Err(_))) {
                    prop_assert!(!d.is_done());
                }
            }
        }

        /// Any chunking of any body, fed in any pieces, decodes to the body.
        #[test]
        fn chunked_round_trip(body in proptest::collection::vec(any::<u8>(), 0..4096),
                              sizes in proptest::collection::vec(1usize..600, 0..20),
                              piece in 1usize..97) {
            let wire = chunk_encode(&body, &sizes);
            let mut d = BodyDecoder::new(Framing::Chunked);
            let mut out = Vec::new();
            let mut used = 0;
            for part in wire.chunks(piece) {
                used += d.decode(part, &mut out).unwrap();
            }
            prop_assert!(d.is_done());
            prop_assert_eq!(used, wire.len());
            prop_assert_eq!(out, body);
        }
    }
}
