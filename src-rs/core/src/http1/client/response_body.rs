//! A response whose head has arrived, and its body: what had arrived with
//! the head, the rest read on demand (backpressure: the socket is read only
//! when asked), the connection released when the body ends.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::task::JoinHandle;

use super::exchange::{RequestOptions, Timings};
use crate::error::{Error, Result};
use crate::http1::codec::{BodyDecoder, ContentDecoder, Framing, ResponseHead};
use crate::key::Key;
use crate::pool::{cancel, Cancel, Poolable};
use crate::Pooled;

/// Bodies this small (with a known length) are read with the head as far
/// as they have arrived (the socket is read without waiting), so the
/// connection is back in the pool before the caller looks.
pub const EAGER_BODY_LIMIT: u64 = 64 * 1024;

/// Bytes asked of the socket per read while streaming a body.
const BODY_READ_SIZE: usize = 64 * 1024;

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
    stream: Option<BodyStream>,
    trailers: Vec<(String, String)>,
    body_timeout: Duration,
    cancel: Option<Arc<Cancel>>,
}

struct BodyStream {
    pooled: Pooled,
    decoder: BodyDecoder,
    /// The head and framing allow reuse once the body has ended.
    reusable: bool,
    /// The rest of the request body, still going out after an early answer.
    upload: Option<JoinHandle<Result<()>>>,
    /// Undoes the body's content coding (`RequestOptions::decompress`).
    content: Option<ContentDecoder>,
}

/// Build the response with the part of the body already in hand: all of
/// a small body that has arrived (its connection is then released), what
/// is buffered of any other. Never waits for body bytes.
pub(super) fn finish(
    pooled: Pooled,
    head: ResponseHead,
    framing: Framing,
    reusable: bool,
    upload: Option<JoinHandle<Result<()>>>,
    reused: bool,
    opts: &RequestOptions,
) -> Result<Response> {
    let connection_id = pooled.id();
    let key = pooled.key().clone();
    let peer = pooled.connection_ref().remote_addr();
    let content = match framing {
        Framing::None => None,
        _ if opts.decompress => content_decoder(&head)?,
        _ => None,
    };
    let mut stream = BodyStream {
        pooled,
        decoder: BodyDecoder::new(framing),
        reusable,
        upload,
        content,
    };
    let eager = matches!(framing, Framing::None)
        || matches!(framing, Framing::Length(n) if n <= EAGER_BODY_LIMIT);
    let mut collected = Vec::new();
    let complete = stream.read_arrived(&mut collected, eager)?;
    let mut body = ResponseBody {
        ready: Some(collected),
        stream: None,
        trailers: Vec::new(),
        body_timeout: opts.body_timeout,
        cancel: opts.cancel.clone(),
    };
    if complete {
        body.trailers = stream.decoder.trailers().to_vec();
        stream.end();
    } else {
        body.stream = Some(stream);
    }
    Ok(Response {
        head,
        reused,
        connection_id,
        key,
        body,
        timings: None,
        peer,
    })
}

/// A decoder for the response's `Content-Encoding` (every line of it, in
/// order), if it names codings pconn decodes.
fn content_decoder(head: &ResponseHead) -> Result<Option<ContentDecoder>> {
    let mut codings = Vec::new();
    for (name, value) in head.headers() {
        if name == b"content-encoding" {
            if !codings.is_empty() {
                codings.push(b',');
            }
            codings.extend_from_slice(value);
        }
    }
    ContentDecoder::for_header(&codings)
}

impl BodyStream {
    /// Undo the framing (and the content coding) of `input` into `out`;
    /// the input bytes used.
    fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize> {
        let Some(content) = self.content.as_mut() else {
            return self.decoder.decode(input, out);
        };
        let mut framed = Vec::new();
        let used = self.decoder.decode(input, &mut framed)?;
        content.decode(&framed, out)?;
        if self.decoder.is_done() {
            content.finish(out)?;
        }
        Ok(used)
    }

    /// The peer closed: the end of a close-delimited body, an error for others.
    fn eof(&mut self, out: &mut Vec<u8>) -> Result<()> {
        self.decoder.on_eof()?;
        match self.content.as_mut() {
            Some(content) if self.decoder.is_done() => content.finish(out),
            _ => Ok(()),
        }
    }

    /// Decode what has arrived into `out` without waiting: what is
    /// buffered and, with `read_more`, what the socket holds right now.
    /// True once the body is complete.
    fn read_arrived(&mut self, out: &mut Vec<u8>, read_more: bool) -> Result<bool> {
        let io = self.pooled.connection().io().clone();
        let Some(mut reader) = io.try_read_side() else {
            return Ok(false);
        };
        loop {
            if !reader.buffered().is_empty() {
                let used = self.decode(reader.buffered(), out)?;
                reader.consume(used);
            }
            if self.decoder.is_done() {
                return Ok(true);
            }
            if !read_more {
                return Ok(false);
            }
            match reader.fill_now(BODY_READ_SIZE) {
                None => return Ok(false),
                Some(Ok(0)) => self.eof(out)?,
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
            }
        }
    }

    /// Give the connection back if the body ended cleanly with nothing
    /// unexpected behind it, once the request body is out too.
    fn end(mut self) {
        let clean = self.decoder.is_done()
            && self.reusable
            && !self.pooled.connection().is_broken()
            && self
                .pooled
                .connection()
                .io()
                .try_read_side()
                .is_some_and(|r| r.buffered().is_empty());
        // The exchange just read up to the end of the framing: no need to
        // peek at the socket again before parking.
        let Some(mut upload) = self.upload.take() else {
            self.pooled.release_after_exchange(clean);
            return;
        };
        if upload.is_finished() {
            let sent = poll_finished(&mut upload);
            self.pooled.release_after_exchange(clean && sent);
            return;
        }
        tokio::spawn(async move {
            let sent = matches!(upload.await, Ok(Ok(())));
            self.pooled.release_after_exchange(clean && sent);
        });
    }

    /// Close the connection: the exchange was interrupted.
    fn abandon(mut self) {
        if let Some(upload) = self.upload.take() {
            upload.abort();
        }
        self.pooled.release(false);
    }
}

/// Whether a finished upload sent everything.
fn poll_finished(upload: &mut JoinHandle<Result<()>>) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    matches!(Pin::new(upload).poll(&mut cx), Poll::Ready(Ok(Ok(()))))
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
        self.stream.is_none()
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
            // Its position in the stream is unknown: close the connection.
            if let Some(stream) = self.stream.take() {
                stream.abandon();
            }
        }
        result
    }

    async fn read_stream(&mut self) -> Result<Option<Vec<u8>>> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(None);
        };
        let io = stream.pooled.connection().io().clone();
        let mut reader = io.read_side().await;
        let mut out = Vec::new();
        loop {
            if !reader.buffered().is_empty() {
                let used = stream.decode(reader.buffered(), &mut out)?;
                reader.consume(used);
            }
            if stream.decoder.is_done() {
                drop(reader);
                self.trailers = stream.decoder.trailers().to_vec();
                if let Some(stream) = self.stream.take() {
                    stream.end();
                }
                return Ok((!out.is_empty()).then_some(out));
            }
            if !out.is_empty() {
                return Ok(Some(out));
            }
            if reader.fill(BODY_READ_SIZE).await? == 0 {
                stream.eof(&mut out)?;
            }
        }
    }
}

impl Drop for ResponseBody {
    /// A body dropped unread must not leak its connection: it is closed
    /// (its unread bytes would desynchronise the next exchange).
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take() {
            stream.abandon();
        }
    }
}
