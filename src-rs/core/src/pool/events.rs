//! What the pool tells its listeners, after the step that caused it has
//! released the lock: connections it closed, idle timeouts it learned,
//! circuits that changed state.

use std::sync::Arc;
use std::time::Duration;

use super::circuit::CircuitState;
use super::stats::CloseReason;

/// One thing that happened to a key's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolEvent {
    /// The connection `id` closed.
    Closed { id: u64, reason: CloseReason },
    /// The server was seen to close idle connections after this long.
    IdleTimeoutLearned(Duration),
    /// The key's circuit breaker changed state.
    Circuit(CircuitState),
}

/// Called with every event of the pool and the key it concerns.
pub type EventListener<K> = Arc<dyn Fn(&K, PoolEvent) + Send + Sync>;
