//! What people do to incidents: acknowledge (with the token from a
//! notification, or as an admin by incident id) and silence targets.
//!
//! Each action is one transaction on the escalation tables and nothing
//! else, so the API of a running agent and the CLI (with or without a
//! running agent) share it, and the engine and outbox simply see its
//! result: an acknowledged incident's escalation timers are gone (its
//! [`super::keepalive`] chains stay: the incident is still unresolved), its
//! "acknowledged" notifications are in the outbox.

use super::{alert_payload, idempotency_key, token};
use crate::config::Selector;
use outpost_store::{Incident, IncidentState, NewOutbox, Silence, Tx};
use outpost_types::AlertEvent;
use serde::Serialize;

/// The longest a name given with an acknowledgement is kept.
const MAX_BY_LEN: usize = 64;

/// What an acknowledgement attempt did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum AckOutcome {
    /// Acknowledged now.
    Acknowledged {
        /// The incident.
        incident: Incident,
    },
    /// Somebody acknowledged it before; nothing changed.
    AlreadyAcknowledged {
        /// The incident.
        incident: Incident,
    },
    /// It is resolved; nothing changed.
    Resolved {
        /// The incident.
        incident: Incident,
    },
    /// No incident has this token (wrong, truncated, or never issued).
    Unknown,
}

/// The incident a token belongs to, compared in constant time.
pub fn incident_for_token(tx: &Tx<'_>, tok: &str) -> outpost_store::Result<Option<Incident>> {
    if !token::well_formed(tok) {
        return Ok(None);
    }
    let h = token::hash(tok);
    Ok(tx
        .incident_by_token(&h)?
        .filter(|i| i.token_hash.as_deref().is_some_and(|s| token::ct_eq(s, &h))))
}

/// Cleans the name given by whoever acknowledges.
pub fn clean_by(by: &str) -> String {
    let s: String = by
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_BY_LEN)
        .collect();
    let s = s.trim();
    if s.is_empty() {
        "anonymous".into()
    } else {
        s.to_string()
    }
}

/// Acknowledges the incident of `tok`.
pub fn acknowledge(
    tx: &Tx<'_>,
    agent: &str,
    tok: &str,
    by: &str,
    now_ms: i64,
) -> outpost_store::Result<AckOutcome> {
    match incident_for_token(tx, tok)? {
        None => Ok(AckOutcome::Unknown),
        Some(inc) => acknowledge_incident(tx, agent, inc, by, now_ms),
    }
}

/// Acknowledges an incident (admin path, by id).
pub fn acknowledge_incident(
    tx: &Tx<'_>,
    agent: &str,
    inc: Incident,
    by: &str,
    now_ms: i64,
) -> outpost_store::Result<AckOutcome> {
    match inc.state {
        IncidentState::Resolved => return Ok(AckOutcome::Resolved { incident: inc }),
        IncidentState::Acked => return Ok(AckOutcome::AlreadyAcknowledged { incident: inc }),
        IncidentState::Open => {}
    }
    let by = clean_by(by);
    if !tx.ack(inc.id, &by, now_ms)? {
        return Ok(AckOutcome::AlreadyAcknowledged { incident: inc });
    }
    let stopped = tx.cancel_timers_except(inc.id, super::keepalive::PREFIX)?;
    let took = now_ms - inc.opened_at_ms;
    tx.add_event(
        inc.id,
        now_ms,
        "acknowledged",
        &format!(
            "acknowledged by {by} after {}s; escalation stopped ({stopped} pending timer(s) cancelled)",
            took / 1000
        ),
    )?;
    let inc = tx.incident(inc.id)?.unwrap_or(inc);
    announce_to_told(
        tx,
        agent,
        &inc,
        AlertEvent::Acknowledged,
        &format!("{} acknowledged by {by}", inc.target),
        now_ms,
    )?;
    Ok(AckOutcome::Acknowledged { incident: inc })
}

/// Enqueues `event` for every notifier that was told about the incident,
/// at the incident's level.
pub fn announce_to_told(
    tx: &Tx<'_>,
    agent: &str,
    inc: &Incident,
    event: AlertEvent,
    message: &str,
    now_ms: i64,
) -> outpost_store::Result<usize> {
    // Not the whole outbox of the incident: with keepalive re-posts it
    // grows by one row per interval.
    let told = tx.told_notifiers(inc.id)?;
    let payload = alert_payload(agent, inc, event, inc.level, message, now_ms);
    for n in &told {
        tx.enqueue(&NewOutbox {
            incident_id: Some(inc.id),
            notifier: n.clone(),
            idempotency_key: idempotency_key(agent, inc.id, event, inc.level, "1", n),
            payload: payload.clone(),
            next_attempt_ms: now_ms,
        })?;
    }
    Ok(told.len())
}

/// Silences a target selector for `duration_ms` from now.
pub fn silence(
    tx: &Tx<'_>,
    target: &str,
    duration_ms: i64,
    reason: &str,
    by: &str,
    now_ms: i64,
) -> Result<Silence, String> {
    Selector::parse(target)?;
    if duration_ms <= 0 {
        return Err("the duration must be more than 0".into());
    }
    let mut s = Silence {
        id: 0,
        target: target.to_string(),
        from_ms: now_ms,
        until_ms: now_ms.saturating_add(duration_ms),
        reason: reason.chars().take(500).collect(),
        created_by: clean_by(by),
    };
    s.id = tx.add_silence(&s).map_err(|e| e.to_string())?;
    Ok(s)
}

/// End of the silence covering a target now, if any.
pub fn silenced_until(
    silences: &[Silence],
    name: &str,
    category: Option<&str>,
    labels: &std::collections::BTreeMap<String, String>,
    now_ms: i64,
) -> Option<i64> {
    silences
        .iter()
        .filter(|s| s.from_ms <= now_ms && now_ms < s.until_ms)
        .filter(|s| {
            Selector::parse(&s.target)
                .map(|sel| sel.matches(name, category, labels))
                .unwrap_or(false)
        })
        .map(|s| s.until_ms)
        .max()
}
