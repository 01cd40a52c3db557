//! The rest of an HTTP/2 body: DATA frames of one stream, each giving its
//! room back to the server's flow-control window only once it is taken
//! (a reader that stops stops the server, and what waits stays within one
//! window), then the trailers. The stream's loan ends with the body; a
//! body dropped unread resets the stream (the connection stays up).

use std::future::poll_fn;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use h2::{Reason, RecvStream};
use tokio::task::JoinHandle;

use super::http1_body::poll_finished;
use crate::error::Result;
use crate::http1::codec::ContentDecoder;
use crate::transport::{h2_error, Http2};
use crate::Pooled;

/// How much one `read` gathers from frames that have already arrived.
const READ_AHEAD: usize = 64 * 1024;

pub(super) struct Http2Body {
    pooled: Pooled,
    connection: Http2,
    recv: RecvStream,
    /// The rest of the request body, still going out beside the response.
    upload: Option<JoinHandle<Result<()>>>,
    /// Undoes the body's content coding (`RequestOptions::decompress`).
    content: Option<ContentDecoder>,
    /// The DATA frames have ended; the trailers, if any, are next.
    data_done: bool,
    /// Body bytes received, and how many the head announced (Content-Length).
    received: u64,
    expected: Option<u64>,
    trailers: Vec<(String, String)>,
}

/// What one step of reading gave.
enum Step {
    /// Some bytes (maybe none once decoded: a decoder may hold them back).
    Data,
    End,
}

impl Http2Body {
    pub(super) fn new(
        pooled: Pooled,
        connection: Http2,
        recv: RecvStream,
        upload: Option<JoinHandle<Result<()>>>,
        content: Option<ContentDecoder>,
        expected: Option<u64>,
    ) -> Http2Body {
        Http2Body {
            pooled,
            connection,
            recv,
            upload,
            content,
            data_done: false,
            received: 0,
            expected,
            trailers: Vec::new(),
        }
    }

    fn take(&mut self, bytes: Bytes, out: &mut Vec<u8>) -> Result<()> {
        self.received += bytes.len() as u64;
        // The window opens again as the bytes are taken, not before.
        let _ = self.recv.flow_control().release_capacity(bytes.len());
        match self.content.as_mut() {
            Some(content) => content.decode(&bytes, out),
            None => {
                out.extend_from_slice(&bytes);
                Ok(())
            }
        }
    }

    fn poll_step(&mut self, cx: &mut Context<'_>, out: &mut Vec<u8>) -> Poll<Result<Step>> {
        if !self.data_done {
            return match self.recv.poll_data(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Some(Ok(bytes))) => {
                    Poll::Ready(self.take(bytes, out).map(|()| Step::Data))
                }
                Poll::Ready(Some(Err(e))) if !self.stopped_after_all(&e) => {
                    Poll::Ready(Err(h2_error(e)))
                }
                Poll::Ready(Some(Err(_))) | Poll::Ready(None) => {
                    self.data_done = true;
                    if let Some(content) = self.content.as_mut() {
                        if let Err(e) = content.finish(out) {
                            return Poll::Ready(Err(e));
                        }
                    }
                    Poll::Ready(Ok(Step::Data))
                }
            };
        }
        match self.recv.poll_trailers(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) if !self.stopped_after_all(&e) => Poll::Ready(Err(h2_error(e))),
            Poll::Ready(Err(_)) => Poll::Ready(Ok(Step::End)),
            Poll::Ready(Ok(trailers)) => {
                self.trailers = trailers
                    .iter()
                    .flatten()
                    .map(|(n, v)| {
                        let value = v.as_bytes().iter().map(|&b| char::from(b)).collect();
                        (n.as_str().to_string(), value)
                    })
                    .collect();
                Poll::Ready(Ok(Step::End))
            }
        }
    }

    /// A server may reset a stream with NO_ERROR once its response is
    /// complete, to stop the request (RFC 9113 §8.1): that ends the body,
    /// unless fewer bytes came than its Content-Length announced.
    fn stopped_after_all(&self, e: &h2::Error) -> bool {
        e.reason() == Some(Reason::NO_ERROR) && self.expected.is_none_or(|n| self.received >= n)
    }

    /// Take what has arrived into `out` without waiting, up to about
    /// `limit` bytes. True once the body is complete.
    pub(super) fn read_arrived(&mut self, out: &mut Vec<u8>, limit: usize) -> Result<bool> {
        let mut cx = Context::from_waker(Waker::noop());
        while out.len() < limit {
            match self.poll_step(&mut cx, out) {
                Poll::Pending => return Ok(false),
                Poll::Ready(Ok(Step::End)) => return Ok(true),
                Poll::Ready(Ok(Step::Data)) => {}
                Poll::Ready(Err(e)) => return Err(e),
            }
        }
        Ok(false)
    }

    /// Read until some of the body is in `out`, or its end; true at the
    /// end. Every DATA frame that has arrived by then comes too (up to
    /// `READ_AHEAD`): servers send a body in frames of 8 or 16 KiB, and one
    /// read per frame would cost the caller a wake-up and a chunk each.
    pub(super) async fn read(&mut self, out: &mut Vec<u8>) -> Result<bool> {
        poll_fn(|cx| loop {
            match self.poll_step(cx, out) {
                Poll::Pending if out.is_empty() => return Poll::Pending,
                Poll::Pending => return Poll::Ready(Ok(false)),
                Poll::Ready(Ok(Step::End)) => return Poll::Ready(Ok(true)),
                Poll::Ready(Ok(Step::Data)) if out.len() >= READ_AHEAD => {
                    return Poll::Ready(Ok(false))
                }
                Poll::Ready(Ok(Step::Data)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            }
        })
        .await
    }

    pub(super) fn trailers(&self) -> Vec<(String, String)> {
        self.trailers.clone()
    }

    /// The stream is done: its room goes to the next request, once the
    /// request body is out too.
    pub(super) fn end(mut self) {
        self.connection.touch();
        let Some(mut upload) = self.upload.take() else {
            self.pooled.release_after_exchange(true);
            return;
        };
        if upload.is_finished() {
            poll_finished(&mut upload);
            self.pooled.release_after_exchange(true);
            return;
        }
        tokio::spawn(async move {
            let _ = upload.await;
            self.pooled.release_after_exchange(true);
        });
    }

    /// The exchange was interrupted: reset the stream (its handles drop),
    /// keep the connection.
    pub(super) fn abandon(mut self) {
        if let Some(upload) = self.upload.take() {
            upload.abort();
        }
        let Http2Body { pooled, recv, .. } = self;
        drop(recv);
        pooled.release(true);
    }
}
