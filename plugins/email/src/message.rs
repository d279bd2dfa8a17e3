//! The mail: envelope, RFC 5322 headers, a MIME `multipart/alternative`
//! body (text/plain + text/html, both with the acknowledgement link), and
//! the dot-stuffing DATA needs. Pure.
//!
//! - Subject: `[Outpost] DOWN web (level 1)`; non-ASCII subjects and
//!   display names are RFC 2047 encoded words (`=?UTF-8?B?…?=`).
//! - Message-ID: derived from the alert's idempotency key, so every retry
//!   of one notification carries the same id and a receiving system can
//!   drop duplicates; `References` names the incident so mail clients
//!   thread all mails of one incident.
//! - Parts are 7bit when they are ASCII with short lines, quoted-printable
//!   otherwise, so no 8BITMIME/SMTPUTF8 support is needed from the server.

use crate::config::{self, Config};
use base64::Engine;
use outpost_plugin_sdk::prelude::*;
use sha2::{Digest, Sha256};

/// RFC 5322 caps a line at 998 characters; longer lines force
/// quoted-printable.
const MAX_7BIT_LINE: usize = 998;

/// A ready-to-send mail.
#[derive(Debug, Clone, PartialEq)]
pub struct Mail {
    /// MAIL FROM address.
    pub from: String,
    /// RCPT TO addresses.
    pub recipients: Vec<String>,
    /// The message (headers and body) with CRLF line ends, not yet
    /// dot-stuffed.
    pub data: String,
}

/// The subject line (before RFC 2047 encoding).
pub fn subject(prefix: &str, alert: &Alert) -> String {
    let state = alert.new_state.to_uppercase();
    let t = &alert.target;
    let core = match alert.event {
        AlertEvent::Opened => format!("{state} {t} (level {})", alert.level),
        AlertEvent::Escalated => format!("{state} {t} (level {}, escalated)", alert.level),
        AlertEvent::Reminder => format!("Reminder: {state} {t} (level {})", alert.level),
        AlertEvent::Acknowledged => format!("Acknowledged: {state} {t}"),
        AlertEvent::Resolved => format!("Resolved: {state} {t}"),
    };
    let s = if prefix.is_empty() {
        core
    } else {
        format!("{prefix} {core}")
    };
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Builds the mail for `alert`.
pub fn build(config: &Config, alert: &Alert) -> Mail {
    let from_addr = config::address(&config.from)
        .unwrap_or(&config.from)
        .to_string();
    let recipients: Vec<String> = config
        .to
        .iter()
        .map(|t| config::address(t).unwrap_or(t).to_string())
        .collect();
    let domain = from_addr
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or("outpost.invalid");
    let text = text_body(alert);
    let html = html_body(alert);
    let key_hash = hex::encode(Sha256::digest(alert.idempotency_key.as_bytes()));
    let boundary = format!("=_outpost_{}", &key_hash[..24]);

    let mut h = String::new();
    let mut header = |name: &str, value: &str| {
        h.push_str(name);
        h.push_str(": ");
        h.push_str(value);
        h.push_str("\r\n");
    };
    header("Date", &rfc5322_date(alert.event_at_ms));
    header("From", &mailbox(&config.from));
    header(
        "To",
        &config
            .to
            .iter()
            .map(|t| mailbox(t))
            .collect::<Vec<_>>()
            .join(",\r\n "),
    );
    header(
        "Subject",
        &encode_header(&subject(config.subject_prefix(), alert)),
    );
    header(
        "Message-ID",
        &format!("<{}@{domain}>", msg_id_part(&alert.idempotency_key)),
    );
    let thread = format!("<incident.{}@{domain}>", msg_id_part(&alert.incident_id));
    header("References", &thread);
    header("In-Reply-To", &thread);
    header("MIME-Version", "1.0");
    header(
        "Content-Type",
        &format!("multipart/alternative; boundary=\"{boundary}\""),
    );
    header("Auto-Submitted", "auto-generated");
    header("X-Outpost-Incident", &header_safe(&alert.incident_id));
    header("X-Outpost-Event", event_name(alert.event));

    let mut data = h;
    data.push_str("\r\nThis is a multi-part message in MIME format.\r\n");
    for (ctype, body) in [("text/plain", &text), ("text/html", &html)] {
        let (cte, encoded) = encode_body(body);
        data.push_str(&format!(
            "\r\n--{boundary}\r\nContent-Type: {ctype}; charset=utf-8\r\nContent-Transfer-Encoding: {cte}\r\n\r\n{encoded}"
        ));
    }
    data.push_str(&format!("\r\n--{boundary}--\r\n"));
    Mail {
        from: from_addr,
        recipients,
        data,
    }
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

fn wants_ack(alert: &Alert) -> bool {
    matches!(
        alert.event,
        AlertEvent::Opened | AlertEvent::Escalated | AlertEvent::Reminder
    )
}

/// The text/plain part (LF line ends; CRLF is applied when encoding).
pub fn text_body(alert: &Alert) -> String {
    let mut s = format!("{}\n\n", subject("", alert));
    if !alert.message.trim().is_empty() {
        s.push_str(alert.message.trim());
        s.push_str("\n\n");
    }
    s.push_str(&format!(
        "State:    {} -> {}\n",
        alert.old_state, alert.new_state
    ));
    s.push_str(&format!(
        "Target:   {} {}\n",
        alert.target_kind, alert.target
    ));
    s.push_str(&format!("Since:    {}\n", utc_text(alert.started_at_ms)));
    s.push_str(&format!(
        "Event:    {} at {}\n",
        event_name(alert.event),
        utc_text(alert.event_at_ms)
    ));
    s.push_str(&format!("Level:    {}\n", alert.level));
    s.push_str(&format!("Agent:    {}\n", alert.agent));
    s.push_str(&format!("Incident: {}\n", alert.incident_id));
    if let Some(url) = alert.ack_url.as_deref().filter(|_| wants_ack(alert)) {
        s.push_str(&format!(
            "\nAcknowledge: {url}\n(opens a confirmation page; nothing is acknowledged until you confirm there)\n"
        ));
    }
    s.push_str("\n-- \nOutpost\n");
    s
}

/// The text/html part.
pub fn html_body(alert: &Alert) -> String {
    let e = html_escape;
    let color = match alert.event {
        AlertEvent::Resolved => "#2eb67d",
        AlertEvent::Acknowledged => "#ecb22e",
        _ => "#e01e5a",
    };
    let mut s = format!(
        "<!DOCTYPE html>\n<html><body style=\"font-family:sans-serif\">\n<h2 style=\"color:{color}\">{}</h2>\n",
        e(&subject("", alert))
    );
    if !alert.message.trim().is_empty() {
        s.push_str(&format!("<p>{}</p>\n", e(alert.message.trim())));
    }
    s.push_str("<table cellpadding=\"4\">\n");
    for (k, v) in [
        (
            "State",
            format!("{} &rarr; {}", e(&alert.old_state), e(&alert.new_state)),
        ),
        (
            "Target",
            format!("{} <b>{}</b>", e(&alert.target_kind), e(&alert.target)),
        ),
        ("Since", e(&utc_text(alert.started_at_ms))),
        ("Level", alert.level.to_string()),
        ("Agent", e(&alert.agent)),
        ("Incident", e(&alert.incident_id)),
    ] {
        s.push_str(&format!(
            "<tr><th align=\"left\">{k}</th><td>{v}</td></tr>\n"
        ));
    }
    s.push_str("</table>\n");
    if let Some(url) = alert.ack_url.as_deref().filter(|_| wants_ack(alert)) {
        s.push_str(&format!(
            "<p><a href=\"{}\" style=\"background:{color};color:#fff;padding:8px 16px;text-decoration:none;border-radius:4px\">Acknowledge</a></p>\n<p style=\"color:#666\">Or open {}</p>\n",
            e(url),
            e(url)
        ));
    }
    s.push_str("</body></html>\n");
    s
}

/// Escapes text for HTML content and attribute values.
pub fn html_escape(t: &str) -> String {
    let mut s = String::with_capacity(t.len());
    for c in t.chars() {
        match c {
            '&' => s.push_str("&amp;"),
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '"' => s.push_str("&quot;"),
            '\'' => s.push_str("&#39;"),
            c => s.push(c),
        }
    }
    s
}

/// Picks the transfer encoding and encodes; CRLF line ends either way.
pub fn encode_body(body: &str) -> (&'static str, String) {
    let seven_bit = body.is_ascii() && body.lines().all(|l| l.len() <= MAX_7BIT_LINE);
    if seven_bit {
        let mut out: String = body.lines().collect::<Vec<_>>().join("\r\n");
        out.push_str("\r\n");
        ("7bit", out)
    } else {
        ("quoted-printable", quoted_printable(body))
    }
}

/// Quoted-printable (RFC 2045 §6.7) with CRLF hard breaks and soft breaks
/// keeping lines at most 76 characters.
pub fn quoted_printable(body: &str) -> String {
    let mut out = String::new();
    for line in body.lines() {
        let bytes = line.as_bytes();
        let mut col = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let last = i + 1 == bytes.len();
            let literal =
                (b == b' ' || b == b'\t') && !last || (33..=126).contains(&b) && b != b'=';
            let piece = if literal {
                (b as char).to_string()
            } else {
                format!("={b:02X}")
            };
            if col + piece.len() > 75 {
                out.push_str("=\r\n");
                col = 0;
            }
            out.push_str(&piece);
            col += piece.len();
        }
        out.push_str("\r\n");
    }
    out
}

/// A header value, RFC 2047-encoded when it is not ASCII.
pub fn encode_header(value: &str) -> String {
    let v = header_safe(value);
    if v.is_ascii() {
        return v;
    }
    // An encoded word is at most 75 characters: 12 of framing leave 63 for
    // base64, i.e. 45 bytes of text (whole characters only).
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in v.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(chunk);
    }
    words
        .iter()
        .map(|w| {
            format!(
                "=?UTF-8?B?{}?=",
                base64::engine::general_purpose::STANDARD.encode(w.as_bytes())
            )
        })
        .collect::<Vec<_>>()
        .join("\r\n ")
}

/// `Name <addr>` with the display name encoded when needed.
fn mailbox(text: &str) -> String {
    let t = text.trim();
    match (t.rfind('<'), t.ends_with('>')) {
        (Some(i), true) if i > 0 => {
            let name = t[..i].trim().trim_matches('"');
            let addr = &t[i..];
            if name.is_ascii() {
                let quoted = name.replace('\\', "\\\\").replace('"', "\\\"");
                format!("\"{quoted}\" {addr}")
            } else {
                format!("{} {addr}", encode_header(name))
            }
        }
        _ => header_safe(t),
    }
}

/// Control characters (line breaks above all) replaced by spaces so a
/// value cannot start a new header.
fn header_safe(v: &str) -> String {
    v.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The left-hand side of a Message-ID: dot-atom text only.
fn msg_id_part(key: &str) -> String {
    let s: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) {
                c
            } else {
                '.'
            }
        })
        .collect();
    let parts: Vec<&str> = s.split('.').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        "outpost".to_string()
    } else {
        parts.join(".")
    }
}

/// Dot-stuffs a message for DATA (RFC 5321 §4.5.2) and appends the
/// terminating `.` line. Bare LFs become CRLF.
pub fn dot_stuff(data: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 16);
    for line in data.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with('.') {
            out.push(b'.');
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // `split` yields an empty last piece after a final newline; its CRLF
    // must not become an extra blank line.
    if data.ends_with('\n') {
        out.truncate(out.len() - 2);
    }
    out.extend_from_slice(b".\r\n");
    out
}

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `Tue, 01 Dec 2026 19:05:18 +0000`.
pub fn rfc5322_date(unix_ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix_ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} +0000",
        WEEKDAYS[t.weekday().number_days_from_monday() as usize],
        t.day(),
        MONTHS[u8::from(t.month()) as usize - 1],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `2026-12-01 19:05:18 UTC`.
pub fn utc_text(unix_ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix_ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> Config {
        outpost_plugin_sdk::parse_config(
            &json!({"smtp": "smtp://m", "from": "Outpost <alerts@example.com>", "to": ["a@example.com", "Bob <b@example.org>"]})
                .to_string(),
        )
        .unwrap()
    }

    fn alert(event: AlertEvent) -> Alert {
        Alert {
            idempotency_key: "inc-7/1/opened".into(),
            incident_id: "inc-7".into(),
            event,
            agent: "edge-1".into(),
            target: "web".into(),
            target_kind: "sensor".into(),
            old_state: "up".into(),
            new_state: "down".into(),
            message: "HTTP 503 <expected 200>".into(),
            started_at_ms: 1_796_151_918_000,
            event_at_ms: 1_796_151_918_000,
            level: 1,
            ack_url: Some("http://127.0.0.1:9/ack/tok".into()),
        }
    }

    #[test]
    fn subject_reads_like_the_brief() {
        assert_eq!(
            subject("[Outpost]", &alert(AlertEvent::Opened)),
            "[Outpost] DOWN web (level 1)"
        );
        let mut a = alert(AlertEvent::Resolved);
        a.new_state = "up".into();
        assert_eq!(subject("[Outpost]", &a), "[Outpost] Resolved: UP web");
        a.target = "we\r\nb".into();
        assert!(!subject("", &a).contains('\n'));
    }

    #[test]
    fn mail_has_headers_both_parts_and_the_ack_link() {
        let m = build(&config(), &alert(AlertEvent::Opened));
        assert_eq!(m.from, "alerts@example.com");
        assert_eq!(m.recipients, vec!["a@example.com", "b@example.org"]);
        let d = &m.data;
        assert!(
            d.contains("\r\nSubject: [Outpost] DOWN web (level 1)\r\n"),
            "{d}"
        );
        assert!(
            d.starts_with("Date: Tue, 01 Dec 2026 19:05:18 +0000\r\n"),
            "{d}"
        );
        assert!(
            d.contains("\r\nMessage-ID: <inc-7/1/opened@example.com>\r\n"),
            "{d}"
        );
        assert!(
            d.contains("\r\nFrom: \"Outpost\" <alerts@example.com>\r\n"),
            "{d}"
        );
        assert!(
            d.contains("To: a@example.com,\r\n \"Bob\" <b@example.org>\r\n"),
            "{d}"
        );
        assert!(d.contains("multipart/alternative; boundary=\"=_outpost_"));
        assert!(d.contains(
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit"
        ));
        assert!(d.contains("Content-Type: text/html; charset=utf-8"));
        assert!(d.contains("Acknowledge: http://127.0.0.1:9/ack/tok\r\n"));
        assert!(d.contains("<a href=\"http://127.0.0.1:9/ack/tok\""));
        assert!(d.contains("HTTP 503 &lt;expected 200&gt;"));
        assert!(d.lines().all(|l| l.len() <= 998));
        assert!(!d.replace("\r\n", "").contains('\n'), "bare LF in {d}");
        // Same notification, same Message-ID (retries); other notification, other id.
        assert_eq!(build(&config(), &alert(AlertEvent::Opened)).data, m.data);
        let mut other = alert(AlertEvent::Escalated);
        other.idempotency_key = "inc-7/2/escalated".into();
        assert!(
            build(&config(), &other)
                .data
                .contains("Message-ID: <inc-7/2/escalated@example.com>")
        );
    }

    #[test]
    fn resolved_mail_has_no_ack_link() {
        let m = build(&config(), &alert(AlertEvent::Resolved));
        assert!(!m.data.contains("/ack/tok"));
    }

    #[test]
    fn non_ascii_subject_is_rfc2047_and_body_quoted_printable() {
        let mut a = alert(AlertEvent::Opened);
        a.target = "Küche-Drucker über alles, sehr lange Zielbezeichnung ✓".into();
        a.message = "Störung".into();
        let m = build(&config(), &a);
        let subject_line = m.data.lines().find(|l| l.starts_with("Subject:")).unwrap();
        assert!(
            subject_line.starts_with("Subject: =?UTF-8?B?"),
            "{subject_line}"
        );
        // Decoding the encoded words gives the subject back.
        let mut decoded = Vec::new();
        let mut words = 0;
        for w in m.data.split("=?UTF-8?B?").skip(1) {
            let b64 = w.split("?=").next().unwrap();
            assert!(b64.len() + 12 <= 75);
            decoded.extend(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap(),
            );
            words += 1;
        }
        assert!(words >= 2);
        assert_eq!(
            String::from_utf8(decoded).unwrap(),
            subject("[Outpost]", &a)
        );
        assert!(
            m.data
                .contains("Content-Transfer-Encoding: quoted-printable")
        );
        assert!(m.data.contains("St=C3=B6rung"));
    }

    #[test]
    fn quoted_printable_rules() {
        assert_eq!(quoted_printable("a=b c\n"), "a=3Db c\r\n");
        assert_eq!(quoted_printable("end \n"), "end=20\r\n");
        let long = quoted_printable(&"é".repeat(40));
        assert!(long.lines().all(|l| l.len() <= 76), "{long}");
        assert!(long.contains("=\r\n"));
    }

    #[test]
    fn dot_stuffing() {
        assert_eq!(
            dot_stuff("a\r\n.b\r\n..c\r\n"),
            b"a\r\n..b\r\n...c\r\n.\r\n"
        );
        assert_eq!(dot_stuff("x\n.\ny"), b"x\r\n..\r\ny\r\n.\r\n");
        assert_eq!(dot_stuff(""), b"\r\n.\r\n");
        // A lone dot line inside the message never ends DATA early.
        let m = build(
            &config(),
            &Alert {
                message: "line\n.\nafter".into(),
                ..alert(AlertEvent::Opened)
            },
        );
        let stuffed = String::from_utf8(dot_stuff(&m.data)).unwrap();
        assert_eq!(stuffed.matches("\r\n.\r\n").count(), 1);
        assert!(stuffed.ends_with("\r\n.\r\n"));
    }

    #[test]
    fn message_id_is_dot_atom() {
        assert_eq!(msg_id_part("a b@c"), "a.b.c");
        assert_eq!(msg_id_part("..."), "outpost");
    }
}
