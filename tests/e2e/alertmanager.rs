//! The `alertmanager` notifier against Debian's real
//! `prometheus-alertmanager`: a two-member gossip cluster on loopback
//! routing to a recording webhook receiver (group_wait 1 s, group_interval
//! 3 s, peer timeout 1 s; see `util/alertmanager.rs` for why the interval
//! must exceed the peer timeout).
//!
//! "Exactly one notification" is a claim about notifications that could
//! still come, so it is checked after a **fence**: an alert posted
//! directly to each member (its own group) once both members hold the
//! Outpost alert. A member delays a notification by its cluster position
//! times the peer timeout, then sends it unless the notification log
//! gossiped by an earlier member says it was sent. So any duplicate of
//! the outage notification is sent no later than the fence alert of the
//! same member (same group_wait, same delay, posted later); once both
//! fences arrived, every duplicate would have too. No sleep decides
//! anything: every wait polls a condition with a deadline.

use crate::util::alertmanager::{Cluster, Member};
use crate::util::receiver::Recorded;
use crate::util::{Agent, Mode, Receiver, Target, run_plugin};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const HOOK: &str = "/alertmanager";

/// The webhook notifications (Alertmanager's payload, version 4) whose
/// alerts have `alertname`.
fn notifications(rx: &Receiver, alertname: &str) -> Vec<(Recorded, Value)> {
    rx.requests_to(HOOK)
        .into_iter()
        .map(|r| {
            let j = r.json();
            (r, j)
        })
        .filter(|(_, j)| j["commonLabels"]["alertname"] == alertname)
        .collect()
}

fn wait_notifications(
    rx: &Receiver,
    cluster: &Cluster,
    what: &str,
    timeout: Duration,
    f: impl Fn(&[(Recorded, Value)]) -> bool,
    alertname: &str,
) -> Vec<(Recorded, Value)> {
    crate::util::wait_some_or(
        timeout,
        || {
            let n = notifications(rx, alertname);
            f(&n).then_some(n)
        },
        || {
            format!(
                "{what}: not reached after {timeout:?}; got {:?}\n--- member 1:\n{}\n--- member 2:\n{}",
                notifications(rx, alertname)
                    .iter()
                    .map(|(_, j)| j.to_string())
                    .collect::<Vec<_>>(),
                cluster.members[0].logs(),
                cluster.members[1].logs()
            )
        },
    )
}

/// Posts a fence alert to each member on its own and waits for both
/// notifications (see the module comment).
fn fence(rx: &Receiver, cluster: &Cluster, name: &str) {
    for (i, m) in cluster.members.iter().enumerate() {
        m.post_alert(json!({"alertname": "Fence", "target": format!("{name}-{i}")}));
    }
    wait_notifications(
        rx,
        cluster,
        "fence notifications",
        Duration::from_secs(30),
        |n| {
            (0..cluster.members.len()).all(|i| {
                n.iter()
                    .any(|(_, j)| j["commonLabels"]["target"] == format!("{name}-{i}").as_str())
            })
        },
        "Fence",
    );
}

/// Waits until every member counted `n` received alerts of `status`
/// (`firing` or `resolved`).
fn wait_received(cluster: &Cluster, status: &str, n: f64) {
    let sel = format!("alertmanager_alerts_received_total{{status=\"{status}\"");
    cluster.wait(
        &format!("{n} {status} alerts received by every member"),
        Duration::from_secs(60),
        |c| c.members.iter().all(|m: &Member| m.metric(&sel) >= n),
    );
}

fn agent_config(target: &Target, cluster: &Cluster) -> String {
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
config = {{ url = "{url}" }}

[[notifier]]
name = "am"
plugin = "alertmanager"
timeout = "5s"
config = {{ urls = {urls}, agent_label = false, labels = {{ severity = "critical" }} }}

[[escalation]]
name = "oncall"
targets = ["web"]
alert_after = "0s"
notify_on_resolve = true
[[escalation.level]]
notify = ["am"]
ack_within = "1h"
"#,
        url = target.url(),
        urls = serde_json::to_string(&cluster.urls()).unwrap(),
    )
}

#[test]
fn alertmanager_two_agents_two_members_one_outage_notification_one_resolve() {
    let rx = Receiver::start();
    let cluster = Cluster::start(&rx.url(HOOK));
    let target = Target::start(Mode::Error);
    let t0 = Instant::now();
    let mut agents = Vec::new();
    for name in ["edge-1", "edge-2"] {
        let mut a = Agent::new(name);
        a.launch(&agent_config(&target, &cluster));
        agents.push(a);
    }

    // Both agents open an incident and post it to both members.
    wait_received(&cluster, "firing", 2.0);
    let firing = wait_notifications(
        &rx,
        &cluster,
        "the outage notification",
        Duration::from_secs(60),
        |n| !n.is_empty(),
        "OutpostTargetDown",
    );
    fence(&rx, &cluster, "after-firing");
    let firing_all = notifications(&rx, "OutpostTargetDown");
    assert_eq!(
        firing_all.len(),
        1,
        "one notification for the outage, not one per agent or member: {:?}",
        firing_all
            .iter()
            .map(|(_, j)| j.to_string())
            .collect::<Vec<_>>()
    );
    let (rec, n) = &firing[0];
    assert_eq!(n["status"], "firing", "{n}");
    let alerts = n["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "the two agents' alerts are one: {n}");
    let a = &alerts[0];
    assert_eq!(
        a["labels"],
        json!({"alertname": "OutpostTargetDown", "target": "web", "target_kind": "sensor", "severity": "critical"})
    );
    let by = a["annotations"]["agent"].as_str().unwrap();
    assert!(by == "edge-1" || by == "edge-2", "{a}");
    assert_eq!(a["annotations"]["event"], "opened");
    assert_eq!(a["annotations"]["summary"], "sensor web is DOWN");
    let ack = a["annotations"]["ack_url"].as_str().unwrap();
    let agent = agents.iter().find(|x| x.name == by).unwrap();
    assert!(
        ack.starts_with(&format!("http://127.0.0.1:{}/ack/", agent.port)),
        "{ack}"
    );
    assert_eq!(
        a["generatorURL"],
        format!("http://127.0.0.1:{}/", agent.port).as_str()
    );
    let firing_at = rec.at - t0;

    // The target recovers; both agents resolve.
    let t1 = Instant::now();
    target.set(Mode::Up);
    wait_received(&cluster, "resolved", 2.0);
    let resolved = wait_notifications(
        &rx,
        &cluster,
        "the resolve notification",
        Duration::from_secs(60),
        |n| n.iter().any(|(_, j)| j["status"] == "resolved"),
        "OutpostTargetDown",
    );
    fence(&rx, &cluster, "after-resolve");
    let all = notifications(&rx, "OutpostTargetDown");
    let statuses: Vec<&str> = all
        .iter()
        .map(|(_, j)| j["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["firing", "resolved"], "{all:?}");
    let (rec, n) = resolved
        .iter()
        .find(|(_, j)| j["status"] == "resolved")
        .unwrap();
    let a = &n["alerts"][0];
    assert_eq!(n["alerts"].as_array().unwrap().len(), 1, "{n}");
    assert_eq!(a["status"], "resolved");
    assert_eq!(a["labels"]["target"], "web");
    assert_ne!(a["endsAt"], "0001-01-01T00:00:00Z", "{a}");
    eprintln!(
        "alertmanager: firing notification {:.2}s after the agents started (target failing from the start); resolved notification {:.2}s after the target recovered; receiver got {} notification(s): {statuses:?}",
        firing_at.as_secs_f64(),
        (rec.at - t1).as_secs_f64(),
        all.len()
    );
}

fn alert(event: &str, target: &str) -> Value {
    json!({
        "idempotency_key": format!("edge-1/7/{event}/1/1/am"),
        "incident_id": "7",
        "event": event,
        "agent": "edge-1",
        "target": target,
        "target_kind": "sensor",
        "old_state": "up",
        "new_state": "down",
        "message": "HTTP 503 (expected 200-299)",
        "started_at_ms": 1_796_151_918_000i64,
        "event_at_ms": 1_796_151_978_500i64,
        "level": 1,
        "ack_url": "http://127.0.0.1:8321/ack/tok"
    })
}

#[test]
fn alertmanager_silence_suppresses_a_new_alert() {
    let rx = Receiver::start();
    let cluster = Cluster::start(&rx.url(HOOK));
    let (m1, m2) = (&cluster.members[0], &cluster.members[1]);
    let now = |secs: i64| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        time_text(t + secs)
    };
    let (status, body) = m1.post(
        "/api/v2/silences",
        &json!({
            "matchers": [{"name": "target", "value": "db", "isRegex": false, "isEqual": true}],
            "startsAt": now(-60),
            "endsAt": now(3600),
            "createdBy": "outpost e2e",
            "comment": "maintenance of db"
        }),
    );
    assert_eq!(status, 200, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["silenceID"]
        .as_str()
        .unwrap()
        .to_string();
    // The silence gossips to the other member before the alert is posted.
    cluster.wait("silence on both members", Duration::from_secs(30), |_| {
        m2.get("/api/v2/silences")
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == id.as_str() && s["status"]["state"] == "active")
    });

    let cfg = json!({"urls": cluster.urls()});
    for target in ["db", "web"] {
        let r = run_plugin(
            "alertmanager",
            &cfg,
            &["--alert", &alert("opened", target).to_string()],
        );
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(r.json.as_ref().unwrap()["delivered"], true, "{r:?}");
    }
    // Both members hold the db alert as suppressed by the silence.
    cluster.wait(
        "db suppressed on both members",
        Duration::from_secs(30),
        |c| {
            c.members.iter().all(|m| {
                m.get("/api/v2/alerts?filter=target%3D%22db%22")
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|a| {
                        a["status"]["state"] == "suppressed"
                            && a["status"]["silencedBy"]
                                .as_array()
                                .is_some_and(|s| s.iter().any(|x| x == id.as_str()))
                    })
            })
        },
    );
    // The unsilenced alert is notified; then the fence; the silenced one
    // never is.
    wait_notifications(
        &rx,
        &cluster,
        "the unsilenced alert's notification",
        Duration::from_secs(30),
        |n| n.iter().any(|(_, j)| j["commonLabels"]["target"] == "web"),
        "OutpostTargetDown",
    );
    fence(&rx, &cluster, "after-silence");
    let targets: Vec<String> = notifications(&rx, "OutpostTargetDown")
        .iter()
        .map(|(_, j)| j["commonLabels"]["target"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(targets, ["web"], "the silenced db alert was notified");
}

/// RFC 3339 for Unix seconds (UTC).
fn time_text(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil from days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[test]
fn test_time_text() {
    assert_eq!(time_text(1_796_151_600), "2026-12-01T19:00:00Z");
    assert_eq!(time_text(0), "1970-01-01T00:00:00Z");
}
