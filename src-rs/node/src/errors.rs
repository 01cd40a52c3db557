//! Core errors as JavaScript errors carrying the contract's codes.

use napi_derive::napi;
use pconn_core::Error;

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
    pub message: String,
    /// Why a TLS handshake failed (`unknown-issuer`, `hostname-mismatch`, ...).
    pub reason: Option<String>,
}

pub(crate) fn error_info(e: &Error) -> ErrorInfo {
    ErrorInfo {
        code: e.code().to_string(),
        message: e.to_string(),
        reason: e.reason().map(str::to_string),
    }
}

pub(crate) fn panicked(message: &str) -> Error {
    Error::Io(std::io::Error::other(format!(
        "internal error (Rust panic): {message}"
    )))
}
