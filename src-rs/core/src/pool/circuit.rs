//! The per-key circuit breaker: after `failures` connect failures in a
//! row, a key's acquires fail at once for `cooldown`; then one trial
//! connect decides whether it closes again.

use std::time::Duration;

use tokio::time::Instant;

use crate::error::Error;

/// `circuitBreaker`: when a key's circuit opens and how long it stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreaker {
    /// Connect failures in a row that open the circuit (at least 1).
    pub failures: u32,
    /// How long it stays open before one trial connect is let through.
    pub cooldown: Duration,
}

/// What `stats()` and `pconn:circuit` show of a key's circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CircuitState {
    #[default]
    Closed,
    Open,
    HalfOpen,
}

impl CircuitState {
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half-open",
        }
    }
}

/// The last connect failure, kept to be the cause of the refusals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LastFailure {
    code: &'static str,
    message: String,
}

/// One key's circuit.
#[derive(Debug, Clone, Default)]
pub(crate) struct Circuit {
    state: CircuitState,
    /// Connect failures since the last success.
    failures_in_a_row: u32,
    /// When an open circuit lets a trial through.
    open_until: Option<Instant>,
    /// Half-open: the trial connect under way, by its number.
    trial_in_flight: Option<Trial>,
    /// Trials begun so far, to number the next.
    trials: Trial,
    last_failure: Option<LastFailure>,
}

/// A half-open circuit's trial connect, by number.
pub(crate) type Trial = u32;

/// What a connect's outcome did to a circuit, for `pconn:circuit`.
pub(crate) type Transition = Option<CircuitState>;

impl Circuit {
    pub(crate) fn state(&self) -> CircuitState {
        self.state
    }

    /// Whether an acquire may go on now; an open circuit whose cooldown
    /// passed turns half-open (the transition is returned with the verdict).
    /// A half-open circuit lets acquires on only to connect as the trial
    /// (`may_connect`) or to use a connection already open.
    pub(crate) fn admit(&mut self, now: Instant) -> (bool, Transition) {
        match self.state {
            CircuitState::Closed => (true, None),
            CircuitState::Open if self.open_until.is_some_and(|t| t <= now) => {
                self.state = CircuitState::HalfOpen;
                self.trial_in_flight = None;
                (true, Some(CircuitState::HalfOpen))
            }
            CircuitState::Open => (false, None),
            CircuitState::HalfOpen => (true, None),
        }
    }

    /// Whether a connect may start now: always with the circuit closed;
    /// half-open, only the one trial. Asked before room is made for the
    /// connect, so a refused acquire closes no idle connection.
    pub(crate) fn may_connect(&self) -> bool {
        match self.state {
            CircuitState::Closed => true,
            CircuitState::HalfOpen => self.trial_in_flight.is_none(),
            CircuitState::Open => false,
        }
    }

    /// A connect starts (`may_connect` said yes); the trial's number when
    /// it is the half-open circuit's trial.
    pub(crate) fn connecting(&mut self) -> Option<Trial> {
        if self.state != CircuitState::HalfOpen {
            return None;
        }
        self.trials = self.trials.wrapping_add(1);
        self.trial_in_flight = Some(self.trials);
        self.trial_in_flight
    }

    /// Whether acquires may wait in the queue (not while a trial decides).
    pub(crate) fn may_queue(&self) -> bool {
        self.state == CircuitState::Closed
    }

    /// A connect of the key succeeded.
    pub(crate) fn succeeded(&mut self) -> Transition {
        self.failures_in_a_row = 0;
        self.trial_in_flight = None;
        self.open_until = None;
        let was = std::mem::replace(&mut self.state, CircuitState::Closed);
        (was != CircuitState::Closed).then_some(CircuitState::Closed)
    }

    /// A connect of the key failed with `error`: the circuit opens at the
    /// threshold, or again when the trial failed.
    pub(crate) fn failed(
        &mut self,
        breaker: &CircuitBreaker,
        error: &Error,
        now: Instant,
    ) -> Transition {
        self.failures_in_a_row = self.failures_in_a_row.saturating_add(1);
        self.trial_in_flight = None;
        self.last_failure = Some(LastFailure {
            code: error.code(),
            message: error.to_string(),
        });
        let opens = match self.state {
            CircuitState::Closed => self.failures_in_a_row >= breaker.failures,
            CircuitState::HalfOpen => true,
            CircuitState::Open => false,
        };
        if !opens {
            return None;
        }
        self.state = CircuitState::Open;
        self.open_until = Some(now + breaker.cooldown);
        Some(CircuitState::Open)
    }

    /// Trial `trial` was given up (aborted, the pool closed) without an
    /// answer: another may be tried, unless a newer trial is under way.
    pub(crate) fn abandoned(&mut self, trial: Trial) {
        if self.trial_in_flight == Some(trial) {
            self.trial_in_flight = None;
        }
    }

    /// The error an acquire refused by the circuit fails with.
    pub(crate) fn refusal(&self) -> Error {
        let (cause_code, cause) = match &self.last_failure {
            Some(f) => (f.code, f.message.clone()),
            None => ("PCONN_CIRCUIT_OPEN", String::new()),
        };
        Error::CircuitOpen {
            failures: self.failures_in_a_row,
            half_open: self.state == CircuitState::HalfOpen,
            cause_code,
            cause,
        }
    }
}
