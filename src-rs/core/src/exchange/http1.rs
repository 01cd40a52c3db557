//! One HTTP/1.1 attempt over a pooled connection: the request is sent
//! while the response head is read (RFC 9112 §9.3), so a final response
//! that arrives during an upload is handed over at once. An error (4xx,
//! 5xx) stops the upload and the connection is not reused; any other
//! status lets the upload go on beside the response (echo servers,
//! streaming APIs), and the connection goes back to the pool once both
//! are done.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::task::JoinHandle;

use super::prepared::{AttemptError, Prepared, RequestOptions};
use crate::error::{Error, Result};
use crate::http1::codec::{parse_head, BodyFraming, Framing, RequestBody, ResponseHead};
use crate::transport::{Duplex, ReadSide, WriteSide};
use crate::Pooled;

/// Bytes asked of the socket per read while waiting for a head; the buffer
/// grows by this much while a head is incomplete, up to `maxHeaderSize`.
const HEAD_READ_SIZE: usize = 4 * 1024;

/// Safety margin under a server's `Keep-Alive: timeout` (node:http uses 1 s).
const KEEP_ALIVE_MARGIN: Duration = Duration::from_secs(1);

/// How long a request with `Expect: 100-continue` waits for the server's
/// 100 before sending its body anyway (as curl does).
const CONTINUE_WAIT: Duration = Duration::from_secs(1);

/// Request bodies are written in pieces of this size, each within the body
/// timeout, so a peer that stops reading is noticed.
const UPLOAD_PIECE: usize = 64 * 1024;

/// The final response head and what it says about the connection.
pub(super) struct Answer {
    pub(super) head: ResponseHead,
    pub(super) framing: Framing,
    pub(super) reusable: bool,
    /// The rest of the request body, still being sent after an early answer.
    pub(super) upload: Option<JoinHandle<Result<()>>>,
}

/// The request going out, as a task of its own once an early answer lets it
/// outlive the attempt.
type Sending = Pin<Box<dyn Future<Output = std::result::Result<(), AttemptError>> + Send>>;

/// Send the request while reading the response head; `written` bytes of
/// it are already on the connection (`start_now`).
pub(super) async fn attempt(
    pooled: &mut Pooled,
    prepared: &mut Prepared,
    written: usize,
    opts: &RequestOptions,
) -> std::result::Result<Answer, AttemptError> {
    let conn = pooled.connection();
    let io = conn.io().clone();
    let mut reader = io.read_side().await;
    let mut wire = prepared.wire.slice(written..);
    if prepared.expect_continue {
        // The head alone, then the server's word: 100 lets the body go, a
        // final answer means it is not wanted (and the connection, whose
        // request is unfinished, is not reused).
        send_request(
            io.clone(),
            wire,
            RequestBody::Empty,
            prepared.framing,
            opts.body_timeout,
        )
        .await?;
        wire = Bytes::new();
        let method = &prepared.head.method;
        let waiting = read_until(&mut reader, method, opts.max_header_size, true);
        match tokio::time::timeout(CONTINUE_WAIT, waiting).await {
            Ok(Ok(Some(mut answer))) => {
                answer.reusable = false;
                return Ok(answer);
            }
            Ok(Err(failure)) => return Err(failure),
            // 100, or no word in time (servers that ignore Expect): send it.
            Ok(Ok(None)) | Err(_) => {}
        }
    }
    let mut send: Sending = Box::pin(send_request(
        io.clone(),
        wire,
        if prepared.joined {
            RequestBody::Empty
        } else {
            prepared.body_for_attempt()
        },
        prepared.framing,
        opts.body_timeout,
    ));
    let read = read_head(&mut reader, &prepared.head.method, opts.max_header_size);

    tokio::pin!(read);
    let sent = tokio::select! {
        // The send first: a response already waiting when the request goes
        // out in full (a request written ahead by `start_now`) is not early.
        biased;
        sent = &mut send => sent,
        // A final response before the request is fully sent: an error
        // stops the upload (the server may not read the rest, so the
        // connection cannot be reused); any other status lets it go on.
        answer = &mut read => {
            let mut answer = answer?;
            if answer.head.status >= 400 {
                answer.reusable = false;
            } else {
                answer.upload = Some(tokio::spawn(async move { send.await.map_err(|f| f.error) }));
            }
            return Ok(answer);
        }
    };
    if let Err(failure) = sent {
        // The server may have answered and closed (a 413 then a reset): a
        // response already received is delivered rather than the error.
        return match tokio::time::timeout(Duration::from_millis(50), &mut read).await {
            Ok(Ok(mut answer)) => {
                answer.reusable = false;
                Ok(answer)
            }
            _ => Err(failure),
        };
    }
    let answer = if opts.headers_timeout.is_zero() {
        read.await
    } else {
        match tokio::time::timeout(opts.headers_timeout, read).await {
            Ok(answer) => answer,
            Err(_) => Err(AttemptError::answered(Error::HeadersTimeout {
                timeout_ms: opts.headers_timeout.as_millis() as u64,
            })),
        }
    }?;
    if let Some(hint) = answer.head.keep_alive_timeout() {
        let hint = hint.saturating_sub(KEEP_ALIVE_MARGIN);
        if hint.is_zero() {
            return Ok(Answer {
                reusable: false,
                ..answer
            });
        }
        conn.set_idle_timeout_hint(hint);
    }
    Ok(answer)
}

/// Write the head and the body; no piece may take longer than `stall`.
async fn send_request(
    io: Arc<Duplex>,
    wire: Bytes,
    mut body: RequestBody,
    framing: BodyFraming,
    stall: Duration,
) -> std::result::Result<(), AttemptError> {
    let mut writer = io.write_side().await;
    let mut out = Upload {
        writer: &mut writer,
        stall,
    };
    out.write(&wire).await?;
    match &mut body {
        RequestBody::Empty => {}
        RequestBody::Bytes(bytes) => out.write(bytes).await?,
        RequestBody::Stream(chunks) => {
            let mut sent: u64 = 0;
            while let Some(chunk) = chunks.recv().await {
                if chunk.is_empty() {
                    continue;
                }
                sent += chunk.len() as u64;
                match framing {
                    BodyFraming::Length(declared) => {
                        if sent > declared {
                            return Err(length_mismatch(declared, sent, "more"));
                        }
                        out.write(&chunk).await?;
                    }
                    _ => {
                        let mut framed = Vec::with_capacity(chunk.len() + 20);
                        framed.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                        framed.extend_from_slice(&chunk);
                        framed.extend_from_slice(b"\r\n");
                        out.write(&framed).await?;
                    }
                }
            }
            match framing {
                BodyFraming::Length(declared) if sent != declared => {
                    return Err(length_mismatch(declared, sent, "fewer"));
                }
                BodyFraming::Length(_) => {}
                _ => out.write(b"0\r\n\r\n").await?,
            }
        }
    }
    Ok(())
}

/// The request as it goes out: in pieces, each within the stall limit.
struct Upload<'w, 'c> {
    writer: &'w mut WriteSide<'c>,
    stall: Duration,
}

impl Upload<'_, '_> {
    async fn write(&mut self, bytes: &[u8]) -> std::result::Result<(), AttemptError> {
        for piece in bytes.chunks(UPLOAD_PIECE) {
            if self.stall.is_zero() {
                self.writer.write_all(piece).await?;
                continue;
            }
            match tokio::time::timeout(self.stall, self.writer.write_all(piece)).await {
                Ok(written) => written?,
                Err(_) => {
                    // Part of the request reached the server: never retried.
                    return Err(AttemptError::answered(Error::BodyTimeout {
                        timeout_ms: self.stall.as_millis() as u64,
                    }));
                }
            }
        }
        Ok(())
    }
}

/// A stream body that did not keep to its declared length (part of it
/// reached the server: never retried).
pub(super) fn length_mismatch(declared: u64, sent: u64, what: &str) -> AttemptError {
    AttemptError::answered(Error::InvalidArgument(format!(
        "the request body stream gave {what} bytes than its content-length ({sent} vs {declared})"
    )))
}

/// Read up to the end of the final response head.
async fn read_head(
    reader: &mut ReadSide<'_>,
    method: &str,
    max_head: usize,
) -> std::result::Result<Answer, AttemptError> {
    read_until(reader, method, max_head, false)
        .await?
        .ok_or_else(|| AttemptError::answered(Error::HttpParse("no final response head".into())))
}

/// Read up to the end of the final response head, or (`stop_at_continue`)
/// of a `100 Continue` (then `None`).
async fn read_until(
    reader: &mut ReadSide<'_>,
    method: &str,
    max_head: usize,
    stop_at_continue: bool,
) -> std::result::Result<Option<Answer>, AttemptError> {
    let answered = AttemptError::answered;
    loop {
        match parse_head(reader.buffered(), max_head) {
            Err(error) => return Err(answered(error)),
            Ok(Some((head, used))) => {
                reader.consume(used);
                if stop_at_continue && head.status == 100 {
                    return Ok(None);
                }
                if head.is_interim() {
                    continue;
                }
                if head.status == 101 {
                    let error = Error::HttpParse(
                        "the server switched protocols (101) but the request asked for no upgrade"
                            .into(),
                    );
                    return Err(answered(error));
                }
                let (framing, reusable) = head.framing(method).map_err(answered)?;
                let reusable = reusable && head.allows_keep_alive();
                return Ok(Some(Answer {
                    head,
                    framing,
                    reusable,
                    upload: None,
                }));
            }
            Ok(None) => {
                let started = !reader.buffered().is_empty();
                match reader.fill(HEAD_READ_SIZE).await {
                    Ok(0) => {
                        let error = Error::SocketClosed(
                            "the server closed the connection before a complete response head"
                                .into(),
                        );
                        return Err(AttemptError {
                            error,
                            answered: started,
                            refused: false,
                        });
                    }
                    Ok(_) => {}
                    Err(e) => {
                        return Err(AttemptError {
                            error: e,
                            answered: started,
                            refused: false,
                        })
                    }
                }
            }
        }
    }
}
