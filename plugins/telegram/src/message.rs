//! Builds the `sendMessage` body for an alert. Pure.
//!
//! The text uses `parse_mode = "HTML"`; everything that comes from the
//! alert is escaped (`&`, `<`, `>`; `"` too, though only attributes need
//! it), so a message such as `HTTP 503 <expected 200>` shows as written
//! and cannot break or inject markup. Layout:
//!
//! ```text
//! 🔴 <b>web is DOWN</b>
//! HTTP 503 (expected 200-299)
//!
//! Target: sensor <code>web</code>
//! Agent: edge-1 · level 1
//! Since: 2026-12-01 19:05:18 UTC
//! <i>Outpost incident 42 · opened</i>
//! ```
//!
//! Opened, escalated and reminder messages with an ack link carry an
//! inline keyboard with one URL button, **Acknowledge**. The text is cut to
//! Telegram's 4096 characters (the cut is made in the message before
//! escaping, so no entity is split).

use crate::config::Config;
use outpost_plugin_sdk::prelude::*;
use serde_json::{Value, json};

/// Telegram's limit on a message's text, in characters after entity
/// parsing.
pub const TEXT_MAX: usize = 4096;
/// Room kept for the fixed lines around the alert's message.
const MESSAGE_MAX: usize = 3000;

/// The emoji in front of the title.
pub fn emoji(event: AlertEvent) -> &'static str {
    match event {
        AlertEvent::Opened => "🔴",
        AlertEvent::Escalated => "🚨",
        AlertEvent::Reminder => "🔔",
        AlertEvent::Acknowledged => "🟡",
        AlertEvent::Resolved => "🟢",
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

/// The title (not escaped).
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

/// Escapes text for Telegram's HTML parse mode
/// (<https://core.telegram.org/bots/api#html-style>).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// Whether the message offers the Acknowledge button.
pub fn wants_ack(alert: &Alert) -> bool {
    matches!(
        alert.event,
        AlertEvent::Opened | AlertEvent::Escalated | AlertEvent::Reminder
    ) && alert.ack_url.is_some()
}

/// The HTML text.
pub fn text(alert: &Alert) -> String {
    let mut lines = vec![format!(
        "{} <b>{}</b>",
        emoji(alert.event),
        escape(&cut(&title(alert), 256))
    )];
    let msg = alert.message.trim();
    if !msg.is_empty() {
        lines.push(escape(&cut(msg, MESSAGE_MAX)));
    }
    lines.push(String::new());
    lines.push(format!(
        "Target: {} <code>{}</code>",
        escape(&alert.target_kind),
        escape(&cut(&alert.target, 200))
    ));
    lines.push(format!(
        "Agent: {} · level {}",
        escape(&cut(&alert.agent, 200)),
        alert.level
    ));
    lines.push(format!("Since: {}", utc_text(alert.started_at_ms)));
    if matches!(alert.event, AlertEvent::Resolved | AlertEvent::Acknowledged) {
        let label = if alert.event == AlertEvent::Resolved {
            "Lasted"
        } else {
            "Open for"
        };
        lines.push(format!(
            "{label}: {}",
            human_duration(alert.event_at_ms - alert.started_at_ms)
        ));
    }
    lines.push(format!(
        "<i>Outpost incident {} · {}</i>",
        escape(&cut(&alert.incident_id, 100)),
        event_name(alert.event)
    ));
    lines.join("\n")
}

/// The whole `sendMessage` body.
pub fn build(config: &Config, alert: &Alert) -> Value {
    let mut body = json!({
        "chat_id": config.chat_id.to_json(),
        "text": text(alert),
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": true},
    });
    if let Some(t) = config.message_thread_id {
        body["message_thread_id"] = t.into();
    }
    if config.quiet_followups
        && matches!(
            alert.event,
            AlertEvent::Reminder | AlertEvent::Acknowledged | AlertEvent::Resolved
        )
    {
        body["disable_notification"] = true.into();
    }
    if let Some(url) = alert.ack_url.as_deref().filter(|_| wants_ack(alert)) {
        body["reply_markup"] = json!({
            "inline_keyboard": [[{"text": "✅ Acknowledge", "url": url}]]
        });
    }
    body
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
        outpost_plugin_sdk::parse_config(
            r#"{"bot_token": "1:A", "chat_id": -100123, "message_thread_id": 7, "quiet_followups": true}"#,
        )
        .unwrap()
    }

    fn alert(event: AlertEvent) -> Alert {
        Alert {
            idempotency_key: "k".into(),
            incident_id: "42".into(),
            event,
            agent: "edge-1".into(),
            target: "web<1>".into(),
            target_kind: "sensor".into(),
            old_state: "up".into(),
            new_state: "down".into(),
            message: "HTTP 503 <b>&</b> \"x\"".into(),
            started_at_ms: 1_796_151_918_000,
            event_at_ms: 1_796_151_918_000 + 3_723_000,
            level: 1,
            ack_url: Some("http://127.0.0.1:9/ack/tok".into()),
        }
    }

    #[test]
    fn opened_is_escaped_html_with_an_ack_button() {
        let b = build(&config(), &alert(AlertEvent::Opened));
        assert_eq!(
            b["text"],
            "🔴 <b>web&lt;1&gt; is DOWN</b>\nHTTP 503 &lt;b&gt;&amp;&lt;/b&gt; &quot;x&quot;\n\nTarget: sensor <code>web&lt;1&gt;</code>\nAgent: edge-1 · level 1\nSince: 2026-12-01 19:05:18 UTC\n<i>Outpost incident 42 · opened</i>"
        );
        assert_eq!(b["parse_mode"], "HTML");
        assert_eq!(b["chat_id"], -100123);
        assert_eq!(b["message_thread_id"], 7);
        assert!(b.get("disable_notification").is_none());
        assert_eq!(
            b["reply_markup"],
            json!({"inline_keyboard": [[{"text": "✅ Acknowledge", "url": "http://127.0.0.1:9/ack/tok"}]]})
        );
    }

    #[test]
    fn resolved_has_no_button_and_is_quiet() {
        let mut a = alert(AlertEvent::Resolved);
        a.new_state = "up".into();
        let b = build(&config(), &a);
        assert!(b.get("reply_markup").is_none());
        assert_eq!(b["disable_notification"], true);
        let t = b["text"].as_str().unwrap();
        assert!(
            t.starts_with("🟢 <b>Resolved: web&lt;1&gt; is UP</b>"),
            "{t}"
        );
        assert!(t.contains("\nLasted: 1h 2m\n"), "{t}");
    }

    #[test]
    fn long_messages_fit() {
        let mut a = alert(AlertEvent::Opened);
        a.message = "<".repeat(10_000);
        let t = text(&a);
        assert!(t.chars().count() > TEXT_MAX, "escaped text is longer");
        // What Telegram counts: the text after entity parsing.
        let shown = t.replace("&lt;", "<");
        assert!(
            shown.chars().count() <= TEXT_MAX,
            "{}",
            shown.chars().count()
        );
        assert!(!t.contains("&l…"));
    }
}
