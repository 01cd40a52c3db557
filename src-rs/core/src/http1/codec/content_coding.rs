//! Content codings of a response body (`Content-Encoding: gzip`, `deflate`,
//! `br`, and lists of them), decoded as the bytes arrive, as `fetch`
//! decodes them.

use std::io::Write;

use brotli_decompressor::DecompressorWriter;
use flate2::write::{DeflateDecoder, GzDecoder, ZlibDecoder};

use crate::error::{Error, Result};

/// Most codings one body may list (as undici's fetch: a longer chain is a
/// way to make the client burn memory and CPU, so it fails the response).
const MAX_CODINGS: usize = 5;

/// One coding being undone; each writes what it decoded into a `Vec`.
enum Stage {
    Gzip(GzDecoder<Vec<u8>>),
    /// `deflate` before its first byte says how it is wrapped: zlib, as the
    /// RFC says, or raw deflate, as some servers send it.
    Deflate,
    Zlib(ZlibDecoder<Vec<u8>>),
    RawDeflate(DeflateDecoder<Vec<u8>>),
    Brotli(Box<DecompressorWriter<Vec<u8>>>),
}

impl Stage {
    fn name(&self) -> &'static str {
        match self {
            Stage::Gzip(_) => "gzip",
            Stage::Deflate | Stage::Zlib(_) | Stage::RawDeflate(_) => "deflate",
            Stage::Brotli(_) => "br",
        }
    }

    /// Feed `input`; the decoded bytes are appended to `out`.
    fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        if let Stage::Deflate = self {
            let Some(&first) = input.first() else {
                return Ok(());
            };
            // A zlib stream starts with CM = 8 in its low nibble.
            *self = if first & 0x0f == 0x08 {
                Stage::Zlib(ZlibDecoder::new(Vec::new()))
            } else {
                Stage::RawDeflate(DeflateDecoder::new(Vec::new()))
            };
        }
        let produced = match self {
            Stage::Gzip(d) => d.write_all(input).map(|_| d.get_mut()),
            Stage::Zlib(d) => d.write_all(input).map(|_| d.get_mut()),
            Stage::RawDeflate(d) => d.write_all(input).map(|_| d.get_mut()),
            Stage::Brotli(d) => d.write_all(input).map(|_| d.get_mut()),
            Stage::Deflate => return Ok(()),
        }?;
        out.append(produced);
        Ok(())
    }

    /// The body ended: the coded stream must have ended too.
    fn finish(&mut self, out: &mut Vec<u8>) -> std::io::Result<()> {
        let truncated =
            || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the stream is truncated");
        match self {
            Stage::Gzip(d) => d.try_finish()?,
            Stage::Zlib(d) => d.try_finish()?,
            Stage::RawDeflate(d) => d.try_finish()?,
            Stage::Deflate => return Ok(()),
            Stage::Brotli(d) => {
                let writer = std::mem::replace(d, Box::new(DecompressorWriter::new(Vec::new(), 1)));
                let rest = writer.into_inner().map_err(|_| truncated())?;
                out.extend_from_slice(&rest);
                return Ok(());
            }
        }
        let produced = match self {
            Stage::Gzip(d) => d.get_mut(),
            Stage::Zlib(d) => d.get_mut(),
            Stage::RawDeflate(d) => d.get_mut(),
            Stage::Deflate | Stage::Brotli(_) => return Ok(()),
        };
        out.append(produced);
        Ok(())
    }
}

/// Undoes the content codings of one body, last applied first.
pub struct ContentDecoder {
    stages: Vec<Stage>,
}

impl ContentDecoder {
    /// A decoder for a `Content-Encoding` header value; `None` when there
    /// is nothing to undo or a coding is not one pconn decodes (then the
    /// body is handed over as it came, as fetch does). More than five
    /// codings (`identity` counts) is `PCONN_HTTP_PARSE`.
    pub fn for_header(value: &[u8]) -> Result<Option<ContentDecoder>> {
        let codings: Vec<&[u8]> = value
            .split(|&b| b == b',')
            .map(<[u8]>::trim_ascii)
            .filter(|c| !c.is_empty())
            .collect();
        if codings.len() > MAX_CODINGS {
            return Err(Error::HttpParse(format!(
                "the response lists {} content-encodings; at most {MAX_CODINGS} are accepted",
                codings.len()
            )));
        }
        let mut stages = Vec::new();
        for coding in codings {
            if coding.eq_ignore_ascii_case(b"identity") {
                continue;
            }
            let stage =
                if coding.eq_ignore_ascii_case(b"gzip") || coding.eq_ignore_ascii_case(b"x-gzip") {
                    Stage::Gzip(GzDecoder::new(Vec::new()))
                } else if coding.eq_ignore_ascii_case(b"deflate") {
                    Stage::Deflate
                } else if coding.eq_ignore_ascii_case(b"br") {
                    Stage::Brotli(Box::new(DecompressorWriter::new(Vec::new(), 4096)))
                } else {
                    return Ok(None);
                };
            stages.push(stage);
        }
        if stages.is_empty() {
            return Ok(None);
        }
        // Applied in the order listed: undone from the last.
        stages.reverse();
        Ok(Some(ContentDecoder { stages }))
    }

    /// Decode `input`, appending what it gives to `out`.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let mut data = input.to_vec();
        for stage in &mut self.stages {
            let mut next = Vec::new();
            stage
                .decode(&data, &mut next)
                .map_err(|e| failed(stage, e))?;
            data = next;
        }
        out.append(&mut data);
        Ok(())
    }

    /// The body ended: flush every stage, failing if a coded stream was cut short.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<()> {
        let mut data = Vec::new();
        for stage in &mut self.stages {
            let mut next = Vec::new();
            if !data.is_empty() {
                stage
                    .decode(&data, &mut next)
                    .map_err(|e| failed(stage, e))?;
            }
            stage.finish(&mut next).map_err(|e| failed(stage, e))?;
            data = next;
        }
        out.append(&mut data);
        Ok(())
    }
}

fn failed(stage: &Stage, e: std::io::Error) -> Error {
    Error::HttpParse(format!(
        "the {} body could not be decoded: {e}",
        stage.name()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
    use flate2::Compression;

    fn gzip(body: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(body).unwrap();
        e.finish().unwrap()
    }

    /// Decode `wire` fed in pieces of `piece` bytes.
    fn decode(header: &str, wire: &[u8], piece: usize) -> Result<Vec<u8>> {
        let mut d = ContentDecoder::for_header(header.as_bytes())?.expect("a decoder");
        let mut out = Vec::new();
        for part in wire.chunks(piece.max(1)) {
            d.decode(part, &mut out)?;
        }
        d.finish(&mut out)?;
        Ok(out)
    }

    const BODY: &[u8] = b"hello, hello, hello, world: a body worth compressing, hello again";

    #[test]
    fn gzip_zlib_and_raw_deflate_in_any_pieces() {
        let zlib = {
            let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
            e.write_all(BODY).unwrap();
            e.finish().unwrap()
        };
        let raw = {
            let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
            e.write_all(BODY).unwrap();
            e.finish().unwrap()
        };
        for piece in [1, 3, 1000] {
            assert_eq!(decode("gzip", &gzip(BODY), piece).unwrap(), BODY);
            assert_eq!(decode("x-gzip", &gzip(BODY), piece).unwrap(), BODY);
            assert_eq!(decode("deflate", &zlib, piece).unwrap(), BODY);
            assert_eq!(decode("Deflate", &raw, piece).unwrap(), BODY);
        }
    }

    #[test]
    fn brotli_from_a_known_stream() {
        // `hello` compressed by brotli (quality 11).
        let wire = [11, 2, 128, 104, 101, 108, 108, 111, 3];
        assert_eq!(decode("br", &wire, 2).unwrap(), b"hello");
    }

    #[test]
    fn codings_are_undone_last_first() {
        let twice = gzip(&gzip(BODY));
        assert_eq!(decode("gzip, gzip", &twice, 7).unwrap(), BODY);
    }

    #[test]
    fn a_truncated_or_corrupt_stream_fails() {
        let wire = gzip(BODY);
        let err = decode("gzip", &wire[..wire.len() - 4], 5).unwrap_err();
        assert_eq!(err.code(), "PCONN_HTTP_PARSE");
        assert!(decode("gzip", b"not gzip at all", 4).is_err());
        assert!(decode("br", &[11, 2, 128, 104, 101], 2).is_err());
    }

    #[test]
    fn unknown_or_identity_codings_are_left_alone() {
        for header in [
            "identity",
            "zstd",
            "gzip, compress",
            "identity, identity, , identity",
        ] {
            assert!(ContentDecoder::for_header(header.as_bytes())
                .unwrap()
                .is_none());
        }
    }

    #[test]
    fn more_than_five_codings_fail_even_identity() {
        assert!(ContentDecoder::for_header(b"gzip,gzip,gzip,gzip,gzip")
            .unwrap()
            .is_some());
        for header in [
            "gzip,gzip,gzip,gzip,gzip,gzip",
            "identity, identity, identity, identity, identity, identity",
        ] {
            let err = ContentDecoder::for_header(header.as_bytes())
                .err()
                .expect("refused");
            assert_eq!(err.code(), "PCONN_HTTP_PARSE");
            assert!(err.to_string().contains("content-encodings"));
        }
    }
}
