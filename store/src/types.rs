//! Public data types passed to and returned by the store.

use serde::{Deserialize, Serialize};

/// Outcome of one check (the shared ABI type), stored as the small integer
/// [`Status::code`] (bits 0-1 of `results.status`; bit 2 is the maintenance
/// flag).
pub use outpost_types::Status;

/// One check result, as handed to [`crate::Store::record`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckRecord {
    /// Sensor name (interned to an integer id by the store).
    pub sensor: String,
    /// Time of the check, ms since the Unix epoch (UTC).
    pub at_ms: i64,
    /// Outcome.
    pub status: Status,
    /// Latency of the check in microseconds.
    pub latency_us: u64,
    /// Human-readable message; the empty string costs nothing, repeated
    /// messages are interned.
    pub message: String,
    /// Named numeric metrics reported by the sensor.
    pub metrics: Vec<(String, f64)>,
    /// The sensor was in a maintenance window at `at_ms` (set by the agent;
    /// the writer also sets it when a window added with
    /// [`crate::Store::add_maintenance`] covers the result). Such results are
    /// excluded from checks, failures, latency, uptime and outages.
    pub in_maintenance: bool,
    /// The sensor's scheduled interval in ms (0 = unknown: the store uses
    /// [`crate::StoreOptions::default_max_gap`]). A result counts as the
    /// sensor's status until the next result, but for at most
    /// [`crate::rollup::COVERAGE_GAP_FACTOR`] intervals: longer gaps (agent
    /// stopped) are "unknown", neither up nor down.
    pub interval_ms: u64,
}

/// One stored result, as returned by [`crate::Reader::history`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckRow {
    /// Time of the check (ms, UTC).
    pub at_ms: i64,
    /// Outcome.
    pub status: Status,
    /// The result was recorded during maintenance.
    pub in_maintenance: bool,
    /// Latency in microseconds.
    pub latency_us: u64,
    /// Message (empty when none).
    pub message: String,
    /// Metrics, in the order recorded.
    pub metrics: Vec<(String, f64)>,
}

/// A state change of a sensor decided by the agent (e.g. `up` → `down`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// Sensor name.
    pub sensor: String,
    /// Time of the change (ms, UTC).
    pub at_ms: i64,
    /// Previous state.
    pub from: String,
    /// New state.
    pub to: String,
    /// Why (e.g. "3 consecutive failures").
    pub reason: String,
}

/// Latest transition of a sensor ([`crate::Reader::current_states`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentState {
    /// Sensor name.
    pub sensor: String,
    /// State entered by the latest transition.
    pub state: String,
    /// Time of that transition.
    pub since_ms: i64,
    /// Its reason.
    pub reason: String,
}

/// The agent's live view of a sensor, upserted by the agent so that
/// `outpost status` in another process can read it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SensorState {
    /// Sensor name (primary key).
    pub sensor: String,
    /// Current state (agent-defined, e.g. `up`, `down`, `unknown`).
    pub state: String,
    /// Since when the sensor is in `state` (ms).
    pub since_ms: i64,
    /// Time of the last check, if any.
    pub last_check_ms: Option<i64>,
    /// Status of the last check, if any.
    pub last_status: Option<Status>,
    /// Message of the last check.
    pub last_message: String,
    /// Latency of the last check (µs).
    pub last_latency_us: Option<u64>,
    /// Failures in a row up to the last check.
    pub consecutive_failures: u32,
    /// Successes in a row up to the last check.
    pub consecutive_successes: u32,
    /// The agent considers the sensor flapping.
    pub flapping: bool,
    /// When the agent wrote this row (ms).
    pub updated_ms: i64,
}

/// Calendar period of an SLA report (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// 00:00 to 24:00 UTC.
    Day,
    /// ISO week: Monday 00:00 UTC to the next Monday.
    Week,
    /// Calendar month, from the 1st 00:00 UTC.
    Month,
}

/// Parameters of [`crate::Reader::sla`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaQuery {
    /// One sensor, or `None` for every sensor with data in the range.
    pub sensor: Option<String>,
    /// Period size.
    pub period: Period,
    /// Periods are whole calendar periods: the first is the one containing
    /// `from_ms`, the last is the one containing `to_ms - 1`.
    pub from_ms: i64,
    /// Exclusive end (see `from_ms`).
    pub to_ms: i64,
}

/// SLA figures of one sensor for one period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaRow {
    /// Sensor name.
    pub sensor: String,
    /// Start of the period (ms, UTC).
    pub period_start_ms: i64,
    /// End of the period (exclusive).
    pub period_end_ms: i64,
    /// Checks outside maintenance.
    pub checks: u64,
    /// Of those, `Fail`/`Error`.
    pub failures: u64,
    /// `up / (up + down)` × 100 over observed time outside maintenance;
    /// `None` when nothing was observed.
    pub uptime_pct: Option<f64>,
    /// Observed time outside maintenance (up + down), ms.
    pub observed_ms: i64,
    /// Down time, ms.
    pub downtime_ms: i64,
    /// Time in maintenance, ms (excluded from the figures above).
    pub maintenance_ms: i64,
    /// Outages that started in the period.
    pub outages: u64,
    /// Outages that ended (recovered) in the period.
    pub recoveries: u64,
    /// Mean time to recovery: mean down time of the outages that ended in
    /// the period; `None` when none ended.
    pub mttr_ms: Option<i64>,
}

/// Size of a rollup bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    /// One hour.
    Hour,
    /// One UTC day.
    Day,
}

/// Latency statistics of a rollup bucket (µs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyStats {
    /// Minimum (exact).
    pub min_us: u64,
    /// Mean, rounded (exact).
    pub avg_us: u64,
    /// 95th percentile (nearest rank), from a log histogram: within the
    /// histogram bucket of the exact value (≤ 3.2% error).
    pub p95_us: u64,
    /// Maximum (exact).
    pub max_us: u64,
}

/// One hourly or daily rollup of a sensor ([`crate::Reader::rollups`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollupRow {
    /// Start of the bucket (ms, UTC).
    pub start_ms: i64,
    /// Checks outside maintenance with their time in the bucket.
    pub checks: u64,
    /// Of those, `Fail`/`Error`.
    pub failures: u64,
    /// Of those, `Warn`.
    pub warnings: u64,
    /// Results recorded during maintenance.
    pub maintenance_checks: u64,
    /// Up time in the bucket (ms).
    pub up_ms: i64,
    /// Down time in the bucket (ms).
    pub down_ms: i64,
    /// Maintenance time in the bucket (ms).
    pub maintenance_ms: i64,
    /// Outages that started in the bucket.
    pub outages: u64,
    /// Outages that ended in the bucket.
    pub recoveries: u64,
    /// Total down time of those outages (ms).
    pub recovery_ms: i64,
    /// Uptime share in %, `None` when nothing was observed.
    pub uptime_pct: Option<f64>,
    /// Latency over the checks, `None` when there were none.
    pub latency: Option<LatencyStats>,
}

/// A maintenance window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Maintenance {
    /// Row id.
    pub id: i64,
    /// Sensor name, or `*` for every sensor.
    pub target: String,
    /// Start (inclusive, ms).
    pub from_ms: i64,
    /// End (exclusive, ms).
    pub to_ms: i64,
    /// Why.
    pub reason: String,
}

/// What one [`crate::Store::prune`] run deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneStats {
    /// Raw results.
    pub results: u64,
    /// Interned messages no longer referenced.
    pub messages: u64,
    /// Hourly rollups.
    pub hourly: u64,
    /// Daily rollups.
    pub daily: u64,
    /// Transitions and maintenance windows.
    pub other: u64,
    /// Transactions used.
    pub batches: u64,
}

/// Counters of the writer since [`crate::Store::open`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStats {
    /// Records accepted into the queue.
    pub queued: u64,
    /// Records committed.
    pub committed: u64,
    /// Records ignored because a result of that sensor at that ms existed.
    pub duplicates: u64,
    /// Records refused by `record()` because the queue was full.
    pub rejected: u64,
    /// Records lost because their batch failed to commit after retries.
    pub lost: u64,
    /// Transactions committed by the writer (batches and prune steps).
    pub transactions: u64,
    /// Messages currently waiting in the queue.
    pub queue_len: usize,
}

/// One incident as listed by the API and the status page (the token and
/// the nonce are never part of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentSummary {
    /// Id.
    pub id: i64,
    /// Target.
    pub target: String,
    /// `open`, `acked` or `resolved`.
    pub state: String,
    /// Opened (Unix ms).
    pub opened_at_ms: i64,
    /// Escalation level.
    pub level: i64,
    /// Who acknowledged.
    pub acked_by: Option<String>,
    /// When acknowledged.
    pub acked_at_ms: Option<i64>,
    /// When resolved.
    pub resolved_at_ms: Option<i64>,
}

/// Unresolved incidents and undelivered notifications, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Incidents open and not acknowledged.
    pub open: i64,
    /// Incidents acknowledged, not resolved.
    pub acked: i64,
    /// Notifications neither delivered nor given up.
    pub pending: i64,
    /// When the oldest of them was queued (Unix ms).
    pub oldest_pending_ms: Option<i64>,
}
