//! The layout of a completion record, defined once: the batch writes it
//! (`batch`), the façade reads it (`src-ts/native.ts`), both by these
//! names, exported to TypeScript as constant enums.
//!
//! A batch's `meta` (a `Float64Array`) holds one record of
//! `COMPLETION_STRIDE` numbers per completion: its id and kind, then the
//! fields of that kind; `-1` marks an absent value. Byte ranges point into
//! the batch's `slab`; indices into its `objects` array.

use napi_derive::napi;

/// What a completion carries (the record's `Field::Kind`).
#[napi]
pub enum Completion {
    /// Nothing.
    Done,
    /// `Field::Object`: an `ErrorInfo`.
    Failed,
    /// `Field::Object`: a `NativeConnection`.
    Connection,
    /// `Field::Object`: a Buffer, or -1 at the end of the stream.
    Bytes,
    /// An HTTP response: see `ResponseField`.
    Response,
    /// The end of a streamed body: see `EndField`.
    End,
    /// Something happened to a pool's connections (operation id 0): see
    /// `PoolEventField`.
    PoolEvent,
    /// A number (`CountField::Value`): connections made ready by `warm`.
    Count,
    /// The operation failed because its result could not be delivered and
    /// no error object could be made either: the façade makes the error.
    Lost,
}

/// The fields every record has, and the one of `Failed`, `Connection`
/// and `Bytes`.
#[napi]
pub enum Field {
    Id = 0,
    Kind = 1,
    /// An index into `objects`.
    Object = 2,
}

/// The fields of a `Response` record.
#[napi]
pub enum ResponseField {
    /// Status code and flags: `RESPONSE_STATUS_BITS`, `RESPONSE_HTTP11`,
    /// `RESPONSE_REUSED`.
    Flags = 2,
    ConnectionId = 3,
    /// The head in the slab: reason, CRLF, then `name: value` lines; for a
    /// complete chunked body, an empty line and the trailers.
    HeadStart = 4,
    HeadEnd = 5,
    /// The end of the body read so far in the slab (it starts at the
    /// head's end), or -1 when it is in its own Buffer.
    BodyEnd = 6,
    /// `objects` index of the body's own Buffer, or -1.
    BodyObject = 7,
    /// `objects` index of the `NativeBody` with the rest, or -1.
    Rest = 8,
    /// Slab offset of the exchange's details (see `DetailsOffset`), or -1.
    Details = 9,
}

/// The fields of an `End` record: its trailer lines in the slab.
#[napi]
pub enum EndField {
    TrailersStart = 2,
    TrailersEnd = 3,
}

/// The fields of a `PoolEvent` record.
#[napi]
pub enum PoolEventField {
    /// Which event: see `PoolEventKind`.
    Kind = 2,
    /// The connection's id (closed), the learned timeout in milliseconds
    /// (idle timeout learned), 0 (circuit).
    Value = 3,
    KeyStart = 4,
    KeyEnd = 5,
    /// The close reason, or the circuit's new state.
    DetailStart = 6,
    DetailEnd = 7,
}

/// The field of a `Count` record.
#[napi]
pub enum CountField {
    Value = 2,
}

/// What a `PoolEvent` record reports.
#[napi]
pub enum PoolEventKind {
    Closed = 0,
    IdleTimeoutLearned = 1,
    Circuit = 2,
}

/// A detailed response's numbers in the slab, from `ResponseField::Details`:
/// little-endian f64 at these byte offsets, then the peer's address
/// (latin1, `AddressLength` bytes). Numbers in the slab, not an object:
/// building a JavaScript object per response costs a property write per
/// field.
#[napi]
pub enum DetailsOffset {
    QueuedMs = 0,
    ConnectMs = 8,
    TlsMs = 16,
    HeadMs = 24,
    /// 1 when a stale connection made the request go again.
    Retried = 32,
    /// -1 over a Unix socket.
    Port = 40,
    AddressLength = 48,
    Address = 56,
}

/// Slab bytes a detailed response's numbers and address take at most.
pub(crate) const DETAILS_BYTES: usize = DetailsOffset::Address as usize + 39;

/// Numbers per record.
#[napi]
pub const COMPLETION_STRIDE: u32 = ResponseField::Details as u32 + 1;
pub(crate) const STRIDE: usize = COMPLETION_STRIDE as usize;

/// `ResponseField::Flags`: the status code in these bits ...
#[napi]
pub const RESPONSE_STATUS_BITS: u32 = 0x3ff;
/// ... this bit set for HTTP/1.1 ...
#[napi]
pub const RESPONSE_HTTP11: u32 = 1 << 10;
/// ... this one when the connection served an earlier request ...
#[napi]
pub const RESPONSE_REUSED: u32 = 1 << 11;
/// ... and this one for HTTP/2.
#[napi]
pub const RESPONSE_HTTP2: u32 = 1 << 12;

/// One record, filled by name.
pub(crate) struct Record(pub(crate) [f64; STRIDE]);

impl Record {
    pub(crate) fn of(kind: Completion) -> Record {
        Record::of_kind(kind as u32)
    }

    /// A record of any kind number (a test writes one the façade does not know).
    pub(crate) fn of_kind(kind: u32) -> Record {
        let mut record = Record([-1.0; STRIDE]);
        record.0[Field::Kind as usize] = f64::from(kind);
        record
    }

    pub(crate) fn set(&mut self, field: usize, value: f64) -> &mut Self {
        self.0[field] = value;
        self
    }
}
