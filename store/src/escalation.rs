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
    /// "sensor", "system", "service" or "peer".
    pub kind: String,
    /// Escalation policy that governs it.
    pub policy: String,
    /// Why it opened ("sensor db failed 3 times: connection refused").
    pub message: String,
    /// Since when the target has been down (ms).
    pub down_since_ms: Option<i64>,
    /// The incident of the dependency that explains this one, if any.
    pub parent_id: Option<i64>,
    /// Nonce the acknowledgement token is derived from (not the token).
    pub ack_nonce: Option<String>,
    /// Linked to a parent: nobody is notified while this holds.
    pub suppressed: bool,
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
    /// "sensor", "system", "service" or "peer".
    pub kind: String,
    /// Escalation policy.
    pub policy: String,
    /// Why it opened.
    pub message: String,
    /// Since when the target has been down (ms).
    pub down_since_ms: Option<i64>,
    /// Parent incident (suppressed children).
    pub parent_id: Option<i64>,
    /// Token nonce.
    pub ack_nonce: Option<String>,
    /// Linked to a parent, nobody notified.
    pub suppressed: bool,
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
    /// When delivery was given up (permanent error or too many attempts).
    pub gave_up_at_ms: Option<i64>,
    /// When it was enqueued.
    pub created_ms: i64,
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

const INCIDENT_COLS: &str = "id, target, opened_at_ms, state, level, acked_by, acked_at_ms, \
     resolved_at_ms, token_hash, kind, policy, message, down_since_ms, parent_id, ack_nonce, suppressed";

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
            kind: r.get(9)?,
            policy: r.get(10)?,
            message: r.get(11)?,
            down_since_ms: r.get(12)?,
            parent_id: r.get(13)?,
            ack_nonce: r.get(14)?,
            suppressed: r.get(15)?,
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
        "INSERT INTO incidents(target, opened_at_ms, state, level, token_hash, kind, policy, message, \
         down_since_ms, parent_id, ack_nonce, suppressed) \
         VALUES (?1, ?2, 'open', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) RETURNING id",
        params![
            n.target,
            n.opened_at_ms,
            n.level,
            n.token_hash,
            if n.kind.is_empty() { "sensor" } else { n.kind.as_str() },
            n.policy,
            n.message,
            n.down_since_ms,
            n.parent_id,
            n.ack_nonce,
            n.suppressed
        ],
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
        "INSERT INTO outbox(incident_id, notifier, idempotency_key, payload, next_attempt_ms, created_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?5) ON CONFLICT(idempotency_key) DO NOTHING RETURNING id",
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
     delivered_at_ms, last_error, gave_up_at_ms, created_ms";

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
            gave_up_at_ms: r.get(9)?,
            created_ms: r.get(10)?,
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
    // An entry waits for any earlier pending entry of the same incident and
    // notifier, so each receiver gets an incident's notifications in order.
    outbox_where(
        c,
        "delivered_at_ms IS NULL AND gave_up_at_ms IS NULL AND next_attempt_ms <= ?1 \
         AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.incident_id = outbox.incident_id \
             AND e.notifier = outbox.notifier AND e.id < outbox.id \
             AND e.delivered_at_ms IS NULL AND e.gave_up_at_ms IS NULL) \
         ORDER BY next_attempt_ms, id LIMIT ?2",
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

pub(crate) fn outbox_gave_up(c: &Connection, id: i64, error: &str, at_ms: i64) -> Result<bool> {
    Ok(c.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, gave_up_at_ms = ?3 \
         WHERE id = ?1 AND delivered_at_ms IS NULL AND gave_up_at_ms IS NULL",
        params![id, error, at_ms],
    )? == 1)
}

/// One delivery attempt of an outbox entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// When (ms).
    pub at_ms: i64,
    /// Delivered.
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
}

/// One line of an incident's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentEvent {
    /// When (ms).
    pub at_ms: i64,
    /// `opened`, `notified`, `escalated`, `reminded`, `acknowledged`,
    /// `resolved`, `suppressed`, `delivery_failed`, ...
    pub kind: String,
    /// Details for people.
    pub detail: String,
}

/// An ad-hoc silence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    /// Row id.
    pub id: i64,
    /// Selector text (`web`, `category:db`, `label:team=core`, `*`).
    pub target: String,
    /// Start (ms).
    pub from_ms: i64,
    /// End (ms, exclusive).
    pub until_ms: i64,
    /// Why.
    pub reason: String,
    /// Who.
    pub created_by: String,
}

/// The escalation tables inside one transaction (see [`crate::Store::tx`]
/// and [`EscalationDb::tx`]): every call made through one `Tx` commits or
/// rolls back together, so "claim the timer, raise the level, enqueue the
/// notifications" cannot half-happen.
pub struct Tx<'a>(&'a Connection);

impl Tx<'_> {
    /// Opens an incident.
    pub fn open_incident(&self, n: &NewIncident) -> Result<Incident> {
        open_incident(self.0, n)
    }
    /// Incident by id.
    pub fn incident(&self, id: i64) -> Result<Option<Incident>> {
        incident(self.0, id)
    }
    /// Incident by token hash.
    pub fn incident_by_token(&self, token_hash: &str) -> Result<Option<Incident>> {
        incident_by_token(self.0, token_hash)
    }
    /// Unresolved incidents, oldest first.
    pub fn unresolved_incidents(&self) -> Result<Vec<Incident>> {
        unresolved_incidents(self.0)
    }
    /// Incidents opened or still unresolved since `since_ms`, newest first.
    pub fn recent_incidents(&self, since_ms: i64, limit: usize) -> Result<Vec<Incident>> {
        let mut v = incidents_where(
            self.0,
            "opened_at_ms >= ?1 OR state <> 'resolved' OR resolved_at_ms >= ?1",
            [since_ms],
        )?;
        v.reverse();
        v.truncate(limit);
        Ok(v)
    }
    /// Unresolved incidents linked to `parent_id`.
    pub fn children(&self, parent_id: i64) -> Result<Vec<Incident>> {
        incidents_where(
            self.0,
            "parent_id = ?1 AND state <> 'resolved'",
            [parent_id],
        )
    }
    /// Sets the level of an unresolved incident.
    pub fn set_level(&self, id: i64, level: u32) -> Result<bool> {
        set_incident_level(self.0, id, level)
    }
    /// Ends the suppression of an incident (its parent resolved first).
    pub fn unsuppress(&self, id: i64, level: u32, message: &str) -> Result<bool> {
        Ok(self.0.execute(
            "UPDATE incidents SET suppressed = 0, level = ?2, message = ?3 \
             WHERE id = ?1 AND state <> 'resolved' AND suppressed = 1",
            params![id, level, message],
        )? == 1)
    }
    /// Acknowledges an open incident.
    pub fn ack(&self, id: i64, by: &str, at_ms: i64) -> Result<bool> {
        ack_incident(self.0, id, by, at_ms)
    }
    /// Resolves an incident.
    pub fn resolve(&self, id: i64, at_ms: i64) -> Result<bool> {
        resolve_incident(self.0, id, at_ms)
    }
    /// Adds a timer.
    pub fn add_timer(&self, incident_id: i64, kind: &str, due_ms: i64) -> Result<i64> {
        add_timer(self.0, incident_id, kind, due_ms)
    }
    /// Unfired due timers.
    pub fn due_timers(&self, now_ms: i64, limit: usize) -> Result<Vec<Timer>> {
        due_timers(self.0, now_ms, limit)
    }
    /// The earliest unfired timer's due time.
    pub fn next_timer_due(&self) -> Result<Option<i64>> {
        Ok(self
            .0
            .query_row("SELECT min(due_ms) FROM timers WHERE fired = 0", [], |r| {
                r.get(0)
            })?)
    }
    /// Claims a timer; true only once.
    pub fn fire_timer(&self, id: i64) -> Result<bool> {
        fire_timer(self.0, id)
    }
    /// Deletes an incident's unfired timers.
    pub fn cancel_timers(&self, incident_id: i64) -> Result<u64> {
        cancel_timers(self.0, incident_id)
    }
    /// Deletes an incident's unfired timers except those whose kind starts
    /// with `keep_prefix` (an acknowledgement stops escalation, not the
    /// engine's keepalive re-posts); returns how many were deleted.
    pub fn cancel_timers_except(&self, incident_id: i64, keep_prefix: &str) -> Result<u64> {
        Ok(self.0.execute(
            "DELETE FROM timers WHERE incident_id = ?1 AND fired = 0 \
             AND substr(kind, 1, length(?2)) <> ?2",
            params![incident_id, keep_prefix],
        )? as u64)
    }
    /// Unfired timers of an incident.
    pub fn timers(&self, incident_id: i64) -> Result<Vec<Timer>> {
        let mut q = self.0.prepare_cached(
            "SELECT id, incident_id, kind, due_ms, fired FROM timers WHERE incident_id = ?1 AND fired = 0 ORDER BY due_ms",
        )?;
        Ok(q.query_map([incident_id], |r| {
            Ok(Timer {
                id: r.get(0)?,
                incident_id: r.get(1)?,
                kind: r.get(2)?,
                due_ms: r.get(3)?,
                fired: r.get(4)?,
            })
        })?
        .collect::<Result<_, _>>()?)
    }
    /// Enqueues a notification; `None` if the key exists.
    pub fn enqueue(&self, n: &NewOutbox) -> Result<Option<i64>> {
        enqueue(self.0, n)
    }
    /// The notifiers an incident was ever enqueued for, in the order they
    /// were first told.
    pub fn told_notifiers(&self, incident_id: i64) -> Result<Vec<String>> {
        let mut q = self.0.prepare_cached(
            "SELECT notifier FROM outbox WHERE incident_id = ?1 GROUP BY notifier ORDER BY min(id)",
        )?;
        Ok(q.query_map([incident_id], |r| r.get(0))?
            .collect::<Result<_, _>>()?)
    }
    /// Whether a notification of an incident to a notifier is still waiting
    /// for delivery (neither delivered nor given up).
    pub fn has_pending(&self, incident_id: i64, notifier: &str) -> Result<bool> {
        Ok(self.0.query_row(
            "SELECT EXISTS(SELECT 1 FROM outbox WHERE incident_id = ?1 AND notifier = ?2 \
             AND delivered_at_ms IS NULL AND gave_up_at_ms IS NULL)",
            params![incident_id, notifier],
            |r| r.get(0),
        )?)
    }
    /// Outbox entry by id.
    pub fn outbox_entry(&self, id: i64) -> Result<Option<OutboxEntry>> {
        outbox_entry(self.0, id)
    }
    /// Notifications of an incident, in order.
    pub fn outbox_of(&self, incident_id: i64) -> Result<Vec<OutboxEntry>> {
        outbox_where(self.0, "incident_id = ?1 ORDER BY id", [incident_id])
    }
    /// Deliverable notifications (see [`due_outbox`] for the order rule).
    pub fn due_outbox(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxEntry>> {
        due_outbox(self.0, now_ms, limit)
    }
    /// Earliest next attempt of a pending notification.
    pub fn next_outbox_due(&self) -> Result<Option<i64>> {
        Ok(self.0.query_row(
            "SELECT min(next_attempt_ms) FROM outbox WHERE delivered_at_ms IS NULL AND gave_up_at_ms IS NULL",
            [],
            |r| r.get(0),
        )?)
    }
    /// Records a successful delivery.
    pub fn delivered(&self, id: i64, at_ms: i64) -> Result<bool> {
        let ok = outbox_delivered(self.0, id, at_ms)?;
        self.log_attempt(id, at_ms, true, None)?;
        Ok(ok)
    }
    /// Records a failed attempt and when to retry.
    pub fn failed(&self, id: i64, error: &str, at_ms: i64, next_attempt_ms: i64) -> Result<bool> {
        let ok = outbox_failed(self.0, id, error, next_attempt_ms)?;
        self.log_attempt(id, at_ms, false, Some(error))?;
        Ok(ok)
    }
    /// Records a failed attempt after which delivery is given up.
    pub fn gave_up(&self, id: i64, error: &str, at_ms: i64) -> Result<bool> {
        let ok = outbox_gave_up(self.0, id, error, at_ms)?;
        self.log_attempt(id, at_ms, false, Some(error))?;
        Ok(ok)
    }
    fn log_attempt(&self, id: i64, at_ms: i64, ok: bool, error: Option<&str>) -> Result<()> {
        self.0.execute(
            "INSERT INTO delivery_attempts(outbox_id, at_ms, ok, error) VALUES (?1, ?2, ?3, ?4)",
            params![id, at_ms, ok, error],
        )?;
        Ok(())
    }
    /// Delivery attempts of an outbox entry, oldest first.
    pub fn attempts(&self, outbox_id: i64) -> Result<Vec<Attempt>> {
        let mut q = self.0.prepare_cached(
            "SELECT at_ms, ok, error FROM delivery_attempts WHERE outbox_id = ?1 ORDER BY id",
        )?;
        Ok(q.query_map([outbox_id], |r| {
            Ok(Attempt {
                at_ms: r.get(0)?,
                ok: r.get(1)?,
                error: r.get(2)?,
            })
        })?
        .collect::<Result<_, _>>()?)
    }
    /// Appends to an incident's history.
    pub fn add_event(&self, incident_id: i64, at_ms: i64, kind: &str, detail: &str) -> Result<()> {
        self.0.execute(
            "INSERT INTO incident_events(incident_id, at_ms, kind, detail) VALUES (?1, ?2, ?3, ?4)",
            params![incident_id, at_ms, kind, detail],
        )?;
        Ok(())
    }
    /// An incident's history, oldest first.
    pub fn events(&self, incident_id: i64) -> Result<Vec<IncidentEvent>> {
        let mut q = self.0.prepare_cached(
            "SELECT at_ms, kind, detail FROM incident_events WHERE incident_id = ?1 ORDER BY id",
        )?;
        Ok(q.query_map([incident_id], |r| {
            Ok(IncidentEvent {
                at_ms: r.get(0)?,
                kind: r.get(1)?,
                detail: r.get(2)?,
            })
        })?
        .collect::<Result<_, _>>()?)
    }
    /// Adds a silence; returns its id.
    pub fn add_silence(&self, s: &Silence) -> Result<i64> {
        if s.until_ms <= s.from_ms {
            return Err(StoreError::Invalid(
                "a silence must end after it starts".into(),
            ));
        }
        Ok(self.0.query_row(
            "INSERT INTO silences(target, from_ms, until_ms, reason, created_by) VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
            params![s.target, s.from_ms, s.until_ms, s.reason, s.created_by],
            |r| r.get(0),
        )?)
    }
    /// Silences in force at `now_ms` (or later, with `upcoming`).
    pub fn silences(&self, now_ms: i64, upcoming: bool) -> Result<Vec<Silence>> {
        let sql = if upcoming {
            "SELECT id, target, from_ms, until_ms, reason, created_by FROM silences WHERE until_ms > ?1 ORDER BY id"
        } else {
            "SELECT id, target, from_ms, until_ms, reason, created_by FROM silences WHERE until_ms > ?1 AND from_ms <= ?1 ORDER BY id"
        };
        let mut q = self.0.prepare_cached(sql)?;
        Ok(q.query_map([now_ms], |r| {
            Ok(Silence {
                id: r.get(0)?,
                target: r.get(1)?,
                from_ms: r.get(2)?,
                until_ms: r.get(3)?,
                reason: r.get(4)?,
                created_by: r.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?)
    }
    /// Ends a silence now; false if there is none with that id in force.
    pub fn end_silence(&self, id: i64, now_ms: i64) -> Result<bool> {
        Ok(self.0.execute(
            "UPDATE silences SET until_ms = max(from_ms + 1, ?2) WHERE id = ?1 AND until_ms > ?2",
            params![id, now_ms],
        )? == 1)
    }
}

pub(crate) fn run_tx<T>(c: &Connection, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
    let tx = rusqlite::Transaction::new_unchecked(c, rusqlite::TransactionBehavior::Immediate)?;
    let out = f(&Tx(&tx))?;
    tx.commit()?;
    Ok(out)
}

/// The escalation tables alone, for processes other than the agent (the
/// `outpost ack` and `outpost silence` commands): no history writer, one
/// connection with `synchronous=FULL`.
pub struct EscalationDb {
    conn: std::sync::Mutex<Connection>,
}

impl EscalationDb {
    /// Opens an existing database (created and migrated by the agent).
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<EscalationDb> {
        Ok(EscalationDb {
            conn: std::sync::Mutex::new(crate::schema::open_side(path.as_ref())?),
        })
    }
    /// Runs `f` in one immediate transaction.
    pub fn tx<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        let c = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        run_tx(&c, f)
    }
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
            ..Default::default()
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
    fn cancelling_keeps_timers_of_a_prefix() {
        let c = crate::schema::memory();
        let i = open_incident(&c, &new("web", None)).unwrap();
        add_timer(&c, i.id, "escalate", 5000).unwrap();
        add_timer(&c, i.id, "remind", 5000).unwrap();
        let ka = add_timer(&c, i.id, "keepalive:am", 5000).unwrap();
        add_timer(&c, i.id, "keepalivex", 5000).unwrap();
        let t = Tx(&c);
        assert_eq!(t.cancel_timers_except(i.id, "keepalive:").unwrap(), 3);
        let left: Vec<i64> = t.timers(i.id).unwrap().iter().map(|t| t.id).collect();
        assert_eq!(left, vec![ka]);
    }

    #[test]
    fn told_notifiers_and_pending() {
        let c = crate::schema::memory();
        let i = open_incident(&c, &new("web", None)).unwrap();
        let t = Tx(&c);
        let add = |n: &str, key: &str| {
            t.enqueue(&NewOutbox {
                incident_id: Some(i.id),
                notifier: n.into(),
                idempotency_key: key.into(),
                payload: json!({}),
                next_attempt_ms: 0,
            })
            .unwrap()
            .unwrap()
        };
        let a = add("b", "1");
        add("a", "2");
        add("b", "3");
        assert_eq!(t.told_notifiers(i.id).unwrap(), vec!["b", "a"]);
        assert!(t.has_pending(i.id, "a").unwrap());
        assert!(!t.has_pending(i.id, "c").unwrap());
        assert!(t.delivered(a, 1).unwrap());
        assert!(
            t.has_pending(i.id, "b").unwrap(),
            "entry 3 is still pending"
        );
        let b3 = t.outbox_of(i.id).unwrap()[2].id;
        assert!(t.gave_up(b3, "no", 2).unwrap());
        assert!(!t.has_pending(i.id, "b").unwrap());
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
