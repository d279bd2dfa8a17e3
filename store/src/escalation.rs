//! Durable tables for the escalation engine: `incidents`, `timers`,
//! `outbox`. Schema and minimal typed CRUD only; the engine's logic lives in
//! the agent. These calls run synchronously on the store's escalation
//! connection (`synchronous=FULL`, see `schema::open_side`), not through the
//! history writer: callers need their results (ids, "did I win this
//! claim?"), and the rows are few.
//!
//! State changes are conditional updates returning whether they applied
//! (`ack` only an open incident, `fire` only an unfired timer, ...), so two
//! racing callers cannot both act on the same row.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};

/// Life cycle of an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentState {
    /// Opened, not acknowledged.
    Open,
    /// Acknowledged by someone, not resolved.
    Acked,
    /// Resolved (terminal).
    Resolved,
}

impl IncidentState {
    /// Text stored in `incidents.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentState::Open => "open",
            IncidentState::Acked => "acked",
            IncidentState::Resolved => "resolved",
        }
    }

    fn parse(s: &str) -> Result<IncidentState> {
        Ok(match s {
            "open" => IncidentState::Open,
            "acked" => IncidentState::Acked,
            "resolved" => IncidentState::Resolved,
            other => return Err(StoreError::Corrupt(format!("incident state {other:?}"))),
        })
    }
}

/// An incident row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// Row id.
    pub id: i64,
    /// What the incident is about (sensor name or group).
    pub target: String,
    /// When it was opened (ms).
    pub opened_at_ms: i64,
    /// Current state.
    pub state: IncidentState,
    /// Escalation level reached.
    pub level: u32,
    /// Who acknowledged it.
    pub acked_by: Option<String>,
    /// When it was acknowledged.
    pub acked_at_ms: Option<i64>,
    /// When it was resolved.
    pub resolved_at_ms: Option<i64>,
    /// Hash of the acknowledgement token (unique when set).
    pub token_hash: Option<String>,
}

/// Fields of a new incident.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NewIncident {
    /// What the incident is about.
    pub target: String,
    /// When it was opened (ms).
    pub opened_at_ms: i64,
    /// Initial escalation level.
    pub level: u32,
    /// Hash of the acknowledgement token.
    pub token_hash: Option<String>,
}

/// A timer row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timer {
    /// Row id.
    pub id: i64,
    /// Incident it belongs to.
    pub incident_id: i64,
    /// What to do when due (engine-defined, e.g. `escalate`, `renotify`).
    pub kind: String,
    /// When it is due (ms).
    pub due_ms: i64,
    /// Already fired (claimed).
    pub fired: bool,
}

/// An outbox row: one notification to deliver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Row id.
    pub id: i64,
    /// Incident it belongs to, if any.
    pub incident_id: Option<i64>,
    /// Notifier to deliver through.
    pub notifier: String,
    /// Unique key: enqueuing twice with the same key stores it once.
    pub idempotency_key: String,
    /// Notifier payload.
    pub payload: serde_json::Value,
    /// Failed delivery attempts so far.
    pub attempts: u32,
    /// Earliest time of the next attempt (ms).
    pub next_attempt_ms: i64,
    /// When it was delivered.
    pub delivered_at_ms: Option<i64>,
    /// Error of the last failed attempt.
    pub last_error: Option<String>,
}

/// Fields of a new outbox entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewOutbox {
    /// Incident it belongs to, if any.
    pub incident_id: Option<i64>,
    /// Notifier to deliver through.
    pub notifier: String,
    /// Unique key.
    pub idempotency_key: String,
    /// Notifier payload.
    pub payload: serde_json::Value,
    /// Earliest time of the first attempt (ms).
    pub next_attempt_ms: i64,
}

const INCIDENT_COLS: &str =
    "id, target, opened_at_ms, state, level, acked_by, acked_at_ms, resolved_at_ms, token_hash";

fn incident_from(r: &Row<'_>) -> rusqlite::Result<(Incident, String)> {
    let state: String = r.get(3)?;
    Ok((
        Incident {
            id: r.get(0)?,
            target: r.get(1)?,
            opened_at_ms: r.get(2)?,
            state: IncidentState::Open,
            level: r.get(4)?,
            acked_by: r.get(5)?,
            acked_at_ms: r.get(6)?,
            resolved_at_ms: r.get(7)?,
            token_hash: r.get(8)?,
        },
        state,
    ))
}

fn finish(row: (Incident, String)) -> Result<Incident> {
    let (mut i, state) = row;
    i.state = IncidentState::parse(&state)?;
    Ok(i)
}

fn incidents_where(c: &Connection, cond: &str, p: impl rusqlite::Params) -> Result<Vec<Incident>> {
    let sql = format!("SELECT {INCIDENT_COLS} FROM incidents WHERE {cond} ORDER BY id");
    let mut q = c.prepare_cached(&sql)?;
    let rows = q
        .query_map(p, incident_from)?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(finish).collect()
}

pub(crate) fn open_incident(c: &Connection, n: &NewIncident) -> Result<Incident> {
    let id: i64 = c.query_row(
        "INSERT INTO incidents(target, opened_at_ms, state, level, token_hash) VALUES (?1, ?2, 'open', ?3, ?4) RETURNING id",
        params![n.target, n.opened_at_ms, n.level, n.token_hash],
        |r| r.get(0),
    )?;
    incident(c, id)?.ok_or_else(|| StoreError::Corrupt("incident vanished".into()))
}

pub(crate) fn incident(c: &Connection, id: i64) -> Result<Option<Incident>> {
    Ok(incidents_where(c, "id = ?1", [id])?.pop())
}

pub(crate) fn incident_by_token(c: &Connection, token_hash: &str) -> Result<Option<Incident>> {
    Ok(incidents_where(c, "token_hash = ?1", [token_hash])?.pop())
}

pub(crate) fn unresolved_incidents(c: &Connection) -> Result<Vec<Incident>> {
    incidents_where(c, "state <> 'resolved'", [])
}

pub(crate) fn set_incident_level(c: &Connection, id: i64, level: u32) -> Result<bool> {
    Ok(c.execute(
        "UPDATE incidents SET level = ?2 WHERE id = ?1 AND state <> 'resolved'",
        params![id, level],
    )? == 1)
}

pub(crate) fn ack_incident(c: &Connection, id: i64, by: &str, at_ms: i64) -> Result<bool> {
    Ok(c.execute(
        "UPDATE incidents SET state = 'acked', acked_by = ?2, acked_at_ms = ?3 WHERE id = ?1 AND state = 'open'",
        params![id, by, at_ms],
    )? == 1)
}

pub(crate) fn resolve_incident(c: &Connection, id: i64, at_ms: i64) -> Result<bool> {
    Ok(c.execute(
        "UPDATE incidents SET state = 'resolved', resolved_at_ms = ?2 WHERE id = ?1 AND state <> 'resolved'",
        params![id, at_ms],
    )? == 1)
}

pub(crate) fn add_timer(c: &Connection, incident_id: i64, kind: &str, due_ms: i64) -> Result<i64> {
    Ok(c.query_row(
        "INSERT INTO timers(incident_id, kind, due_ms) VALUES (?1, ?2, ?3) RETURNING id",
        params![incident_id, kind, due_ms],
        |r| r.get(0),
    )?)
}

pub(crate) fn due_timers(c: &Connection, now_ms: i64, limit: usize) -> Result<Vec<Timer>> {
    let mut q = c.prepare_cached(
        "SELECT id, incident_id, kind, due_ms, fired FROM timers WHERE fired = 0 AND due_ms <= ?1 \
         ORDER BY due_ms, id LIMIT ?2",
    )?;
    Ok(q.query_map(
        params![now_ms, i64::try_from(limit).unwrap_or(i64::MAX)],
        |r| {
            Ok(Timer {
                id: r.get(0)?,
                incident_id: r.get(1)?,
                kind: r.get(2)?,
                due_ms: r.get(3)?,
                fired: r.get(4)?,
            })
        },
    )?
    .collect::<Result<_, _>>()?)
}

pub(crate) fn fire_timer(c: &Connection, id: i64) -> Result<bool> {
    Ok(c.execute(
        "UPDATE timers SET fired = 1 WHERE id = ?1 AND fired = 0",
        [id],
    )? == 1)
}

pub(crate) fn cancel_timers(c: &Connection, incident_id: i64) -> Result<u64> {
    Ok(c.execute(
        "DELETE FROM timers WHERE incident_id = ?1 AND fired = 0",
        [incident_id],
    )? as u64)
}

pub(crate) fn enqueue(c: &Connection, n: &NewOutbox) -> Result<Option<i64>> {
    let payload =
        serde_json::to_string(&n.payload).map_err(|e| StoreError::Invalid(e.to_string()))?;
    Ok(c.query_row(
        "INSERT INTO outbox(incident_id, notifier, idempotency_key, payload, next_attempt_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(idempotency_key) DO NOTHING RETURNING id",
        params![
            n.incident_id,
            n.notifier,
            n.idempotency_key,
            payload,
            n.next_attempt_ms
        ],
        |r| r.get(0),
    )
    .optional()?)
}

const OUTBOX_COLS: &str = "id, incident_id, notifier, idempotency_key, payload, attempts, next_attempt_ms, \
     delivered_at_ms, last_error";

fn outbox_from(r: &Row<'_>) -> rusqlite::Result<(OutboxEntry, String)> {
    Ok((
        OutboxEntry {
            id: r.get(0)?,
            incident_id: r.get(1)?,
            notifier: r.get(2)?,
            idempotency_key: r.get(3)?,
            payload: serde_json::Value::Null,
            attempts: r.get(5)?,
            next_attempt_ms: r.get(6)?,
            delivered_at_ms: r.get(7)?,
            last_error: r.get(8)?,
        },
        r.get(4)?,
    ))
}

fn outbox_where(c: &Connection, cond: &str, p: impl rusqlite::Params) -> Result<Vec<OutboxEntry>> {
    let sql = format!("SELECT {OUTBOX_COLS} FROM outbox WHERE {cond}");
    let mut q = c.prepare_cached(&sql)?;
    let rows = q
        .query_map(p, outbox_from)?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(mut e, payload)| {
            e.payload =
                serde_json::from_str(&payload).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            Ok(e)
        })
        .collect()
}

pub(crate) fn outbox_entry(c: &Connection, id: i64) -> Result<Option<OutboxEntry>> {
    Ok(outbox_where(c, "id = ?1", [id])?.pop())
}

pub(crate) fn due_outbox(c: &Connection, now_ms: i64, limit: usize) -> Result<Vec<OutboxEntry>> {
    outbox_where(
        c,
        "delivered_at_ms IS NULL AND next_attempt_ms <= ?1 ORDER BY next_attempt_ms, id LIMIT ?2",
        params![now_ms, i64::try_from(limit).unwrap_or(i64::MAX)],
    )
}

pub(crate) fn outbox_delivered(c: &Connection, id: i64, at_ms: i64) -> Result<bool> {
    Ok(c.execute(
        "UPDATE outbox SET delivered_at_ms = ?2, last_error = NULL WHERE id = ?1 AND delivered_at_ms IS NULL",
        params![id, at_ms],
    )? == 1)
}

pub(crate) fn outbox_failed(
    c: &Connection,
    id: i64,
    error: &str,
    next_attempt_ms: i64,
) -> Result<bool> {
    Ok(c.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_ms = ?3 \
         WHERE id = ?1 AND delivered_at_ms IS NULL",
        params![id, error, next_attempt_ms],
    )? == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn new(target: &str, token: Option<&str>) -> NewIncident {
        NewIncident {
            target: target.into(),
            opened_at_ms: 1000,
            level: 0,
            token_hash: token.map(Into::into),
        }
    }

    #[test]
    fn incident_lifecycle() {
        let c = crate::schema::memory();
        let i = open_incident(&c, &new("web", Some("h1"))).unwrap();
        assert_eq!(i.state, IncidentState::Open);
        assert_eq!(i.target, "web");
        assert!(
            open_incident(&c, &new("web", Some("h1"))).is_err(),
            "token hashes are unique"
        );
        let j = open_incident(&c, &new("db", None)).unwrap();
        assert_eq!(unresolved_incidents(&c).unwrap().len(), 2);
        assert!(set_incident_level(&c, i.id, 2).unwrap());
        assert!(ack_incident(&c, i.id, "alice", 2000).unwrap());
        assert!(
            !ack_incident(&c, i.id, "bob", 2100).unwrap(),
            "only an open incident can be acked"
        );
        let got = incident_by_token(&c, "h1").unwrap().unwrap();
        assert_eq!(got.state, IncidentState::Acked);
        assert_eq!(
            (got.level, got.acked_by.as_deref(), got.acked_at_ms),
            (2, Some("alice"), Some(2000))
        );
        assert!(resolve_incident(&c, i.id, 3000).unwrap());
        assert!(!resolve_incident(&c, i.id, 3100).unwrap());
        assert!(!set_incident_level(&c, i.id, 3).unwrap());
        assert_eq!(
            incident(&c, i.id).unwrap().unwrap().resolved_at_ms,
            Some(3000)
        );
        assert_eq!(unresolved_incidents(&c).unwrap(), vec![j]);
        assert_eq!(incident(&c, 999).unwrap(), None);
        assert!(
            c.execute("UPDATE incidents SET state = 'bogus'", [])
                .is_err()
        );
    }

    #[test]
    fn timers_fire_once() {
        let c = crate::schema::memory();
        let i = open_incident(&c, &new("web", None)).unwrap();
        let t1 = add_timer(&c, i.id, "escalate", 5000).unwrap();
        let t2 = add_timer(&c, i.id, "renotify", 3000).unwrap();
        add_timer(&c, i.id, "later", 9000).unwrap();
        assert!(
            add_timer(&c, 12345, "x", 1).is_err(),
            "timers reference an incident"
        );
        let due = due_timers(&c, 5000, 10).unwrap();
        assert_eq!(due.iter().map(|t| t.id).collect::<Vec<_>>(), vec![t2, t1]);
        assert_eq!(due[1].kind, "escalate");
        assert_eq!(due_timers(&c, 5000, 1).unwrap().len(), 1);
        assert!(fire_timer(&c, t2).unwrap());
        assert!(!fire_timer(&c, t2).unwrap(), "a timer is claimed once");
        assert_eq!(due_timers(&c, 5000, 10).unwrap().len(), 1);
        assert_eq!(cancel_timers(&c, i.id).unwrap(), 2);
        assert!(due_timers(&c, i64::MAX, 10).unwrap().is_empty());
    }

    #[test]
    fn outbox_is_idempotent_and_retries() {
        let c = crate::schema::memory();
        let i = open_incident(&c, &new("web", None)).unwrap();
        let n = NewOutbox {
            incident_id: Some(i.id),
            notifier: "slack".into(),
            idempotency_key: "inc1-level0-slack".into(),
            payload: json!({"text": "web is down", "level": 0}),
            next_attempt_ms: 1000,
        };
        let id = enqueue(&c, &n).unwrap().unwrap();
        assert_eq!(enqueue(&c, &n).unwrap(), None, "same key stored once");
        let mut other = n.clone();
        other.idempotency_key = "k2".into();
        other.incident_id = None;
        other.next_attempt_ms = 500;
        let id2 = enqueue(&c, &other).unwrap().unwrap();
        let due = due_outbox(&c, 1000, 10).unwrap();
        assert_eq!(due.iter().map(|e| e.id).collect::<Vec<_>>(), vec![id2, id]);
        assert_eq!(due[1].payload, n.payload);
        assert!(outbox_failed(&c, id, "HTTP 503", 4000).unwrap());
        let e = outbox_entry(&c, id).unwrap().unwrap();
        assert_eq!(
            (e.attempts, e.next_attempt_ms, e.last_error.as_deref()),
            (1, 4000, Some("HTTP 503"))
        );
        assert_eq!(due_outbox(&c, 1000, 10).unwrap().len(), 1);
        assert!(outbox_delivered(&c, id, 4100).unwrap());
        assert!(!outbox_delivered(&c, id, 4200).unwrap());
        assert!(!outbox_failed(&c, id, "late", 9000).unwrap());
        let e = outbox_entry(&c, id).unwrap().unwrap();
        assert_eq!((e.delivered_at_ms, e.last_error), (Some(4100), None));
        assert!(
            due_outbox(&c, i64::MAX, 10)
                .unwrap()
                .iter()
                .all(|e| e.id == id2)
        );
    }
}
