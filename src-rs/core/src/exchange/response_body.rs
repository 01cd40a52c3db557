//! A response whose head has arrived, and its body: what had arrived with
//! the head, the rest read on demand (backpressure: the connection is read
//! only when asked), the connection (or stream) given back when the body
//! ends. The body comes from an HTTP/1.1 connection or an HTTP/2 stream.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::http1_body::Http1Body;
use super::http2;
use super::http2_body::Http2Body;
use super::prepared::{RequestOptions, Timings};
use crate::error::{Error, Result};
use crate::http1::codec::{ContentDecoder, Framing, ResponseHead};
use crate::key::Key;
use crate::pool::{cancel, Cancel};
use crate::Pooled;

/// Bodies this small (with a known length) are read with the head as far
/// as they have arrived (without waiting), so the connection is back in
/// the pool before the caller looks.
pub const EAGER_BODY_LIMIT: u64 = 64 * 1024;

/// A response whose head has arrived.
pub struct Response {
    pub head: ResponseHead,
    /// Whether the connection served an earlier request.
    pub reused: bool,
    /// The id of the connection the exchange ran on.
    pub connection_id: u64,
    /// The key the connection belongs to (errors of the body name it).
    pub key: Key,
    pub body: ResponseBody,
    /// With `RequestOptions::timed`.
    pub timings: Option<Timings>,
    /// The peer the connection is to (the proxy, through one); None over a
    /// Unix socket.
    pub peer: Option<std::net::SocketAddr>,
}

/// The body of a response: already complete (small bodies), or streamed on
/// demand, reading the socket only when asked (backpressure).
pub struct ResponseBody {
    /// Complete body not yet handed out.
    ready: Option<Vec<u8>>,
    source: Option<Source>,
    trailers: Vec<(String, String)>,
    body_timeout: Duration,
    cancel: Option<Arc<Cancel>>,
}

/// Where the rest of a body comes from.
enum Source {
    Http1(Http1Body),
    Http2(Http2Body),
}

impl Source {
    /// Take what has arrived without waiting (see each protocol); true
    /// once the body is complete.
    fn read_arrived(&mut self, out: &mut Vec<u8>, eager: bool) -> Result<bool> {
        match self {
            Source::Http1(b) => b.read_arrived(out, eager),
            Source::Http2(b) => {
                b.read_arrived(out, if eager { EAGER_BODY_LIMIT as usize } else { 0 })
            }
        }
    }

    async fn read(&mut self, out: &mut Vec<u8>) -> Result<bool> {
        match self {
            Source::Http1(b) => b.read(out).await,
            Source::Http2(b) => b.read(out).await,
        }
    }

    fn trailers(&self) -> Vec<(String, String)> {
        match self {
            Source::Http1(b) => b.trailers(),
            Source::Http2(b) => b.trailers(),
        }
    }

    fn end(self) {
        match self {
            Source::Http1(b) => b.end(),
            Source::Http2(b) => b.end(),
        }
    }

    fn abandon(self) {
        match self {
            Source::Http1(b) => b.abandon(),
            Source::Http2(b) => b.abandon(),
        }
    }
}

/// Build an HTTP/1.1 response with the part of the body already in hand:
/// all of a small body that has arrived (its connection is then
/// released), what is buffered of any other. Never waits for body bytes.
pub(super) fn finish_http1(
    pooled: Pooled,
    mut head: ResponseHead,
    framing: Framing,
    reusable: bool,
    upload: Option<JoinHandle<Result<()>>>,
    reused: bool,
    opts: &RequestOptions,
) -> Result<Response> {
    let content = match framing {
        Framing::None => None,
        _ if opts.decompress => content_decoder(&head)?,
        _ => None,
    };
    if !opts.raw_header_case {
        head.lowercase_names();
    }
    let eager = matches!(framing, Framing::None)
        || matches!(framing, Framing::Length(n) if n <= EAGER_BODY_LIMIT);
    let facts = Facts::of(&pooled, reused);
    let source = Source::Http1(Http1Body::new(pooled, framing, reusable, upload, content));
    respond(facts, head, source, eager, opts)
}

/// Build an HTTP/2 response, with what of the body has arrived already
/// (up to `EAGER_BODY_LIMIT`). Never waits for body bytes.
pub(super) fn finish_http2(
    pooled: Pooled,
    answer: http2::Answer,
    reused: bool,
    opts: &RequestOptions,
) -> Result<Response> {
    let http2::Answer {
        head,
        body,
        upload,
        connection,
        expected,
    } = answer;
    let content = if opts.decompress && !body.is_end_stream() {
        content_decoder(&head)?
    } else {
        None
    };
    let facts = Facts::of(&pooled, reused);
    let source = Source::Http2(Http2Body::new(
        pooled, connection, body, upload, content, expected,
    ));
    respond(facts, head, source, true, opts)
}

/// What a response says of the connection it came on.
struct Facts {
    connection_id: u64,
    key: Key,
    peer: Option<std::net::SocketAddr>,
    reused: bool,
}

impl Facts {
    fn of(pooled: &Pooled, reused: bool) -> Facts {
        Facts {
            connection_id: pooled.id(),
            key: pooled.key().clone(),
            peer: pooled.connection_ref().remote_addr(),
            reused,
        }
    }
}

fn respond(
    facts: Facts,
    head: ResponseHead,
    mut source: Source,
    eager: bool,
    opts: &RequestOptions,
) -> Result<Response> {
    let mut collected = Vec::new();
    let complete = match source.read_arrived(&mut collected, eager) {
        Ok(complete) => complete,
        Err(e) => {
            source.abandon();
            return Err(e);
        }
    };
    let mut body = ResponseBody {
        ready: Some(collected),
        source: None,
        trailers: Vec::new(),
        body_timeout: opts.body_timeout,
        cancel: opts.cancel.clone(),
    };
    if complete {
        body.trailers = source.trailers();
        source.end();
    } else {
        body.source = Some(source);
    }
    Ok(Response {
        head,
        reused: facts.reused,
        connection_id: facts.connection_id,
        key: facts.key,
        body,
        timings: None,
        peer: facts.peer,
    })
}

/// A decoder for the response's `Content-Encoding` (every line of it, in
/// order), if it names codings pconn decodes.
fn content_decoder(head: &ResponseHead) -> Result<Option<ContentDecoder>> {
    let mut codings = Vec::new();
    for (name, value) in head.headers() {
        if name.eq_ignore_ascii_case(b"content-encoding") {
            if !codings.is_empty() {
                codings.push(b',');
            }
            codings.extend_from_slice(value);
        }
    }
    ContentDecoder::for_header(&codings)
}

impl ResponseBody {
    /// The part of the body already read (the whole body once complete),
    /// taken out without touching the socket.
    pub fn next_chunk_ready(&mut self) -> Vec<u8> {
        self.ready.take().unwrap_or_default()
    }

    /// How many bytes `next_chunk_ready` would hand out.
    pub fn ready_len(&self) -> usize {
        self.ready.as_ref().map_or(0, Vec::len)
    }

    /// Whether the whole body has been read from the connection.
    pub fn is_complete(&self) -> bool {
        self.source.is_none()
    }

    /// Trailers of a chunked body, once it is complete.
    pub fn trailers(&self) -> &[(String, String)] {
        &self.trailers
    }

    /// The next piece of the body, or `None` at its end. Reads the socket
    /// only when nothing is buffered; each read is bounded by the body
    /// timeout and the request's AbortSignal.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        if let Some(ready) = self.ready.take() {
            if !ready.is_empty() {
                return Ok(Some(ready));
            }
        }
        let cancel = self.cancel.clone();
        let timeout = self.body_timeout;
        let read = self.read_stream();
        let result = tokio::select! {
            biased;
            _ = cancel::fired(cancel.as_deref()) => Err(Error::Aborted),
            _ = cancel::after(timeout) => Err(Error::BodyTimeout { timeout_ms: timeout.as_millis() as u64 }),
            r = read => r,
        };
        if result.is_err() {
            // Its position in the stream is unknown: give up the body
            // (closing an HTTP/1.1 connection, resetting an HTTP/2 stream).
            if let Some(source) = self.source.take() {
                source.abandon();
            }
        }
        result
    }

    async fn read_stream(&mut self) -> Result<Option<Vec<u8>>> {
        let Some(source) = self.source.as_mut() else {
            return Ok(None);
        };
        let mut out = Vec::new();
        if source.read(&mut out).await? {
            self.trailers = source.trailers();
            if let Some(source) = self.source.take() {
                source.end();
            }
        }
        Ok((!out.is_empty()).then_some(out))
    }
}

impl Drop for ResponseBody {
    /// A body dropped unread must not leak its connection: an HTTP/1.1 one
    /// is closed (its unread bytes would desynchronise the next exchange),
    /// an HTTP/2 stream is reset.
    fn drop(&mut self) {
        if let Some(source) = self.source.take() {
            source.abandon();
        }
    }
}
