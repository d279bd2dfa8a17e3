//! The notifiers added for issue 20 (alertmanager against a stand-in for
//! its error answers, telegram, discord, teams, opsgenie), each run by hand
//! with `outpost plugin run <notifier> --alert ... --json` against the
//! recording receiver on loopback, which plays the service's documented
//! API: the exact request (method, path, headers, JSON body) and each
//! error class (429 with Retry-After → retryable after that time, 5xx →
//! retryable, 4xx → permanent with the service's own error text).
//! The real Alertmanager is exercised in `alertmanager.rs`.

use crate::util::receiver::{Answer, Receiver};
use crate::util::{PluginRun, ReservedPort, run_plugin};
use serde_json::{Value, json};

const ACK_URL: &str = "http://127.0.0.1:8321/ack/AbCdEf0123456789_-token";
const TOKEN: &str = "123456789:AAE3xYz_-token";

fn alert(event: &str) -> Value {
    json!({
        "idempotency_key": format!("edge-1/42/{event}/1/1/n"),
        "incident_id": "42",
        "event": event,
        "agent": "edge-1",
        "target": "web<&>",
        "target_kind": "sensor",
        "old_state": if event == "resolved" { "down" } else { "up" },
        "new_state": if event == "resolved" { "up" } else { "down" },
        "message": "HTTP 503 <b>*not* [bold](x)</b>",
        "started_at_ms": 1_796_151_918_000i64,
        "event_at_ms": 1_796_151_978_500i64,
        "level": 1,
        "ack_url": if event == "resolved" || event == "acknowledged" { Value::Null } else { ACK_URL.into() }
    })
}

fn notify(plugin: &str, config: &Value, event: &str) -> PluginRun {
    run_plugin(plugin, config, &["--alert", &alert(event).to_string()])
}

fn delivered(r: &PluginRun) {
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json.as_ref().unwrap()["delivered"], true, "{r:?}");
}

/// Not delivered: (permanent, retry_after_ms, error).
fn failed(r: &PluginRun) -> (bool, Option<u64>, String) {
    assert_eq!(r.code, 1, "{r:?}");
    let j = r.json.as_ref().expect("JSON result");
    assert_eq!(j["delivered"], false, "{j}");
    (
        j["permanent"].as_bool().unwrap(),
        j["retry_after_ms"].as_u64(),
        j["error"].as_str().unwrap().to_string(),
    )
}

/// Config errors name the key (`outpost plugin run` exits 2 with the
/// plugin's validation error).
fn refused(plugin: &str, config: &Value, key: &str) {
    let r = run_plugin(plugin, config, &["--alert", &alert("opened").to_string()]);
    assert_ne!(r.code, 0, "{r:?}");
    let text = format!("{}{}", r.stdout, r.stderr);
    assert!(text.contains(key), "{plugin}: `{key}` not named: {text}");
}

/// 429 + Retry-After, 503, and a 4xx with `body` for each plugin config.
fn error_classes(plugin: &str, rx: &Receiver, config: &Value, refusal: (u16, &str), expect: &str) {
    rx.answer(Answer::new(429, "{}").header("Retry-After", "7"));
    let (permanent, wait, error) = failed(&notify(plugin, config, "opened"));
    assert!(!permanent, "{plugin}: {error}");
    assert_eq!(wait, Some(7000), "{plugin}: {error}");
    assert!(error.contains("429"), "{plugin}: {error}");
    rx.answer(Answer::new(503, "maintenance"));
    let (permanent, wait, error) = failed(&notify(plugin, config, "opened"));
    assert!(!permanent && wait.is_none(), "{plugin}: {error}");
    assert!(error.contains("503"), "{plugin}: {error}");
    rx.answer(Answer::new(refusal.0, refusal.1));
    let (permanent, _, error) = failed(&notify(plugin, config, "opened"));
    assert!(permanent, "{plugin}: {error}");
    assert!(error.contains(expect), "{plugin}: {error}");
    rx.answer(Answer::new(200, "{}"));
}

// -------------------------------------------------------------- Alertmanager

#[test]
fn alertmanager_posts_one_postable_alert_to_every_member() {
    let (a, b) = (Receiver::start(), Receiver::start());
    let cfg = json!({"urls": [a.url(""), b.url("/am/")], "labels": {"team": "web"}, "annotations": {"runbook_url": "https://rb.example/web"}});
    delivered(&notify("alertmanager", &cfg, "opened"));
    let (ra, rb) = (a.single(), b.single());
    assert_eq!(
        (ra.method.as_str(), ra.path.as_str()),
        ("POST", "/api/v2/alerts")
    );
    assert_eq!(rb.path, "/am/api/v2/alerts");
    assert_eq!(ra.header("content-type"), Some("application/json"));
    assert_eq!(ra.body, rb.body, "every member gets the same alert");
    let body = ra.json();
    let ends = body[0]["endsAt"].as_str().unwrap().to_string();
    assert_eq!(
        body,
        json!([{
            "labels": {"alertname": "OutpostTargetDown", "target": "web<&>", "target_kind": "sensor", "agent": "edge-1", "team": "web"},
            "annotations": {
                "summary": "sensor web<&> is DOWN",
                "message": "HTTP 503 <b>*not* [bold](x)</b>",
                "ack_url": ACK_URL,
                "incident_id": "42",
                "agent": "edge-1",
                "event": "opened",
                "level": "1",
                "runbook_url": "https://rb.example/web"
            },
            "startsAt": "2026-12-01T19:05:18.000Z",
            "endsAt": ends,
            "generatorURL": "http://127.0.0.1:8321/"
        }])
    );
    // endsAt: an hour (ends_after) after now, the event being older.
    assert!(ends.as_str() > "2026-01-01", "{ends}");

    delivered(&notify("alertmanager", &cfg, "resolved"));
    let r = a.requests_to("/api/v2/alerts");
    let resolved = r[1].json();
    assert_eq!(resolved[0]["endsAt"], "2026-12-01T19:06:18.500Z");
    assert_eq!(resolved[0]["startsAt"], "2026-12-01T19:05:18.000Z");
    assert!(resolved[0]["annotations"].get("ack_url").is_none());
}

#[test]
fn alertmanager_is_delivered_if_one_member_accepts_and_names_the_others() {
    let ok = Receiver::start();
    let reserved = ReservedPort::new();
    let down = reserved.port;
    let cfg = json!({"urls": [format!("http://127.0.0.1:{down}"), ok.url("")]});
    let r = notify("alertmanager", &cfg, "opened");
    delivered(&r);
    assert_eq!(ok.requests().len(), 1);
    assert!(
        r.stderr.contains("delivered to 1 of 2 Alertmanagers")
            && r.stderr.contains(&format!("127.0.0.1:{down}")),
        "the failed member is reported: {r:?}"
    );

    // None accepts: retryable (one member is only down), with every reason.
    let bad = Receiver::start();
    bad.answer(Answer::new(
        400,
        "{\"code\":400,\"message\":\"start time must be before end time\"}",
    ));
    let cfg = json!({"urls": [format!("http://127.0.0.1:{down}"), bad.url("")]});
    let (permanent, _, error) = failed(&notify("alertmanager", &cfg, "opened"));
    assert!(!permanent, "{error}");
    assert!(
        error.starts_with("no Alertmanager accepted the alert (0 of 2): "),
        "{error}"
    );
    assert!(
        error.contains(&format!(
            "cannot reach Alertmanager http://127.0.0.1:{down}"
        )),
        "{error}"
    );
    assert!(
        error.contains("start time must be before end time"),
        "{error}"
    );

    // Every member refuses: permanent.
    let cfg = json!({"urls": [bad.url("")]});
    let (permanent, _, error) = failed(&notify("alertmanager", &cfg, "opened"));
    assert!(permanent, "{error}");
    // Rate limit with Retry-After on every member: retryable after it.
    let slow = Receiver::start();
    error_classes(
        "alertmanager",
        &slow,
        &json!({"urls": [slow.url("")]}),
        (422, "bad labels"),
        "bad labels",
    );
    refused("alertmanager", &json!({"urls": []}), "urls");
    refused(
        "alertmanager",
        &json!({"urls": ["http://a"], "labels": {"agent": "x"}}),
        "labels.agent",
    );
}

// ------------------------------------------------------------------ Telegram

#[test]
fn telegram_send_message_is_escaped_html_with_an_inline_ack_button() {
    let rx = Receiver::start();
    rx.answer(Answer::new(200, r#"{"ok":true,"result":{"message_id":7}}"#));
    let cfg = json!({"bot_token": TOKEN, "chat_id": -1001234567890i64, "api_url": rx.url("")});
    delivered(&notify("telegram", &cfg, "opened"));
    let req = rx.single();
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, format!("/bot{TOKEN}/sendMessage"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.json(),
        json!({
            "chat_id": -1001234567890i64,
            "text": "🔴 <b>web&lt;&amp;&gt; is DOWN</b>\nHTTP 503 &lt;b&gt;*not* [bold](x)&lt;/b&gt;\n\nTarget: sensor <code>web&lt;&amp;&gt;</code>\nAgent: edge-1 · level 1\nSince: 2026-12-01 19:05:18 UTC\n<i>Outpost incident 42 · opened</i>",
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": true},
            "reply_markup": {"inline_keyboard": [[{"text": "✅ Acknowledge", "url": ACK_URL}]]}
        })
    );
    delivered(&notify("telegram", &cfg, "resolved"));
    let resolved = rx.requests()[1].json();
    assert!(resolved.get("reply_markup").is_none(), "{resolved}");
    assert!(
        resolved["text"]
            .as_str()
            .unwrap()
            .starts_with("🟢 <b>Resolved: web&lt;&amp;&gt; is UP</b>")
    );
}

#[test]
fn telegram_errors_use_the_bot_api_answer_and_never_show_the_token() {
    let rx = Receiver::start();
    let cfg = json!({"bot_token": TOKEN, "chat_id": "@outpost_ops", "api_url": rx.url("")});
    // Flood control without a header: the body's parameters.retry_after.
    rx.answer(Answer::new(429, r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 12","parameters":{"retry_after":12}}"#));
    let (permanent, wait, error) = failed(&notify("telegram", &cfg, "opened"));
    assert!(!permanent, "{error}");
    assert_eq!(wait, Some(12_000));
    error_classes(
        "telegram",
        &rx,
        &cfg,
        (
            400,
            r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#,
        ),
        "Bad Request: chat not found (check `chat_id`",
    );
    rx.answer(Answer::new(
        401,
        r#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#,
    ));
    let (permanent, _, error) = failed(&notify("telegram", &cfg, "opened"));
    assert!(permanent && error.contains("bot_token"), "{error}");
    assert!(!error.contains("AAE3"), "token leaked: {error}");
    let down = ReservedPort::new();
    let (_, _, error) = failed(&notify(
        "telegram",
        &json!({"bot_token": TOKEN, "chat_id": 1, "api_url": format!("http://{}", down.addr())}),
        "opened",
    ));
    assert!(!error.contains("AAE3"), "token leaked: {error}");
    refused(
        "telegram",
        &json!({"bot_token": "nope", "chat_id": 1}),
        "bot_token",
    );
    refused(
        "telegram",
        &json!({"bot_token": TOKEN, "chat_id": "ops"}),
        "chat_id",
    );
}

// ------------------------------------------------------------------- Discord

#[test]
fn discord_webhook_gets_one_embed_with_colour_escaped_markdown_and_ack_link() {
    let rx = Receiver::start();
    rx.answer(Answer::new(200, r#"{"id":"1"}"#));
    let cfg = json!({"webhook_url": rx.url("/api/webhooks/123/tok"), "mention": "<@&42>", "username": "Outpost"});
    delivered(&notify("discord", &cfg, "opened"));
    let req = rx.single();
    assert_eq!(req.path, "/api/webhooks/123/tok?wait=true");
    let body = req.json();
    assert_eq!(
        body,
        json!({
            "content": "<@&42>",
            "allowed_mentions": {"parse": [], "roles": ["42"]},
            "username": "Outpost",
            "embeds": [{
                "title": "🔴 web\\<&\\> is DOWN",
                "description": format!("HTTP 503 \\<b\\>\\*not\\* \\[bold\\]\\(x\\)\\</b\\>\n\n**[Acknowledge]({ACK_URL})**"),
                "url": ACK_URL,
                "color": 0xE01E5A,
                "fields": [
                    {"name": "State", "value": "up → down", "inline": true},
                    {"name": "Target", "value": "sensor `web<&>`", "inline": true},
                    {"name": "Level", "value": "1", "inline": true},
                    {"name": "Agent", "value": "edge\\-1", "inline": true},
                    {"name": "Since", "value": "<t:1796151918:f>", "inline": true}
                ],
                "footer": {"text": "Outpost incident 42 · opened"},
                "timestamp": "2026-12-01T19:06:18.500Z"
            }]
        })
    );
    delivered(&notify("discord", &cfg, "resolved"));
    let resolved = rx.requests()[1].json();
    assert_eq!(resolved["embeds"][0]["color"], 0x2ECC71);
    assert!(resolved.get("content").is_none(), "no ping on resolve");
    assert_eq!(resolved["allowed_mentions"], json!({"parse": []}));
    delivered(&notify("discord", &cfg, "acknowledged"));
    assert_eq!(rx.requests()[2].json()["embeds"][0]["color"], 0xF1C40F);
}

#[test]
fn discord_error_classes() {
    let rx = Receiver::start();
    let cfg = json!({"webhook_url": rx.url("/api/webhooks/1/t")});
    error_classes(
        "discord",
        &rx,
        &cfg,
        (404, r#"{"message":"Unknown Webhook","code":10015}"#),
        "Unknown Webhook (code 10015) (the webhook was deleted",
    );
    rx.answer(Answer::new(
        429,
        r#"{"message":"You are being rate limited.","retry_after":1.5,"global":false}"#,
    ));
    let (permanent, wait, _) = failed(&notify("discord", &cfg, "opened"));
    assert!(!permanent);
    assert_eq!(wait, Some(1500));
    refused("discord", &json!({"webhook_url": "discord"}), "webhook_url");
    refused(
        "discord",
        &json!({"webhook_url": rx.url("/h"), "mention": "@oncall"}),
        "mention",
    );
}

// --------------------------------------------------------------------- Teams

#[test]
fn teams_workflow_gets_an_adaptive_card_with_an_open_url_action() {
    let rx = Receiver::start();
    rx.answer(Answer::new(202, ""));
    let cfg = json!({"webhook_url": rx.url("/workflows/abc/triggers/manual/paths/invoke?api-version=1&sig=s")});
    delivered(&notify("teams", &cfg, "opened"));
    let req = rx.single();
    assert_eq!(
        req.path,
        "/workflows/abc/triggers/manual/paths/invoke?api-version=1&sig=s"
    );
    let body = req.json();
    let run = |t: &str| json!({"type": "TextRun", "text": t});
    let fact = |l: &str, v: &str| {
        json!({"type": "RichTextBlock", "spacing": "None", "inlines": [
            {"type": "TextRun", "text": format!("{l}: "), "weight": "Bolder"}, run(v)]})
    };
    assert_eq!(
        body,
        json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {"type": "Container", "style": "attention", "bleed": true, "items": [
                            {"type": "RichTextBlock", "inlines": [{"type": "TextRun", "text": "web<&> is DOWN", "size": "Large", "weight": "Bolder"}]}
                        ]},
                        {"type": "RichTextBlock", "inlines": [run("HTTP 503 <b>*not* [bold](x)</b>")]},
                        fact("State", "up → down"),
                        fact("Target", "sensor web<&>"),
                        fact("Level", "1"),
                        fact("Agent", "edge-1"),
                        fact("Since", "2026-12-01 19:05:18 UTC"),
                        {"type": "RichTextBlock", "inlines": [{"type": "TextRun", "text": "Outpost incident 42 · opened", "isSubtle": true, "size": "Small"}]}
                    ],
                    "actions": [{"type": "Action.OpenUrl", "title": "Acknowledge", "url": ACK_URL}],
                    "msteams": {"width": "Full"}
                }
            }]
        })
    );
    delivered(&notify("teams", &cfg, "resolved"));
    let card = &rx.requests()[1].json()["attachments"][0]["content"];
    assert_eq!(card["body"][0]["style"], "good");
    assert!(card.get("actions").is_none());
    error_classes(
        "teams",
        &rx,
        &cfg,
        (
            404,
            r#"{"error":{"code":"WorkflowNotFound","message":"The workflow was not found."}}"#,
        ),
        "WorkflowNotFound: The workflow was not found.",
    );
    refused(
        "teams",
        &json!({"webhook_url": "https://x.webhook.office.com/webhookb2/1"}),
        "webhook_url",
    );
}

// ------------------------------------------------------------------ Opsgenie

#[test]
fn opsgenie_creates_with_alias_and_closes_by_alias() {
    let rx = Receiver::start();
    rx.answer(Answer::new(
        202,
        r#"{"result":"Request will be processed","took":0.1,"requestId":"r-1"}"#,
    ));
    let cfg = json!({"api_key": "eb243592-faa2-4ba2-a551-1afdf565c889", "api_url": rx.url(""), "priority": "P1", "responders": [{"type": "team", "name": "web"}], "acknowledge": true});
    delivered(&notify("opsgenie", &cfg, "opened"));
    delivered(&notify("opsgenie", &cfg, "acknowledged"));
    delivered(&notify("opsgenie", &cfg, "resolved"));
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 3);
    for r in &reqs {
        assert_eq!(r.method, "POST");
        assert_eq!(
            r.header("authorization"),
            Some("GenieKey eb243592-faa2-4ba2-a551-1afdf565c889")
        );
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    assert_eq!(reqs[0].path, "/v2/alerts");
    assert_eq!(
        reqs[0].json(),
        json!({
            "message": "[Outpost] web<&> is DOWN",
            "alias": "edge-1:42",
            "description": format!("HTTP 503 <b>*not* [bold](x)</b>\n\nAcknowledge in Outpost: {ACK_URL}"),
            "tags": ["outpost"],
            "details": {
                "incident_id": "42", "agent": "edge-1", "target": "web<&>", "target_kind": "sensor",
                "event": "opened", "level": "1", "old_state": "up", "new_state": "down",
                "started_at_ms": "1796151918000", "ack_url": ACK_URL
            },
            "entity": "web<&>",
            "source": "Outpost edge-1",
            "user": "Outpost",
            "responders": [{"type": "team", "name": "web"}],
            "priority": "P1"
        })
    );
    assert_eq!(
        reqs[1].path,
        "/v2/alerts/edge-1:42/acknowledge?identifierType=alias"
    );
    assert_eq!(
        reqs[2].path,
        "/v2/alerts/edge-1:42/close?identifierType=alias"
    );
    assert_eq!(
        reqs[2].json(),
        json!({"source": "Outpost edge-1", "user": "Outpost", "note": "HTTP 503 <b>*not* [bold](x)</b>"})
    );
    // Without `acknowledge`, an acknowledgement sends nothing.
    let quiet = json!({"api_key": "k", "api_url": rx.url("")});
    delivered(&notify("opsgenie", &quiet, "acknowledged"));
    assert_eq!(rx.requests().len(), 3);
}

#[test]
fn opsgenie_error_classes() {
    let rx = Receiver::start();
    let cfg = json!({"api_key": "k", "api_url": rx.url("")});
    error_classes(
        "opsgenie",
        &rx,
        &cfg,
        (
            422,
            r#"{"message":"Request body is not processable","took":0.0,"requestId":"r-2"}"#,
        ),
        "Request body is not processable (request r-2)",
    );
    rx.answer(Answer::new(
        401,
        r#"{"message":"Key format is not valid!"}"#,
    ));
    let (permanent, _, error) = failed(&notify("opsgenie", &cfg, "opened"));
    assert!(permanent && error.contains("api_key"), "{error}");
    refused(
        "opsgenie",
        &json!({"api_key": "k", "priority": "urgent"}),
        "priority",
    );
    refused(
        "opsgenie",
        &json!({"api_key": "k", "responders": [{"type": "team"}]}),
        "responders[0]",
    );
}
