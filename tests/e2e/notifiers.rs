//! The notifier plugins (slack, webhook, email) run once by hand with
//! `outpost plugin run <notifier> --alert ... --json`, against real
//! receivers on loopback: a recording HTTP server and aiosmtpd. Each error
//! class is checked through the CLI's exit code and JSON (`delivered`,
//! `error`, `permanent`, `retry_after_ms`), which the agent's outbox uses
//! the same way.

use crate::util::receiver::{Answer, Receiver, SmtpServer};
use crate::util::{PluginRun, ReservedPort, run_plugin};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::time::Duration;

const ACK_URL: &str = "http://127.0.0.1:8321/ack/AbCdEf0123456789_-token";

/// An alert as the escalation engine would pass it.
fn alert(event: &str) -> Value {
    json!({
        "idempotency_key": format!("inc-42/1/{event}"),
        "incident_id": "inc-42",
        "event": event,
        "agent": "edge-1",
        "target": "web",
        "target_kind": "sensor",
        "old_state": if event == "resolved" { "down" } else { "up" },
        "new_state": if event == "resolved" { "up" } else { "down" },
        "message": "HTTP 503 (expected 200-299)",
        "started_at_ms": 1_796_151_918_000i64,
        "event_at_ms": 1_796_151_978_500i64,
        "level": 1,
        "ack_url": ACK_URL
    })
}

fn notify(plugin: &str, config: &Value, alert: &Value, extra: &[&str]) -> PluginRun {
    let alert = alert.to_string();
    let mut args = vec!["--alert", alert.as_str()];
    args.extend_from_slice(extra);
    run_plugin(plugin, config, &args)
}

fn delivered(r: &PluginRun) {
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json.as_ref().unwrap()["delivered"], true, "{r:?}");
}

/// Not delivered: (permanent, retry_after_ms, error text).
fn failed(r: &PluginRun) -> (bool, Option<u64>, String) {
    assert_eq!(r.code, 1, "{r:?}");
    let j = r.json.as_ref().expect("JSON result");
    assert_eq!(j["delivered"], false, "{j}");
    (
        j["permanent"].as_bool().expect("permanent"),
        j["retry_after_ms"].as_u64(),
        j["error"].as_str().unwrap().to_string(),
    )
}

/// HMAC-SHA256 (RFC 2104), written here independently of the plugin.
fn hmac_sha256(key: &[u8], data: &[u8]) -> String {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(data)
        .finalize();
    hex::encode(
        Sha256::new()
            .chain_update(pad(0x5c))
            .chain_update(inner)
            .finalize(),
    )
}

#[test]
fn test_hmac_matches_rfc_4231() {
    assert_eq!(
        hmac_sha256(b"Jefe", b"what do ya want for nothing?"),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

// --------------------------------------------------------------------- Slack

fn blocks_of<'a>(body: &'a Value, ty: &str) -> Vec<&'a Value> {
    body["blocks"]
        .as_array()
        .expect("blocks")
        .iter()
        .filter(|b| b["type"] == ty)
        .collect()
}

#[test]
fn slack_opened_message_has_block_kit_layout_and_ack_button() {
    let rx = Receiver::start();
    let cfg = json!({"webhook_url": rx.url("/services/T000/B000/XXXX"), "mention": "<!here>", "username": "Outpost"});
    let r = notify("slack", &cfg, &alert("opened"), &[]);
    delivered(&r);
    let req = rx.single();
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/services/T000/B000/XXXX")
    );
    assert_eq!(req.header("content-type"), Some("application/json"));
    let body = req.json();
    let header = blocks_of(&body, "header");
    assert_eq!(header[0]["text"]["type"], "plain_text");
    assert_eq!(header[0]["text"]["text"], ":red_circle: web is DOWN");
    let fields: Vec<&str> = blocks_of(&body, "section")[0]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"*State*\nup → down"), "{fields:?}");
    assert!(fields.contains(&"*Target*\nsensor `web`"), "{fields:?}");
    assert!(fields.contains(&"*Level*\n1"), "{fields:?}");
    assert!(fields.contains(&"*Agent*\nedge-1"), "{fields:?}");
    assert!(
        fields.contains(
            &"*Since*\n<!date^1796151918^{date_short_pretty} {time_secs}|2026-12-01 19:05:18 UTC>"
        ),
        "{fields:?}"
    );
    let message = blocks_of(&body, "section")[1]["text"]["text"]
        .as_str()
        .unwrap();
    assert_eq!(message, "<!here> HTTP 503 (expected 200-299)");
    let actions = blocks_of(&body, "actions");
    assert_eq!(actions.len(), 1);
    let button = &actions[0]["elements"][0];
    assert_eq!(button["type"], "button");
    assert_eq!(button["text"]["text"], "Acknowledge");
    assert_eq!(button["url"], ACK_URL);
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with("<!here> :red_circle: web is DOWN"),
        "{text}"
    );
    assert_eq!(body["username"], "Outpost");
}

#[test]
fn slack_resolved_and_acknowledged_messages_have_no_button() {
    let rx = Receiver::start();
    let cfg = json!({"webhook_url": rx.url("/hook"), "mention": "<!here>"});
    delivered(&notify("slack", &cfg, &alert("resolved"), &[]));
    delivered(&notify("slack", &cfg, &alert("acknowledged"), &[]));
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 2);
    let resolved = reqs[0].json();
    assert_eq!(
        blocks_of(&resolved, "header")[0]["text"]["text"],
        ":large_green_circle: Resolved: web is UP"
    );
    assert!(blocks_of(&resolved, "actions").is_empty(), "{resolved}");
    assert!(!resolved.to_string().contains("/ack/"), "{resolved}");
    assert!(
        !resolved.to_string().contains("<!here>"),
        "no ping on resolve: {resolved}"
    );
    let acked = reqs[1].json();
    assert!(blocks_of(&acked, "actions").is_empty(), "{acked}");
}

#[test]
fn slack_rate_limit_is_retryable_after_retry_after() {
    let rx = Receiver::start();
    rx.answer(
        Answer::new(429, "{\"ok\":false,\"error\":\"ratelimited\"}").header("Retry-After", "7"),
    );
    let (permanent, wait, error) = failed(&notify(
        "slack",
        &json!({"webhook_url": rx.url("/h")}),
        &alert("opened"),
        &[],
    ));
    assert!(!permanent, "{error}");
    assert_eq!(wait, Some(7000));
    assert!(error.contains("429"), "{error}");
}

#[test]
fn slack_server_error_is_retryable() {
    let rx = Receiver::start();
    rx.answer(Answer::new(500, "rollup_error"));
    let (permanent, wait, error) = failed(&notify(
        "slack",
        &json!({"webhook_url": rx.url("/h")}),
        &alert("opened"),
        &[],
    ));
    assert!(!permanent && wait.is_none(), "{error}");
    assert!(error.contains("HTTP 500: rollup_error"), "{error}");
}

#[test]
fn slack_client_errors_are_permanent_with_slacks_text() {
    let rx = Receiver::start();
    for (status, text) in [
        (404, "no_service"),
        (400, "invalid_payload"),
        (403, "action_prohibited"),
    ] {
        rx.answer(Answer::new(status, text));
        let (permanent, _, error) = failed(&notify(
            "slack",
            &json!({"webhook_url": rx.url("/h")}),
            &alert("opened"),
            &[],
        ));
        assert!(permanent, "{status}: {error}");
        assert!(error.contains(&format!("HTTP {status}: {text}")), "{error}");
    }
}

#[test]
fn slack_unreachable_receiver_is_retryable() {
    let refused = ReservedPort::new();
    let url = format!("http://{}/h", refused.addr());
    let (permanent, _, error) = failed(&notify(
        "slack",
        &json!({"webhook_url": url}),
        &alert("opened"),
        &[],
    ));
    assert!(!permanent, "{error}");
    // The SDK's HTTP client currently reports a refused connection as a
    // closed request-body stream, so only the cause class is checked here.
    assert!(error.starts_with("cannot reach Slack: "), "{error}");
}

// ------------------------------------------------------------------- Webhook

#[test]
fn webhook_sends_the_versioned_payload_signed_with_idempotency_key() {
    let rx = Receiver::start();
    let cfg = json!({
        "url": rx.url("/outpost/alerts?team=ops"),
        "secret": "s3cr3t",
        "headers": {"Authorization": "Bearer abc"}
    });
    delivered(&notify("webhook", &cfg, &alert("opened"), &[]));
    let req = rx.single();
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/outpost/alerts?team=ops")
    );
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.header("idempotency-key"), Some("inc-42/1/opened"));
    assert_eq!(req.header("x-outpost-event"), Some("opened"));
    assert_eq!(req.header("authorization"), Some("Bearer abc"));
    let sig = req.header("x-outpost-signature").expect("signature header");
    assert_eq!(sig, format!("sha256={}", hmac_sha256(b"s3cr3t", &req.body)));
    assert_ne!(sig, format!("sha256={}", hmac_sha256(b"other", &req.body)));
    assert_eq!(
        req.json(),
        json!({
            "version": "outpost.alert.v1",
            "idempotency_key": "inc-42/1/opened",
            "incident_id": "inc-42",
            "event": "opened",
            "agent": "edge-1",
            "target": "web",
            "target_kind": "sensor",
            "old_state": "up",
            "new_state": "down",
            "message": "HTTP 503 (expected 200-299)",
            "started_at": "2026-12-01T19:05:18.000Z",
            "started_at_ms": 1_796_151_918_000i64,
            "event_at": "2026-12-01T19:06:18.500Z",
            "event_at_ms": 1_796_151_978_500i64,
            "level": 1,
            "ack_url": ACK_URL
        })
    );
}

#[test]
fn webhook_without_secret_has_no_signature() {
    let rx = Receiver::start();
    delivered(&notify(
        "webhook",
        &json!({"url": rx.url("/")}),
        &alert("resolved"),
        &[],
    ));
    let req = rx.single();
    assert!(req.header("x-outpost-signature").is_none());
    assert_eq!(req.json()["event"], "resolved");
}

#[test]
fn webhook_pagerduty_mode_maps_events_to_actions_with_incident_dedup_key() {
    let rx = Receiver::start();
    rx.answer(Answer::new(
        202,
        r#"{"status":"success","message":"Event processed","dedup_key":"inc-42"}"#,
    ));
    let cfg = json!({"format": "pagerduty", "url": rx.url("/v2/enqueue"), "routing_key": "R0UT1NGKEY0123456789abcdef012345"});
    for event in ["opened", "escalated", "acknowledged", "resolved"] {
        delivered(&notify("webhook", &cfg, &alert(event), &[]));
    }
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 4);
    let actions: Vec<Value> = reqs
        .iter()
        .map(|r| r.json()["event_action"].clone())
        .collect();
    assert_eq!(
        actions,
        vec!["trigger", "trigger", "acknowledge", "resolve"]
    );
    for r in &reqs {
        assert_eq!(r.path, "/v2/enqueue");
        let j = r.json();
        assert_eq!(j["dedup_key"], "inc-42");
        assert_eq!(j["routing_key"], "R0UT1NGKEY0123456789abcdef012345");
    }
    let trigger = reqs[0].json();
    assert_eq!(
        trigger["payload"]["summary"],
        "[Outpost] DOWN web (level 1): HTTP 503 (expected 200-299)"
    );
    assert_eq!(trigger["payload"]["source"], "edge-1");
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert_eq!(trigger["payload"]["timestamp"], "2026-12-01T19:06:18.500Z");
    assert_eq!(
        trigger["payload"]["custom_details"]["incident_id"],
        "inc-42"
    );
    assert_eq!(trigger["links"][0]["href"], ACK_URL);
    assert_eq!(
        reqs[3].json(),
        json!({"routing_key": "R0UT1NGKEY0123456789abcdef012345", "event_action": "resolve", "dedup_key": "inc-42"})
    );
}

#[test]
fn webhook_error_classes() {
    let rx = Receiver::start();
    let cfg = json!({"url": rx.url("/h")});
    rx.answer(Answer::new(429, "slow down").header("Retry-After", "3"));
    let (permanent, wait, error) = failed(&notify("webhook", &cfg, &alert("opened"), &[]));
    assert!(!permanent && wait == Some(3000), "{error}");
    rx.answer(Answer::new(503, "maintenance"));
    let (permanent, wait, error) = failed(&notify("webhook", &cfg, &alert("opened"), &[]));
    assert!(
        !permanent && wait.is_none() && error.contains("HTTP 503: maintenance"),
        "{error}"
    );
    rx.answer(Answer::new(
        400,
        r#"{"status":"invalid event","errors":["'routing_key' is missing"]}"#,
    ));
    let (permanent, _, error) = failed(&notify("webhook", &cfg, &alert("opened"), &[]));
    assert!(
        permanent && error.contains("routing_key' is missing"),
        "{error}"
    );
    rx.answer(Answer::new(404, "not here"));
    let (permanent, _, error) = failed(&notify("webhook", &cfg, &alert("opened"), &[]));
    assert!(permanent && error.contains("HTTP 404"), "{error}");
    // Every attempt carried the same idempotency key.
    assert!(
        rx.requests()
            .iter()
            .all(|r| r.header("idempotency-key") == Some("inc-42/1/opened"))
    );
}

#[test]
fn webhook_bad_config_is_refused_before_sending() {
    let r = notify(
        "webhook",
        &json!({"format": "pagerduty"}),
        &alert("opened"),
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("routing_key"), "{}", r.stderr);
}

// --------------------------------------------------------------------- Email

fn email_config(server: &SmtpServer, extra: Value) -> Value {
    let mut c = json!({
        "smtp": server.url(),
        "from": "Outpost Alerts <alerts@outpost.example>",
        "to": ["oncall@example.com", "Second Admin <second@example.org>"],
        "helo_name": "agent.example"
    });
    c.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    c
}

/// The body of the MIME part with this content type (7bit parts only).
fn mime_part<'a>(data: &'a str, ctype: &str) -> &'a str {
    let start = data
        .find(&format!("Content-Type: {ctype}"))
        .unwrap_or_else(|| panic!("no {ctype} part in {data}"));
    let rest = &data[start..];
    let body = &rest[rest.find("\r\n\r\n").unwrap() + 4..];
    &body[..body.find("\r\n--=_outpost_").unwrap()]
}

#[test]
fn email_arrives_as_multipart_with_ack_link_in_both_parts() {
    let smtp = SmtpServer::start(&[]);
    delivered(&notify(
        "email",
        &email_config(&smtp, json!({})),
        &alert("opened"),
        &[],
    ));
    let msgs = smtp.wait_messages(1, Duration::from_secs(5));
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    let m = &msgs[0];
    assert_eq!(m["mail_from"], "alerts@outpost.example");
    assert_eq!(
        m["rcpt_tos"],
        json!(["oncall@example.com", "second@example.org"])
    );
    assert_eq!(m["auth_mechanism"], Value::Null);
    let data = m["data"].as_str().unwrap();
    assert!(
        data.contains("\r\nSubject: [Outpost] DOWN web (level 1)\r\n"),
        "{data}"
    );
    assert!(
        data.contains("\r\nMessage-ID: <inc-42/1/opened@outpost.example>\r\n"),
        "{data}"
    );
    assert!(
        data.starts_with("Date: Tue, 01 Dec 2026 19:06:18 +0000\r\n"),
        "{data}"
    );
    assert!(
        data.contains("Content-Type: multipart/alternative; boundary="),
        "{data}"
    );
    let text = mime_part(data, "text/plain");
    assert!(text.contains(&format!("Acknowledge: {ACK_URL}")), "{text}");
    assert!(text.contains("HTTP 503 (expected 200-299)"), "{text}");
    let html = mime_part(data, "text/html");
    assert!(html.contains(&format!("<a href=\"{ACK_URL}\"")), "{html}");
}

#[test]
fn email_message_with_dot_lines_survives_data_transparency() {
    let smtp = SmtpServer::start(&[]);
    let mut a = alert("opened");
    a["message"] = json!("first\n.\n..second");
    delivered(&notify("email", &email_config(&smtp, json!({})), &a, &[]));
    let data = smtp.wait_messages(1, Duration::from_secs(5))[0]["data"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        mime_part(&data, "text/plain").contains("first\r\n.\r\n..second\r\n"),
        "{data}"
    );
}

#[test]
fn email_non_ascii_subject_is_rfc2047_encoded() {
    let smtp = SmtpServer::start(&[]);
    let mut a = alert("opened");
    a["target"] = json!("Küche");
    delivered(&notify("email", &email_config(&smtp, json!({})), &a, &[]));
    let data = smtp.wait_messages(1, Duration::from_secs(5))[0]["data"]
        .as_str()
        .unwrap()
        .to_string();
    // "[Outpost] DOWN Küche (level 1)" in UTF-8, base64.
    assert!(
        data.contains("Subject: =?UTF-8?B?W091dHBvc3RdIERPV04gS8O8Y2hlIChsZXZlbCAxKQ==?="),
        "{data}"
    );
}

#[test]
fn email_auth_plain_and_login_are_chosen_from_ehlo() {
    for (offered, expected) in [("PLAIN,LOGIN", "PLAIN"), ("LOGIN", "LOGIN")] {
        let smtp = SmtpServer::start(&["--auth", "alerts:pa55 word", "--mechanisms", offered]);
        let cfg = email_config(
            &smtp,
            json!({"username": "alerts", "password": "pa55 word"}),
        );
        delivered(&notify("email", &cfg, &alert("opened"), &[]));
        let m = smtp.wait_messages(1, Duration::from_secs(5));
        assert_eq!(m.len(), 1, "{offered}");
        assert_eq!(m[0]["auth_mechanism"], expected, "{offered}");
        assert_eq!(m[0]["auth_login"], "alerts");
    }
}

#[test]
fn email_wrong_password_is_permanent_with_the_servers_text() {
    let smtp = SmtpServer::start(&["--auth", "alerts:right"]);
    let cfg = email_config(&smtp, json!({"username": "alerts", "password": "wrong"}));
    let (permanent, _, error) = failed(&notify("email", &cfg, &alert("opened"), &[]));
    assert!(permanent, "{error}");
    assert!(
        error.contains("535 5.7.8 Authentication credentials invalid"),
        "{error}"
    );
    assert!(
        !error.contains("wrong"),
        "the password must not appear: {error}"
    );
    assert!(smtp.messages().is_empty());
}

#[test]
fn email_auth_required_without_credentials_is_permanent() {
    let smtp = SmtpServer::start(&["--auth", "alerts:right"]);
    let (permanent, _, error) = failed(&notify(
        "email",
        &email_config(&smtp, json!({})),
        &alert("opened"),
        &[],
    ));
    assert!(permanent, "{error}");
    assert!(error.contains("530"), "{error}");
}

#[test]
fn email_temporary_rcpt_failure_is_retryable_permanent_one_is_not() {
    let smtp = SmtpServer::start(&["--rcpt-reply", "451 4.3.0 Mailbox busy, try again later"]);
    let (permanent, _, error) = failed(&notify(
        "email",
        &email_config(&smtp, json!({})),
        &alert("opened"),
        &[],
    ));
    assert!(!permanent, "{error}");
    assert!(
        error.contains("451 4.3.0 Mailbox busy, try again later"),
        "{error}"
    );
    assert!(error.contains("<oncall@example.com>"), "{error}");
    let smtp = SmtpServer::start(&["--rcpt-reply", "550 5.1.1 No such user"]);
    let (permanent, _, error) = failed(&notify(
        "email",
        &email_config(&smtp, json!({})),
        &alert("opened"),
        &[],
    ));
    assert!(permanent, "{error}");
    assert!(error.contains("550 5.1.1 No such user"), "{error}");
    assert!(smtp.messages().is_empty());
}

#[test]
fn email_connection_refused_is_retryable_with_a_clear_message() {
    let refused = ReservedPort::new();
    let port = refused.port;
    let cfg = json!({"smtp": format!("smtp://127.0.0.1:{port}"), "from": "a@example.com", "to": ["b@example.com"]});
    let (permanent, _, error) = failed(&notify("email", &cfg, &alert("opened"), &[]));
    assert!(!permanent, "{error}");
    assert!(
        error.contains(&format!("127.0.0.1:{port}")) && error.contains("refused"),
        "{error}"
    );
}

#[test]
fn email_server_outside_the_allow_list_is_denied() {
    let smtp = SmtpServer::start(&[]);
    let r = notify(
        "email",
        &email_config(&smtp, json!({})),
        &alert("opened"),
        &["--allow-only", "127.0.0.1:1"],
    );
    let (permanent, _, error) = failed(&r);
    assert!(permanent, "{error}");
    assert!(error.contains("allow-list"), "{error}");
    assert!(smtp.messages().is_empty());
}

#[test]
fn email_starttls_is_refused_at_validation() {
    let smtp = SmtpServer::start(&[]);
    let r = notify(
        "email",
        &email_config(&smtp, json!({"starttls": true})),
        &alert("opened"),
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("starttls") && r.stderr.contains("not supported"),
        "{}",
        r.stderr
    );
    assert!(smtp.messages().is_empty());
}

#[test]
fn email_silent_server_times_out_as_retryable_naming_the_stage() {
    // Accepts connections and never sends a greeting: each is held until
    // the client hangs up.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s, &mut std::io::sink());
            });
        }
    });
    let cfg = json!({"smtp": format!("smtp://127.0.0.1:{port}"), "from": "a@example.com", "to": ["b@example.com"]});
    let started = std::time::Instant::now();
    let (permanent, _, error) = failed(&notify(
        "email",
        &cfg,
        &alert("opened"),
        &["--timeout", "1500ms"],
    ));
    assert!(!permanent, "{error}");
    assert!(
        error.contains("did not answer in time (waiting for: the greeting)"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
}
