//! Builds the Slack message (Block Kit JSON) for an alert. Pure.
//!
//! Layout, top to bottom:
//! 1. `header`: state emoji and a one-line title naming the target.
//! 2. `section` with fields: state old → new, target kind and name, since
//!    when (a `<!date^…>` token that Slack shows in the reader's time zone,
//!    with UTC text as fallback), escalation level, agent; plus the
//!    duration for acknowledged and resolved messages.
//! 3. `section` with the alert message (and the mention on opened and
//!    escalated alerts).
//! 4. `actions` with an "Acknowledge" link button whose `url` is the ack
//!    URL, only while acknowledging makes sense (not on acknowledged or
//!    resolved messages) and only when the alert has one.
//! 5. `context` with the incident id and the event time.
//!
//! The top-level `text` is the fallback Slack uses for notifications and
//! clients without Block Kit. Limits from the Block Kit reference are
//! enforced by cutting text (header 150, field 2000, section 3000, button
//! label 75, url 3000 characters).

use crate::config::Config;
use outpost_plugin_sdk::prelude::*;
use serde_json::{Value, json};

/// Block Kit limits (characters), from Slack's block reference.
const HEADER_MAX: usize = 150;
const FIELD_MAX: usize = 2000;
const SECTION_MAX: usize = 3000;
/// Slack truncates `text` beyond 40 000 characters; a notification needs far
/// less, and a short fallback reads better in a phone notification.
const FALLBACK_MAX: usize = 3000;
const URL_MAX: usize = 3000;

/// The emoji shown in the header for an event.
pub fn emoji(event: AlertEvent) -> &'static str {
    match event {
        AlertEvent::Opened => ":red_circle:",
        AlertEvent::Escalated => ":rotating_light:",
        AlertEvent::Reminder => ":bell:",
        AlertEvent::Acknowledged => ":large_yellow_circle:",
        AlertEvent::Resolved => ":large_green_circle:",
    }
}

/// The one-line title (no emoji).
pub fn title(alert: &Alert) -> String {
    let state = alert.new_state.to_uppercase();
    let t = &alert.target;
    match alert.event {
        AlertEvent::Opened => format!("{t} is {state}"),
        AlertEvent::Escalated => format!("{t} is {state} (escalated to level {})", alert.level),
        AlertEvent::Reminder => format!("Reminder: {t} is still {state}"),
        AlertEvent::Acknowledged => format!("{t} acknowledged ({state})"),
        AlertEvent::Resolved => format!("Resolved: {t} is {state}"),
    }
}

/// Whether the message offers the Acknowledge button.
fn wants_ack(alert: &Alert) -> bool {
    matches!(
        alert.event,
        AlertEvent::Opened | AlertEvent::Escalated | AlertEvent::Reminder
    )
}

/// Whether the configured mention is added.
fn wants_mention(alert: &Alert) -> bool {
    matches!(alert.event, AlertEvent::Opened | AlertEvent::Escalated)
}

/// The whole webhook payload.
pub fn build(config: &Config, alert: &Alert) -> Value {
    let title = title(alert);
    let mention = config.mention.as_deref().filter(|_| wants_mention(alert));
    let mut fields = vec![
        field(
            "State",
            &format!(
                "{} → {}",
                escape(&alert.old_state),
                escape(&alert.new_state)
            ),
        ),
        field(
            "Target",
            &format!("{} `{}`", escape(&alert.target_kind), escape(&alert.target)),
        ),
        field("Since", &slack_date(alert.started_at_ms)),
        field("Level", &alert.level.to_string()),
        field("Agent", &escape(&alert.agent)),
    ];
    if matches!(alert.event, AlertEvent::Acknowledged | AlertEvent::Resolved) {
        let label = if alert.event == AlertEvent::Resolved {
            "Lasted"
        } else {
            "Open for"
        };
        fields.push(field(
            label,
            &human_duration(alert.event_at_ms - alert.started_at_ms),
        ));
    }

    let mut blocks = vec![
        json!({
            "type": "header",
            "text": {"type": "plain_text", "text": cut(&format!("{} {title}", emoji(alert.event)), HEADER_MAX), "emoji": true}
        }),
        json!({"type": "section", "fields": fields}),
    ];
    let body = match (mention, alert.message.trim()) {
        (Some(m), "") => m.to_string(),
        (Some(m), msg) => format!("{m} {}", escape(msg)),
        (None, msg) => escape(msg),
    };
    if !body.is_empty() {
        blocks.push(
            json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(&body, SECTION_MAX)}}),
        );
    }
    if let Some(url) = alert
        .ack_url
        .as_deref()
        .filter(|u| wants_ack(alert) && u.len() <= URL_MAX)
    {
        blocks.push(json!({
            "type": "actions",
            "elements": [{
                "type": "button",
                "action_id": "outpost_acknowledge",
                "text": {"type": "plain_text", "text": "Acknowledge", "emoji": true},
                "style": "primary",
                "url": url
            }]
        }));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{
            "type": "mrkdwn",
            "text": cut(&format!(
                "Outpost incident `{}` · {} {}",
                escape(&alert.incident_id),
                event_name(alert.event),
                slack_date(alert.event_at_ms)
            ), FIELD_MAX)
        }]
    }));

    let mut text = format!("{} {}", emoji(alert.event), escape(&title));
    if let Some(m) = mention {
        text = format!("{m} {text}");
    }
    if !alert.message.trim().is_empty() {
        text.push_str(": ");
        text.push_str(&escape(alert.message.trim()));
    }
    if let Some(url) = alert.ack_url.as_deref().filter(|_| wants_ack(alert)) {
        text.push_str(&format!(" (acknowledge: <{url}|{url}>)"));
    }

    let mut payload = json!({"text": cut(&text, FALLBACK_MAX), "blocks": blocks});
    let obj = payload.as_object_mut().expect("payload is an object");
    for (key, value) in [
        ("channel", &config.channel),
        ("username", &config.username),
        ("icon_emoji", &config.icon_emoji),
    ] {
        if let Some(v) = value {
            obj.insert(key.into(), Value::String(v.clone()));
        }
    }
    payload
}

fn event_name(e: AlertEvent) -> &'static str {
    match e {
        AlertEvent::Opened => "opened",
        AlertEvent::Escalated => "escalated",
        AlertEvent::Reminder => "reminder",
        AlertEvent::Acknowledged => "acknowledged",
        AlertEvent::Resolved => "resolved",
    }
}

fn field(label: &str, value: &str) -> Value {
    json!({"type": "mrkdwn", "text": cut(&format!("*{label}*\n{value}"), FIELD_MAX)})
}

/// Escapes the three characters Slack's mrkdwn treats as control
/// characters (<https://api.slack.com/reference/surfaces/formatting#escaping>).
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A `<!date^…>` token: shown in the reader's time zone, falling back to
/// the UTC time as text.
pub fn slack_date(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    format!(
        "<!date^{secs}^{{date_short_pretty}} {{time_secs}}|{}>",
        utc_text(unix_ms)
    )
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

/// `1h 2m 5s`, `45s`, `3d 4h`.
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
fn cut(text: &str, max: usize) -> String {
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
            r##"{"webhook_url": "https://hooks.slack.com/services/T/B/X", "mention": "<!here>", "channel": "#ops"}"##,
        )
        .unwrap()
    }

    fn alert(event: AlertEvent) -> Alert {
        Alert {
            idempotency_key: "n-1".into(),
            incident_id: "inc-7".into(),
            event,
            agent: "edge-1".into(),
            target: "web".into(),
            target_kind: "sensor".into(),
            old_state: "up".into(),
            new_state: "down".into(),
            message: "HTTP 503 <expected 200>".into(),
            started_at_ms: 1_796_151_918_000,
            event_at_ms: 1_796_151_918_000 + 3_723_000,
            level: 1,
            ack_url: Some("http://127.0.0.1:9/ack/tok".into()),
        }
    }

    fn block<'a>(p: &'a Value, ty: &str) -> Option<&'a Value> {
        p["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == ty)
    }

    #[test]
    fn opened_has_header_fields_message_and_ack_button() {
        let p = build(&config(), &alert(AlertEvent::Opened));
        assert_eq!(
            block(&p, "header").unwrap()["text"]["text"],
            ":red_circle: web is DOWN"
        );
        let fields = block(&p, "section").unwrap()["fields"].as_array().unwrap();
        let texts: Vec<&str> = fields.iter().map(|f| f["text"].as_str().unwrap()).collect();
        assert_eq!(texts[0], "*State*\nup → down");
        assert_eq!(texts[1], "*Target*\nsensor `web`");
        assert_eq!(
            texts[2],
            "*Since*\n<!date^1796151918^{date_short_pretty} {time_secs}|2026-12-01 19:05:18 UTC>"
        );
        assert_eq!(texts[3], "*Level*\n1");
        assert_eq!(texts[4], "*Agent*\nedge-1");
        let button = &block(&p, "actions").unwrap()["elements"][0];
        assert_eq!(button["type"], "button");
        assert_eq!(button["text"]["text"], "Acknowledge");
        assert_eq!(button["url"], "http://127.0.0.1:9/ack/tok");
        let msg = p["blocks"][2]["text"]["text"].as_str().unwrap();
        assert_eq!(msg, "<!here> HTTP 503 &lt;expected 200&gt;");
        let text = p["text"].as_str().unwrap();
        assert!(
            text.starts_with("<!here> :red_circle: web is DOWN: HTTP 503 &lt;"),
            "{text}"
        );
        assert!(text.contains("http://127.0.0.1:9/ack/tok"), "{text}");
        assert_eq!(p["channel"], "#ops");
        assert!(p.get("username").is_none());
    }

    #[test]
    fn resolved_is_green_without_button_or_mention() {
        let mut a = alert(AlertEvent::Resolved);
        a.old_state = "down".into();
        a.new_state = "up".into();
        a.message = "HTTP 200".into();
        let p = build(&config(), &a);
        assert_eq!(
            block(&p, "header").unwrap()["text"]["text"],
            ":large_green_circle: Resolved: web is UP"
        );
        assert!(block(&p, "actions").is_none());
        assert!(!p.to_string().contains("<!here>"));
        assert!(!p.to_string().contains("/ack/"));
        let fields = block(&p, "section").unwrap()["fields"].as_array().unwrap();
        assert_eq!(fields.last().unwrap()["text"], "*Lasted*\n1h 2m");
    }

    #[test]
    fn acknowledged_has_no_button() {
        let p = build(&config(), &alert(AlertEvent::Acknowledged));
        assert!(block(&p, "actions").is_none());
        assert!(
            block(&p, "header").unwrap()["text"]["text"]
                .as_str()
                .unwrap()
                .contains("acknowledged")
        );
    }

    #[test]
    fn escalated_names_the_level_and_reminder_keeps_the_button() {
        let mut a = alert(AlertEvent::Escalated);
        a.level = 2;
        let p = build(&config(), &a);
        assert!(
            block(&p, "header").unwrap()["text"]["text"]
                .as_str()
                .unwrap()
                .contains("escalated to level 2")
        );
        let p = build(&config(), &alert(AlertEvent::Reminder));
        assert!(block(&p, "actions").is_some());
        assert!(!p["text"].as_str().unwrap().contains("<!here>"));
    }

    #[test]
    fn no_ack_url_no_button_and_empty_message_no_section() {
        let mut a = alert(AlertEvent::Opened);
        a.ack_url = None;
        a.message = " ".into();
        let mut c = config();
        c.mention = None;
        let p = build(&c, &a);
        assert!(block(&p, "actions").is_none());
        let sections = p["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "section")
            .count();
        assert_eq!(sections, 1);
    }

    #[test]
    fn long_text_is_cut_to_block_limits() {
        let mut a = alert(AlertEvent::Opened);
        a.target = "t".repeat(500);
        a.message = "m".repeat(10_000);
        let p = build(&config(), &a);
        let header = block(&p, "header").unwrap()["text"]["text"]
            .as_str()
            .unwrap();
        assert_eq!(header.chars().count(), HEADER_MAX);
        assert!(
            p["blocks"][2]["text"]["text"]
                .as_str()
                .unwrap()
                .chars()
                .count()
                <= SECTION_MAX
        );
        assert!(p["text"].as_str().unwrap().chars().count() <= FALLBACK_MAX);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(45_000), "45s");
        assert_eq!(human_duration(3_723_000), "1h 2m");
        assert_eq!(human_duration(90_061_000), "1d 1h");
        assert_eq!(human_duration(-5), "0s");
        assert_eq!(human_duration(3_600_000), "1h");
    }
}
