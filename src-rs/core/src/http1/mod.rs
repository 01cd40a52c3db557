//! HTTP/1.1 over pooled connections, exchanged entirely in Rust so that a
//! small response crosses into JavaScript once.
//!
//! Organization:
//! - `target`: a request URL as a pool key and a request target;
//! - `request`: validation (no CR, LF or NUL anywhere) and encoding;
//! - `response`: head parsing, framing and keep-alive rules;
//! - `body`: Content-Length, chunked and close-delimited decoding;
//! - `exchange`: the request/response flow, eager small bodies, retries.

mod body;
mod exchange;
mod request;
mod response;
mod target;

pub use body::BodyDecoder;
pub use exchange::{
    send_prepared, start_now, ExchangeError, Prepared, RequestOptions, Response, ResponseBody,
    Started, Timings, EAGER_BODY_LIMIT,
};
pub use request::{is_idempotent_method, BodyFraming, RequestBody, RequestHead};
pub use response::{parse_head, Framing, ResponseHead, MAX_HEADERS, MAX_HEAD_BYTES};
pub use target::Target;
