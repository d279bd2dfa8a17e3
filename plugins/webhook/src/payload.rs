//! Builds the request body and headers for an alert. Pure.
//!
//! The `outpost.alert.v1` payload and the PagerDuty mapping are documented
//! field by field in this crate's README; a change to either is a new
//! payload version, not an edit of v1.

use crate::config::{Config, Format};
use crate::signature;
use outpost_plugin_sdk::prelude::*;
use serde_json::{Value, json};

/// The `version` of the Outpost payload this plugin sends.
pub const VERSION: &str = "outpost.alert.v1";

/// PagerDuty rejects summaries longer than 1024 characters.
const PAGERDUTY_SUMMARY_MAX: usize = 1024;

/// The JSON body.
pub fn body(config: &Config, alert: &Alert) -> Value {
    match config.format {
        Format::Outpost => outpost(alert),
        Format::Pagerduty => pagerduty(config, alert),
    }
}

/// The request headers: content type, user agent, `Idempotency-Key`,
/// `X-Outpost-Event`, the signature when a secret is set, then the
/// configured extra headers.
pub fn headers(config: &Config, alert: &Alert, body: &[u8]) -> Vec<(String, String)> {
    let mut h = vec![
        ("Content-Type".to_string(), "application/json".to_string()),
        (
            "User-Agent".to_string(),
            concat!("outpost-webhook/", env!("CARGO_PKG_VERSION")).to_string(),
        ),
        ("Idempotency-Key".to_string(), alert.idempotency_key.clone()),
        (
            "X-Outpost-Event".to_string(),
            event_name(alert.event).to_string(),
        ),
    ];
    if let Some(secret) = &config.secret {
        h.push((signature::HEADER.to_string(), signature::sign(secret, body)));
    }
    h.extend(config.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    h
}

/// The wire name of an event.
pub fn event_name(e: AlertEvent) -> &'static str {
    match e {
        AlertEvent::Opened => "opened",
        AlertEvent::Escalated => "escalated",
        AlertEvent::Reminder => "reminder",
        AlertEvent::Acknowledged => "acknowledged",
        AlertEvent::Resolved => "resolved",
    }
}

/// The `outpost.alert.v1` payload.
pub fn outpost(alert: &Alert) -> Value {
    json!({
        "version": VERSION,
        "idempotency_key": alert.idempotency_key,
        "incident_id": alert.incident_id,
        "event": event_name(alert.event),
        "agent": alert.agent,
        "target": alert.target,
        "target_kind": alert.target_kind,
        "old_state": alert.old_state,
        "new_state": alert.new_state,
        "message": alert.message,
        "started_at": rfc3339(alert.started_at_ms),
        "started_at_ms": alert.started_at_ms,
        "event_at": rfc3339(alert.event_at_ms),
        "event_at_ms": alert.event_at_ms,
        "level": alert.level,
        "ack_url": alert.ack_url,
    })
}

/// The PagerDuty `event_action` for an alert event.
pub fn pagerduty_action(e: AlertEvent) -> &'static str {
    match e {
        AlertEvent::Opened | AlertEvent::Escalated | AlertEvent::Reminder => "trigger",
        AlertEvent::Acknowledged => "acknowledge",
        AlertEvent::Resolved => "resolve",
    }
}

/// A PagerDuty Events API v2 event. `acknowledge` and `resolve` carry only
/// the routing key, action and dedup key, as the API expects.
pub fn pagerduty(config: &Config, alert: &Alert) -> Value {
    let action = pagerduty_action(alert.event);
    let routing_key = config.routing_key.clone().unwrap_or_default();
    if action != "trigger" {
        return json!({
            "routing_key": routing_key,
            "event_action": action,
            "dedup_key": alert.incident_id,
        });
    }
    let mut summary = format!(
        "[Outpost] {} {} (level {})",
        alert.new_state.to_uppercase(),
        alert.target,
        alert.level
    );
    if !alert.message.trim().is_empty() {
        summary.push_str(": ");
        summary.push_str(alert.message.trim());
    }
    if summary.chars().count() > PAGERDUTY_SUMMARY_MAX {
        summary = summary.chars().take(PAGERDUTY_SUMMARY_MAX - 1).collect();
        summary.push('…');
    }
    let mut event = json!({
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": alert.incident_id,
        "client": "Outpost",
        "payload": {
            "summary": summary,
            "source": alert.agent,
            "severity": config.severity(),
            "timestamp": rfc3339(alert.event_at_ms),
            "component": alert.target,
            "group": alert.target_kind,
            "class": alert.new_state,
            "custom_details": {
                "event": event_name(alert.event),
                "incident_id": alert.incident_id,
                "idempotency_key": alert.idempotency_key,
                "old_state": alert.old_state,
                "new_state": alert.new_state,
                "message": alert.message,
                "level": alert.level,
                "started_at": rfc3339(alert.started_at_ms),
                "ack_url": alert.ack_url,
            }
        }
    });
    if let Some(url) = &alert.ack_url {
        event["links"] = json!([{"href": url, "text": "Acknowledge in Outpost"}]);
    }
    event
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
        // Outside the years -9999..=9999; the _ms field still carries it.
        Err(_) => "1970-01-01T00:00:00.000Z".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(event: AlertEvent) -> Alert {
        Alert {
            idempotency_key: "inc-7/2/opened".into(),
            incident_id: "inc-7".into(),
            event,
            agent: "edge-1".into(),
            target: "web".into(),
            target_kind: "sensor".into(),
            old_state: "up".into(),
            new_state: "down".into(),
            message: "HTTP 503".into(),
            started_at_ms: 1_796_151_918_250,
            event_at_ms: 1_796_151_978_000,
            level: 2,
            ack_url: Some("http://127.0.0.1:9/ack/tok".into()),
        }
    }

    fn cfg(v: Value) -> Config {
        outpost_plugin_sdk::parse_config(&v.to_string()).unwrap()
    }

    #[test]
    fn outpost_payload_has_every_documented_field() {
        let p = outpost(&alert(AlertEvent::Opened));
        assert_eq!(
            p,
            json!({
                "version": "outpost.alert.v1",
                "idempotency_key": "inc-7/2/opened",
                "incident_id": "inc-7",
                "event": "opened",
                "agent": "edge-1",
                "target": "web",
                "target_kind": "sensor",
                "old_state": "up",
                "new_state": "down",
                "message": "HTTP 503",
                "started_at": "2026-12-01T19:05:18.250Z",
                "started_at_ms": 1_796_151_918_250i64,
                "event_at": "2026-12-01T19:06:18.000Z",
                "event_at_ms": 1_796_151_978_000i64,
                "level": 2,
                "ack_url": "http://127.0.0.1:9/ack/tok"
            })
        );
        let mut a = alert(AlertEvent::Resolved);
        a.ack_url = None;
        assert_eq!(outpost(&a)["ack_url"], Value::Null);
        assert_eq!(outpost(&a)["event"], "resolved");
    }

    #[test]
    fn headers_carry_idempotency_key_signature_and_extras() {
        let c = cfg(
            json!({"url": "http://h/", "secret": "s3", "headers": {"Authorization": "Bearer t"}}),
        );
        let a = alert(AlertEvent::Opened);
        let h = headers(&c, &a, b"{}");
        let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("Idempotency-Key"), Some("inc-7/2/opened"));
        assert_eq!(get("Content-Type"), Some("application/json"));
        assert_eq!(get("X-Outpost-Event"), Some("opened"));
        assert_eq!(
            get("X-Outpost-Signature"),
            Some(signature::sign("s3", b"{}").as_str())
        );
        assert_eq!(get("Authorization"), Some("Bearer t"));
        let c = cfg(json!({"url": "http://h/"}));
        assert!(
            headers(&c, &a, b"{}")
                .iter()
                .all(|(k, _)| k != "X-Outpost-Signature")
        );
    }

    #[test]
    fn pagerduty_trigger_has_payload_links_and_dedup_key() {
        let c = cfg(json!({"format": "pagerduty", "routing_key": "R0UT1NG", "severity": "error"}));
        let p = pagerduty(&c, &alert(AlertEvent::Escalated));
        assert_eq!(p["routing_key"], "R0UT1NG");
        assert_eq!(p["event_action"], "trigger");
        assert_eq!(p["dedup_key"], "inc-7");
        assert_eq!(
            p["payload"]["summary"],
            "[Outpost] DOWN web (level 2): HTTP 503"
        );
        assert_eq!(p["payload"]["source"], "edge-1");
        assert_eq!(p["payload"]["severity"], "error");
        assert_eq!(p["payload"]["timestamp"], "2026-12-01T19:06:18.000Z");
        assert_eq!(p["payload"]["custom_details"]["event"], "escalated");
        assert_eq!(p["links"][0]["href"], "http://127.0.0.1:9/ack/tok");
    }

    #[test]
    fn pagerduty_acknowledge_and_resolve_are_minimal() {
        let c = cfg(json!({"format": "pagerduty", "routing_key": "R"}));
        for (event, action) in [
            (AlertEvent::Acknowledged, "acknowledge"),
            (AlertEvent::Resolved, "resolve"),
        ] {
            let p = pagerduty(&c, &alert(event));
            assert_eq!(
                p,
                json!({"routing_key": "R", "event_action": action, "dedup_key": "inc-7"})
            );
        }
        assert_eq!(pagerduty_action(AlertEvent::Opened), "trigger");
        assert_eq!(pagerduty_action(AlertEvent::Reminder), "trigger");
    }

    #[test]
    fn pagerduty_summary_is_cut() {
        let c = cfg(json!({"format": "pagerduty", "routing_key": "R"}));
        let mut a = alert(AlertEvent::Opened);
        a.message = "x".repeat(5000);
        let p = pagerduty(&c, &a);
        assert_eq!(
            p["payload"]["summary"].as_str().unwrap().chars().count(),
            PAGERDUTY_SUMMARY_MAX
        );
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
    }
}
