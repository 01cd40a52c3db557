//! The rest of an HTTP/1.1 body: decoded from the connection as it is
//! read (backpressure: the socket is read only when asked), the connection
//! released when the body ends cleanly.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::task::JoinHandle;

use crate::error::Result;
use crate::http1::codec::{BodyDecoder, ContentDecoder, Framing};
use crate::pool::Poolable;
use crate::transport::ReadSide;
use crate::Pooled;

/// Bytes asked of the socket per read while streaming a body.
const BODY_READ_SIZE: usize = 64 * 1024;

pub(super) struct Http1Body {
    pooled: Pooled,
    decoder: BodyDecoder,
    /// The head and framing allow reuse once the body has ended.
    reusable: bool,
    /// The rest of the request body, still going out after an early answer.
    upload: Option<JoinHandle<Result<()>>>,
    /// Undoes the body's content coding (`RequestOptions::decompress`).
    content: Option<ContentDecoder>,
}

impl Http1Body {
    pub(super) fn new(
        pooled: Pooled,
        framing: Framing,
        reusable: bool,
        upload: Option<JoinHandle<Result<()>>>,
        content: Option<ContentDecoder>,
    ) -> Http1Body {
        Http1Body {
            pooled,
            decoder: BodyDecoder::new(framing),
            reusable,
            upload,
            content,
        }
    }

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
    pub(super) fn read_arrived(&mut self, out: &mut Vec<u8>, read_more: bool) -> Result<bool> {
        let io = self.pooled.connection().io().clone();
        let Some(mut reader) = io.try_read_side() else {
            return Ok(false);
        };
        loop {
            if self.take_buffered(&mut reader, out)? {
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

    /// Decode what the read half holds into `out`; true once the body is
    /// complete.
    fn take_buffered(&mut self, reader: &mut ReadSide<'_>, out: &mut Vec<u8>) -> Result<bool> {
        if !reader.buffered().is_empty() {
            let used = self.decode(reader.buffered(), out)?;
            reader.consume(used);
        }
        Ok(self.decoder.is_done())
    }

    /// Read until some of the body is in `out`, or its end; true at the end.
    pub(super) async fn read(&mut self, out: &mut Vec<u8>) -> Result<bool> {
        let io = self.pooled.connection().io().clone();
        let mut reader = io.read_side().await;
        loop {
            if self.take_buffered(&mut reader, out)? {
                return Ok(true);
            }
            if !out.is_empty() {
                return Ok(false);
            }
            if reader.fill(BODY_READ_SIZE).await? == 0 {
                self.eof(out)?;
            }
        }
    }

    /// Trailers of a chunked body, once it has ended.
    pub(super) fn trailers(&self) -> Vec<(String, String)> {
        self.decoder.trailers().to_vec()
    }

    /// Give the connection back if the body ended cleanly with nothing
    /// unexpected behind it, once the request body is out too.
    pub(super) fn end(mut self) {
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
    pub(super) fn abandon(mut self) {
        if let Some(upload) = self.upload.take() {
            upload.abort();
        }
        self.pooled.release(false);
    }
}

/// Whether a finished upload sent everything.
pub(super) fn poll_finished(upload: &mut JoinHandle<Result<()>>) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    matches!(Pin::new(upload).poll(&mut cx), Poll::Ready(Ok(Ok(()))))
}
