//! Builds the Workflows webhook body (a `message` with one Adaptive Card
//! attachment) for an alert. Pure.
//!
//! Body:
//!
//! ```json
//! {"type": "message", "attachments": [{
//!   "contentType": "application/vnd.microsoft.card.adaptive",
//!   "contentUrl": null,
//!   "content": {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
//!               "type": "AdaptiveCard", "version": "1.4", "body": [...], "actions": [...],
//!               "msteams": {"width": "Full"}}}]}
//! ```
//!
//! Card body, top to bottom: a `Container` styled per event (`attention`
//! opened/escalated, `warning` reminder/acknowledged, `good` resolved)
//! holding the title; the message; one line per fact (State, Target,
//! Level, Agent, Since; Lasted/Open for on resolved/acknowledged); the
//! incident id and event. Everything from the alert is a `TextRun` of a
//! `RichTextBlock`, which Adaptive Cards render as plain text (no Markdown
//! is parsed in a TextRun), so no escaping is needed and none can be got
//! wrong. Actions: `Action.OpenUrl` **Acknowledge** with the ack link, on
//! opened, escalated and reminder cards that have one.

use crate::config::Config;
use outpost_plugin_sdk::prelude::*;
use serde_json::{Value, json};

/// Longest text put in one run; a Workflows request is limited to 28 KB.
const TEXT_MAX: usize = 3000;

/// The container style (its colour) of an event.
pub fn style(event: AlertEvent) -> &'static str {
    match event {
        AlertEvent::Opened | AlertEvent::Escalated => "attention",
        AlertEvent::Reminder | AlertEvent::Acknowledged => "warning",
        AlertEvent::Resolved => "good",
    }
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

/// The title.
pub fn title(alert: &Alert) -> String {
    let state = alert.new_state.to_uppercase();
    let t = &alert.target;
    match alert.event {
        AlertEvent::Opened => format!("{t} is {state}"),
        AlertEvent::Escalated => format!("{t} is {state} (escalated to level {})", alert.level),
        AlertEvent::Reminder => format!("Reminder: {t} is still {state}"),
        AlertEvent::Acknowledged => format!("{t} acknowledged"),
        AlertEvent::Resolved => format!("Resolved: {t} is {state}"),
    }
}

fn run(text: &str) -> Value {
    json!({"type": "TextRun", "text": cut(text, TEXT_MAX)})
}

fn fact(label: &str, value: &str) -> Value {
    json!({
        "type": "RichTextBlock",
        "spacing": "None",
        "inlines": [
            {"type": "TextRun", "text": format!("{label}: "), "weight": "Bolder"},
            run(value)
        ]
    })
}

/// The whole webhook body.
pub fn build(config: &Config, alert: &Alert) -> Value {
    let mut body = vec![json!({
        "type": "Container",
        "style": style(alert.event),
        "bleed": true,
        "items": [{
            "type": "RichTextBlock",
            "inlines": [{"type": "TextRun", "text": cut(&title(alert), 300), "size": "Large", "weight": "Bolder"}]
        }]
    })];
    let msg = alert.message.trim();
    if !msg.is_empty() {
        body.push(json!({"type": "RichTextBlock", "inlines": [run(msg)]}));
    }
    body.push(fact(
        "State",
        &format!("{} → {}", alert.old_state, alert.new_state),
    ));
    body.push(fact(
        "Target",
        &format!("{} {}", alert.target_kind, alert.target),
    ));
    body.push(fact("Level", &alert.level.to_string()));
    body.push(fact("Agent", &alert.agent));
    body.push(fact("Since", &utc_text(alert.started_at_ms)));
    if matches!(alert.event, AlertEvent::Acknowledged | AlertEvent::Resolved) {
        let label = if alert.event == AlertEvent::Resolved {
            "Lasted"
        } else {
            "Open for"
        };
        body.push(fact(
            label,
            &human_duration(alert.event_at_ms - alert.started_at_ms),
        ));
    }
    body.push(json!({
        "type": "RichTextBlock",
        "inlines": [{"type": "TextRun", "text": cut(&format!("Outpost incident {} · {}", alert.incident_id, event_name(alert.event)), 300), "isSubtle": true, "size": "Small"}]
    }));
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    });
    let wants_ack = matches!(
        alert.event,
        AlertEvent::Opened | AlertEvent::Escalated | AlertEvent::Reminder
    );
    if let Some(url) = alert.ack_url.as_deref().filter(|_| wants_ack) {
        card["actions"] = json!([{"type": "Action.OpenUrl", "title": "Acknowledge", "url": url}]);
    }
    if config.full_width() {
        card["msteams"] = json!({"width": "Full"});
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card
        }]
    })
}

/// `2026-12-01 19:05:18 UTC`.
pub fn utc_text(unix_ms: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix_ms.div_euclid(1000)) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => format!("{unix_ms} ms since 1970 (UTC)"),
    }
}

/// `1h 2m`, `45s`, `3d 4h`.
pub fn human_duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (d, h, m, s) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    let parts: Vec<String> = [(d, "d"), (h, "h"), (m, "m"), (s, "s")]
        .iter()
        .skip_while(|(v, _)| *v == 0)
        .take(2)
        .filter(|(v, _)| *v > 0)
        .map(|(v, u)| format!("{v}{u}"))
        .collect();
    if parts.is_empty() {
        "0s".into()
    } else {
        parts.join(" ")
    }
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

    fn config() -> Config {
        outpost_plugin_sdk::parse_config(r#"{"webhook_url": "https://h/x"}"#).unwrap()
    }

    fn alert(event: AlertEvent) -> Alert {
        Alert {
            idempotency_key: "k".into(),
            incident_id: "42".into(),
            event,
            agent: "edge-1".into(),
            target: "web".into(),
            target_kind: "sensor".into(),
            old_state: "up".into(),
            new_state: "down".into(),
            message: "HTTP 503 **not bold** [x](y)".into(),
            started_at_ms: 1_796_151_918_000,
            event_at_ms: 1_796_151_918_000 + 3_723_000,
            level: 1,
            ack_url: Some("http://127.0.0.1:9/ack/tok".into()),
        }
    }

    #[test]
    fn opened_card() {
        let b = build(&config(), &alert(AlertEvent::Opened));
        assert_eq!(b["type"], "message");
        let a = &b["attachments"][0];
        assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
        assert!(a["contentUrl"].is_null());
        let c = &a["content"];
        assert_eq!(c["type"], "AdaptiveCard");
        assert_eq!(c["version"], "1.4");
        assert_eq!(c["body"][0]["style"], "attention");
        assert_eq!(
            c["body"][0]["items"][0]["inlines"][0]["text"],
            "web is DOWN"
        );
        assert_eq!(
            c["body"][1]["inlines"][0],
            json!({"type": "TextRun", "text": "HTTP 503 **not bold** [x](y)"})
        );
        assert_eq!(c["body"][3]["inlines"][1]["text"], "sensor web");
        assert_eq!(
            c["actions"],
            json!([{"type": "Action.OpenUrl", "title": "Acknowledge", "url": "http://127.0.0.1:9/ack/tok"}])
        );
        assert_eq!(c["msteams"]["width"], "Full");
    }

    #[test]
    fn resolved_card_is_good_without_action() {
        let mut a = alert(AlertEvent::Resolved);
        a.new_state = "up".into();
        let b = build(&config(), &a);
        let c = &b["attachments"][0]["content"];
        assert_eq!(c["body"][0]["style"], "good");
        assert!(c.get("actions").is_none());
        assert!(!b.to_string().contains("/ack/"));
    }
}
