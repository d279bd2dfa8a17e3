//! Delivery of the outbox: every notification the engine (or an
//! acknowledgement) wrote is handed to its notifier plugin until it is
//! delivered or given up.
//!
//! * **Durable and exactly-once on our side**: an entry is delivered at
//!   least once (a crash between the receiver's answer and our commit means
//!   one more attempt, with the same idempotency key, which notifiers pass
//!   on where the receiver supports it) and never again once its delivery
//!   is committed.
//! * **In order**: an entry is not attempted while an earlier entry of the
//!   same incident and notifier is pending (the store's due query), so a
//!   receiver never sees "resolved" before "opened".
//! * **Retries**: exponential backoff from [`RETRY_BASE`] doubling up to
//!   [`RETRY_CAP`] with ±25 % jitter; a `retry-after` from the plugin (HTTP
//!   429 `Retry-After`) is honoured instead, up to [`RETRY_AFTER_CAP`]
//!   (longer requests wait the cap, with a warning); a permanent error, or
//!   [`MAX_ATTEMPTS`] failures, gives up. A plugin that traps or times out
//!   is a failed attempt like any other. Every attempt is recorded, and
//!   failures are logged and written on the incident.
//! * **Isolation**: each delivery runs in a fresh plugin instance with the
//!   notifier's network allow-list, on its own task; a slow receiver holds
//!   up only its own incident's queue, never the scheduler or other
//!   notifications ([`PARALLEL`] at once).

use super::AlertingConfig;
use outpost_plugin_host::NetPolicy;
use outpost_store::{IncidentState, OutboxEntry, Store};
use outpost_types::{Alert, AlertEvent};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, mpsc, watch};

/// First retry delay. One second rides out a receiver restart without
/// hammering it.
pub const RETRY_BASE: Duration = Duration::from_secs(1);
/// Longest delay between attempts: five minutes keeps a long outage of a
/// receiver cheap while a recovered one is used again soon.
pub const RETRY_CAP: Duration = Duration::from_secs(300);
/// Longest `Retry-After` honoured; beyond it the cap applies (a receiver
/// asking for hours would otherwise silence an incident).
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(3600);
/// Failed attempts before giving up: with the cap, about eight hours of
/// trying, longer than any receiver outage worth waiting for.
pub const MAX_ATTEMPTS: u32 = 100;
/// Deliveries in flight at once.
pub const PARALLEL: usize = 8;
/// How often the outbox is looked at without being woken (entries written
/// by other processes, such as `outpost ack`, and retries coming due).
const POLL: Duration = Duration::from_millis(250);

use outpost_types::time::now_ms;

/// The delay before retry number `attempt` (1-based), with jitter.
pub fn backoff(attempt: u32, jitter01: f64) -> Duration {
    let exp = RETRY_BASE.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let d = exp.min(RETRY_CAP).as_secs_f64() * (0.75 + 0.5 * jitter01.clamp(0.0, 1.0));
    Duration::from_secs_f64(d)
}

fn jitter() -> f64 {
    let mut b = [0u8; 4];
    super::token::random_bytes(&mut b);
    u32::from_le_bytes(b) as f64 / u32::MAX as f64
}

/// Runs the delivery loop until `stop` fires.
pub async fn run(
    store: Store,
    mut config: watch::Receiver<Arc<AlertingConfig>>,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(PARALLEL));
    let mut in_flight: HashSet<(Option<i64>, String)> = HashSet::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(Option<i64>, String)>();
    loop {
        let cfg = config.borrow_and_update().clone();
        let due = tokio::task::block_in_place(|| store.tx(|t| t.due_outbox(now_ms(), 64)));
        match due {
            Ok(due) => {
                for e in due {
                    let key = (e.incident_id, e.notifier.clone());
                    if in_flight.contains(&key) {
                        continue;
                    }
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        break;
                    };
                    in_flight.insert(key.clone());
                    let (store, cfg, done) = (store.clone(), cfg.clone(), done_tx.clone());
                    tokio::spawn(async move {
                        deliver(&store, &cfg, e).await;
                        drop(permit);
                        let _ = done.send(key);
                    });
                }
            }
            Err(e) => tracing::error!("cannot read the outbox: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = wake.notified() => {}
            Some(k) = done_rx.recv() => { in_flight.remove(&k); }
            _ = stop.changed() => break,
        }
        while let Ok(k) = done_rx.try_recv() {
            in_flight.remove(&k);
        }
    }
    // Let deliveries in flight finish (each is bounded by its timeout).
    let _ = permits.acquire_many(PARALLEL as u32).await;
}

/// The alert a notifier receives for an outbox entry.
fn alert_of(e: &OutboxEntry, ack_url: Option<String>) -> Alert {
    let mut a: Alert = serde_json::from_value(e.payload.clone()).unwrap_or_default();
    a.idempotency_key = e.idempotency_key.clone();
    a.ack_url = ack_url;
    a
}

/// One delivery attempt of one entry, with its bookkeeping.
pub async fn deliver(store: &Store, cfg: &AlertingConfig, e: OutboxEntry) {
    let now = now_ms();
    let incident = e.incident_id.and_then(|id| {
        tokio::task::block_in_place(|| store.tx(|t| t.incident(id)))
            .ok()
            .flatten()
    });
    let Some((ncfg, plugin)) = cfg.notifiers.get(&e.notifier) else {
        let msg = format!(
            "notifier `{}` is not configured any more; giving up",
            e.notifier
        );
        record(store, &e, Err((msg, None, true)), now);
        return;
    };
    let event = serde_json::from_value::<Alert>(e.payload.clone())
        .map(|a| a.event)
        .unwrap_or(AlertEvent::Opened);
    // The link only while acknowledging is possible.
    let ack_url = incident
        .as_ref()
        .filter(|i| {
            i.state == IncidentState::Open
                && matches!(
                    event,
                    AlertEvent::Opened | AlertEvent::Escalated | AlertEvent::Reminder
                )
        })
        .and_then(|i| i.ack_nonce.as_deref())
        .and_then(|n| cfg.ack_url(n));
    let alert = alert_of(&e, ack_url);
    let policy = NetPolicy::granted(
        plugin.info(),
        &ncfg.config.value(),
        ncfg.allow.as_deref(),
        &[],
    );
    let mut instance = plugin.instance(Arc::new(policy), &ncfg.name);
    let outcome = instance
        .notify(ncfg.config.json(), &alert, ncfg.timeout)
        .await;
    let result = match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(d)) => Err((d.message, d.retry_after_ms, d.permanent)),
        Err(run) => Err((format!("notifier plugin fault: {run}"), None, false)),
    };
    record(store, &e, result, now_ms());
}

type Failure = (String, Option<u64>, bool);

fn record(store: &Store, e: &OutboxEntry, result: Result<(), Failure>, now: i64) {
    let event = e
        .payload
        .get("event")
        .and_then(|v| v.as_str())
        .unwrap_or("?")
        .to_string();
    let level = e.payload.get("level").and_then(|v| v.as_u64()).unwrap_or(0);
    let r = tokio::task::block_in_place(|| {
        store.tx(|tx| {
            match &result {
                Ok(()) => {
                    tx.delivered(e.id, now)?;
                    if let Some(i) = e.incident_id {
                        tx.add_event(i, now, "delivered", &format!("{event} (level {level}) delivered via {}", e.notifier))?;
                    }
                }
                Err((msg, retry_after, permanent)) => {
                    let attempt = e.attempts + 1;
                    if *permanent || attempt >= MAX_ATTEMPTS {
                        let why = if *permanent { "permanent error" } else { "too many attempts" };
                        tx.gave_up(e.id, msg, now)?;
                        if let Some(i) = e.incident_id {
                            tx.add_event(i, now, "delivery_failed", &format!("{event} via {} given up after {attempt} attempt(s) ({why}): {msg}", e.notifier))?;
                        }
                    } else {
                        let wait = match retry_after {
                            Some(ms) => {
                                let asked = Duration::from_millis(*ms);
                                if asked > RETRY_AFTER_CAP {
                                    tracing::warn!(notifier = %e.notifier, "the receiver asked to retry in {} s; retrying in {} s, the longest Retry-After honoured", asked.as_secs(), RETRY_AFTER_CAP.as_secs());
                                }
                                asked.min(RETRY_AFTER_CAP)
                            }
                            None => backoff(attempt, jitter()),
                        };
                        tx.failed(e.id, msg, now, now + wait.as_millis() as i64)?;
                        if let Some(i) = e.incident_id {
                            tx.add_event(i, now, "delivery_failed", &format!("{event} via {} attempt {attempt} failed, retry in {} ms: {msg}", e.notifier, wait.as_millis()))?;
                        }
                    }
                }
            }
            Ok(())
        })
    });
    match (&result, r) {
        (_, Err(err)) => tracing::error!(notifier = %e.notifier, "cannot record a delivery: {err}"),
        (Ok(()), Ok(())) => {
            tracing::info!(notifier = %e.notifier, incident = ?e.incident_id, "{event} delivered")
        }
        (Err((msg, _, _)), Ok(())) => {
            tracing::warn!(notifier = %e.notifier, incident = ?e.incident_id, attempt = e.attempts + 1, "{event} not delivered: {msg}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_bounded_jitter() {
        assert_eq!(backoff(1, 0.5), Duration::from_secs(1));
        assert_eq!(backoff(2, 0.5), Duration::from_secs(2));
        assert_eq!(backoff(4, 0.5), Duration::from_secs(8));
        assert_eq!(backoff(30, 0.5), RETRY_CAP);
        assert_eq!(backoff(1, 0.0), Duration::from_millis(750));
        assert_eq!(backoff(1, 1.0), Duration::from_millis(1250));
    }
}
