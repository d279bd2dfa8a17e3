//! Builds the Alertmanager API v2 body (a JSON array of one
//! `postableAlert`) for an alert. Pure.
//!
//! - `labels` (what identifies the alert; Alertmanager's fingerprint):
//!   `alertname`, `target`, `target_kind`, `agent` (unless
//!   `agent_label = false`), then the configured `labels`.
//! - `annotations` (shown, not identifying): `summary`, `message`,
//!   `ack_url` (when the alert has one), `incident_id`, `agent`, `event`,
//!   `level`, then the configured `annotations`.
//! - `startsAt`: when the incident started.
//! - `endsAt`: on `resolved`, the resolution time (Alertmanager then
//!   resolves the alert and sends resolved notifications); otherwise
//!   `max(event time, now) + ends_after`, so the alert stays firing until
//!   then unless posted again.
//! - `generatorURL`: `generator_url` from the config, else the agent's page
//!   (the ack link up to `/ack/`), else absent.

use crate::config::Config;
use outpost_plugin_sdk::prelude::*;
use serde_json::{Map, Value, json};

/// Annotations the plugin sets itself; `annotations` may not replace them.
pub const RESERVED_ANNOTATIONS: &[&str] = &[
    "summary",
    "message",
    "ack_url",
    "incident_id",
    "agent",
    "event",
    "level",
];

/// The event's name as in the WIT (`opened`, ...).
pub fn event_name(e: AlertEvent) -> &'static str {
    match e {
        AlertEvent::Opened => "opened",
        AlertEvent::Escalated => "escalated",
        AlertEvent::Reminder => "reminder",
        AlertEvent::Acknowledged => "acknowledged",
        AlertEvent::Resolved => "resolved",
    }
}

/// One line for the `summary` annotation.
pub fn summary(alert: &Alert) -> String {
    let t = &alert.target;
    let kind = &alert.target_kind;
    match alert.event {
        AlertEvent::Resolved => format!("{kind} {t} is {} again", alert.new_state.to_uppercase()),
        AlertEvent::Acknowledged => format!("{kind} {t} is DOWN (acknowledged)"),
        _ => format!("{kind} {t} is {}", alert.new_state.to_uppercase()),
    }
}

/// The agent's page: the ack link up to `/ack/`, with a trailing `/`.
pub fn agent_page(ack_url: &str) -> Option<String> {
    ack_url
        .rfind("/ack/")
        .map(|i| format!("{}/", &ack_url[..i]))
}

/// The request body for `alert`, `now_ms` being the current Unix time in
/// milliseconds.
pub fn body(config: &Config, alert: &Alert, now_ms: i64) -> Value {
    let mut labels = Map::new();
    labels.insert("alertname".into(), config.alertname().into());
    labels.insert("target".into(), alert.target.clone().into());
    labels.insert("target_kind".into(), alert.target_kind.clone().into());
    if config.agent_label {
        labels.insert("agent".into(), alert.agent.clone().into());
    }
    for (k, v) in &config.labels {
        labels.insert(k.clone(), v.clone().into());
    }

    let mut annotations = Map::new();
    annotations.insert("summary".into(), summary(alert).into());
    if !alert.message.trim().is_empty() {
        annotations.insert("message".into(), alert.message.trim().into());
    }
    if let Some(url) = &alert.ack_url {
        annotations.insert("ack_url".into(), url.clone().into());
    }
    annotations.insert("incident_id".into(), alert.incident_id.clone().into());
    annotations.insert("agent".into(), alert.agent.clone().into());
    annotations.insert("event".into(), event_name(alert.event).into());
    annotations.insert("level".into(), alert.level.to_string().into());
    for (k, v) in &config.annotations {
        annotations.insert(k.clone(), v.clone().into());
    }

    let ends_at = match alert.event {
        AlertEvent::Resolved => alert.event_at_ms,
        _ => alert.event_at_ms.max(now_ms) + config.ends_after().as_millis() as i64,
    };
    let mut a = json!({
        "labels": labels,
        "annotations": annotations,
        "startsAt": rfc3339(alert.started_at_ms),
        "endsAt": rfc3339(ends_at),
    });
    let generator = config
        .generator_url
        .clone()
        .or_else(|| alert.ack_url.as_deref().and_then(agent_page));
    if let Some(g) = generator {
        a["generatorURL"] = g.into();
    }
    json!([a])
}

/// RFC 3339 in UTC with milliseconds: `2026-12-01T19:05:18.250Z`.
pub fn rfc3339(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let ms = unix_ms.rem_euclid(1000);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{ms:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => "1970-01-01T00:00:00.000Z".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(event: AlertEvent) -> Alert {
        Alert {
            idempotency_key: "k".into(),
            incident_id: "7".into(),
            event,
            agent: "edge-1".into(),
            target: "web".into(),
            target_kind: "sensor".into(),
            old_state: "up".into(),
            new_state: if event == AlertEvent::Resolved {
                "up"
            } else {
                "down"
            }
            .into(),
            message: "HTTP 503".into(),
            started_at_ms: 1_796_151_918_250,
            event_at_ms: 1_796_151_978_000,
            level: 1,
            ack_url: Some("http://mon.example:9090/ack/tok".into()),
        }
    }

    fn cfg(v: Value) -> Config {
        outpost_plugin_sdk::parse_config(&v.to_string()).unwrap()
    }

    #[test]
    fn firing_alert_has_every_documented_field() {
        let c = cfg(
            json!({"urls": ["http://a"], "labels": {"severity": "critical"}, "annotations": {"runbook_url": "http://rb"}}),
        );
        let b = body(&c, &alert(AlertEvent::Opened), 0);
        assert_eq!(
            b,
            json!([{
                "labels": {
                    "alertname": "OutpostTargetDown",
                    "target": "web",
                    "target_kind": "sensor",
                    "agent": "edge-1",
                    "severity": "critical"
                },
                "annotations": {
                    "summary": "sensor web is DOWN",
                    "message": "HTTP 503",
                    "ack_url": "http://mon.example:9090/ack/tok",
                    "incident_id": "7",
                    "agent": "edge-1",
                    "event": "opened",
                    "level": "1",
                    "runbook_url": "http://rb"
                },
                "startsAt": "2026-12-01T19:05:18.250Z",
                "endsAt": "2026-12-01T20:06:18.000Z",
                "generatorURL": "http://mon.example:9090/"
            }])
        );
    }

    #[test]
    fn ends_at_counts_from_now_when_the_event_is_old() {
        let c = cfg(json!({"urls": ["http://a"], "ends_after": "10m"}));
        let a = alert(AlertEvent::Reminder);
        let b = body(&c, &a, a.event_at_ms + 3_600_000);
        assert_eq!(b[0]["endsAt"], "2026-12-01T20:16:18.000Z");
    }

    #[test]
    fn resolved_ends_at_the_resolution_and_agent_label_is_optional() {
        let c = cfg(
            json!({"urls": ["http://a"], "agent_label": false, "generator_url": "https://status.example/"}),
        );
        let mut a = alert(AlertEvent::Resolved);
        a.ack_url = None;
        let b = body(&c, &a, a.event_at_ms + 5000);
        assert_eq!(b[0]["endsAt"], "2026-12-01T19:06:18.000Z");
        assert_eq!(b[0]["startsAt"], "2026-12-01T19:05:18.250Z");
        assert!(b[0]["labels"].get("agent").is_none());
        assert_eq!(b[0]["annotations"]["agent"], "edge-1");
        assert!(b[0]["annotations"].get("ack_url").is_none());
        assert_eq!(b[0]["annotations"]["summary"], "sensor web is UP again");
        assert_eq!(b[0]["generatorURL"], "https://status.example/");
        let c = cfg(json!({"urls": ["http://a"]}));
        assert!(body(&c, &a, 0)[0].get("generatorURL").is_none());
    }

    #[test]
    fn agent_page_from_ack_link() {
        assert_eq!(
            agent_page("https://m.example/outpost/ack/abc").as_deref(),
            Some("https://m.example/outpost/")
        );
        assert_eq!(agent_page("https://m.example/x"), None);
    }
}
