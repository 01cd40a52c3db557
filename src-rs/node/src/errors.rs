//! Core errors as JS errors carrying the contract's codes.

use napi_derive::napi;
use pconn_core::Error;

/// An error crossing to JavaScript: the façade turns it into a `PconnError`.
#[napi(object)]
pub struct ErrorInfo {
    pub code: String,
    pub message: String,
    /// Why a TLS handshake failed (`unknown-issuer`, `hostname-mismatch`, ...).
    pub reason: Option<String>,
}

impl From<&Error> for ErrorInfo {
    fn from(e: &Error) -> ErrorInfo {
        ErrorInfo {
            code: e.code().to_string(),
            message: e.to_string(),
            reason: e.reason().map(str::to_string),
        }
    }
}

/// Separator between code, reason and message in a thrown error's message;
/// the façade splits on it (napi-rs sets `code` to a napi status only).
pub(crate) const SEP: char = '\u{1f}';

/// A synchronous throw with the contract's code.
pub(crate) fn throw(e: Error) -> napi::Error {
    napi::Error::from_reason(format!(
        "{}{SEP}{}{SEP}{}",
        e.code(),
        e.reason().unwrap_or(""),
        e
    ))
}

pub(crate) fn panicked(message: &str) -> Error {
    Error::Io(std::io::Error::other(format!(
        "internal error (Rust panic): {message}"
    )))
}
