//! The self-connectivity guard (`[agent.connectivity]`) end to end: a
//! real canary server the test stops and starts again, a real HTTP target
//! that fails while the canary is down (as everything would when the
//! agent's own network drops), a real webhook receiver behind an
//! escalation policy. While offline nothing may page; once a canary
//! answers again, the still-failing target must alert as usual.

use crate::util::{Agent, Mode, Receiver, Target, http_get, parse_metrics};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A TCP server that accepts and closes connections until stopped; once
/// stopped its port refuses connections.
struct Canary {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    addr: String,
}

impl Canary {
    fn on(l: TcpListener) -> Canary {
        let addr = l.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for s in l.incoming() {
                if flag.load(Ordering::SeqCst) {
                    return; // the listener closes with the thread
                }
                drop(s);
            }
        });
        Canary {
            stop,
            thread: Some(thread),
            addr,
        }
    }

    /// Closes the listening socket (and waits until it is closed).
    fn stop(mut self) -> String {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(&self.addr); // wakes accept
        self.thread.take().unwrap().join().unwrap();
        self.addr.clone()
    }
}

fn online(metrics: &serde_json::Value) -> f64 {
    metrics["outpost_agent_online"]["samples"][0][2]
        .as_f64()
        .unwrap_or_else(|| panic!("no outpost_agent_online in {metrics}"))
}

#[test]
fn an_offline_agent_pages_nobody_and_resumes_when_a_canary_answers() {
    // Bound by std, which sets SO_REUSEADDR: the probes' connections left
    // in TIME_WAIT on this port do not keep it from being listened on
    // again below.
    let canary = Canary::on(TcpListener::bind("127.0.0.1:0").unwrap());
    let canary_addr = canary.addr.clone();
    let target = Target::start(Mode::Up);
    let rx = Receiver::start();
    let body = format!(
        r#"
[agent.connectivity]
targets = ["{canary_addr}"]
interval = "1s"
timeout = "500ms"

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
name = "l1"
plugin = "webhook"
timeout = "2s"
config = {{ url = "{rx}/l1" }}

[[escalation]]
name = "oncall"
targets = ["web"]
alert_after = "0s"
[[escalation.level]]
notify = ["l1"]
"#,
        url = target.url(),
        rx = rx.url("")
    );
    let agent = Agent::start(&body);
    agent.wait_status("online and up", Duration::from_secs(30), |s| {
        s["agent"]["connectivity"]["online"] == true && s["sensors"][0]["state"] == "up"
    });

    // The agent's network "drops": the canary goes away first, then the
    // target fails as every remote target would.
    let addr = canary.stop();
    target.set(Mode::Error);
    let s = agent.wait_sensor("web", Duration::from_secs(20), |s| {
        s["reason"] == "agent offline"
    });
    assert_eq!(s["state"], "unknown", "{s}");
    assert!(
        s["last_message"]
            .as_str()
            .unwrap()
            .starts_with("agent offline: "),
        "{s}"
    );
    // Many failing checks later: still no incident, nothing delivered.
    let hits = target.hits();
    agent.poll(
        Duration::from_secs(20),
        || serde_json::json!(target.hits()),
        |h| h.as_u64().unwrap() as usize >= hits + 15,
        |h| format!("the target was checked only {h} times"),
    );
    let status = agent.status();
    let c = &status["agent"]["connectivity"];
    assert_eq!(c["online"], false, "{status}");
    assert!(c["reason"].as_str().unwrap().contains(&addr), "{c}");
    assert_eq!(c["targets"][0], addr.as_str());
    assert_eq!(status["sensors"][0]["state"], "unknown", "{status}");
    let incidents: serde_json::Value =
        serde_json::from_str(&http_get(&agent.api("/api/v1/incidents"), &[]).2).unwrap();
    assert_eq!(
        incidents["incidents"].as_array().map(Vec::len),
        Some(0),
        "no incident may open while offline: {incidents}"
    );
    assert!(
        rx.requests().is_empty(),
        "nobody may be paged while offline"
    );
    let metrics = parse_metrics(&http_get(&agent.api("/metrics"), &[]).2);
    assert_eq!(online(&metrics), 0.0, "{metrics}");
    let (code, _, page) = http_get(&agent.api("/"), &[]);
    assert_eq!(code, 200);
    assert!(page.contains("This agent is offline"), "{page}");
    assert!(page.contains("agent offline"));

    // A canary answers again; the target still fails: now it is real.
    let _canary = Canary::on(TcpListener::bind(&addr).expect("rebind the canary's port"));
    agent.wait_status("online again", Duration::from_secs(20), |s| {
        s["agent"]["connectivity"]["online"] == true
    });
    let s = agent.wait_sensor("web", Duration::from_secs(20), |s| s["state"] == "down");
    assert_ne!(s["reason"], "agent offline", "{s}");
    let got = rx.wait_for("/l1", 1, Duration::from_secs(20), &agent);
    assert_eq!(got[0].json()["event"], "opened", "{:?}", got[0].json());
    let metrics = parse_metrics(&http_get(&agent.api("/metrics"), &[]).2);
    assert_eq!(online(&metrics), 1.0, "{metrics}");
}

#[test]
fn connectivity_config_errors_name_the_key() {
    let cases = [
        ("targets = []", "agent.connectivity.targets"),
        ("targets = [\"no-port\"]", "is not host:port"),
        (
            "targets = [\"a:1\"]\ninterval = \"10ms\"",
            "agent.connectivity.interval",
        ),
        ("targets = [\"a:1\"]\nprobe = 1", "unknown field"),
    ];
    for (table, want) in cases {
        let a = Agent::new("bad");
        a.write_config(&format!("[agent.connectivity]\n{table}\n"));
        let out = a.cli(&["check-config"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{table}: {err}");
        assert!(err.contains(want), "{table}: {err}");
        assert!(
            err.contains("outpost.toml:"),
            "{table}: names the file and line: {err}"
        );
    }
}
