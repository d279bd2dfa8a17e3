//! Notifier `keepalive` end to end: an incident is re-posted to a notifier
//! with a keepalive while it is unresolved, acknowledged or not, across a
//! `kill -9`, until it resolves; with a recording webhook receiver and with
//! Debian's real `prometheus-alertmanager`, whose alert must stay firing
//! past the acknowledgement + `ends_after`.
//!
//! Negative checks ("nothing after the resolution", "the notifier without
//! a keepalive got no re-post") wait on a **canary**: a second, always
//! failing sensor whose notifier has the same keepalive and whose chain
//! runs in the same engine; once it has been re-posted three more times,
//! a chain that should have ended would have fired as well.

use crate::util::alertmanager::{Member, config as am_config};
use crate::util::receiver::Recorded;
use crate::util::{Agent, Mode, Receiver, Target, http_post, wait_some_or};
use serde_json::Value;
use std::time::{Duration, Instant};

/// `web` on `target` notifies `am` (keepalive 1 s) and `l1` (none);
/// `canary` on `canary` notifies `cn` (keepalive 1 s). Hard down after 2
/// failures 150 ms apart, up after one success, alerting after 500 ms.
fn config(target: &Target, canary: &Target, rx: &Receiver) -> String {
    config_with(target, canary, rx, r#"keepalive = "1s""#)
}

/// [`config`] with `am_keepalive` (a `keepalive = ...` line or nothing) on
/// `am`.
fn config_with(target: &Target, canary: &Target, rx: &Receiver, am_keepalive: &str) -> String {
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
config = {{ url = "{web}" }}

[[sensor]]
name = "canary"
plugin = "http"
interval = "200ms"
retry_interval = "150ms"
timeout = "150ms"
fail_after = 2
config = {{ url = "{canary}" }}

[[notifier]]
name = "am"
plugin = "webhook"
timeout = "2s"
{am_keepalive}
config = {{ url = "{rx}/am" }}

[[notifier]]
name = "l1"
plugin = "webhook"
timeout = "2s"
config = {{ url = "{rx}/l1" }}

[[notifier]]
name = "cn"
plugin = "webhook"
timeout = "2s"
keepalive = "1s"
config = {{ url = "{rx}/canary" }}

[[escalation]]
name = "oncall"
targets = ["web"]
alert_after = "500ms"
[[escalation.level]]
notify = ["am", "l1"]
ack_within = "1h"

[[escalation]]
name = "canary"
targets = ["canary"]
alert_after = "500ms"
[[escalation.level]]
notify = ["cn"]
ack_within = "1h"
"#,
        web = target.url(),
        canary = canary.url(),
        rx = rx.url("")
    )
}

fn event(r: &Recorded) -> String {
    r.json()["event"].as_str().unwrap_or("?").to_string()
}

/// Re-posts (`reminder`s) to `path` that arrived after `after`, one per
/// idempotency key (a delivery interrupted by `kill -9` may be repeated
/// with the same key, which receivers deduplicate).
fn reposts_after(rx: &Receiver, path: &str, after: Instant) -> Vec<Recorded> {
    let mut seen = std::collections::HashSet::new();
    rx.requests_to(path)
        .into_iter()
        .filter(|r| r.at > after && event(r) == "reminder")
        .filter(|r| seen.insert(r.json()["idempotency_key"].as_str().unwrap().to_string()))
        .collect()
}

fn wait_reposts(
    rx: &Receiver,
    agent: &Agent,
    path: &str,
    after: Instant,
    n: usize,
) -> Vec<Recorded> {
    wait_some_or(
        Duration::from_secs(20),
        || {
            let got = reposts_after(rx, path, after);
            (got.len() >= n).then_some(got)
        },
        || {
            format!(
                "{path}: fewer than {n} re-posts: {:?}\n{}",
                rx.requests_to(path).iter().map(event).collect::<Vec<_>>(),
                agent.logs()
            )
        },
    )
}

/// One chain, not two: consecutive re-posts are fired at least a keepalive
/// (1 s) apart, so n re-posts span at least (n - 1) s less one delivery
/// delay. Two chains of one notifier would fit twice as many.
fn assert_one_chain(reposts: &[Recorded]) {
    let span = reposts
        .last()
        .unwrap()
        .at
        .duration_since(reposts[0].at)
        .as_secs_f64();
    assert!(
        (reposts.len() - 1) as f64 <= span + 1.0,
        "{} re-posts within {span:.2}s: the chain forked",
        reposts.len()
    );
}

#[test]
fn keepalive_reposts_after_the_ack_across_kill_9_and_stops_at_resolution() {
    let target = Target::start(Mode::Up);
    let canary = Target::start(Mode::Error);
    let rx = Receiver::start();
    let mut agent = Agent::start(&config(&target, &canary, &rx));
    agent.wait_sensor("web", Duration::from_secs(20), |s| s["state"] == "up");
    target.set(Mode::Error);
    let opened = rx.wait_for("/am", 1, Duration::from_secs(20), &agent);
    assert_eq!(event(&opened[0]), "opened");
    let url = opened[0].json()["ack_url"].as_str().unwrap().to_string();

    // Acknowledged through the CLI.
    let out = agent.cli(&["ack", &url, "--by", "bob"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let acked = Instant::now();
    let after_ack = wait_reposts(&rx, &agent, "/am", acked, 3);
    for r in &after_ack {
        let j = r.json();
        assert_eq!(j["new_state"], "down");
        assert!(
            j["message"]
                .as_str()
                .unwrap()
                .starts_with("still down, acknowledged by bob: "),
            "{j}"
        );
        assert!(j["ack_url"].is_null(), "no ack link once acknowledged: {j}");
    }
    assert_one_chain(&after_ack);
    // `l1` has no keepalive: the acknowledgement, no re-post.
    assert_eq!(
        rx.requests_to("/l1").iter().map(event).collect::<Vec<_>>(),
        ["opened", "acknowledged"]
    );

    // kill -9 and restart: the chain goes on, once.
    agent.kill9();
    let restarted = Instant::now();
    agent.spawn();
    let after_restart = wait_reposts(&rx, &agent, "/am", restarted, 4);
    assert_one_chain(&after_restart);
    assert_one_chain(&reposts_after(&rx, "/am", acked));

    // Resolution ends it: "resolved" is the last word, even after three
    // more canary re-posts (the canary's chain runs in the same engine).
    target.set(Mode::Up);
    let resolved_at = wait_some_or(
        Duration::from_secs(20),
        || {
            rx.requests_to("/am")
                .into_iter()
                .find(|r| event(r) == "resolved")
                .map(|r| r.at)
        },
        || agent.logs(),
    );
    wait_reposts(&rx, &agent, "/canary", resolved_at, 3);
    agent.wait_outbox_drained(Duration::from_secs(10));
    let am = rx.requests_to("/am");
    assert_eq!(
        event(am.last().unwrap()),
        "resolved",
        "re-posted after the resolution"
    );
    assert_eq!(
        am.iter().filter(|r| event(r) == "resolved").count(),
        1,
        "resolved once"
    );
    assert_eq!(
        rx.requests_to("/l1").iter().map(event).collect::<Vec<_>>(),
        ["opened", "acknowledged", "resolved"]
    );
}

#[test]
fn a_silence_does_not_stop_a_keepalive_and_reloads_start_and_end_it() {
    let target = Target::start(Mode::Up);
    let canary = Target::start(Mode::Error);
    let rx = Receiver::start();
    let agent = Agent::start(&config_with(&target, &canary, &rx, ""));
    agent.wait_sensor("web", Duration::from_secs(20), |s| s["state"] == "up");
    target.set(Mode::Error);
    rx.wait_for("/am", 1, Duration::from_secs(20), &agent);

    // Silenced after it was told: the silence holds new notifications,
    // not the keepalive of an alert the receiver already has.
    let out = agent.cli(&["silence", "web", "--for", "1h", "--reason", "deploy"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Three canary re-posts: `am` has no keepalive yet, so nothing came.
    wait_reposts(&rx, &agent, "/canary", Instant::now(), 3);
    assert_eq!(
        rx.requests_to("/am").iter().map(event).collect::<Vec<_>>(),
        ["opened"]
    );

    // A reload gives `am` a keepalive: the open incident's chain starts.
    agent.reconfigure(&config(&target, &canary, &rx));
    let reloaded = Instant::now();
    let got = wait_reposts(&rx, &agent, "/am", reloaded, 3);
    assert_one_chain(&got);

    // A reload takes it away: the chain ends at its next due time.
    agent.reconfigure(&config_with(&target, &canary, &rx, ""));
    wait_reposts(&rx, &agent, "/canary", Instant::now(), 3);
    agent.wait_outbox_drained(Duration::from_secs(10));
    let ended = rx.requests_to("/am").len();
    wait_reposts(&rx, &agent, "/canary", Instant::now(), 3);
    agent.wait_outbox_drained(Duration::from_secs(10));
    assert_eq!(
        rx.requests_to("/am").len(),
        ended,
        "re-posted after the keepalive was removed"
    );
    let out = agent.cli(&["incidents", "-v"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("keepalive_stopped"), "{text}");
}

/// `endsAt` of the `web` alert in Alertmanager, if it holds one that is
/// firing (active), with the `event` annotation of its last post.
fn firing_ends_at(am: &Member) -> Option<(i64, String)> {
    am.get("/api/v2/alerts?filter=target%3D%22web%22")
        .as_array()?
        .iter()
        .find(|a| a["status"]["state"] == "active")
        .map(|a| {
            (
                outpost_store::parse_timestamp(a["endsAt"].as_str().unwrap()).unwrap(),
                a["annotations"]["event"].as_str().unwrap_or("").to_string(),
            )
        })
}

#[test]
fn alertmanager_keeps_an_acknowledged_incident_firing_past_ends_after() {
    let hook = Receiver::start();
    let am = Member::start(&am_config(&hook.url("/hook")), None);
    let target = Target::start(Mode::Up);
    let agent = Agent::start(&format!(
        r#"
[[sensor]]
name = "web"
plugin = "http"
interval = "200ms"
retry_interval = "150ms"
timeout = "150ms"
fail_after = 2
recover_after = 1
config = {{ url = "{url}" }}

[[notifier]]
name = "am"
plugin = "alertmanager"
timeout = "5s"
keepalive = "1s"
config = {{ urls = ["{am}"], ends_after = "1m" }}

[[escalation]]
name = "oncall"
targets = ["web"]
alert_after = "0s"
[[escalation.level]]
notify = ["am"]
ack_within = "1h"
"#,
        url = target.url(),
        am = am.url()
    ));
    agent.wait_sensor("web", Duration::from_secs(20), |s| s["state"] == "up");
    target.set(Mode::Error);
    let ack_url = wait_some_or(
        Duration::from_secs(20),
        || {
            am.get("/api/v2/alerts?filter=target%3D%22web%22")
                .as_array()?
                .iter()
                .find_map(|a| a["annotations"]["ack_url"].as_str().map(str::to_string))
        },
        || format!("no alert in Alertmanager\n{}\n{}", agent.logs(), am.logs()),
    );

    // Acknowledged through the API.
    let (code, body) = http_post(
        &ack_url,
        "application/x-www-form-urlencoded",
        b"by=alice",
        &[("accept", "application/json")],
    );
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["outcome"], "acknowledged");
    let acked_ms = v["incident"]["acked_at_ms"].as_i64().unwrap();

    // The acknowledgement's own post ends at acked + 1 m; re-posts move
    // `endsAt` on past it, again and again.
    let seen = std::cell::RefCell::new(Vec::<i64>::new());
    let seen = wait_some_or(
        Duration::from_secs(20),
        || {
            let mut seen = seen.borrow_mut();
            let (ends, ev) = firing_ends_at(&am)?;
            if ends > acked_ms + 60_000 && ev == "reminder" && seen.last() != Some(&ends) {
                seen.push(ends);
            }
            (seen.len() >= 3 && seen[seen.len() - 1] >= acked_ms + 63_000).then(|| seen.clone())
        },
        || {
            format!(
                "endsAt did not move past the ack ({acked_ms}) + 1m: {:?} / {:?}\n{}",
                firing_ends_at(&am),
                seen.borrow(),
                agent.logs()
            )
        },
    );
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");

    // Resolution: Alertmanager holds no firing alert for web any more.
    target.set(Mode::Up);
    wait_some_or(
        Duration::from_secs(20),
        || firing_ends_at(&am).is_none().then_some(()),
        || format!("still firing: {:?}\n{}", firing_ends_at(&am), agent.logs()),
    );
}
