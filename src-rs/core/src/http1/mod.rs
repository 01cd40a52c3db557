//! HTTP/1.1 over pooled connections, exchanged entirely in Rust so that a
//! small response crosses into JavaScript once.
//!
//! Organization:
//! - `codec`: the bytes: request validation and encoding, response head
//!   parsing with its framing and keep-alive rules, body decoding. Pure
//!   functions over buffers, used by the client and by proxy tunnels;
//! - `client`: one exchange over a pooled connection: start, send, read
//!   the head, retry on a stale connection, stream the body back.

pub mod client;
pub mod codec;

pub use client::{
    send_prepared, start_now, ExchangeError, Prepared, RequestOptions, Response, ResponseBody,
    Started, Target, Timings, EAGER_BODY_LIMIT,
};
pub use codec::{
    is_idempotent_method, parse_head, BodyDecoder, BodyFraming, Framing, RequestBody, RequestHead,
    ResponseHead, MAX_HEADERS, MAX_HEAD_BYTES,
};
