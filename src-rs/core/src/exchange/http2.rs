//! One HTTP/2 attempt: a stream of a shared connection. The request head
//! goes as HEADERS, its body as DATA within the server's flow-control
//! windows (a task of its own, so the response is read while it goes), and
//! the response head comes back as a `ResponseHead` like an HTTP/1.1 one.
//!
//! What the server did not process may go again, whatever the method: a
//! stream refused (REFUSED_STREAM), above the last stream a GOAWAY kept, or
//! not opened at all because the connection was going away or dead.

use std::time::Duration;

use bytes::Bytes;
use h2::client::ResponseFuture;
use h2::{Reason, RecvStream, SendStream};
use http::header::{HeaderName, HeaderValue};
use tokio::task::JoinHandle;

use super::http1::length_mismatch;
use super::prepared::{AttemptError, Prepared, RequestOptions};
use crate::error::{Error, Result};
use crate::http1::codec::{
    BodyFraming, Framing, HttpVersion, RequestBody, RequestHead, ResponseHead,
};
use crate::key::Key;
use crate::pool::cancel;
use crate::transport::{h2_error, Http2};

/// A connection quiet this long is checked with a PING before a stream
/// goes on it: a server that vanished without a FIN is found before a
/// request is lost to it.
const PING_AFTER_QUIET: Duration = Duration::from_secs(1);
/// How long that PING may take.
const PING_LIMIT: Duration = Duration::from_secs(2);

/// Request headers that are HTTP/1.1's connection management, which
/// HTTP/2 forbids (RFC 9113 §8.2.2); `host` becomes `:authority`.
const CONNECTION_HEADERS: [&str; 7] = [
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// The final response head, its body stream, and the upload still going.
pub(super) struct Answer {
    pub(super) head: ResponseHead,
    pub(super) body: RecvStream,
    pub(super) upload: Option<JoinHandle<Result<()>>>,
    pub(super) connection: Http2,
    /// The body's length, when the head announced one.
    pub(super) expected: Option<u64>,
}

/// The request as HTTP/2 sends it.
fn request_of(key: &Key, head: &RequestHead, framing: BodyFraming) -> Result<http::Request<()>> {
    let authority = head.header("host").unwrap_or(key.host_header());
    let uri = format!("https://{authority}{}", head.path);
    let mut request = http::Request::builder()
        .method(head.method.as_str())
        .uri(uri)
        .version(http::Version::HTTP_2)
        .body(())
        .map_err(|e| Error::InvalidArgument(format!("the request cannot go over HTTP/2: {e}")))?;
    let headers = request.headers_mut();
    for (name, value) in &head.headers {
        let lower = name.to_ascii_lowercase();
        if CONNECTION_HEADERS.contains(&lower.as_str())
            || (lower == "te" && !value.eq_ignore_ascii_case("trailers"))
        {
            continue;
        }
        let name = HeaderName::from_bytes(lower.as_bytes())
            .map_err(|e| Error::InvalidArgument(format!("header {name:?}: {e}")))?;
        // Validated as Latin-1 already: one byte per character.
        let bytes: Vec<u8> = value.chars().map(|c| u32::from(c) as u8).collect();
        let value = HeaderValue::from_bytes(&bytes)
            .map_err(|e| Error::InvalidArgument(format!("header {name}: {e}")))?;
        headers.append(name, value);
    }
    if let BodyFraming::Length(n) = framing {
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    Ok(request)
}

/// A failure to open the stream: nothing reached the server.
fn not_opened(h2: &Http2, e: h2::Error) -> AttemptError {
    h2.stop_taking_streams();
    AttemptError::refused(h2_error(e))
}

/// A failure of the stream before its response head: refused (the server
/// says it did not process it), the connection lost (as a stale HTTP/1.1
/// connection: an idempotent request may go once more), or answered.
fn stream_failed(h2: &Http2, e: h2::Error) -> AttemptError {
    let lost = e.is_io();
    if e.is_go_away() || lost {
        h2.stop_taking_streams();
    }
    let unprocessed =
        e.reason() == Some(Reason::REFUSED_STREAM) || (e.is_go_away() && e.is_remote());
    let error = h2_error(e);
    if unprocessed {
        AttemptError::refused(error)
    } else {
        AttemptError {
            error,
            answered: !lost,
            refused: false,
        }
    }
}

/// Open a stream, send the request (the body beside the response), and
/// wait for the final response head.
pub(super) async fn attempt(
    h2: &Http2,
    key: &Key,
    prepared: &mut Prepared,
    opts: &RequestOptions,
) -> std::result::Result<Answer, AttemptError> {
    h2.ping_if_quiet(PING_AFTER_QUIET, PING_LIMIT)
        .await
        .map_err(AttemptError::refused)?;
    let request = request_of(key, &prepared.head, prepared.framing)?;
    let body = prepared.body_for_attempt();
    let end_of_stream = matches!(body, RequestBody::Empty);
    let mut sender = h2.sender().ready().await.map_err(|e| not_opened(h2, e))?;
    let (response, stream) = sender
        .send_request(request, end_of_stream)
        .map_err(|e| not_opened(h2, e))?;
    h2.touch();
    let upload = (!end_of_stream)
        .then(|| tokio::spawn(send_body(stream, body, prepared.framing, opts.body_timeout)));
    let (response, upload) = read_head(h2, response, upload, opts).await?;
    let (parts, body) = response.into_parts();
    let head = ResponseHead::from_fields(
        parts.status.as_u16(),
        HttpVersion::Http2,
        parts
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes())),
        opts.max_header_size,
    )
    .map_err(AttemptError::answered)?;
    let expected = match head.framing(&prepared.head.method) {
        Ok((Framing::Length(n), _)) => Some(n),
        _ => None,
    };
    h2.touch();
    Ok(Answer {
        head,
        body,
        upload,
        connection: h2.clone(),
        expected,
    })
}

/// Wait for the final response head while the body goes. The headers
/// timeout starts once the request is sent, as for HTTP/1.1; a failed
/// upload fails the attempt (the stream is reset as its half drops).
async fn read_head(
    h2: &Http2,
    response: ResponseFuture,
    mut upload: Option<JoinHandle<Result<()>>>,
    opts: &RequestOptions,
) -> std::result::Result<(http::Response<RecvStream>, Option<JoinHandle<Result<()>>>), AttemptError>
{
    tokio::pin!(response);
    if let Some(task) = upload.as_mut() {
        tokio::select! {
            answer = &mut response => {
                let answer = answer.map_err(|e| stream_failed(h2, e))?;
                return Ok((answer, upload));
            }
            sent = task => {
                upload = None;
                match sent {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => return Err(AttemptError::answered(error)),
                    Err(_) => return Err(AttemptError::answered(Error::Aborted)),
                }
            }
        }
    }
    let limited = async {
        if opts.headers_timeout.is_zero() {
            return Ok(response.await);
        }
        match tokio::time::timeout(opts.headers_timeout, response).await {
            Ok(answer) => Ok(answer),
            Err(_) => Err(AttemptError::answered(Error::HeadersTimeout {
                timeout_ms: opts.headers_timeout.as_millis() as u64,
            })),
        }
    };
    let answer = limited.await?.map_err(|e| stream_failed(h2, e))?;
    Ok((answer, upload))
}

/// Send the body as DATA frames, as the server's windows allow; no piece
/// may wait longer than `stall`.
async fn send_body(
    mut stream: SendStream<Bytes>,
    body: RequestBody,
    framing: BodyFraming,
    stall: Duration,
) -> Result<()> {
    match body {
        RequestBody::Empty => Ok(()),
        RequestBody::Bytes(bytes) => send_data(&mut stream, bytes, true, stall).await,
        RequestBody::Stream(mut chunks) => {
            let mut sent: u64 = 0;
            while let Some(chunk) = chunks.recv().await {
                if chunk.is_empty() {
                    continue;
                }
                sent += chunk.len() as u64;
                if let BodyFraming::Length(declared) = framing {
                    if sent > declared {
                        return Err(length_mismatch(declared, sent, "more").error);
                    }
                }
                send_data(&mut stream, Bytes::from(chunk), false, stall).await?;
            }
            if let BodyFraming::Length(declared) = framing {
                if sent != declared {
                    return Err(length_mismatch(declared, sent, "fewer").error);
                }
            }
            send_data(&mut stream, Bytes::new(), true, stall).await
        }
    }
}

/// Send `data` in the pieces flow control grants (`end`: and end the
/// stream with the last one).
async fn send_data(
    stream: &mut SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
    stall: Duration,
) -> Result<()> {
    if data.is_empty() {
        if end {
            stream.send_data(data, true).map_err(h2_error)?;
        }
        return Ok(());
    }
    while !data.is_empty() {
        stream.reserve_capacity(data.len());
        let granted = std::future::poll_fn(|cx| stream.poll_capacity(cx));
        let granted = tokio::select! {
            biased;
            granted = granted => granted,
            _ = cancel::after(stall) => {
                return Err(Error::BodyTimeout { timeout_ms: stall.as_millis() as u64 });
            }
        };
        let capacity = match granted {
            Some(Ok(n)) => n,
            Some(Err(e)) => return Err(h2_error(e)),
            None => return Err(Error::SocketClosed("the HTTP/2 stream closed".into())),
        };
        if capacity == 0 {
            continue;
        }
        let piece = data.split_to(capacity.min(data.len()));
        stream
            .send_data(piece, end && data.is_empty())
            .map_err(h2_error)?;
    }
    Ok(())
}
