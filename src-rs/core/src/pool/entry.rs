//! A connection together with what the pool knows about it.

use tokio::time::Instant;

use crate::key::Key;

/// A connection and its bookkeeping; it moves between the idle list and
/// loans (`Pooled`) as one piece.
pub(crate) struct Entry<C> {
    pub(crate) id: u64,
    pub(crate) key: Key,
    /// Checkouts served, this one included.
    pub(crate) uses: u64,
    /// When `maxLifetimeMs` (with its jitter) retires it.
    pub(crate) retire_at: Option<Instant>,
    pub(crate) conn: C,
}
