//! Core errors as JavaScript errors carrying the contract's codes.

use napi_derive::napi;
use pconn_core::Error;

use crate::bridge::Failure;

/// The stable code of an error thrown synchronously: napi-rs sets it as
/// the JavaScript error's `code`.
pub struct Code(&'static str);

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        self.0
    }
}

/// A synchronous throw with the contract's code.
pub(crate) fn throw(e: Error) -> napi::Error<Code> {
    napi::Error::new(Code(e.code()), e.to_string())
}

/// A failure of napi itself (the environment is going away, out of memory).
pub(crate) fn internal(e: napi::Error) -> napi::Error<Code> {
    napi::Error::new(Code("EIO"), format!("pconn internal error: {}", e.reason))
}

/// An error of an asynchronous operation, as the façade receives it.
#[napi(object)]
pub struct ErrorInfo {
    pub code: String,
    /// What failed, naming the peer (`... (https://example.com:443)`).
    pub message: String,
    /// Why TLS failed (`unknown-issuer`, `hostname-mismatch`, ...), or
    /// `chunked-eof` for a chunked body cut short.
    pub reason: Option<String>,
    /// The host and port of the key the operation was for.
    pub host: Option<String>,
    pub port: Option<u32>,
    /// The IP address the failure happened at, when known: the connect
    /// attempt's, or the connection's peer.
    pub address: Option<String>,
    /// The underlying error's own message (becomes the error's `cause`).
    pub cause: Option<String>,
    /// The underlying error's code, when it has one (the `cause`'s `code`).
    pub cause_code: Option<String>,
    /// The status a proxy answered with (`PCONN_PROXY`).
    pub status_code: Option<u32>,
    /// As Node's system errors: the negated OS error number (or libuv's).
    pub errno: Option<i32>,
    /// As Node's system errors: `connect`, `getaddrinfo`.
    pub syscall: Option<String>,
}

pub(crate) fn error_info(failure: &Failure) -> ErrorInfo {
    let Failure {
        error,
        peer,
        address,
    } = failure;
    let message = match peer {
        Some(key) => format!("{error} ({key})"),
        None => error.to_string(),
    };
    ErrorInfo {
        code: error.code().to_string(),
        message,
        reason: error.reason().map(str::to_string),
        host: peer.as_ref().map(|k| k.host().to_string()),
        port: peer.as_ref().map(|k| u32::from(k.port())),
        address: error.address().or(*address).map(|a| a.ip().to_string()),
        cause: error.source_message(),
        cause_code: error.cause_code().map(str::to_string),
        status_code: error.status().map(u32::from),
        errno: error.errno(),
        syscall: error.syscall().map(str::to_string),
    }
}

pub(crate) fn panicked(message: &str) -> Error {
    Error::Io(std::io::Error::other(format!(
        "internal error (Rust panic): {message}"
    )))
}

/// An operation whose result was made but could not be handed to
/// JavaScript.
pub(crate) fn undeliverable(why: &str) -> Error {
    Error::Io(std::io::Error::other(format!(
        "internal error: the result could not be delivered ({why})"
    )))
}
