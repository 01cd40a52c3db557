//! HTTP/1.1 on the wire: request validation and encoding, response head
//! parsing with its framing and keep-alive rules, body decoding. Pure
//! functions over buffers, used by the exchange (`crate::exchange`) and by
//! proxy tunnels.

pub mod codec;

pub use codec::{
    is_idempotent_method, parse_head, BodyDecoder, BodyFraming, Framing, HttpVersion, RequestBody,
    RequestHead, ResponseHead, MAX_HEADERS, MAX_HEAD_BYTES,
};
