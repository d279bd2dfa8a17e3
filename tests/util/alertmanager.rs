//! A real Prometheus Alertmanager cluster on loopback (Debian's
//! `prometheus-alertmanager`, installed by `scripts/install-test-deps`).
//!
//! Ports: every member binds port 0 for both its web API
//! (`--web.listen-address=127.0.0.1:0`) and its gossip listener
//! (`--cluster.listen-address=127.0.0.1:0`), so no port is guessed and
//! none can be taken between choosing and binding it. The web port is read
//! back from the member's log (`msg="Listening on" address=127.0.0.1:N`),
//! the gossip address from `GET /api/v2/status` (`cluster.peers`), and the
//! second member joins the first with `--cluster.peer=<that address>`.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a member waits per position in the cluster before it sends a
/// notification that the members before it may have sent already
/// (`--cluster.peer-timeout`, 15 s by default). Gossip on loopback takes
/// milliseconds; 1 s keeps the tests short with a wide margin.
pub const PEER_TIMEOUT: &str = "1s";

/// The receiver behind Alertmanager: a webhook with short group timers.
///
/// `group_interval` must stay well above the peer timeout, as with
/// Alertmanager's defaults (5 m and 15 s): a member flushes a group, waits
/// its position × peer timeout, then sends unless the gossiped
/// notification log already covers what it flushed. With the wait longer
/// than the interval, the second member always has a flush in flight that
/// predates a change; a resolve landing in that window made it send a
/// stale "firing" after the first member's "resolved" (seen with
/// group_interval 1 s and peer timeout 2 s: firing, resolved, firing,
/// resolved).
pub fn config(webhook_url: &str) -> String {
    format!(
        r#"route:
  receiver: outpost-test
  group_by: ['alertname', 'target']
  group_wait: 1s
  group_interval: 3s
  repeat_interval: 1h
receivers:
  - name: outpost-test
    webhook_configs:
      - url: '{webhook_url}'
        send_resolved: true
"#
    )
}

/// One Alertmanager process.
pub struct Member {
    pub port: u16,
    child: Child,
    log: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Member {
    /// Starts a member with `config` (YAML), joining `peer` (a gossip
    /// address) if given, and waits until its API listens.
    pub fn start(config: &str, peer: Option<&str>) -> Member {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("alertmanager.yml");
        std::fs::write(&cfg, config).unwrap();
        let mut cmd = Command::new("prometheus-alertmanager");
        cmd.arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg("--web.listen-address=127.0.0.1:0")
            .arg("--cluster.listen-address=127.0.0.1:0")
            .arg(format!("--cluster.peer-timeout={PEER_TIMEOUT}"))
            .arg("--cluster.gossip-interval=100ms")
            .arg("--cluster.pushpull-interval=2s")
            .arg("--log.level=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(p) = peer {
            cmd.arg(format!("--cluster.peer={p}"));
        }
        let mut child = cmd
            .spawn()
            .expect("start prometheus-alertmanager (run scripts/install-test-deps)");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("msg=\"Listening on\"")
                    && let Some(port) = line
                        .split("address=127.0.0.1:")
                        .nth(1)
                        .and_then(|r| r.split_whitespace().next())
                        .and_then(|p| p.parse::<u16>().ok())
                {
                    let _ = tx.send(port);
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(p) => p,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "alertmanager did not report its address:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        Member {
            port,
            child,
            log,
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What the member logged so far.
    pub fn logs(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// `GET <path>` as JSON.
    pub fn get(&self, path: &str) -> Value {
        let (status, _, body) = super::http_get(&format!("{}{path}", self.url()), &[]);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    /// `POST <path>` of JSON; (status, body).
    pub fn post(&self, path: &str, body: &Value) -> (u16, String) {
        super::http_post(
            &format!("{}{path}", self.url()),
            "application/json",
            body.to_string().as_bytes(),
            &[],
        )
    }

    /// The gossip address of this member, as its peers know it.
    pub fn cluster_address(&self) -> String {
        let s = self.get("/api/v2/status");
        let name = s["cluster"]["name"].as_str().unwrap().to_string();
        s["cluster"]["peers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name.as_str())
            .and_then(|p| p["address"].as_str())
            .unwrap_or_else(|| panic!("no own peer in {s}"))
            .to_string()
    }

    /// A counter of `/metrics` (sum over the series matching `selector`,
    /// e.g. `alertmanager_alerts_received_total{status="firing"`).
    pub fn metric(&self, selector: &str) -> f64 {
        let (_, _, body) = super::http_get(&format!("{}/metrics", self.url()), &[]);
        body.lines()
            .filter(|l| l.starts_with(selector))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Posts one alert directly (test-made alerts such as fences).
    pub fn post_alert(&self, labels: Value) {
        let (status, body) = self.post("/api/v2/alerts", &json!([{"labels": labels}]));
        assert_eq!(status, 200, "{body}");
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two gossiping members.
pub struct Cluster {
    pub members: Vec<Member>,
}

impl Cluster {
    /// Starts two members routing to `webhook_url` and waits until each
    /// sees the other and reports the cluster `ready` (gossip settled).
    pub fn start(webhook_url: &str) -> Cluster {
        let cfg = config(webhook_url);
        let first = Member::start(&cfg, None);
        let peer = first.cluster_address();
        let second = Member::start(&cfg, Some(&peer));
        let c = Cluster {
            members: vec![first, second],
        };
        c.wait(
            "both members in one settled cluster",
            Duration::from_secs(60),
            |c| {
                c.members.iter().all(|m| {
                    let s = m.get("/api/v2/status");
                    s["cluster"]["status"] == "ready"
                        && s["cluster"]["peers"].as_array().map(Vec::len) == Some(2)
                })
            },
        );
        c
    }

    /// Base URLs of the members.
    pub fn urls(&self) -> Vec<String> {
        self.members.iter().map(Member::url).collect()
    }

    /// Polls `f` until it holds; panics with both members' logs after
    /// `timeout`.
    pub fn wait(&self, what: &str, timeout: Duration, f: impl Fn(&Cluster) -> bool) {
        super::wait_some_or(
            timeout,
            || f(self).then_some(()),
            || {
                format!(
                    "{what}: not reached after {timeout:?}\n--- member 1:\n{}\n--- member 2:\n{}",
                    self.members[0].logs(),
                    self.members[1].logs()
                )
            },
        )
    }
}
