//! Keepalive re-posts: a notifier with `keepalive = "<duration>"` is sent a
//! `reminder` of every incident it was told about, every `keepalive`, for
//! as long as the incident is unresolved, acknowledged or not.
//!
//! Receivers such as Alertmanager forget an alert nobody re-posts (at its
//! `endsAt`, or after `resolve_timeout`), so an incident that stays open
//! for hours, acknowledged or not, must be re-posted to keep its alert
//! firing. Escalation reminders (`repeat_every`) cannot do this: they stop
//! at the acknowledgement and only go to the current level.
//!
//! Each (incident, notifier) pair has one chain: a durable timer row of kind
//! `keepalive:<notifier>`. Claiming the due timer, enqueuing the re-post and
//! writing the next timer are one transaction, so a crash or `kill -9`
//! neither loses the chain nor forks it, and the re-post's idempotency key
//! (derived from the timer's id and due time) is unique. Rules:
//!
//! * a chain starts when a notifier with a keepalive is first told (in the
//!   transaction that enqueues that notification), or, for incidents that
//!   were already open, when a reload or a restart gives the notifier a
//!   keepalive;
//! * an acknowledgement does not stop it (see [`super::actions`]: it keeps
//!   `keepalive:` timers); resolution does (it cancels every timer);
//! * maintenance, silences and the agent being offline do not stop it
//!   either: they hold *new* notifications, while a keepalive only keeps
//!   an alert the receiver already has from expiring (Alertmanager's own
//!   silences mute it on its side);
//! * while an earlier notification to the same notifier is still waiting
//!   for delivery (the receiver is down), no re-post is added: the pending
//!   one carries the alert when it gets through, and a receiver that was
//!   down for an hour is not sent an hour of queued re-posts;
//! * a notifier that lost its keepalive (or was removed) by a reload ends
//!   its chain at the next due time.
//!
//! This module only writes rows inside the caller's transaction; the engine
//! decides when to call it, the outbox delivers.

use super::{alert_payload, idempotency_key};
use outpost_store::{Incident, IncidentState, NewOutbox, Timer, Tx};
use outpost_types::AlertEvent;
use std::time::Duration;

/// Prefix of the timer kinds of keepalive chains (`keepalive:<notifier>`).
pub const PREFIX: &str = "keepalive:";

/// The timer kind of `notifier`'s chain.
pub fn kind(notifier: &str) -> String {
    format!("{PREFIX}{notifier}")
}

/// The notifier of a keepalive timer kind, if it is one.
pub fn notifier_of(kind: &str) -> Option<&str> {
    kind.strip_prefix(PREFIX)
}

/// Starts a chain for every notifier told about `inc` that has a keepalive
/// (per `keepalive_of`) and no chain yet. Returns how many were started.
pub fn ensure(
    tx: &Tx<'_>,
    inc: &Incident,
    keepalive_of: &dyn Fn(&str) -> Option<Duration>,
    now: i64,
) -> outpost_store::Result<usize> {
    if inc.state == IncidentState::Resolved || inc.suppressed {
        return Ok(0);
    }
    let running: Vec<String> = tx
        .timers(inc.id)?
        .iter()
        .filter_map(|t| notifier_of(&t.kind).map(str::to_string))
        .collect();
    let mut started = 0;
    for n in tx.told_notifiers(inc.id)? {
        if running.contains(&n) {
            continue;
        }
        let Some(every) = keepalive_of(&n) else {
            continue;
        };
        tx.add_timer(
            inc.id,
            &kind(&n),
            now.saturating_add(every.as_millis() as i64),
        )?;
        tx.add_event(
            inc.id,
            now,
            "keepalive",
            &format!(
                "{n} is re-posted every {}s while the incident is unresolved",
                every.as_secs_f64()
            ),
        )?;
        started += 1;
    }
    Ok(started)
}

/// What firing a keepalive timer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fired {
    /// A re-post was enqueued and the next one scheduled.
    Posted,
    /// An earlier notification is still undelivered: nothing enqueued, the
    /// next one scheduled.
    Waiting,
    /// The chain ended (incident resolved or suppressed, notifier without a
    /// keepalive).
    Stopped,
}

/// Fires one keepalive `timer` of `inc`, already claimed by the caller in
/// this transaction.
pub fn fire(
    tx: &Tx<'_>,
    agent: &str,
    inc: &Incident,
    timer: &Timer,
    keepalive_of: &dyn Fn(&str) -> Option<Duration>,
    now: i64,
) -> outpost_store::Result<Fired> {
    let Some(n) = notifier_of(&timer.kind) else {
        return Ok(Fired::Stopped);
    };
    if inc.state == IncidentState::Resolved || inc.suppressed {
        return Ok(Fired::Stopped);
    }
    let Some(every) = keepalive_of(n) else {
        tx.add_event(
            inc.id,
            now,
            "keepalive_stopped",
            &format!("{n} is no longer configured with a keepalive"),
        )?;
        return Ok(Fired::Stopped);
    };
    let next = now.saturating_add(every.as_millis() as i64);
    if tx.has_pending(inc.id, n)? {
        tx.add_timer(inc.id, &timer.kind, next)?;
        return Ok(Fired::Waiting);
    }
    let message = match (&inc.state, &inc.acked_by) {
        (IncidentState::Acked, Some(by)) => {
            format!("still down, acknowledged by {by}: {}", inc.message)
        }
        _ => format!("still down: {}", inc.message),
    };
    let payload = alert_payload(agent, inc, AlertEvent::Reminder, inc.level, &message, now);
    tx.enqueue(&NewOutbox {
        incident_id: Some(inc.id),
        notifier: n.to_string(),
        idempotency_key: idempotency_key(
            agent,
            inc.id,
            AlertEvent::Reminder,
            inc.level,
            // Fired timer rows are kept, so their ids are never reused
            // within an incident; the due time guards the key anyway.
            &format!("keepalive-{}-{}", timer.id, timer.due_ms),
            n,
        ),
        payload,
        next_attempt_ms: now,
    })?;
    tx.add_timer(inc.id, &timer.kind, next)?;
    Ok(Fired::Posted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::escalation::actions;
    use outpost_store::{NewIncident, Store, StoreOptions};

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path().join("o.db"), StoreOptions::default()).unwrap();
        (dir, s)
    }

    /// `am` re-posts every second; `slack` has no keepalive.
    fn ka(n: &str) -> Option<Duration> {
        (n == "am").then_some(Duration::from_secs(1))
    }

    fn told(tx: &Tx<'_>, inc: &Incident, n: &str) {
        tx.enqueue(&NewOutbox {
            incident_id: Some(inc.id),
            notifier: n.into(),
            idempotency_key: format!("opened/{n}"),
            payload: serde_json::json!({}),
            next_attempt_ms: 0,
        })
        .unwrap();
    }

    fn deliver_all(tx: &Tx<'_>, inc: &Incident) {
        for e in tx.outbox_of(inc.id).unwrap() {
            tx.delivered(e.id, 1).unwrap();
        }
    }

    fn keepalive_timers(tx: &Tx<'_>, inc: &Incident) -> Vec<Timer> {
        tx.timers(inc.id)
            .unwrap()
            .into_iter()
            .filter(|t| t.kind.starts_with(PREFIX))
            .collect()
    }

    /// Fires every due keepalive timer as the engine does: claim, then fire.
    fn tick(tx: &Tx<'_>, now: i64) -> Vec<Fired> {
        let mut out = vec![];
        for t in tx.due_timers(now, 64).unwrap() {
            assert!(tx.fire_timer(t.id).unwrap());
            let inc = tx.incident(t.incident_id).unwrap().unwrap();
            out.push(fire(tx, "a1", &inc, &t, &ka, now).unwrap());
        }
        out
    }

    fn reminders(tx: &Tx<'_>, inc: &Incident) -> Vec<String> {
        tx.outbox_of(inc.id)
            .unwrap()
            .into_iter()
            .filter(|e| e.payload["event"] == "reminder")
            .map(|e| format!("{} {}", e.notifier, e.payload["message"].as_str().unwrap()))
            .collect()
    }

    #[test]
    fn a_chain_survives_the_ack_and_ends_at_resolution() {
        let (_d, s) = store();
        s.tx(|tx| {
            let inc = tx.open_incident(&NewIncident {
                target: "web".into(),
                opened_at_ms: 0,
                level: 1,
                message: "HTTP 503".into(),
                ..Default::default()
            })?;
            assert_eq!(ensure(tx, &inc, &ka, 0)?, 0, "nobody told yet");
            told(tx, &inc, "am");
            told(tx, &inc, "slack");
            assert_eq!(ensure(tx, &inc, &ka, 0)?, 1, "only `am` has a keepalive");
            assert_eq!(ensure(tx, &inc, &ka, 0)?, 0, "one chain per notifier");
            let t = keepalive_timers(tx, &inc);
            assert_eq!(
                (t.len(), t[0].kind.as_str(), t[0].due_ms),
                (1, "keepalive:am", 1000)
            );

            // Not due yet; then due but the opened post is still pending.
            assert!(tick(tx, 999).is_empty());
            assert_eq!(tick(tx, 1000), vec![Fired::Waiting]);
            assert!(reminders(tx, &inc).is_empty());
            deliver_all(tx, &inc);
            assert_eq!(tick(tx, 2000), vec![Fired::Posted]);
            assert_eq!(reminders(tx, &inc), vec!["am still down: HTTP 503"]);

            // The acknowledgement cancels escalation, not the chain.
            tx.add_timer(inc.id, "escalate", 10_000)?;
            let out = actions::acknowledge_incident(tx, "a1", inc.clone(), "alice", 2500)?;
            assert!(matches!(out, actions::AckOutcome::Acknowledged { .. }));
            let left: Vec<String> = tx.timers(inc.id)?.into_iter().map(|t| t.kind).collect();
            assert_eq!(left, vec!["keepalive:am"]);
            deliver_all(tx, &inc);
            assert_eq!(tick(tx, 3000), vec![Fired::Posted]);
            deliver_all(tx, &inc);
            assert_eq!(tick(tx, 4000), vec![Fired::Posted]);
            assert_eq!(
                reminders(tx, &inc)[1..],
                [
                    "am still down, acknowledged by alice: HTTP 503",
                    "am still down, acknowledged by alice: HTTP 503"
                ]
            );
            assert_eq!(keepalive_timers(tx, &inc).len(), 1, "never forks");

            // Resolution ends it.
            tx.resolve(inc.id, 4500)?;
            tx.cancel_timers(inc.id)?;
            assert!(tick(tx, 10_000).is_empty());
            assert_eq!(reminders(tx, &inc).len(), 3);
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn a_chain_ends_when_the_notifier_loses_its_keepalive() {
        let (_d, s) = store();
        s.tx(|tx| {
            let inc = tx.open_incident(&NewIncident {
                target: "web".into(),
                level: 1,
                ..Default::default()
            })?;
            told(tx, &inc, "am");
            deliver_all(tx, &inc);
            ensure(tx, &inc, &ka, 0)?;
            let t = tx.due_timers(1000, 10)?.remove(0);
            assert!(tx.fire_timer(t.id)?);
            assert_eq!(fire(tx, "a1", &inc, &t, &|_| None, 1000)?, Fired::Stopped);
            assert!(tx.timers(inc.id)?.is_empty());
            assert!(reminders(tx, &inc).is_empty());
            assert!(
                tx.events(inc.id)?
                    .iter()
                    .any(|e| e.kind == "keepalive_stopped")
            );
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn suppressed_or_resolved_incidents_get_no_chain() {
        let (_d, s) = store();
        s.tx(|tx| {
            let inc = tx.open_incident(&NewIncident {
                target: "svc".into(),
                suppressed: true,
                ..Default::default()
            })?;
            told(tx, &inc, "am");
            assert_eq!(ensure(tx, &inc, &ka, 0)?, 0);
            let inc = tx.open_incident(&NewIncident {
                target: "web".into(),
                ..Default::default()
            })?;
            told(tx, &inc, "am");
            tx.resolve(inc.id, 1)?;
            let inc = tx.incident(inc.id)?.unwrap();
            assert_eq!(ensure(tx, &inc, &ka, 0)?, 0);
            Ok(())
        })
        .unwrap();
    }
}
