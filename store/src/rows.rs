//! Row-level pieces shared by the writer (which writes) and the readers
//! and reports (which read): the encoding of a result's status, the
//! message-touch slack both the writer and retention honour, sensor-id
//! lookup, the `sensor_state` upsert and the bucket-range guard. They
//! depend on nothing but the schema, so `writer`, `query`, `sla` and
//! `retention` each depend on this module and none on another.

use crate::error::{Result, StoreError};
use crate::types::{SensorState, Status};
use rusqlite::{Connection, OptionalExtension, params};

/// Bit of `results.status` marking a result recorded in maintenance.
pub(crate) const MAINT_BIT: i64 = 4;

/// A message's `last_used_ms` is only rewritten when it is this much older
/// than the result using it: a message shared by every result of a sensor
/// costs one small UPDATE per hour instead of one per batch. Retention
/// subtracts the same slack, so a message is never deleted while a retained
/// result refers to it.
pub(crate) const MESSAGE_TOUCH_SLACK_MS: i64 = 3_600_000;

/// Upper bound of buckets or periods one query may enumerate (protects
/// against a bogus range such as `0..i64::MAX`): 20 years of hourly buckets.
const MAX_BUCKETS: i64 = 366 * 20 * 24;

/// Refuses ranges that would enumerate an absurd number of buckets.
pub(crate) fn check_span(first: i64, to: i64, size: i64) -> Result<()> {
    if to > first && (to - first) / size > MAX_BUCKETS {
        return Err(StoreError::Invalid(format!(
            "range of {} buckets is too large",
            (to - first) / size
        )));
    }
    Ok(())
}

/// Looks up a sensor id without creating it (readers).
pub(crate) fn find_sensor_id(conn: &Connection, name: &str) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT id FROM sensors WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?)
}

/// Upsert of a `sensor_state` row (writer thread).
pub(crate) fn upsert_sensor_state(c: &Connection, s: &SensorState) -> Result<()> {
    c.prepare_cached(
        "INSERT OR REPLACE INTO sensor_state(sensor, state, since_ms, last_check_ms, last_status, last_message, \
         last_latency_us, consecutive_failures, consecutive_successes, flapping, updated_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        s.sensor,
        s.state,
        s.since_ms,
        s.last_check_ms,
        s.last_status.map(Status::code),
        s.last_message,
        s.last_latency_us.map(|v| i64::try_from(v).unwrap_or(i64::MAX)),
        s.consecutive_failures,
        s.consecutive_successes,
        s.flapping,
        s.updated_ms,
    ])?;
    Ok(())
}
