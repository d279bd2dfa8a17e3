//! Incidents and escalation: the pipeline stage after evaluation.
//!
//! ```text
//! TargetEvent ──▶ engine ──(SQLite: incidents, timers, outbox)──▶ outbox ──▶ notifier plugins
//!                   ▲                    ▲
//!   durable timers ─┘   ack / silence ───┘  (HTTP API and CLI, through `actions`)
//! ```
//!
//! * [`engine`] watches target health, opens an incident once a target has
//!   been down for its policy's alerting window, escalates level by level
//!   when nobody acknowledges within `ack_within`, reminds, and resolves.
//!   Every decision is one SQLite transaction that also writes the timers
//!   and notifications it implies, so a crash never leaves half a decision.
//! * [`outbox`] delivers notifications through notifier plugins with
//!   retries (exponential backoff with jitter, `Retry-After` honoured),
//!   in order per incident and receiver, recording every attempt.
//! * [`actions`] are what people do: acknowledge (by token), silence.
//!   They only touch the database, so the CLI works with or without a
//!   running agent, and the engine and outbox pick the result up.
//! * [`keepalive`] re-posts incidents to notifiers with a `keepalive`
//!   while they are unresolved (acknowledged or not), for receivers that
//!   expire alerts nobody re-posts.
//! * [`token`] makes and checks secrets; [`http`] serves `/ack/<token>`
//!   and the silence API.
//!
//! This stage never calls back into evaluation or the scheduler.

pub mod actions;
pub mod engine;
pub mod http;
pub mod keepalive;
pub mod outbox;
pub mod token;

use crate::config::{Config, EscalationPolicy, Maintenance, NotifierConfig};
use crate::targets::TargetEvent;
use outpost_plugin_host::Plugin;
use outpost_types::AlertEvent;
use std::collections::HashMap;
use std::sync::Arc;

/// Everything the stage needs from the configuration, swapped whole on a
/// reload.
#[derive(Clone)]
pub struct AlertingConfig {
    /// This agent's name (in every alert).
    pub agent: String,
    /// Base URL for acknowledgement links.
    pub public_url: String,
    /// Policies, in file order (the first that covers a target wins).
    pub policies: Vec<EscalationPolicy>,
    /// Configured notifiers with their loaded plugins.
    pub notifiers: HashMap<String, (NotifierConfig, Arc<Plugin>)>,
    /// Maintenance windows.
    pub maintenance: Vec<Maintenance>,
    /// Key of acknowledgement tokens.
    pub key: token::AckKey,
    /// Every target this configuration has (sensors, systems, services):
    /// an open incident of a target that a new configuration no longer
    /// has resolves as "removed".
    pub targets: std::collections::HashSet<String>,
}

impl AlertingConfig {
    /// The alerting part of a loaded configuration.
    pub fn new(cfg: &Config, plugins: &HashMap<String, Arc<Plugin>>, key: token::AckKey) -> Self {
        AlertingConfig {
            agent: cfg.agent.name.clone(),
            public_url: cfg.agent.public_url.clone(),
            policies: cfg.escalations.clone(),
            notifiers: cfg
                .notifiers
                .iter()
                .filter_map(|n| {
                    Some((n.name.clone(), (n.clone(), plugins.get(&n.plugin)?.clone())))
                })
                .collect(),
            maintenance: cfg.maintenance.clone(),
            key,
            targets: cfg
                .sensors
                .iter()
                .map(|s| s.name.clone())
                .chain(cfg.topology.nodes.iter().map(|n| n.name.clone()))
                .collect(),
        }
    }

    /// The policy covering a target: the first in file order.
    pub fn policy_for(&self, ev: &TargetEvent) -> Option<&EscalationPolicy> {
        self.policies
            .iter()
            .find(|p| p.covers(&ev.target, ev.category.as_deref(), &ev.labels))
    }

    /// The keepalive of a configured notifier, if it has one.
    pub fn keepalive_of(&self, notifier: &str) -> Option<std::time::Duration> {
        self.notifiers.get(notifier).and_then(|(c, _)| c.keepalive)
    }

    /// A policy by name.
    pub fn policy(&self, name: &str) -> Option<&EscalationPolicy> {
        self.policies.iter().find(|p| p.name == name)
    }

    /// End of the maintenance window covering a target now, if any.
    pub fn maintenance_end(&self, ev: &TargetEvent, now_ms: i64) -> Option<i64> {
        self.maintenance
            .iter()
            .filter(|m| {
                m.targets
                    .iter()
                    .any(|t| t.matches(&ev.target, ev.category.as_deref(), &ev.labels))
            })
            .filter_map(|m| m.window.end_if_active(now_ms))
            .max()
    }

    /// The acknowledgement link of an incident.
    pub fn ack_url(&self, nonce: &str) -> Option<String> {
        Some(format!(
            "{}/ack/{}",
            self.public_url,
            self.key.token(nonce)?
        ))
    }
}

/// The stored form of one notification (the outbox payload): the alert
/// without its acknowledgement link, which is derived at delivery time from
/// the incident's nonce so no token is ever stored.
pub fn alert_payload(
    agent: &str,
    inc: &outpost_store::Incident,
    event: AlertEvent,
    level: u32,
    message: &str,
    event_at_ms: i64,
) -> serde_json::Value {
    let (old, new) = match event {
        AlertEvent::Opened => ("up", "down"),
        AlertEvent::Escalated | AlertEvent::Reminder => ("down", "down"),
        AlertEvent::Acknowledged => ("down", "acknowledged"),
        AlertEvent::Resolved => ("down", "up"),
    };
    serde_json::json!({
        "incident_id": inc.id.to_string(),
        "event": event,
        "agent": agent,
        "target": inc.target,
        "target_kind": inc.kind,
        "old_state": old,
        "new_state": new,
        "message": message,
        "started_at_ms": inc.down_since_ms.unwrap_or(inc.opened_at_ms),
        "event_at_ms": event_at_ms,
        "level": level.max(1),
    })
}

/// The idempotency key of one notification: stable across retries and
/// restarts, unique per incident, event, level, occurrence and receiver.
pub fn idempotency_key(
    agent: &str,
    incident: i64,
    event: AlertEvent,
    level: u32,
    seq: &str,
    notifier: &str,
) -> String {
    let ev = serde_json::to_value(event)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    format!("{agent}/{incident}/{ev}/{level}/{seq}/{notifier}")
}
