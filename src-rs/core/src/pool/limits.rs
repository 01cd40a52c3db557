//! The pool's settings: limits, timeouts and order. The one home of their
//! defaults (the JavaScript façade reads them from here).

use std::time::Duration;

use super::circuit::CircuitBreaker;

/// Which idle connection `acquire` takes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheduling {
    /// Most recently released first: keeps few connections warm, lets the rest expire.
    #[default]
    Lifo,
    /// Least recently released first: spreads load over every connection.
    Fifo,
}

/// Every setting of the pool itself. `None` means "no limit" for limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolLimits {
    /// Idle connections kept per key.
    pub max_idle_per_host: usize,
    /// Connections per key: idle, active, connecting (a multiplexed
    /// connection counts once, whatever its streams).
    pub max_connections_per_host: Option<usize>,
    /// Connections over every key.
    pub max_connections: Option<usize>,
    /// Waiting acquires before `PCONN_QUEUE_FULL`.
    pub max_pending: Option<usize>,
    pub idle_timeout: Duration,
    /// Zero = unlimited.
    pub max_lifetime: Duration,
    /// Loans per connection (requests, or streams of a multiplexed
    /// connection); zero = unlimited.
    pub max_uses: u64,
    pub scheduling: Scheduling,
    /// Zero = wait forever.
    pub acquire_timeout: Duration,
    /// Retire a key's idle connections before the idle time after which
    /// its server was seen to close them.
    pub learn_idle_timeout: bool,
    /// Fail a key's acquires at once after repeated connect failures.
    pub circuit_breaker: Option<CircuitBreaker>,
    /// Idle connections kept ready for every key in use (opened again as
    /// they close); zero = none.
    pub min_idle_per_host: usize,
}

impl Default for PoolLimits {
    fn default() -> Self {
        PoolLimits {
            max_idle_per_host: 256,
            max_connections_per_host: None,
            max_connections: None,
            max_pending: None,
            idle_timeout: Duration::from_millis(4_000),
            max_lifetime: Duration::ZERO,
            max_uses: 0,
            scheduling: Scheduling::Lifo,
            acquire_timeout: Duration::ZERO,
            learn_idle_timeout: true,
            circuit_breaker: None,
            min_idle_per_host: 0,
        }
    }
}

impl PoolLimits {
    /// The idle connections to keep per key: `min_idle_per_host`, but no
    /// more than `max_idle_per_host` keeps (more would be closed at once).
    pub(crate) fn idle_floor(&self) -> usize {
        self.min_idle_per_host.min(self.max_idle_per_host)
    }
}
