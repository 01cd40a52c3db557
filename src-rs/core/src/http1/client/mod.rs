//! One HTTP/1.1 exchange over a pooled connection.
//!
//! - `target`: a request URL as a pool key and a request target;
//! - `exchange`: prepare, start, send while reading the head, retry a
//!   request that met a stale connection;
//! - `response_body`: the response and its body, read on demand.

mod exchange;
mod response_body;
mod target;

pub use exchange::{
    send_prepared, start_now, ExchangeError, Prepared, RequestOptions, Started, Timings,
};
pub use response_body::{Response, ResponseBody, EAGER_BODY_LIMIT};
pub use target::Target;
