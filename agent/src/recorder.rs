//! The recorder: the pipeline stage after the scheduler. It stores every
//! result, transition and sensor state, updates the status board and the
//! metrics, logs state changes, and forwards changes to the next stage
//! (incidents) as messages. It never calls back into the scheduler.

use crate::metrics::Metrics;
use crate::scheduler::CheckEvent;
use crate::state::State;
use crate::status::{Board, SensorView};
use outpost_store as store;
use std::sync::Arc;
use tokio::sync::mpsc;

fn state_code(s: State) -> f64 {
    match s {
        State::Unknown => 0.0,
        State::Up => 1.0,
        State::Soft => 2.0,
        State::Down => 3.0,
        State::Recovering => 4.0,
    }
}

/// Consumes check events until the channel closes.
pub async fn run(
    mut rx: mpsc::Receiver<CheckEvent>,
    store: store::Store,
    board: Arc<Board>,
    metrics: Arc<Metrics>,
    next: Option<mpsc::Sender<CheckEvent>>,
) {
    while let Some(ev) = rx.recv().await {
        let s = &ev.sensor;
        let r = &ev.result;
        let rec = store::CheckRecord {
            sensor: s.name.clone(),
            at_ms: ev.at_ms,
            status: r.status,
            latency_us: (r.latency_ms * 1000.0) as u64,
            message: r.message.clone(),
            metrics: r.metrics.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            // Results taken while the agent was offline are kept but, like
            // maintenance, do not count against the target's SLA.
            in_maintenance: s.in_maintenance(ev.at_ms) || ev.offline,
            interval_ms: s.interval.as_millis() as u64,
        };
        let ok = store.record_async(rec).await.is_ok();
        metrics.store_write(ok);
        if let Some(t) = &ev.transition {
            let line = format!("{} → {}: {}", t.from, t.to, t.reason);
            match t.to {
                State::Down | State::Soft => tracing::warn!(sensor = %s.name, "{line}"),
                _ => tracing::info!(sensor = %s.name, "{line}"),
            }
            let _ = store.record_transition(store::Transition {
                sensor: s.name.clone(),
                at_ms: t.at_ms,
                from: t.from.to_string(),
                to: t.to.to_string(),
                reason: t.reason.clone(),
            });
        }
        if let Some(f) = ev.flapping_changed {
            tracing::warn!(sensor = %s.name, flapping = f, "flapping {}", if f { "started" } else { "stopped" });
        }
        let _ = store.upsert_sensor_state(store::SensorState {
            sensor: s.name.clone(),
            state: ev.state.to_string(),
            since_ms: ev.since_ms,
            last_check_ms: Some(ev.at_ms),
            last_status: Some(r.status),
            last_message: r.message.clone(),
            last_latency_us: Some((r.latency_ms * 1000.0) as u64),
            consecutive_failures: ev.consecutive_failures,
            consecutive_successes: ev.consecutive_successes,
            flapping: ev.flapping,
            updated_ms: ev.at_ms,
        });
        tracing::debug!(sensor = %s.name, status = %r.status, latency_ms = r.latency_ms, "{}", r.message);
        metrics.observe_check(
            &s.name,
            r.status,
            r.latency_ms / 1000.0,
            r.status.is_up(),
            if ev.offline {
                state_code(State::Unknown)
            } else {
                state_code(ev.state)
            },
        );
        let reason = match &ev.transition {
            Some(t) => t.reason.clone(),
            None => board.reason(&s.name).unwrap_or_default(),
        };
        board.put(SensorView {
            sensor: s.clone(),
            state: ev.state,
            since_ms: ev.since_ms,
            reason,
            flapping: ev.flapping,
            last_check_ms: Some(ev.at_ms),
            last_status: Some(r.status),
            last_message: r.message.clone(),
            last_latency_ms: Some(r.latency_ms),
            offline: ev.offline,
        });
        if let Some(n) = &next {
            let _ = n.send(ev).await;
        }
    }
}
