//! One HTTP exchange over a pooled connection, in the protocol the
//! connection speaks: HTTP/1.1, or a stream of a shared HTTP/2 connection.
//!
//! - `target`: a request URL as a pool key and a request target;
//! - `prepared`: a request validated and encoded once, its retry rules,
//!   the per-request options and what an exchange reports;
//! - `send`: take a connection, attempt, go again when that is safe;
//! - `http1`, `http2`: one attempt in each protocol;
//! - `response_body`, `http1_body`, `http2_body`: the response and its
//!   body, read on demand.

mod http1;
mod http1_body;
mod http2;
mod http2_body;
mod prepared;
mod response_body;
mod send;
mod target;

pub use prepared::{ExchangeError, Prepared, RequestOptions, Timings};
pub use response_body::{Response, ResponseBody, EAGER_BODY_LIMIT};
pub use send::{send_prepared, start_now, Started};
pub use target::Target;
