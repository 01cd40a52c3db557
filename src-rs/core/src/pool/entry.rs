//! A connection together with what the pool knows about it.

use tokio::time::Instant;

/// A connection and its bookkeeping; it moves between the idle list and
/// loans (`Pooled`) as one piece.
pub(crate) struct Entry<K, C> {
    pub(crate) id: u64,
    pub(crate) key: K,
    /// Loans served, this one included.
    pub(crate) uses: u64,
    /// When `maxLifetimeMs` (with its jitter) retires it.
    pub(crate) retire_at: Option<Instant>,
    /// When it was last parked: if the server closes it while parked, how
    /// long the server let it idle.
    pub(crate) parked_at: Instant,
    pub(crate) conn: C,
}

impl<K, C> Entry<K, C> {
    /// Whether `max_uses` or the lifetime says it must serve no more.
    pub(crate) fn is_spent(&self, max_uses: u64, now: Instant) -> bool {
        (max_uses > 0 && self.uses >= max_uses) || self.retire_at.is_some_and(|t| t <= now)
    }
}
