//! Builds the Discord webhook body (one embed) for an alert. Pure.
//!
//! - `content`: the configured mention, on opened and escalated messages
//!   only (nothing else is put in `content`, and `allowed_mentions`
//!   allows exactly the configured mention, so text from an alert can
//!   never ping anyone).
//! - one embed: `title` (state emoji and title), `description` (the
//!   message, then an `[Acknowledge](<ack url>)` link on opened, escalated
//!   and reminder messages), `url` (the ack link on those, making the
//!   title a link too), `color` per event, `fields` (State, Target, Level,
//!   Agent, Since; Lasted/Open for on resolved/acknowledged), `footer`
//!   (incident id and event), `timestamp` (event time, ISO 8601).
//!
//! Text from the alert is Markdown-escaped (a backslash before each of
//! `\ * _ ~ ` | > # - [ ] ( ) < @`), so `**x**` or `[a](b)` in a message
//! shows as written. Texts are cut to Discord's embed limits (title 256,
//! description 4096, field value 1024, footer 2048).

use crate::config::{Config, allowed_mentions};
use outpost_plugin_sdk::prelude::*;
use serde_json::{Value, json};

/// Embed limits (characters), from Discord's reference.
const TITLE_MAX: usize = 256;
const DESCRIPTION_MAX: usize = 4096;
const FIELD_MAX: usize = 1024;
const FOOTER_MAX: usize = 2048;

/// The embed colour (`0xRRGGBB`) of an event.
pub fn color(event: AlertEvent) -> u32 {
    match event {
        AlertEvent::Opened => 0xE0_1E_5A,       // red
        AlertEvent::Escalated => 0x99_00_00,    // dark red
        AlertEvent::Reminder => 0xE6_7E_22,     // orange
        AlertEvent::Acknowledged => 0xF1_C4_0F, // yellow
        AlertEvent::Resolved => 0x2E_CC_71,     // green
    }
}

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

/// Escapes Discord Markdown: a backslash before every character that can
/// start formatting, a link, a mention, an emoji or a block.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\*_~`|>#-[]()<@".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Whether the message offers the ack link.
pub fn wants_ack(alert: &Alert) -> bool {
    matches!(
        alert.event,
        AlertEvent::Opened | AlertEvent::Escalated | AlertEvent::Reminder
    ) && alert.ack_url.is_some()
}

fn field(name: &str, value: String, inline: bool) -> Value {
    json!({"name": name, "value": cut_escaped(&value, FIELD_MAX), "inline": inline})
}

/// The whole webhook body.
pub fn build(config: &Config, alert: &Alert) -> Value {
    let ack = alert.ack_url.as_deref().filter(|_| wants_ack(alert));
    let mut description = escape(&cut(alert.message.trim(), 3000));
    if let Some(url) = ack {
        if !description.is_empty() {
            description.push_str("\n\n");
        }
        description.push_str(&format!("**[Acknowledge]({url})**"));
    }
    let mut fields = vec![
        field(
            "State",
            format!(
                "{} → {}",
                escape(&alert.old_state),
                escape(&alert.new_state)
            ),
            true,
        ),
        field(
            "Target",
            format!(
                "{} `{}`",
                escape(&alert.target_kind),
                alert.target.replace('`', "'")
            ),
            true,
        ),
        field("Level", alert.level.to_string(), true),
        field("Agent", escape(&alert.agent), true),
        field("Since", discord_time(alert.started_at_ms), true),
    ];
    if matches!(alert.event, AlertEvent::Acknowledged | AlertEvent::Resolved) {
        let label = if alert.event == AlertEvent::Resolved {
            "Lasted"
        } else {
            "Open for"
        };
        fields.push(field(
            label,
            human_duration(alert.event_at_ms - alert.started_at_ms),
            true,
        ));
    }
    let mut embed = json!({
        "title": cut_escaped(&format!("{} {}", emoji(alert.event), escape(&title(alert))), TITLE_MAX),
        "color": color(alert.event),
        "fields": fields,
        "footer": {"text": cut(&format!("Outpost incident {} · {}", alert.incident_id, event_name(alert.event)), FOOTER_MAX)},
        "timestamp": rfc3339(alert.event_at_ms),
    });
    if !description.is_empty() {
        embed["description"] = cut_escaped(&description, DESCRIPTION_MAX).into();
    }
    if let Some(url) = ack {
        embed["url"] = url.into();
    }
    let mention = config
        .mention
        .as_deref()
        .filter(|_| matches!(alert.event, AlertEvent::Opened | AlertEvent::Escalated));
    let mut body = json!({
        "embeds": [embed],
        "allowed_mentions": allowed_mentions(mention),
    });
    if let Some(m) = mention {
        body["content"] = m.trim().into();
    }
    if let Some(u) = &config.username {
        body["username"] = u.clone().into();
    }
    if let Some(a) = &config.avatar_url {
        body["avatar_url"] = a.clone().into();
    }
    body
}

/// `<t:1796151918:f>`: shown in the reader's time zone.
pub fn discord_time(unix_ms: i64) -> String {
    format!("<t:{}:f>", unix_ms.div_euclid(1000))
}

/// ISO 8601 / RFC 3339 in UTC with milliseconds.
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

/// [`cut`] for escaped text: never leaves a dangling backslash.
fn cut_escaped(text: &str, max: usize) -> String {
    let mut s = cut(text, max);
    if s.ends_with('…') {
        s.pop();
        let trailing = s.chars().rev().take_while(|c| *c == '\\').count();
        if trailing % 2 == 1 {
            s.pop();
        }
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mention: Option<&str>) -> Config {
        let mut v =
            json!({"webhook_url": "https://discord.com/api/webhooks/1/abc", "username": "Outpost"});
        if let Some(m) = mention {
            v["mention"] = m.into();
        }
        outpost_plugin_sdk::parse_config(&v.to_string()).unwrap()
    }

    fn alert(event: AlertEvent) -> Alert {
        Alert {
            idempotency_key: "k".into(),
            incident_id: "42".into(),
            event,
            agent: "edge_1".into(),
            target: "web".into(),
            target_kind: "sensor".into(),
            old_state: "up".into(),
            new_state: "down".into(),
            message: "HTTP 503 **bold** [x](http://evil) @everyone".into(),
            started_at_ms: 1_796_151_918_000,
            event_at_ms: 1_796_151_918_000 + 3_723_000,
            level: 1,
            ack_url: Some("http://127.0.0.1:9/ack/tok".into()),
        }
    }

    #[test]
    fn opened_embed_is_red_with_escaped_text_and_ack_link() {
        let b = build(&config(Some("<@&42>")), &alert(AlertEvent::Opened));
        let e = &b["embeds"][0];
        assert_eq!(e["title"], "🔴 web is DOWN");
        assert_eq!(e["color"], 0xE01E5A);
        assert_eq!(
            e["description"],
            "HTTP 503 \\*\\*bold\\*\\* \\[x\\]\\(http://evil\\) \\@everyone\n\n**[Acknowledge](http://127.0.0.1:9/ack/tok)**"
        );
        assert_eq!(e["url"], "http://127.0.0.1:9/ack/tok");
        assert_eq!(e["timestamp"], "2026-12-01T20:07:21.000Z");
        assert_eq!(e["footer"]["text"], "Outpost incident 42 · opened");
        assert_eq!(
            e["fields"][3],
            json!({"name": "Agent", "value": "edge\\_1", "inline": true})
        );
        assert_eq!(b["content"], "<@&42>");
        assert_eq!(b["allowed_mentions"], json!({"parse": [], "roles": ["42"]}));
        assert_eq!(b["username"], "Outpost");
    }

    #[test]
    fn resolved_is_green_without_link_or_ping() {
        let mut a = alert(AlertEvent::Resolved);
        a.new_state = "up".into();
        let b = build(&config(Some("@here")), &a);
        let e = &b["embeds"][0];
        assert_eq!(e["color"], 0x2ECC71);
        assert_eq!(e["title"], "🟢 Resolved: web is UP");
        assert!(e.get("url").is_none());
        assert!(!b.to_string().contains("/ack/"));
        assert!(b.get("content").is_none());
        assert_eq!(b["allowed_mentions"], json!({"parse": []}));
        assert_eq!(e["fields"][5]["value"], "1h 2m");
    }

    #[test]
    fn colours_differ_per_event() {
        let all = [
            AlertEvent::Opened,
            AlertEvent::Escalated,
            AlertEvent::Reminder,
            AlertEvent::Acknowledged,
            AlertEvent::Resolved,
        ];
        let mut c: Vec<u32> = all.iter().map(|e| color(*e)).collect();
        c.dedup();
        assert_eq!(c.len(), 5);
    }

    #[test]
    fn long_text_is_cut_without_dangling_escape() {
        let mut a = alert(AlertEvent::Acknowledged);
        a.message = "*".repeat(10_000);
        let b = build(&config(None), &a);
        let d = b["embeds"][0]["description"].as_str().unwrap();
        assert!(d.chars().count() <= DESCRIPTION_MAX);
        assert!(d.ends_with("\\*…"), "{}", &d[d.len() - 10..]);
    }
}
