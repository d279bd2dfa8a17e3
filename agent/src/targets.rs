//! Target events: the message between evaluation (sensor state machines,
//! the system/service graph, peers) and the incident stage.
//!
//! A *target* is anything an incident can be about: a sensor, a system, a
//! service, or a peer agent. Evaluation stages send a [`TargetEvent`]
//! whenever they have looked at a target (not only on changes); the
//! incident stage keeps its own memory of what it saw and decides when an
//! alerting window has passed. Events of one evaluation round are sent
//! parents (causes) first, so a dependent's alert cannot race ahead of its
//! cause.
//!
//! This module only defines the message; it owns no logic.

use serde::Serialize;
use std::collections::BTreeMap;

/// What kind of thing a target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// A configured sensor (a check).
    Sensor,
    /// A `[[system]]`: sensors and systems combined by a rule.
    System,
    /// A `[[service]]`: a capability with dependencies.
    Service,
    /// A peer agent (dead-peer detection).
    Peer,
}

impl TargetKind {
    /// Lower-case name, as in alerts ("sensor", "system", ...).
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Sensor => "sensor",
            TargetKind::System => "system",
            TargetKind::Service => "service",
            TargetKind::Peer => "peer",
        }
    }
}

/// Health as the incident stage sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Working (for a sensor: up or soft-failing, i.e. not confirmed down).
    Up,
    /// Confirmed down (for a sensor: hard down, or recovering but not yet
    /// `recover_after` successes in a row).
    Down,
    /// Not known (never checked, or a stale peer): opens no incident and
    /// resolves none.
    Unknown,
}

/// One observation of a target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetEvent {
    /// Sensor, system or service name, or `peer:<agent>`.
    pub target: String,
    /// What the target is.
    pub kind: TargetKind,
    /// The target's category, for escalation selectors.
    pub category: Option<String>,
    /// The target's labels, for escalation selectors.
    pub labels: BTreeMap<String, String>,
    /// Health now.
    pub health: Health,
    /// Since when (Unix ms) the target has had this health.
    pub since_ms: i64,
    /// When this observation was made (Unix ms).
    pub at_ms: i64,
    /// Why, in words ("sensor db failed 3 times: connection refused").
    pub reason: String,
    /// Targets that are down and explain why this one is down (its failed
    /// dependencies). While any of them is down, no incident of its own is
    /// opened for this target (it is linked to theirs instead).
    pub caused_by: Vec<String>,
    /// The target changes state too often to be trusted either way: an
    /// open incident is not resolved while this holds, so a flapping
    /// target keeps one incident instead of opening one per flap.
    pub flapping: bool,
}
