//! The per-sensor state machine: the Nagios/Icinga soft/hard model with
//! recovery hysteresis and flap detection.
//!
//! - `up` → one failure → `soft` (re-checked at the retry interval);
//! - `soft` → `fail_after` consecutive failures → `down` (hard);
//!   a success while soft → `up` again (it was a blip);
//! - `down` → a success → `recovering`; `recover_after` consecutive
//!   successes → `up`; a failure while recovering → `down`.
//! - Flapping: the weighted share of state changes among the last 21 check
//!   outcomes above [`FLAP_HIGH`] marks the sensor flapping, until it falls
//!   below [`FLAP_LOW`] (hysteresis, as Nagios does).
//!
//! Pure logic: no I/O, no clock (times are passed in), so it is tested
//! exhaustively here. A `warn` result counts as success, `fail` and `error`
//! as failure.

use outpost_types::Status;
use serde::Serialize;
use std::collections::VecDeque;

/// Outcomes remembered for flap detection (Nagios uses 21).
pub const FLAP_WINDOW: usize = 21;
/// Percent of weighted state changes at which flapping starts.
pub const FLAP_HIGH: f64 = 40.0;
/// Percent below which flapping stops.
pub const FLAP_LOW: f64 = 20.0;

/// The state of a sensor (defined with the status document it appears in).
pub use outpost_types::status::State;

/// A change of state, with why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    /// Before.
    pub from: State,
    /// After.
    pub to: State,
    /// Human reason ("3 consecutive failures: connection refused").
    pub reason: String,
    /// When (Unix ms).
    pub at_ms: i64,
}

/// What the machine needs from the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Failures before hard down.
    pub fail_after: u32,
    /// Successes before up again.
    pub recover_after: u32,
}

/// The machine for one sensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    policy: Policy,
    state: State,
    since_ms: i64,
    consecutive_failures: u32,
    consecutive_successes: u32,
    history: VecDeque<bool>,
    flapping: bool,
}

/// What one result did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Step {
    /// A state change, if any.
    pub transition: Option<Transition>,
    /// Flapping started (`Some(true)`) or stopped (`Some(false)`).
    pub flapping_changed: Option<bool>,
}

impl Machine {
    /// A machine in `unknown`.
    pub fn new(policy: Policy, now_ms: i64) -> Self {
        Self {
            policy,
            state: State::Unknown,
            since_ms: now_ms,
            consecutive_failures: 0,
            consecutive_successes: 0,
            history: VecDeque::with_capacity(FLAP_WINDOW),
            flapping: false,
        }
    }

    /// A machine resumed from stored state (after a restart or reload).
    pub fn resume(
        policy: Policy,
        state: State,
        since_ms: i64,
        failures: u32,
        successes: u32,
        flapping: bool,
    ) -> Self {
        Self {
            policy,
            state,
            since_ms,
            consecutive_failures: failures,
            consecutive_successes: successes,
            history: VecDeque::with_capacity(FLAP_WINDOW),
            flapping,
        }
    }

    /// Applies a new policy (config reload) without losing state.
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }
    /// Since when (Unix ms).
    pub fn since_ms(&self) -> i64 {
        self.since_ms
    }
    /// Consecutive failures so far.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }
    /// Consecutive successes so far.
    pub fn consecutive_successes(&self) -> u32 {
        self.consecutive_successes
    }
    /// Whether the sensor is flapping.
    pub fn flapping(&self) -> bool {
        self.flapping
    }

    /// Weighted percentage of changes among the remembered outcomes: recent
    /// changes weigh more (0.8 for the oldest to 1.2 for the newest).
    pub fn flap_percent(&self) -> f64 {
        let n = self.history.len();
        if n < 2 {
            return 0.0;
        }
        let mut changes = 0.0;
        let mut weights = 0.0;
        for i in 1..n {
            let w = 0.8 + 0.4 * (i - 1) as f64 / ((FLAP_WINDOW - 2) as f64);
            weights += w;
            if self.history[i] != self.history[i - 1] {
                changes += w;
            }
        }
        100.0 * changes / weights * ((n - 1) as f64 / (FLAP_WINDOW - 1) as f64)
    }

    /// Feeds one check outcome.
    pub fn observe(&mut self, status: Status, message: &str, now_ms: i64) -> Step {
        let ok = status.is_up();
        if ok {
            self.consecutive_successes += 1;
            self.consecutive_failures = 0;
        } else {
            self.consecutive_failures += 1;
            self.consecutive_successes = 0;
        }
        if self.history.len() == FLAP_WINDOW {
            self.history.pop_front();
        }
        self.history.push_back(ok);

        let p = self.policy;
        let next = match (self.state, ok) {
            (State::Unknown, true) | (State::Soft, true) => State::Up,
            (State::Up, true) => State::Up,
            (State::Unknown | State::Up, false) if p.fail_after <= 1 => State::Down,
            (State::Unknown | State::Up, false) => State::Soft,
            (State::Soft, false) if self.consecutive_failures >= p.fail_after => State::Down,
            (State::Soft, false) => State::Soft,
            (State::Down, false) | (State::Recovering, false) => State::Down,
            (State::Down | State::Recovering, true)
                if self.consecutive_successes >= p.recover_after =>
            {
                State::Up
            }
            (State::Down | State::Recovering, true) => State::Recovering,
        };
        let mut step = Step::default();
        if next != self.state {
            let reason = match next {
                State::Soft => format!("failure 1 of {}: {message}", p.fail_after),
                State::Down => format!(
                    "{} consecutive failure{}: {message}",
                    self.consecutive_failures,
                    if self.consecutive_failures == 1 {
                        ""
                    } else {
                        "s"
                    }
                ),
                State::Recovering => format!(
                    "success 1 of {} after being down: {message}",
                    p.recover_after
                ),
                State::Up if self.state == State::Soft => format!(
                    "recovered before {} failures (a blip): {message}",
                    p.fail_after
                ),
                State::Up if self.state == State::Unknown => {
                    format!("first check succeeded: {message}")
                }
                State::Up => format!(
                    "{} consecutive successes: {message}",
                    self.consecutive_successes
                ),
                State::Unknown => String::new(),
            };
            step.transition = Some(Transition {
                from: self.state,
                to: next,
                reason,
                at_ms: now_ms,
            });
            self.state = next;
            self.since_ms = now_ms;
        }
        let pct = self.flap_percent();
        if !self.flapping && pct > FLAP_HIGH {
            self.flapping = true;
            step.flapping_changed = Some(true);
        } else if self.flapping && pct < FLAP_LOW {
            self.flapping = false;
            step.flapping_changed = Some(false);
        }
        step
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;

    fn m(fail_after: u32, recover_after: u32) -> Machine {
        Machine::new(
            Policy {
                fail_after,
                recover_after,
            },
            0,
        )
    }

    fn feed(m: &mut Machine, seq: &[Status]) -> Vec<State> {
        seq.iter()
            .enumerate()
            .map(|(i, s)| {
                m.observe(*s, "x", i as i64);
                m.state()
            })
            .collect()
    }

    #[test]
    fn soft_then_hard_then_recovered_after_exact_counts() {
        let mut x = m(3, 2);
        assert_eq!(
            feed(&mut x, &[Ok, Fail, Fail, Fail, Fail, Ok, Ok, Ok]),
            vec![
                State::Up,
                State::Soft,
                State::Soft,
                State::Down,
                State::Down,
                State::Recovering,
                State::Up,
                State::Up
            ]
        );
    }

    #[test]
    fn a_blip_is_not_an_outage() {
        let mut x = m(3, 2);
        assert_eq!(
            feed(&mut x, &[Ok, Fail, Ok, Fail, Fail, Ok]),
            vec![
                State::Up,
                State::Soft,
                State::Up,
                State::Soft,
                State::Soft,
                State::Up
            ]
        );
    }

    #[test]
    fn failure_while_recovering_goes_back_down() {
        let mut x = m(1, 3);
        assert_eq!(
            feed(&mut x, &[Fail, Ok, Ok, Error, Ok, Ok, Ok]),
            vec![
                State::Down,
                State::Recovering,
                State::Recovering,
                State::Down,
                State::Recovering,
                State::Recovering,
                State::Up
            ]
        );
    }

    #[test]
    fn warn_counts_as_up_and_error_as_failure() {
        let mut x = m(2, 1);
        assert_eq!(
            feed(&mut x, &[Warn, Error, Error, Warn]),
            vec![State::Up, State::Soft, State::Down, State::Up]
        );
    }

    #[test]
    fn transitions_carry_reasons() {
        let mut x = m(2, 1);
        x.observe(Ok, "HTTP 200", 1);
        x.observe(Fail, "connection refused", 2);
        let s = x.observe(Fail, "connection refused", 3);
        let t = s.transition.unwrap();
        assert_eq!((t.from, t.to, t.at_ms), (State::Soft, State::Down, 3));
        assert_eq!(t.reason, "2 consecutive failures: connection refused");
    }

    #[test]
    fn alternating_results_flap_and_calm_down() {
        let mut x = m(3, 2);
        let mut started = None;
        for i in 0..30 {
            let s = x.observe(if i % 2 == 0 { Ok } else { Fail }, "", i);
            if s.flapping_changed == Some(true) && started.is_none() {
                started = Some(i);
            }
        }
        assert!(x.flapping(), "{}", x.flap_percent());
        assert!(started.unwrap() < 21);
        let mut stopped = false;
        for i in 30..60 {
            if x.observe(Ok, "", i).flapping_changed == Some(false) {
                stopped = true;
            }
        }
        assert!(stopped && !x.flapping());
    }

    #[test]
    fn steady_states_never_flap() {
        let mut x = m(3, 2);
        for i in 0..50 {
            x.observe(if i < 25 { Ok } else { Fail }, "", i);
        }
        assert!(!x.flapping());
        assert!(x.flap_percent() < FLAP_LOW);
    }
}
