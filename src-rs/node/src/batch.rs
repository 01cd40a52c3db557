//! One batch of completions as the JavaScript side receives it:
//! `onBatch(meta, slab, objects, count)`.
//!
//! - `meta` (a `Float64Array`) holds `count` records, laid out as
//!   `record` says (`[id, kind, ...]`, the rest per kind).
//! - `slab` (one `Buffer`) holds every response head and small body of the
//!   batch, back to back; `meta` gives their ranges. The façade decodes a
//!   head (latin1) or a body (`text()`: UTF-8) only when asked.
//! - `objects` holds what cannot be a number or bytes: connections, body
//!   streams, error descriptions, large bodies, read chunks.
//!
//! So a small response costs a few numbers and bytes written by Rust, not
//! a JavaScript string, a Buffer and an array slot per value.

use std::panic::AssertUnwindSafe;
use std::ptr;
use std::sync::Arc;

use napi::bindgen_prelude::ToNapiValue;
use napi::sys;
use pconn_core::exchange::Response;
use pconn_core::http1::HttpVersion;

use crate::bridge::{Completed, Fault, Outcome};
use crate::connection::NativeConnection;
use crate::errors::{error_info, panicked, undeliverable};
use crate::http::NativeBody;
use crate::record::{
    Completion, CountField, DetailsOffset, EndField, Field, PoolEventField, Record, ResponseField,
    DETAILS_BYTES, RESPONSE_HTTP11, RESPONSE_HTTP2, RESPONSE_REUSED, RESPONSE_STATUS_BITS, STRIDE,
};
use crate::runtime::panic_message;
use crate::scope::Scope;

fn millis(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Bodies up to this size travel in the slab; larger ones in their own
/// Buffer (so a kept body does not keep a whole batch alive).
const SLAB_BODY_LIMIT: usize = 16 * 1024;

/// The kind `Fault::UnknownKind` writes: no `Completion` has it.
const UNKNOWN_KIND: u32 = 0xffff;

/// Build the batch's values and call `js_cb` with them. Each completion is
/// built on its own: one that cannot be (a panic, a value the engine
/// refuses) fails its own operation and no other. If the batch's arrays
/// cannot be created at all (the environment is terminating), nothing is
/// delivered and the outcomes drop.
///
/// # Safety
/// On the environment's thread, with its live `env`; `js_cb` is a live
/// function of that environment.
pub(crate) unsafe fn deliver(
    env: sys::napi_env,
    js_cb: sys::napi_value,
    scope: &Arc<Scope>,
    batch: Vec<Completed>,
) {
    let mut slab_len = 0;
    let batch: Vec<Completed> = batch
        .into_iter()
        .map(|Completed { id, outcome }| {
            let (outcome, bytes) = sized(outcome);
            slab_len += bytes;
            Completed { id, outcome }
        })
        .collect();
    let count = batch.len();
    // SAFETY: forwarded from the caller.
    let Some(mut out) = (unsafe { Out::new(env, count, slab_len) }) else {
        return;
    };
    for (i, Completed { id, outcome }) in batch.into_iter().enumerate() {
        let mut record = out.encode_alone(outcome, scope);
        record.set(Field::Id as usize, id);
        out.meta[i * STRIDE..(i + 1) * STRIDE].copy_from_slice(&record.0);
    }
    // SAFETY: forwarded from the caller.
    unsafe { out.call(js_cb, count) };
}

/// An outcome with the slab bytes it needs; one that cannot be measured
/// becomes the failure of its operation.
fn sized(outcome: Outcome) -> (Outcome, usize) {
    match std::panic::catch_unwind(AssertUnwindSafe(|| slab_bytes(&outcome))) {
        Ok(bytes) => (outcome, bytes),
        Err(payload) => {
            let failed = Outcome::Failed(panicked(&panic_message(payload.as_ref())).into());
            (failed, 0)
        }
    }
}

/// Slab bytes an outcome needs.
fn slab_bytes(outcome: &Outcome) -> usize {
    let lines = |pairs: &mut dyn Iterator<Item = (&[u8], &[u8])>| {
        pairs.map(|(n, v)| n.len() + v.len() + 4).sum::<usize>()
    };
    match outcome {
        Outcome::Response(r) => {
            let head = &r.head;
            let mut n = head.reason().len() + 2 + lines(&mut head.headers());
            if r.body.is_complete() && !r.body.trailers().is_empty() {
                n += 2 + lines(
                    &mut r
                        .body
                        .trailers()
                        .iter()
                        .map(|(a, b)| (a.as_bytes(), b.as_bytes())),
                );
            }
            let body = r.body.ready_len();
            let details = if r.timings.is_some() {
                DETAILS_BYTES
            } else {
                0
            };
            n + details + if body <= SLAB_BODY_LIMIT { body } else { 0 }
        }
        Outcome::End(t) => lines(&mut t.iter().map(|(a, b)| (a.as_bytes(), b.as_bytes()))),
        Outcome::PoolEvent { key, detail, .. } => key.len() + detail.len(),
        _ => 0,
    }
}

/// The values being built.
struct Out<'a> {
    env: sys::napi_env,
    meta_value: sys::napi_value,
    meta: &'a mut [f64],
    slab_value: sys::napi_value,
    slab: &'a mut [u8],
    /// Next free byte of the slab.
    at: usize,
    objects: sys::napi_value,
    objects_len: u32,
    ok: bool,
}

impl Out<'_> {
    /// # Safety
    /// As `deliver`.
    unsafe fn new(env: sys::napi_env, count: usize, slab_len: usize) -> Option<Self> {
        let mut meta_buffer = ptr::null_mut();
        let mut meta_data = ptr::null_mut();
        let mut meta_value = ptr::null_mut();
        let mut slab_value = ptr::null_mut();
        let mut slab_data = ptr::null_mut();
        let mut objects = ptr::null_mut();
        let records = count * STRIDE;
        // SAFETY: live env on its thread; each call's outputs are checked
        // before use.
        let ok = unsafe {
            sys::napi_create_arraybuffer(env, records * 8, &mut meta_data, &mut meta_buffer)
                == sys::Status::napi_ok
                && sys::napi_create_typedarray(
                    env,
                    sys::TypedarrayType::float64_array,
                    records,
                    meta_buffer,
                    0,
                    &mut meta_value,
                ) == sys::Status::napi_ok
                && sys::napi_create_buffer(env, slab_len, &mut slab_data, &mut slab_value)
                    == sys::Status::napi_ok
                && sys::napi_create_array(env, &mut objects) == sys::Status::napi_ok
        };
        if !ok || (records > 0 && meta_data.is_null()) || (slab_len > 0 && slab_data.is_null()) {
            return None;
        }
        // An empty buffer may have no storage (a null pointer), which a
        // slice must not be built on, even an empty one.
        let meta_ptr = match records {
            0 => ptr::NonNull::<f64>::dangling().as_ptr(),
            _ => meta_data.cast::<f64>(),
        };
        let slab_ptr = match slab_len {
            0 => ptr::NonNull::<u8>::dangling().as_ptr(),
            _ => slab_data.cast::<u8>(),
        };
        // SAFETY: V8 allocated `records * 8` bytes for the ArrayBuffer,
        // 8-aligned (ArrayBuffer storage is aligned for any typed array),
        // and `slab_len` bytes for the Buffer (non-null when non-empty,
        // checked above; dangling and aligned when empty); both stay alive
        // while their values are reachable from this call's handle scope,
        // which outlives `Out`; nothing else writes them meanwhile.
        let (meta, slab) = unsafe {
            (
                std::slice::from_raw_parts_mut(meta_ptr, records),
                std::slice::from_raw_parts_mut(slab_ptr, slab_len),
            )
        };
        Some(Out {
            env,
            meta_value,
            meta,
            slab_value,
            slab,
            at: 0,
            objects,
            objects_len: 0,
            ok: true,
        })
    }

    /// Append `value` to `objects`; its index, as a record number.
    fn object<T: ToNapiValue>(&mut self, value: T) -> f64 {
        let index = self.objects_len;
        // SAFETY: live env on its thread (ToNapiValue's contract).
        let created = unsafe { T::to_napi_value(self.env, value) };
        match created {
            // SAFETY: live env; `objects` was created in this call.
            Ok(v) => {
                self.ok &= unsafe { sys::napi_set_element(self.env, self.objects, index, v) }
                    == sys::Status::napi_ok
            }
            Err(_) => self.ok = false,
        }
        self.objects_len += 1;
        f64::from(index)
    }

    /// A Buffer of its own holding a copy of `bytes`, in `objects`.
    fn buffer(&mut self, bytes: &[u8]) -> f64 {
        let mut buffer = ptr::null_mut();
        // SAFETY: live env; `bytes` is valid for the call and copied.
        let status = unsafe {
            sys::napi_create_buffer_copy(
                self.env,
                bytes.len(),
                bytes.as_ptr().cast(),
                ptr::null_mut(),
                &mut buffer,
            )
        };
        if status != sys::Status::napi_ok {
            self.ok = false;
            return -1.0;
        }
        let index = self.objects_len;
        // SAFETY: live env; `objects` was created in this call.
        self.ok &= unsafe { sys::napi_set_element(self.env, self.objects, index, buffer) }
            == sys::Status::napi_ok;
        self.objects_len += 1;
        f64::from(index)
    }

    /// Copy `bytes` into the slab; their range.
    fn put(&mut self, bytes: &[u8]) -> (f64, f64) {
        let start = self.at;
        self.slab[start..start + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
        (start as f64, self.at as f64)
    }

    fn header_line(&mut self, name: &[u8], value: &[u8]) {
        self.put(name);
        self.put(b": ");
        self.put(value);
        self.put(b"\r\n");
    }

    /// `encode`, isolated: a panic or a value that cannot be created fails
    /// this completion's operation, with the reason, and leaves the rest of
    /// the batch alone.
    fn encode_alone(&mut self, outcome: Outcome, scope: &Arc<Scope>) -> Record {
        self.ok = true;
        let why = match std::panic::catch_unwind(AssertUnwindSafe(|| self.encode(outcome, scope))) {
            Ok(record) if self.ok => return record,
            Ok(_) => "a JavaScript value for it could not be created".to_string(),
            Err(payload) => format!("Rust panic: {}", panic_message(payload.as_ref())),
        };
        self.clear_exception();
        self.ok = true;
        let error = self.object(error_info(&undeliverable(&why).into()));
        if self.ok {
            let mut record = Record::of(Completion::Failed);
            record.set(Field::Object as usize, error);
            return record;
        }
        // Not even the error could be made: the façade makes its own.
        self.clear_exception();
        Record::of(Completion::Lost)
    }

    /// Clear an exception a failed napi call left pending, so the next
    /// calls of the batch can succeed.
    fn clear_exception(&self) {
        let mut pending = false;
        // SAFETY: live env on its thread.
        unsafe { sys::napi_is_exception_pending(self.env, &mut pending) };
        if pending {
            let mut exception = ptr::null_mut();
            // SAFETY: live env on its thread; an exception is pending.
            unsafe { sys::napi_get_and_clear_last_exception(self.env, &mut exception) };
        }
    }

    /// An outcome's record (but its id).
    fn encode(&mut self, outcome: Outcome, scope: &Arc<Scope>) -> Record {
        const OBJECT: usize = Field::Object as usize;
        match outcome {
            Outcome::Done => Record::of(Completion::Done),
            Outcome::Count(n) => {
                let mut record = Record::of(Completion::Count);
                record.set(CountField::Value as usize, f64::from(n));
                record
            }
            Outcome::Failed(failure) => {
                let error = self.object(error_info(&failure));
                let mut record = Record::of(Completion::Failed);
                record.set(OBJECT, error);
                record
            }
            Outcome::Connection(pooled) => {
                let conn = self.object(NativeConnection::new(pooled, scope));
                let mut record = Record::of(Completion::Connection);
                record.set(OBJECT, conn);
                record
            }
            Outcome::Bytes(bytes) => {
                let buffer = bytes.map_or(-1.0, |b| self.buffer(&b));
                let mut record = Record::of(Completion::Bytes);
                record.set(OBJECT, buffer);
                record
            }
            Outcome::Response(response) => self.response(*response, scope),
            Outcome::End(trailers) => {
                let start = self.at as f64;
                for (name, value) in &trailers {
                    self.header_line(name.as_bytes(), value.as_bytes());
                }
                let mut record = Record::of(Completion::End);
                record
                    .set(EndField::TrailersStart as usize, start)
                    .set(EndField::TrailersEnd as usize, self.at as f64);
                record
            }
            Outcome::PoolEvent {
                kind,
                value,
                key,
                detail,
            } => {
                let key = self.put(key.as_bytes());
                let detail = self.put(detail.as_bytes());
                let mut record = Record::of(Completion::PoolEvent);
                record
                    .set(PoolEventField::Kind as usize, kind as i32 as f64)
                    .set(PoolEventField::Value as usize, value)
                    .set(PoolEventField::KeyStart as usize, key.0)
                    .set(PoolEventField::KeyEnd as usize, key.1)
                    .set(PoolEventField::DetailStart as usize, detail.0)
                    .set(PoolEventField::DetailEnd as usize, detail.1);
                record
            }
            Outcome::Fault(Fault::Panic) => panic!("a completion that panics, made by a test"),
            Outcome::Fault(Fault::UnknownKind) => Record::of_kind(UNKNOWN_KIND),
        }
    }

    /// Lay a response out: head (and trailers) then a small body in the
    /// slab, the rest in `objects`.
    fn response(&mut self, mut r: Response, scope: &Arc<Scope>) -> Record {
        let body = r.body.next_chunk_ready();
        let complete = r.body.is_complete();
        let h = &r.head;
        let mut flags = u32::from(h.status) & RESPONSE_STATUS_BITS;
        match h.version {
            HttpVersion::Http11 => flags |= RESPONSE_HTTP11,
            HttpVersion::Http2 => flags |= RESPONSE_HTTP2,
            HttpVersion::Http10 => {}
        }
        if r.reused {
            flags |= RESPONSE_REUSED;
        }
        let head_start = self.at;
        self.put(h.reason());
        self.put(b"\r\n");
        for (name, value) in h.headers() {
            self.header_line(name, value);
        }
        if complete && !r.body.trailers().is_empty() {
            self.put(b"\r\n");
            for (name, value) in r.body.trailers() {
                self.header_line(name.as_bytes(), value.as_bytes());
            }
        }
        let head_end = self.at;
        let (body_end, body_object) = if body.len() <= SLAB_BODY_LIMIT {
            (self.put(&body).1, -1.0)
        } else {
            (-1.0, self.buffer(&body))
        };
        let rest = if complete {
            -1.0
        } else {
            self.object(NativeBody::new(r.body, r.key, r.peer, scope))
        };
        let details = match r.timings {
            Some(t) => {
                let at = self.at;
                let address = r.peer.map(|a| a.ip().to_string()).unwrap_or_default();
                let numbers = [
                    (DetailsOffset::QueuedMs, millis(t.queued)),
                    (DetailsOffset::ConnectMs, millis(t.connect)),
                    (DetailsOffset::TlsMs, millis(t.tls)),
                    (DetailsOffset::HeadMs, millis(t.head)),
                    (DetailsOffset::Retried, f64::from(u8::from(t.retried))),
                    (
                        DetailsOffset::Port,
                        r.peer.map_or(-1.0, |a| f64::from(a.port())),
                    ),
                    (DetailsOffset::AddressLength, address.len() as f64),
                ];
                for (offset, n) in numbers {
                    debug_assert_eq!(self.at, at + offset as usize);
                    self.put(&n.to_le_bytes());
                }
                self.put(address.as_bytes());
                at as f64
            }
            None => -1.0,
        };
        let mut record = Record::of(Completion::Response);
        record
            .set(ResponseField::Flags as usize, f64::from(flags))
            .set(ResponseField::ConnectionId as usize, r.connection_id as f64)
            .set(ResponseField::HeadStart as usize, head_start as f64)
            .set(ResponseField::HeadEnd as usize, head_end as f64)
            .set(ResponseField::BodyEnd as usize, body_end)
            .set(ResponseField::BodyObject as usize, body_object)
            .set(ResponseField::Rest as usize, rest)
            .set(ResponseField::Details as usize, details);
        record
    }

    /// # Safety
    /// As `deliver`.
    unsafe fn call(self, js_cb: sys::napi_value, count: usize) {
        let env = self.env;
        let mut undefined = ptr::null_mut();
        let mut count_value = ptr::null_mut();
        // SAFETY: live env on its thread; `js_cb` is the function given to
        // `init_bridge`, kept alive by the threadsafe function.
        unsafe {
            sys::napi_get_undefined(env, &mut undefined);
            sys::napi_create_uint32(env, count as u32, &mut count_value);
            let args = [self.meta_value, self.slab_value, self.objects, count_value];
            let status = sys::napi_call_function(
                env,
                undefined,
                js_cb,
                args.len(),
                args.as_ptr(),
                ptr::null_mut(),
            );
            if status == sys::Status::napi_pending_exception {
                let mut exception = ptr::null_mut();
                sys::napi_get_and_clear_last_exception(env, &mut exception);
                sys::napi_fatal_exception(env, exception);
            }
        }
    }
}
