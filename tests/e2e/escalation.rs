//! Incidents and escalation end to end: the real binary, a real HTTP target
//! whose health the test switches, real receivers for the webhook notifier,
//! the ack page and API, the CLI, and `kill -9`. Durations are seconds.

use crate::util::{Agent, Mode, Receiver, Target, http_get, http_post};
use serde_json::Value;
use std::time::{Duration, Instant};

/// A sensor on `target` that is hard down after 2 failures 150 ms apart and
/// up after 1 success; escalation `l1` then `l2`; each level a webhook to
/// its own path of `rx`.
fn config(
    target: &Target,
    rx: &Receiver,
    alert_after: &str,
    ack_within: &str,
    extra: &str,
) -> String {
    format!(
        r#"
[[sensor]]
name = "web"
plugin = "http"
interval = "200ms"
retry_interval = "150ms"
timeout = "150ms"
fail_after = 2
recover_after = 1
category = "frontend"
config = {{ url = "{url}" }}

[[notifier]]
name = "l1"
plugin = "webhook"
timeout = "2s"
config = {{ url = "{rx}/l1" }}

[[notifier]]
name = "l2"
plugin = "webhook"
timeout = "2s"
config = {{ url = "{rx}/l2" }}

[[escalation]]
name = "oncall"
targets = ["web"]
alert_after = "{alert_after}"
notify_on_resolve = true
[[escalation.level]]
notify = ["l1"]
ack_within = "{ack_within}"
[[escalation.level]]
notify = ["l2"]
ack_within = "1h"
{extra}
"#,
        url = target.url(),
        rx = rx.url("")
    )
}

/// A second sensor on the same target with its own chain (`alert_after`,
/// then level 2 after `ack_within`), notifying `/canary`. Its timers run
/// in the same escalation engine as `web`'s, in order of their due time:
/// once a canary timer due later than a `web` timer has fired and the
/// outbox is drained, whatever that `web` timer would have sent has
/// arrived. Negative checks ("level 2 was never called") wait on it, not
/// on a clock.
fn canary(target: &Target, rx: &Receiver, alert_after: &str, ack_within: &str) -> String {
    format!(
        r#"
[[sensor]]
name = "canary"
plugin = "http"
interval = "200ms"
retry_interval = "150ms"
timeout = "150ms"
fail_after = 2
recover_after = 1
config = {{ url = "{url}" }}

[[notifier]]
name = "canary"
plugin = "webhook"
timeout = "2s"
config = {{ url = "{rx}/canary" }}

[[escalation]]
name = "canary"
targets = ["canary"]
alert_after = "{alert_after}"
[[escalation.level]]
notify = ["canary"]
ack_within = "{ack_within}"
[[escalation.level]]
notify = ["canary"]
ack_within = "1h"
"#,
        url = target.url(),
        rx = rx.url("")
    )
}

fn events(rx: &Receiver, path: &str) -> Vec<String> {
    rx.requests_to(path)
        .iter()
        .map(|r| r.json()["event"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn token_of(ack_url: &str) -> String {
    ack_url.rsplit('/').next().unwrap().to_string()
}

/// Polls `outpost incidents` until `ready` holds; panics with the logs
/// after `timeout`.
fn wait_incidents(
    agent: &Agent,
    timeout: Duration,
    ready: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    crate::util::wait_some_or(
        timeout,
        || {
            let incs = incidents(agent);
            ready(&incs).then_some(incs)
        },
        || {
            format!(
                "incidents never got there: {:?}\n{}",
                incidents(agent),
                agent.logs()
            )
        },
    )
}

fn incidents(agent: &Agent) -> Vec<Value> {
    let out = agent.cli(&["incidents", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn no_ack_escalates_to_level_2_then_ack_stops_it_and_recovery_resolves() {
    let target = Target::start(Mode::Up);
    let rx = Receiver::start();
    let agent = Agent::start(&config(&target, &rx, "1s", "2s", ""));
    agent.wait_sensor("web", Duration::from_secs(20), |s| s["state"] == "up");
    let down_at = Instant::now();
    target.set(Mode::Error);

    let opened = rx.wait_for("/l1", 1, Duration::from_secs(20), &agent);
    let first = &opened[0];
    let waited = down_at.elapsed();
    assert_eq!(first.json()["event"], "opened", "{:?}", first.json());
    assert_eq!(first.json()["target"], "web");
    assert_eq!(first.json()["level"], 1);
    // Two failures (~0.35 s) plus the 1 s window: not before.
    assert!(
        waited >= Duration::from_millis(1200),
        "opened after {waited:?}"
    );
    let ack_url = first.json()["ack_url"]
        .as_str()
        .expect("an ack link")
        .to_string();
    assert!(
        ack_url.starts_with(&format!("http://127.0.0.1:{}/ack/", agent.port)),
        "{ack_url}"
    );
    let token = token_of(&ack_url);
    assert!(token.len() >= 22, "token has ≥ 128 bits: {token}");
    assert!(rx.requests_to("/l2").is_empty(), "level 2 not yet");

    // Nobody acknowledges: level 2 after ack_within (2 s).
    let l2 = rx.wait_for("/l2", 1, Duration::from_secs(10), &agent);
    let gap = l2[0].at.duration_since(first.at);
    assert!(
        gap >= Duration::from_millis(1900) && gap < Duration::from_secs(5),
        "level 2 after {gap:?}"
    );
    assert_eq!(l2[0].json()["event"], "escalated");
    assert_eq!(l2[0].json()["level"], 2);
    assert_eq!(
        token_of(l2[0].json()["ack_url"].as_str().unwrap()),
        token,
        "same incident, same link"
    );

    // Acknowledge by POST (what the page's button does).
    let (code, body) = http_post(
        &ack_url,
        "application/x-www-form-urlencoded",
        b"by=alice",
        &[("accept", "application/json")],
    );
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["outcome"], "acknowledged");
    assert_eq!(v["incident"]["acked_by"], "alice");
    assert!(
        v["incident"].get("token_hash").is_none(),
        "the hash stays private"
    );
    // Both levels hear of the acknowledgement; nothing else follows.
    rx.wait_for("/l1", 2, Duration::from_secs(10), &agent);
    rx.wait_for("/l2", 2, Duration::from_secs(10), &agent);
    assert_eq!(events(&rx, "/l1"), ["opened", "acknowledged"]);
    assert_eq!(events(&rx, "/l2"), ["escalated", "acknowledged"]);
    // A second acknowledgement changes nothing.
    let (code, _) = http_post(
        &ack_url,
        "application/x-www-form-urlencoded",
        b"by=bob",
        &[],
    );
    assert_eq!(code, 409);

    target.set(Mode::Up);
    rx.wait_for("/l1", 3, Duration::from_secs(10), &agent);
    rx.wait_for("/l2", 3, Duration::from_secs(10), &agent);
    assert_eq!(events(&rx, "/l1"), ["opened", "acknowledged", "resolved"]);
    assert_eq!(
        events(&rx, "/l2"),
        ["escalated", "acknowledged", "resolved"]
    );
    let all = rx.requests_to("/l1");
    assert!(all[2].json()["ack_url"].is_null(), "no link once resolved");
    let inc = &incidents(&agent)[0];
    assert_eq!(inc["state"], "resolved");
    assert_eq!(inc["acked_by"], "alice");
    assert!(inc["acked_at_ms"].as_i64().unwrap() >= inc["opened_at_ms"].as_i64().unwrap());
    // The SLA report shows the incident's time to acknowledge and resolve.
    let out = agent.cli(&["sla", "--period", "day", "--sensor", "web", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sla: Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = &sla[0];
    assert_eq!(row["incidents"], 1, "{row}");
    let mtta = row["mtta_ms"].as_i64().unwrap();
    let ttr = row["incident_mttr_ms"].as_i64().unwrap();
    assert!(mtta >= 1900 && ttr > mtta, "mtta {mtta} ms, ttr {ttr} ms");
    // Idempotency keys are unique per notification.
    let mut keys: Vec<String> = all
        .iter()
        .chain(rx.requests_to("/l2").iter())
        .map(|r| r.json()["idempotency_key"].as_str().unwrap().to_string())
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 6);
}

#[test]
fn level_1_acknowledging_in_time_means_level_2_is_never_called() {
    let target = Target::start(Mode::Up);
    let rx = Receiver::start();
    // The canary's level 2 is due 3 s after its opening, a second after
    // `web`'s would be.
    let agent = Agent::start(&config(
        &target,
        &rx,
        "500ms",
        "2s",
        &canary(&target, &rx, "500ms", "3s"),
    ));
    agent.wait_sensor("web", Duration::from_secs(20), |s| s["state"] == "up");
    target.set(Mode::Error);
    let opened = rx.wait_for("/l1", 1, Duration::from_secs(20), &agent);
    let url = opened[0].json()["ack_url"].as_str().unwrap().to_string();

    // GET shows a page and never acknowledges (link scanners).
    for _ in 0..3 {
        let (code, _, page) = http_get(&url, &[]);
        assert_eq!(code, 200);
        assert!(page.contains("<form method=post"), "{page}");
        assert!(page.contains("web"));
    }
    let web = |incs: Vec<Value>| incs.into_iter().find(|i| i["target"] == "web").unwrap();
    let inc = web(incidents(&agent));
    assert_eq!(inc["state"], "open", "GET acknowledged");

    // The CLI acknowledges with the link.
    let out = agent.cli(&["ack", &url, "--by", "bob"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.contains(&format!(
            "acknowledged incident #{} (web) as bob",
            inc["id"]
        )),
        "{said}"
    );
    // Past ack_within: the canary's later level-2 timer fired and every
    // notification made so far was delivered; level 2 never heard.
    let canary = rx.wait_for("/canary", 2, Duration::from_secs(20), &agent);
    assert_eq!(canary[1].json()["event"], "escalated");
    agent.wait_outbox_drained(Duration::from_secs(10));
    assert!(
        rx.requests_to("/l2").is_empty(),
        "level 2 was called: {:?}",
        events(&rx, "/l2")
    );
    assert_eq!(events(&rx, "/l1"), ["opened", "acknowledged"]);
    let (code, _, page) = http_get(&url, &[]);
    assert_eq!(code, 200);
    assert!(
        page.contains("Already acknowledged") && page.contains("bob"),
        "{page}"
    );
}

#[test]
fn kill_9_before_level_2_is_due_fires_it_once_on_time_after_restart() {
    let target = Target::start(Mode::Up);
    let rx = Receiver::start();
    let mut agent = Agent::start(&config(&target, &rx, "500ms", "4s", ""));
    agent.wait_sensor("web", Duration::from_secs(20), |s| s["state"] == "up");
    target.set(Mode::Error);
    let opened = rx.wait_for("/l1", 1, Duration::from_secs(20), &agent);
    agent.kill9();
    // Deliberately down for 3 s (an outage of the agent, not a wait for
    // anything): a timer counted from the restart would then fire at
    // ≥ 7 s after level 1, one counted from the first start at 4 s.
    std::thread::sleep(Duration::from_secs(3));
    let restarted = Instant::now();
    agent.spawn();
    let l2 = rx.wait_for("/l2", 1, Duration::from_secs(15), &agent);
    let gap = l2[0].at.duration_since(opened[0].at);
    // Due 4 s after the first notification, whatever the restart did: at
    // once if it fell due while the agent was down.
    assert!(
        gap >= Duration::from_millis(3800) && gap < Duration::from_millis(7000),
        "level 2 after {gap:?} (restarted {:?} after level 1)",
        restarted.duration_since(opened[0].at)
    );
    let incs = incidents(&agent);
    assert_eq!(incs.len(), 1, "one incident across the restart: {incs:?}");
    assert_eq!(incs[0]["level"], 2);
    // Recovery: "resolved" goes to both levels, each behind anything
    // queued before it for that receiver (an incident's notifications are
    // delivered in order), so a duplicate would arrive first.
    target.set(Mode::Up);
    rx.wait_for("/l2", 2, Duration::from_secs(10), &agent);
    rx.wait_for("/l1", 2, Duration::from_secs(10), &agent);
    assert_eq!(
        events(&rx, "/l2"),
        ["escalated", "resolved"],
        "exactly once"
    );
    assert_eq!(
        events(&rx, "/l1"),
        ["opened", "resolved"],
        "level 1 not told twice"
    );
    assert_eq!(incidents(&agent).len(), 1);
}

#[test]
fn a_receiver_that_refuses_then_fails_then_rate_limits_gets_each_notification_once_in_order() {
    let target = Target::start(Mode::Up);
    // Nothing listens on the receiver's port at first (it is reserved, so
    // connections are refused).
    let port = crate::util::ReservedPort::new();
    let mut agent = Agent::start(&config(
        &target,
        &Receiver::unstarted(port.port),
        "300ms",
        "1h",
        "",
    ));
    agent.wait_sensor("web", Duration::from_secs(20), |s| s["state"] == "up");
    target.set(Mode::Error);
    // The incident opens while the receiver is down; the agent keeps trying.
    wait_incidents(&agent, Duration::from_secs(20), |i| {
        i.first()
            .and_then(|i| i["notifications"][0]["attempts"].as_u64())
            .unwrap_or(0)
            >= 2
    });
    // Recovery while "opened" is still undelivered: "resolved" queues behind it.
    target.set(Mode::Up);
    agent.wait_sensor("web", Duration::from_secs(20), |s| s["state"] == "up");
    wait_incidents(&agent, Duration::from_secs(20), |i| {
        i.first()
            .and_then(|i| i["notifications"].as_array())
            .is_some_and(|n| n.iter().any(|n| n["event"] == "resolved"))
    });
    // Back, but answering 500, 500, then 429 Retry-After: 1, then fine.
    let rx = Receiver::on(port.listen());
    rx.script("/l1", &[(500, None), (500, None), (429, Some(1))]);
    let got = rx.wait_for("/l1", 5, Duration::from_secs(40), &agent);
    let delivered: Vec<String> = got
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.json()["event"].as_str().unwrap().to_string())
        .collect();
    // Nothing left to send: no retry or duplicate can still come.
    agent.wait_outbox_drained(Duration::from_secs(10));
    let all = rx.requests_to("/l1");
    let ok: Vec<String> = all
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.json()["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ok,
        ["opened", "resolved"],
        "each once, in order; all requests: {:?}",
        all.iter()
            .map(|r| (r.status, r.json()["event"].clone()))
            .collect::<Vec<_>>()
    );
    assert_eq!(delivered, ["opened", "resolved"]);
    // The 429's Retry-After was honoured.
    let i429 = all.iter().position(|r| r.status == 429).unwrap();
    let gap = all[i429 + 1].at.duration_since(all[i429].at);
    assert!(
        gap >= Duration::from_millis(950),
        "retried {gap:?} after a 429 with Retry-After: 1"
    );
    // Same idempotency key on every attempt of "opened".
    let keys: std::collections::HashSet<_> = all
        .iter()
        .filter(|r| r.json()["event"] == "opened")
        .map(|r| r.json()["idempotency_key"].clone())
        .collect();
    assert_eq!(keys.len(), 1);
    let inc = &incidents(&agent)[0];
    let n = &inc["notifications"][0];
    assert!(n["attempts"].as_u64().unwrap() >= 5, "{inc}");
    assert!(n["delivered_at_ms"].is_i64());
    assert!(
        inc["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "delivery_failed")
    );
    agent.stop();
}

#[test]
fn tokens_wrong_truncated_random_or_resolved_are_refused_and_change_nothing() {
    let target = Target::start(Mode::Up);
    let rx = Receiver::start();
    let agent = Agent::start(&config(&target, &rx, "300ms", "1h", ""));
    agent.wait_sensor("web", Duration::from_secs(20), |s| s["state"] == "up");
    target.set(Mode::Error);
    let opened = rx.wait_for("/l1", 1, Duration::from_secs(20), &agent);
    let url = opened[0].json()["ack_url"].as_str().unwrap().to_string();
    let token = token_of(&url);
    let base = agent.api("/ack/");
    let mut flipped = token.clone().into_bytes();
    flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
    let random = "q".repeat(token.len());
    for bad in [
        String::from_utf8(flipped).unwrap(),
        token[..token.len() - 1].to_string(),
        format!("{token}x"),
        random,
        "..%2F..%2Fetc".to_string(),
    ] {
        let (code, body) = http_post(
            &format!("{base}{bad}"),
            "application/x-www-form-urlencoded",
            b"by=mallory",
            &[("accept", "application/json")],
        );
        assert_eq!(code, 404, "{bad}: {body}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["outcome"],
            "unknown"
        );
        let (code, _, _) = http_get(&format!("{base}{bad}"), &[]);
        assert_eq!(code, 404);
    }
    assert_eq!(incidents(&agent)[0]["state"], "open");
    let out = agent.cli(&["ack", "nonsense"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no incident has this token"));

    target.set(Mode::Up);
    rx.wait_for("/l1", 2, Duration::from_secs(10), &agent);
    let (code, body) = http_post(
        &url,
        "application/x-www-form-urlencoded",
        b"",
        &[("accept", "application/json")],
    );
    assert_eq!(code, 409, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["outcome"],
        "resolved"
    );
    assert_eq!(incidents(&agent)[0]["acked_by"], Value::Null);
}

#[test]
fn a_silence_holds_notifications_but_results_are_recorded() {
    let target = Target::start(Mode::Up);
    let rx = Receiver::start();
    // The canary, not silenced, alerts 1 s after it is down: later than
    // `web` (300 ms) would.
    let agent = Agent::start(&config(
        &target,
        &rx,
        "300ms",
        "1h",
        &canary(&target, &rx, "1s", "1h"),
    ));
    agent.wait_sensor("web", Duration::from_secs(20), |s| s["state"] == "up");
    // Without the admin token, the API refuses.
    let (code, _) = http_post(
        &agent.api("/api/v1/silences"),
        "application/json",
        br#"{"target":"web","for":"1h"}"#,
        &[],
    );
    assert_eq!(code, 401);
    let out = agent.cli(&["silence", "web", "--for", "1h", "--reason", "deploy"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8_lossy(&agent.cli(&["silence", "--list"]).stdout).into_owned();
    assert!(
        listing.contains("web") && listing.contains("deploy"),
        "{listing}"
    );
    target.set(Mode::Error);
    agent.wait_sensor("web", Duration::from_secs(20), |s| s["state"] == "down");
    rx.wait_for("/canary", 1, Duration::from_secs(20), &agent);
    agent.wait_outbox_drained(Duration::from_secs(10));
    assert!(rx.requests_to("/l1").is_empty(), "silenced, yet notified");
    let history = agent.history("web");
    assert!(
        history["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["status"] == "fail"),
        "results still recorded"
    );
    // Ending the silence through the API (admin token) lets the alert out.
    let admin = std::fs::read_to_string(agent.dir.path().join("data/admin.token")).unwrap();
    let (code, _, body) = crate::util::http_request(
        "DELETE",
        &agent.api("/api/v1/silences/1"),
        &[("authorization", &format!("Bearer {}", admin.trim()))],
        b"",
    );
    assert_eq!(code, 204, "{body}");
    let got = rx.wait_for("/l1", 1, Duration::from_secs(10), &agent);
    assert_eq!(got[0].json()["event"], "opened");
}

#[test]
fn a_notifier_that_times_out_is_retried_and_reported_without_blocking_others() {
    let target = Target::start(Mode::Up);
    let slow = Target::start(Mode::Slow); // answers after 1.5 s
    let rx = Receiver::start();
    let extra = format!(
        r#"
[[notifier]]
name = "stuck"
plugin = "webhook"
timeout = "300ms"
config = {{ url = "{}" }}

[[escalation]]
name = "slow"
targets = ["other"]
alert_after = "0s"
[[escalation.level]]
notify = ["stuck"]
"#,
        slow.url()
    );
    let mut body = config(&target, &rx, "300ms", "1h", &extra);
    body.push_str(&format!(
        "\n[[sensor]]\nname = \"other\"\nplugin = \"http\"\ninterval = \"200ms\"\nretry_interval = \"150ms\"\ntimeout = \"150ms\"\nfail_after = 1\nconfig = {{ url = \"{}\" }}\n",
        target.url()
    ));
    let agent = Agent::start(&body);
    agent.wait_sensor("web", Duration::from_secs(20), |s| s["state"] == "up");
    target.set(Mode::Error);
    // The good receiver gets its alert promptly although `stuck` hangs.
    rx.wait_for("/l1", 1, Duration::from_secs(20), &agent);
    let failures = |incs: &[Value]| -> Option<String> {
        let other = incs.iter().find(|i| i["target"] == "other")?;
        let events = other["events"].as_array()?;
        (events
            .iter()
            .filter(|e| e["kind"] == "delivery_failed")
            .count()
            >= 2)
            .then(|| other["events"].to_string())
    };
    let incs = wait_incidents(&agent, Duration::from_secs(20), |i| failures(i).is_some());
    let text = failures(&incs).unwrap();
    assert!(
        text.contains("timed out") || text.contains("timeout"),
        "{text}"
    );
    assert!(
        agent.logs().contains("not delivered"),
        "failures are logged"
    );
}

#[test]
fn a_service_down_because_of_its_system_is_linked_not_paged_and_resolves_silently() {
    let target = Target::start(Mode::Up);
    let rx = Receiver::start();
    let body = format!(
        r#"
[[sensor]]
name = "db"
plugin = "http"
interval = "200ms"
retry_interval = "150ms"
timeout = "150ms"
fail_after = 2
recover_after = 1
config = {{ url = "{url}" }}

[[system]]
name = "database"
members = ["db"]

[[service]]
name = "shop"
depends_on = ["database"]

[[notifier]]
name = "l1"
plugin = "webhook"
config = {{ url = "{rx}/l1" }}

[[escalation]]
name = "everything"
targets = ["*"]
alert_after = "300ms"
[[escalation.level]]
notify = ["l1"]
"#,
        url = target.url(),
        rx = rx.url("")
    );
    let agent = Agent::start(&body);
    agent.wait_sensor("db", Duration::from_secs(20), |s| s["state"] == "up");
    target.set(Mode::Error);
    let got = rx.wait_for("/l1", 1, Duration::from_secs(20), &agent);
    assert_eq!(got[0].json()["target"], "db", "the cause is paged first");
    // The system and the service are down too, but only linked.
    let incs = wait_incidents(&agent, Duration::from_secs(10), |i| i.len() >= 3);
    let by = |t: &str| incs.iter().find(|i| i["target"] == t).cloned().unwrap();
    let (db, database, shop) = (by("db"), by("database"), by("shop"));
    assert_eq!(database["suppressed"], true, "{database}");
    assert_eq!(database["parent_id"], db["id"]);
    assert_eq!(shop["suppressed"], true, "{shop}");
    assert_eq!(shop["parent_id"], database["id"]);
    // A page for a linked incident would be queued in the transaction
    // that opened it, which is committed: once the outbox is drained it
    // would have arrived.
    agent.wait_outbox_drained(Duration::from_secs(10));
    assert_eq!(events(&rx, "/l1"), ["opened"], "one page for one cause");

    target.set(Mode::Up);
    rx.wait_for("/l1", 2, Duration::from_secs(10), &agent);
    // Every incident resolved (a "resolved" page is queued in the
    // transaction that resolves its incident) and the outbox drained.
    wait_incidents(&agent, Duration::from_secs(10), |i| {
        i.iter().all(|i| i["state"] == "resolved")
    });
    agent.wait_outbox_drained(Duration::from_secs(10));
    let pages: Vec<String> = rx
        .requests_to("/l1")
        .iter()
        .map(|r| format!("{} {}", r.json()["event"], r.json()["target"]))
        .collect();
    assert_eq!(
        events(&rx, "/l1"),
        ["opened", "resolved"],
        "dependents resolve silently; pages: {pages:?}\n{}",
        agent.logs()
    );
    let incs = incidents(&agent);
    assert!(incs.iter().all(|i| i["state"] == "resolved"), "{incs:?}");
}
