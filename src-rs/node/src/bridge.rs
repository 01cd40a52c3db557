//! Carries async completions from the I/O threads back to the Node thread.
//!
//! One threadsafe function, created once, replaces a Promise-plus-
//! threadsafe-function per call: an operation is started with an id, and its
//! outcome arrives as `onComplete(id, error, value, status, head, stream)`
//! (the last three only for HTTP responses: positional values are far
//! cheaper to create than an object). Node drains everything queued in one
//! wake-up, so completions batch for free under load.
//!
//! The function never holds the event loop open by itself (it is weak): the
//! façade keeps the loop referenced exactly while operations are pending, so
//! an idle pool never keeps the process alive.

use std::sync::OnceLock;

use napi::bindgen_prelude::{Buffer, Either4, FnArgs, Function, Null, ToNapiValue};
use napi::sys;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use napi_derive::napi;

use crate::connection::NativeConnection;
use crate::errors::ErrorInfo;
use crate::http::{NativeBody, ResponseHandoff};

/// What a finished operation yields.
pub(crate) enum Value {
    /// A connection, with its grant number when it was handed over to a
    /// waiting acquire (the façade delivers those in grant order).
    Connection(NativeConnection, Option<u64>),
    Bytes(Option<Vec<u8>>),
    Done,
    Response(ResponseHandoff),
    /// The end of a body, with its trailers as a header block.
    Trailers(String),
}

/// Bytes handed to JavaScript as a Buffer holding its own copy. V8 frees it
/// with the buffer; napi-rs' zero-copy buffers instead need a finalizer per
/// buffer, which made garbage collection the main cost of large bodies.
struct CopiedBytes(Vec<u8>);

impl ToNapiValue for CopiedBytes {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        let mut buffer = std::ptr::null_mut();
        let mut data = std::ptr::null_mut();
        // SAFETY: the caller guarantees `env` is a live env on its own thread
        // (trait contract); `val.0` is alive for the whole call and
        // napi_create_buffer_copy copies its `len` bytes before returning.
        let status = unsafe {
            sys::napi_create_buffer_copy(
                env,
                val.0.len(),
                val.0.as_ptr().cast(),
                &mut data,
                &mut buffer,
            )
        };
        if status == sys::Status::napi_ok {
            Ok(buffer)
        } else {
            Err(napi::Error::new(
                napi::Status::from(status),
                "could not create a Buffer",
            ))
        }
    }
}

type Payload = Either4<NativeConnection, CopiedBytes, Null, String>;
type Args = FnArgs<(
    u32,
    Option<ErrorInfo>,
    Option<Payload>,
    Option<f64>,
    Option<String>,
    Option<NativeBody>,
)>;
type CompletionFn =
    ThreadsafeFunction<(u32, Result<Value, ErrorInfo>), (), Args, Status, false, true>;

static BRIDGE: OnceLock<CompletionFn> = OnceLock::new();

fn to_args((id, outcome): (u32, Result<Value, ErrorInfo>)) -> Args {
    let value = match outcome {
        Err(e) => return (id, Some(e), None, None, None, None).into(),
        Ok(Value::Response(r)) => {
            return (
                id,
                None,
                Some(Either4::B(CopiedBytes(r.body))),
                Some(r.status),
                Some(r.head),
                r.stream,
            )
                .into()
        }
        Ok(Value::Connection(c, grant)) => {
            return (
                id,
                None,
                Some(Either4::A(c)),
                grant.map(|g| g as f64),
                None,
                None,
            )
                .into()
        }
        Ok(Value::Bytes(Some(b))) => Some(Either4::B(CopiedBytes(b))),
        Ok(Value::Bytes(None)) => Some(Either4::C(Null)),
        Ok(Value::Done) => None,
        Ok(Value::Trailers(t)) => Some(Either4::D(t)),
    };
    (id, None, value, None, None, None).into()
}

/// Install the completion callback (once per process; the façade calls it
/// when the module loads).
// The type is spelled out (not `Args`) so the generated .d.ts names it.
#[allow(clippy::type_complexity)]
#[napi]
pub fn init_bridge(
    on_complete: Function<
        FnArgs<(
            u32,
            Option<ErrorInfo>,
            Option<Either4<NativeConnection, Buffer, Null, String>>,
            Option<f64>,
            Option<String>,
            Option<NativeBody>,
        )>,
        (),
    >,
) -> napi::Result<()> {
    if BRIDGE.get().is_some() {
        return Ok(());
    }
    let tsfn: CompletionFn = on_complete
        .build_threadsafe_function()
        .weak::<true>()
        .build_callback(|ctx| Ok(to_args(ctx.value)))?;
    let _ = BRIDGE.set(tsfn);
    Ok(())
}

/// Whether `initBridge` ran; operations cannot report back before it.
pub(crate) fn ready() -> napi::Result<()> {
    match BRIDGE.get() {
        Some(_) => Ok(()),
        None => Err(napi::Error::from_reason("pconn: initBridge was not called")),
    }
}

/// Deliver an outcome (any thread).
pub(crate) fn complete(id: u32, outcome: Result<Value, ErrorInfo>) {
    if let Some(tsfn) = BRIDGE.get() {
        tsfn.call((id, outcome), ThreadsafeFunctionCallMode::NonBlocking);
    }
}
