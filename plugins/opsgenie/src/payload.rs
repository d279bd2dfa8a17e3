//! The Alerts API requests for an alert. Pure.
//!
//! | Outpost event | request |
//! | --- | --- |
//! | `opened`, `escalated`, `reminder` | `POST /v2/alerts` (create; Opsgenie de-duplicates an open alert with the same alias, raising its count) |
//! | `acknowledged` | `POST /v2/alerts/{alias}/acknowledge?identifierType=alias` when `acknowledge = true`, else nothing |
//! | `resolved` | `POST /v2/alerts/{alias}/close?identifierType=alias` |
//!
//! The alias is `{agent}:{incident id}`: the incident id, qualified by the
//! agent because incident ids are numbered per agent (two agents' incident
//! 42 must not become one Opsgenie alert). Limits of the API are enforced
//! by cutting (message 130, alias 512, description 15000, note 25000,
//! source and user 100, detail values 8000 characters).

use crate::config::Config;
use outpost_plugin_sdk::prelude::*;
use serde_json::{Value, json};

const MESSAGE_MAX: usize = 130;
const ALIAS_MAX: usize = 512;
const DESCRIPTION_MAX: usize = 15_000;
const NOTE_MAX: usize = 25_000;
const SOURCE_MAX: usize = 100;

/// One request to make.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// Path and query below the API base URL.
    pub path: String,
    /// JSON body.
    pub body: Value,
}

/// The event's name.
pub fn event_name(e: AlertEvent) -> &'static str {
    match e {
        AlertEvent::Opened => "opened",
        AlertEvent::Escalated => "escalated",
        AlertEvent::Reminder => "reminder",
        AlertEvent::Acknowledged => "acknowledged",
        AlertEvent::Resolved => "resolved",
    }
}

/// The Opsgenie alias of the alert's incident.
pub fn alias(alert: &Alert) -> String {
    cut(&format!("{}:{}", alert.agent, alert.incident_id), ALIAS_MAX)
}

/// Percent-encodes a path segment (everything but unreserved characters
/// and `:`).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn source(alert: &Alert) -> String {
    cut(&format!("Outpost {}", alert.agent), SOURCE_MAX)
}

/// What to send for `alert` (`None`: nothing, for an acknowledgement when
/// `acknowledge` is off).
pub fn call(config: &Config, alert: &Alert) -> Option<Call> {
    let alias = alias(alert);
    let action = |verb: &str| Call {
        path: format!(
            "/v2/alerts/{}/{verb}?identifierType=alias",
            encode_segment(&alias)
        ),
        body: json!({
            "source": source(alert),
            "user": "Outpost",
            "note": cut(alert.message.trim(), NOTE_MAX),
        }),
    };
    match alert.event {
        AlertEvent::Resolved => Some(action("close")),
        AlertEvent::Acknowledged => config.acknowledge.then(|| action("acknowledge")),
        AlertEvent::Opened | AlertEvent::Escalated | AlertEvent::Reminder => Some(Call {
            path: "/v2/alerts".into(),
            body: create(config, alert, alias),
        }),
    }
}

fn create(config: &Config, alert: &Alert, alias: String) -> Value {
    let message = format!(
        "[Outpost] {} is {}",
        alert.target,
        alert.new_state.to_uppercase()
    );
    let mut description = alert.message.trim().to_string();
    if let Some(url) = &alert.ack_url {
        description.push_str(&format!("\n\nAcknowledge in Outpost: {url}"));
    }
    let mut tags = vec!["outpost".to_string()];
    tags.extend(config.tags.iter().filter(|t| *t != "outpost").cloned());
    let mut details = json!({
        "incident_id": alert.incident_id,
        "agent": alert.agent,
        "target": alert.target,
        "target_kind": alert.target_kind,
        "event": event_name(alert.event),
        "level": alert.level.to_string(),
        "old_state": alert.old_state,
        "new_state": alert.new_state,
        "started_at_ms": alert.started_at_ms.to_string(),
    });
    if let Some(url) = &alert.ack_url {
        details["ack_url"] = url.clone().into();
    }
    let mut body = json!({
        "message": cut(&message, MESSAGE_MAX),
        "alias": alias,
        "description": cut(&description, DESCRIPTION_MAX),
        "tags": tags,
        "details": details,
        "entity": cut(&alert.target, 512),
        "source": source(alert),
        "user": "Outpost",
    });
    if !config.responders.is_empty() {
        body["responders"] = serde_json::to_value(&config.responders).unwrap_or_default();
    }
    if let Some(p) = &config.priority {
        body["priority"] = p.clone().into();
    }
    body
}

/// Cuts `text` to `max` characters, marking the cut with an ellipsis.
pub fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max - 1).collect();
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(v: Value) -> Config {
        outpost_plugin_sdk::parse_config(&v.to_string()).unwrap()
    }

    fn alert(event: AlertEvent) -> Alert {
        Alert {
            idempotency_key: "k".into(),
            incident_id: "42".into(),
            event,
            agent: "edge 1".into(),
            target: "web".into(),
            target_kind: "sensor".into(),
            old_state: "up".into(),
            new_state: "down".into(),
            message: "HTTP 503".into(),
            started_at_ms: 1_796_151_918_000,
            event_at_ms: 1_796_151_978_000,
            level: 1,
            ack_url: Some("http://127.0.0.1:9/ack/tok".into()),
        }
    }

    #[test]
    fn create_has_alias_and_everything_documented() {
        let c = cfg(
            json!({"api_key": "k", "priority": "P2", "tags": ["web"], "responders": [{"type": "team", "name": "ops"}]}),
        );
        let call = call(&c, &alert(AlertEvent::Opened)).unwrap();
        assert_eq!(call.path, "/v2/alerts");
        assert_eq!(
            call.body,
            json!({
                "message": "[Outpost] web is DOWN",
                "alias": "edge 1:42",
                "description": "HTTP 503\n\nAcknowledge in Outpost: http://127.0.0.1:9/ack/tok",
                "tags": ["outpost", "web"],
                "details": {
                    "incident_id": "42", "agent": "edge 1", "target": "web", "target_kind": "sensor",
                    "event": "opened", "level": "1", "old_state": "up", "new_state": "down",
                    "started_at_ms": "1796151918000", "ack_url": "http://127.0.0.1:9/ack/tok"
                },
                "entity": "web",
                "source": "Outpost edge 1",
                "user": "Outpost",
                "responders": [{"type": "team", "name": "ops"}],
                "priority": "P2"
            })
        );
    }

    #[test]
    fn resolve_closes_by_alias_and_ack_is_optional() {
        let c = cfg(json!({"api_key": "k"}));
        let mut a = alert(AlertEvent::Resolved);
        a.message = "HTTP 200".into();
        let call = call(&c, &a).unwrap();
        assert_eq!(
            call.path,
            "/v2/alerts/edge%201:42/close?identifierType=alias"
        );
        assert_eq!(
            call.body,
            json!({"source": "Outpost edge 1", "user": "Outpost", "note": "HTTP 200"})
        );
        assert_eq!(super::call(&c, &alert(AlertEvent::Acknowledged)), None);
        let c = cfg(json!({"api_key": "k", "acknowledge": true}));
        assert_eq!(
            super::call(&c, &alert(AlertEvent::Acknowledged))
                .unwrap()
                .path,
            "/v2/alerts/edge%201:42/acknowledge?identifierType=alias"
        );
    }

    #[test]
    fn message_is_cut_to_130() {
        let c = cfg(json!({"api_key": "k"}));
        let mut a = alert(AlertEvent::Opened);
        a.target = "t".repeat(500);
        let body = call(&c, &a).unwrap().body;
        assert_eq!(body["message"].as_str().unwrap().chars().count(), 130);
    }
}
