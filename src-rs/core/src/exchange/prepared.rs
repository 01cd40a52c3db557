//! A request made ready once for every attempt it may take, whichever
//! protocol the connection speaks: validated, its HTTP/1.1 head encoded,
//! its retry rules decided; and what an exchange reports.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::http1::codec::{
    is_idempotent_method, BodyFraming, RequestBody, RequestHead, MAX_HEAD_BYTES,
};
use crate::key::Key;
use crate::pool::Cancel;

/// Bodies up to this size go out in the same HTTP/1.1 write as the head.
const JOIN_BODY_LIMIT: usize = 16 * 1024;

/// Per-request settings.
#[derive(Debug, Clone)]
pub struct RequestOptions {
    /// Time allowed for the response head once the request is sent (zero:
    /// no limit).
    pub headers_timeout: Duration,
    /// Time allowed between two pieces of the body, either way: the
    /// response's, and the request's while it is sent (zero: no limit).
    pub body_timeout: Duration,
    /// Treat as idempotent (safe to retry) whatever the method.
    pub idempotent: bool,
    /// Largest response head accepted.
    pub max_header_size: usize,
    pub cancel: Option<Arc<Cancel>>,
    /// Measure the stages (see [`Timings`]); off, no clock is read.
    pub timed: bool,
    /// Undo the body's `Content-Encoding` (gzip, deflate, br), as fetch does.
    pub decompress: bool,
    /// Keep an HTTP/1.1 response's header names as the server sent them
    /// (undici's `rawHeaders`); otherwise they are lower-cased.
    pub raw_header_case: bool,
    /// Over HTTP/1.1, send `Expect: 100-continue` with a body and send the
    /// body only once the server says 100 (or after `CONTINUE_WAIT`).
    pub expect_continue: bool,
}

impl Default for RequestOptions {
    /// undici's timeouts (300 s each) and node's head limit (16 KiB).
    fn default() -> Self {
        RequestOptions {
            headers_timeout: Duration::from_secs(300),
            body_timeout: Duration::from_secs(300),
            idempotent: false,
            max_header_size: MAX_HEAD_BYTES,
            cancel: None,
            timed: false,
            decompress: false,
            raw_header_case: false,
            expect_continue: false,
        }
    }
}

/// How long the stages of an exchange took, from its start.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// Waiting for a connection at a limit (the acquire, less any connect).
    pub queued: Duration,
    /// Opening the connection, when this exchange was its first.
    pub connect: Duration,
    pub tls: Duration,
    /// Until the response head had arrived.
    pub head: Duration,
    /// A stale keep-alive connection made the request go again.
    pub retried: bool,
}

/// Why an exchange failed, and the peer it failed at when a connection
/// had been made (a failed connect names its address in the error itself).
#[derive(Debug)]
pub struct ExchangeError {
    pub error: Error,
    pub peer: Option<std::net::SocketAddr>,
}

impl From<Error> for ExchangeError {
    fn from(error: Error) -> ExchangeError {
        ExchangeError { error, peer: None }
    }
}

/// Why an attempt failed: whether the server had started answering, and
/// whether it said it did not process the request at all.
pub(super) struct AttemptError {
    pub(super) error: Error,
    pub(super) answered: bool,
    /// The server refused the request unprocessed (HTTP/2 GOAWAY above its
    /// last stream, REFUSED_STREAM), or the connection was found dead
    /// before anything was sent: safe to send again whatever the method.
    pub(super) refused: bool,
}

impl AttemptError {
    /// A failure after the server had started answering: never retried.
    pub(super) fn answered(error: Error) -> AttemptError {
        AttemptError {
            error,
            answered: true,
            refused: false,
        }
    }

    /// The request was not processed; it may go again elsewhere.
    pub(super) fn refused(error: Error) -> AttemptError {
        AttemptError {
            error,
            answered: false,
            refused: true,
        }
    }
}

impl From<Error> for AttemptError {
    fn from(error: Error) -> AttemptError {
        AttemptError {
            error,
            answered: false,
            refused: false,
        }
    }
}

/// A failed write: the server cannot have answered yet.
impl From<std::io::Error> for AttemptError {
    fn from(e: std::io::Error) -> AttemptError {
        AttemptError::from(Error::from(e))
    }
}

/// A validated request with its HTTP/1.1 head encoded (and a small body
/// joined to it, so that one write sends both).
pub struct Prepared {
    pub(super) head: RequestHead,
    /// The HTTP/1.1 head, and the body when `joined`.
    pub(super) wire: Bytes,
    /// The body; a stream is taken by the attempt that sends it.
    pub(super) body: RequestBody,
    /// `wire` carries the body too (HTTP/1.1 sends nothing more).
    pub(super) joined: bool,
    pub(super) framing: BodyFraming,
    pub(super) idempotent: bool,
    /// The body can be sent again (not a stream).
    pub(super) replayable: bool,
    /// The HTTP/1.1 head says `Expect: 100-continue`: the body waits for
    /// the server's 100 (never joined to the head).
    pub(super) expect_continue: bool,
}

impl Prepared {
    pub fn new(
        key: &Key,
        head: RequestHead,
        body: RequestBody,
        opts: &RequestOptions,
    ) -> Result<Prepared> {
        let framing = head.framing(&body)?;
        let idempotent = opts.idempotent
            || is_idempotent_method(&head.method)
            || head
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("idempotency-key"));
        let expect_continue = opts.expect_continue && !matches!(body, RequestBody::Empty);
        let mut wire = if expect_continue {
            // HTTP/1.1 only: HTTP/2 sends the body at once.
            let mut expecting = head.clone();
            expecting
                .headers
                .push(("expect".into(), "100-continue".into()));
            expecting.encode(key.host_header(), framing)
        } else {
            head.encode(key.host_header(), framing)
        };
        let replayable = body.is_replayable();
        let joined = match &body {
            _ if expect_continue => false,
            RequestBody::Bytes(bytes) if bytes.len() <= JOIN_BODY_LIMIT => {
                wire.extend_from_slice(bytes);
                true
            }
            RequestBody::Empty => true,
            _ => false,
        };
        Ok(Prepared {
            head,
            wire: Bytes::from(wire),
            body,
            joined,
            framing,
            idempotent,
            replayable,
            expect_continue,
        })
    }

    /// Whether a failure on a stale connection may be retried.
    pub(super) fn retryable(&self) -> bool {
        self.idempotent && self.replayable
    }

    /// The body for one attempt: bytes are shared, a stream is handed over.
    pub(super) fn body_for_attempt(&mut self) -> RequestBody {
        match &mut self.body {
            RequestBody::Empty => RequestBody::Empty,
            RequestBody::Bytes(bytes) => RequestBody::Bytes(bytes.clone()),
            stream @ RequestBody::Stream(_) => std::mem::replace(stream, RequestBody::Empty),
        }
    }
}
