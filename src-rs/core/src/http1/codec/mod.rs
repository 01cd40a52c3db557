//! HTTP/1.1 on the wire, as pure functions over bytes: nothing here owns a
//! socket or waits.
//!
//! - `request`: validation (no CR, LF or NUL anywhere) and encoding;
//! - `response`: head parsing, framing and keep-alive rules (and HTTP/2's
//!   decoded fields laid out as a head);
//! - `body`: Content-Length, chunked and close-delimited decoding;
//! - `content_coding`: gzip, deflate and br bodies decoded as they arrive.

mod body;
mod content_coding;
mod request;
mod response;

pub use body::BodyDecoder;
pub use content_coding::ContentDecoder;
pub use request::{is_idempotent_method, BodyFraming, RequestBody, RequestHead};
pub use response::{parse_head, Framing, HttpVersion, ResponseHead, MAX_HEADERS, MAX_HEAD_BYTES};
