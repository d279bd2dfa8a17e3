//! What a plugin makes the *host* hold is bounded (issue 17): each test
//! runs the real agent with a hostile fixture pushing one limit, beside a
//! canary `http` sensor that must keep its schedule — no missed run, no
//! failed result, no state change — while the hostile sensor is reported
//! as an `error` naming the limit.

use crate::util::{self, Agent, Mode, Target, fixture};
use std::io::Read;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The canary's interval. A missed run shows as a gap of twice this
/// between two of its requests.
const CANARY_INTERVAL: Duration = Duration::from_millis(500);

/// A canary sensor against `target` (down after one failure, so any
/// failed run is a visible state change).
fn canary(target: &Target) -> String {
    format!(
        r#"
[[sensor]]
name = "canary"
plugin = "http"
interval = "500ms"
timeout = "400ms"
jitter = "0s"
fail_after = 1
config = {{ url = "{}" }}
"#,
        target.url()
    )
}

/// A hostile sensor in `mode` with more of its config (`extra`, TOML
/// inline-table keys) and sensor keys (`keys`).
fn hostile(name: &str, extra: &str, keys: &str) -> String {
    format!(
        r#"
[[sensor]]
name = "{name}"
plugin = "{}"
interval = "1s"
timeout = "900ms"
jitter = "0s"
{keys}
config = {{ {extra} }}
"#,
        fixture("hostile")
    )
}

/// Waits until `sensor` has `n` results; returns them (newest first).
fn results(agent: &Agent, sensor: &str, n: usize) -> Vec<serde_json::Value> {
    agent.wait_some(
        &format!("{n} results of `{sensor}`"),
        Duration::from_secs(60),
        || {
            let h = agent.history(sensor);
            let rows = h["results"].as_array().cloned().unwrap_or_default();
            (rows.len() >= n).then_some(rows)
        },
    )
}

/// The canary came up; returns when.
fn canary_up(agent: &Agent) -> Instant {
    agent.wait_sensor("canary", Duration::from_secs(60), |s| s["state"] == "up");
    Instant::now()
}

/// The canary kept its schedule from `from` until now: every request
/// within two intervals of the one before, every result ok, and no state
/// change but its first coming up.
fn assert_canary_kept_schedule(agent: &Agent, target: &Target, from: Instant) {
    let times: Vec<Instant> = target.times().into_iter().filter(|t| *t >= from).collect();
    let span = from.elapsed();
    assert!(
        times.len() as u128 >= (span.as_millis() / CANARY_INTERVAL.as_millis()).saturating_sub(1),
        "the canary ran {} times in {span:?}",
        times.len()
    );
    for w in times.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            gap < CANARY_INTERVAL * 2,
            "the canary missed a run: {gap:?} between two checks\n{}",
            agent.logs()
        );
    }
    let h = agent.history("canary");
    for r in h["results"].as_array().unwrap() {
        assert_eq!(r["status"], "ok", "a canary result was not ok: {r}");
    }
    let changes: Vec<_> = h["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["to"] != "up")
        .collect();
    assert!(changes.is_empty(), "the canary changed state: {changes:?}");
    assert_eq!(agent.sensor("canary")["state"], "up");
}

/// The newest result of `sensor` is an `error` containing `text`.
fn assert_error_naming(rows: &[serde_json::Value], text: &str) {
    let r = &rows[0];
    assert_eq!(r["status"], "error", "{r}");
    assert!(
        r["message"].as_str().unwrap().contains(text),
        "wanted `{text}` in {r}"
    );
}

/// A TCP server that accepts and holds connections until the peer closes
/// them; counts live connections and the most at once.
struct Holder {
    port: u16,
    live: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    total: Arc<AtomicUsize>,
}

impl Holder {
    fn start() -> Holder {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let (live, peak, total) = (
            Arc::<AtomicUsize>::default(),
            Arc::<AtomicUsize>::default(),
            Arc::<AtomicUsize>::default(),
        );
        let (lv, pk, tt) = (live.clone(), peak.clone(), total.clone());
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let n = lv.fetch_add(1, Ordering::SeqCst) + 1;
                pk.fetch_max(n, Ordering::SeqCst);
                tt.fetch_add(1, Ordering::SeqCst);
                let lv = lv.clone();
                std::thread::spawn(move || {
                    let mut b = [0u8; 256];
                    while matches!(s.read(&mut b), Ok(n) if n > 0) {}
                    lv.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Holder {
            port,
            live,
            peak,
            total,
        }
    }
}

#[test]
fn many_sockets_are_capped_per_run_and_closed_with_the_run() {
    let target = Target::start(Mode::Up);
    let holder = Holder::start();
    let allow = format!("allow = [\"127.0.0.1:{}\"]", holder.port);
    let agent = Agent::start(&format!(
        "[agent.plugins]\nmax_connections = 20\n{}{}{}",
        canary(&target),
        hostile(
            "sockets",
            &format!("mode = \"sockets\", port = {}, count = 10000", holder.port),
            &allow
        ),
        // Under the cap: its connections must not outlive the run.
        hostile(
            "keeper",
            &format!("mode = \"sockets\", port = {}, count = 5", holder.port),
            &allow
        ),
    ));
    let from = canary_up(&agent);
    let rows = results(&agent, "sockets", 3);
    assert_error_naming(&rows, "more than 20 connections");
    assert_error_naming(&rows, "agent.plugins.max_connections");
    let kept = results(&agent, "keeper", 3);
    for r in &kept {
        assert_eq!(r["status"], "ok", "{r}");
        // Each run started with no connection of the one before.
        let held_before = r["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m[0] == "held_before")
            .map(|m| m[1].as_f64().unwrap());
        assert_eq!(held_before, Some(0.0), "{r}");
    }
    // At most one run's worth of each sensor at once, never 10,000.
    assert!(
        holder.peak.load(Ordering::SeqCst) <= 20 + 5,
        "{} connections were open at once",
        holder.peak.load(Ordering::SeqCst)
    );
    assert!(holder.total.load(Ordering::SeqCst) >= 20);
    assert_canary_kept_schedule(&agent, &target, from);
    // Between runs nothing stays open.
    agent.wait_until(
        "connections closed between runs",
        Duration::from_secs(10),
        || holder.live.load(Ordering::SeqCst) <= 25,
    );
}

#[test]
fn a_resource_bomb_is_stopped_at_the_table_cap() {
    let target = Target::start(Mode::Up);
    let agent = Agent::start(&format!(
        "[agent.plugins]\nmax_resources = 500\n{}{}",
        canary(&target),
        hostile(
            "bomb",
            "mode = \"resources\", count = 1000000, bytes = 1000",
            ""
        ),
    ));
    let from = canary_up(&agent);
    let rows = results(&agent, "bomb", 3);
    assert_error_naming(&rows, "more than 500 host resources");
    assert_error_naming(&rows, "agent.plugins.max_resources");
    assert_canary_kept_schedule(&agent, &target, from);
}

#[test]
fn oversized_results_are_cut_before_they_are_stored_or_served() {
    let target = Target::start(Mode::Up);
    let agent = Agent::start(&format!(
        "{}{}",
        canary(&target),
        hostile(
            "big",
            "mode = \"big-result\", bytes = 3000000, count = 20000",
            ""
        ),
    ));
    let from = canary_up(&agent);
    let rows = results(&agent, "big", 3);
    for r in &rows {
        let m = r["message"].as_str().unwrap();
        assert!(m.len() < 4096 + 300, "stored message of {} bytes", m.len());
        assert!(
            m.contains("message truncated: 3000000 bytes, limit 4096"),
            "{m}"
        );
        assert!(m.contains("19900 of 20000 metrics dropped"), "{m}");
        assert!(r["metrics"].as_array().unwrap().len() <= 100, "{r}");
    }
    let s = agent.sensor("big");
    assert!(s["last_message"].as_str().unwrap().len() < 4096 + 300);
    let (_, _, page) = util::http_get(&agent.api("/api/v1/status"), &[]);
    assert!(
        page.len() < 64 << 10,
        "status document of {} bytes",
        page.len()
    );
    assert_canary_kept_schedule(&agent, &target, from);
}

#[test]
fn a_log_flood_is_cut_at_the_log_limit() {
    let target = Target::start(Mode::Up);
    let agent = Agent::start(&format!(
        "[agent.plugins]\nlog_lines = 50\n{}{}",
        canary(&target),
        hostile(
            "flood",
            "mode = \"log-flood\", count = 200000, bytes = 100",
            ""
        ),
    ));
    let from = canary_up(&agent);
    let rows = results(&agent, "flood", 3);
    assert_error_naming(&rows, "more than 50 lines");
    assert_error_naming(&rows, "agent.plugins.log_lines");
    let line = "l".repeat(100);
    let logged = agent.logs().matches(&line).count();
    // 50 per run, and the runs so far (a run may be under way).
    assert!(
        logged <= 50 * (rows.len() + 2),
        "{logged} flood lines in the agent log after {} runs",
        rows.len()
    );
    assert_canary_kept_schedule(&agent, &target, from);
}

#[test]
fn name_lookups_follow_the_grant() {
    let target = Target::start(Mode::Up);
    let agent = Agent::start(&format!(
        "{}{}{}",
        canary(&target),
        // No grant: `localhost` is in /etc/hosts, so only the policy can
        // stop its lookup.
        hostile("lookup", "mode = \"dns\", name = \"localhost\"", ""),
        hostile(
            "granted",
            "mode = \"dns\", name = \"localhost\"",
            "allow = [\"localhost:80\"]"
        ),
    ));
    let from = canary_up(&agent);
    let denied = results(&agent, "lookup", 2);
    assert_eq!(denied[0]["status"], "fail", "{}", denied[0]);
    assert!(
        denied[0]["message"]
            .as_str()
            .unwrap()
            .contains("cannot resolve localhost"),
        "{}",
        denied[0]
    );
    let granted = results(&agent, "granted", 2);
    assert_eq!(granted[0]["status"], "ok", "{}", granted[0]);
    assert!(
        agent
            .logs()
            .contains("denied name lookup outside the plugin's allow-list")
    );
    assert_canary_kept_schedule(&agent, &target, from);
}

#[test]
fn hosts_smuggled_into_config_grant_nothing() {
    let target = Target::start(Mode::Up);
    let smuggled = Target::start(Mode::Up);
    let agent = Agent::start(&format!(
        "{}{}",
        canary(&target),
        hostile(
            "smuggler",
            &format!(
                "mode = \"http-note\", port = {p}, note = \"http://127.0.0.1:{p}/\"",
                p = smuggled.port
            ),
            ""
        ),
    ));
    let from = canary_up(&agent);
    let rows = results(&agent, "smuggler", 3);
    assert_eq!(rows[0]["status"], "fail", "{}", rows[0]);
    assert_eq!(smuggled.hits(), 0, "the smuggled host was reached");
    // check-config prints each sensor's effective grant.
    let out = agent.cli(&["check-config"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "network: 127.0.0.1:{} (from target fields)",
            target.port
        )),
        "{text}"
    );
    assert!(
        text.contains("network: nothing (no network access) (from target fields)"),
        "{text}"
    );
    assert_canary_kept_schedule(&agent, &target, from);
}

#[test]
fn plugin_info_prints_the_grant_and_escapes_what_the_plugin_says() {
    let out = util::outpost()
        .args(["plugin", "info", "http"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("network: the hosts named in `url`"), "{text}");
    let out = util::outpost()
        .args(["plugin", "info", &fixture("hostile")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("network: nothing unless"), "{text}");
}

#[test]
fn a_fifo_or_a_device_as_plugin_is_refused_at_once() {
    let target = Target::start(Mode::Up);
    let mut agent = Agent::start(&canary(&target));
    let fifo = agent.dir.path().join("plugin.wasm");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    for (path, what) in [(fifo.to_str().unwrap(), "FIFO"), ("/dev/zero", "a device")] {
        let started = Instant::now();
        let out = util::outpost()
            .args(["plugin", "run", path, "--config", "{}"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(what), "{err}");
        assert!(started.elapsed() < Duration::from_secs(20));
    }
    let from = canary_up(&agent);
    let body = format!(
        "{}\n[[sensor]]\nname = \"piped\"\nplugin = \"./plugin.wasm\"\n",
        canary(&target)
    );
    let out = {
        agent.write_config(&body);
        agent.cli(&["check-config"])
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("FIFO"), "{err}");
    // A reload into it is rejected; the agent keeps running and stops on
    // SIGTERM.
    agent.signal(libc::SIGHUP);
    agent.wait_log("configuration reload rejected", 1, Duration::from_secs(30));
    assert!(agent.logs().contains("FIFO"));
    assert_canary_kept_schedule(&agent, &target, from);
    assert!(agent.stop().success());
}

#[test]
fn a_reload_into_a_broken_duration_keeps_the_running_config() {
    let target = Target::start(Mode::Up);
    let mut agent = Agent::new("reload");
    std::fs::create_dir_all(agent.dir.path().join("conf.d")).unwrap();
    agent.launch(&format!(
        "include = [\"conf.d/*.toml\"]\n{}",
        canary(&target)
    ));
    let from = canary_up(&agent);
    for (n, bad) in [
        "\"99999999999999999999h\"",
        "1e20",
        "\"18446744073709551615s\"",
        "nan",
    ]
    .iter()
    .enumerate()
    {
        // Dropped into the include directory: picked up without a signal.
        agent.write_file(
            "conf.d/bad.toml",
            &format!(
                "[[sensor]]\nname = \"bad\"\nplugin = \"http\"\ninterval = {bad}\nconfig = {{ url = \"{}\" }}\n",
                target.url()
            ),
        );
        agent.wait_log(
            "configuration reload rejected",
            n + 1,
            Duration::from_secs(30),
        );
        assert!(agent.running(), "the agent exited:\n{}", agent.logs());
    }
    assert!(
        agent.logs().contains("conf.d/bad.toml:4"),
        "{}",
        agent.logs()
    );
    assert!(agent.logs().contains("NaN"));
    assert!(!agent.logs().contains("panicked"));
    assert_eq!(agent.sensor("bad"), serde_json::Value::Null);
    assert_canary_kept_schedule(&agent, &target, from);
    // An API query with such a duration is a 400, not a crash.
    let (code, _, _) = util::http_get(&agent.api("/api/v1/sensors/canary/history?since=1e30"), &[]);
    assert!(code == 400 || code == 404, "{code}");
    assert!(agent.running());
}

#[test]
fn cli_views_escape_control_characters_and_tolerate_a_closed_pipe() {
    let target = Target::start(Mode::Up);
    let agent = Agent::start(&format!(
        "{}{}",
        canary(&target),
        hostile("ansi", "mode = \"ansi\"", ""),
    ));
    results(&agent, "ansi", 1);
    for args in [vec!["status"], vec!["history", "ansi", "--since", "1h"]] {
        let out = agent.cli(&args);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !text.contains('\u{1b}'),
            "{args:?} printed an escape:\n{text:?}"
        );
        assert!(!text.contains('\u{7}'), "{args:?} printed a BEL");
        assert!(text.contains("\\u{1b}]0;pwned"), "{args:?}:\n{text}");
        // The forged second line stays on the sensor's line.
        assert!(!text.lines().any(|l| l.starts_with("FORGED")), "{text}");
    }
    // A reader that goes away after one byte ends the command quietly.
    let mut child = util::outpost()
        .args(["history", "canary", "--json", "--since", "1h", "-c"])
        .arg(&agent.config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut one = [0u8; 1];
    child.stdout.as_mut().unwrap().read_exact(&mut one).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_ne!(out.status.code(), Some(101), "{err}");
}

#[test]
fn an_empty_config_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outpost.toml");
    std::fs::write(&path, "# nothing here yet\n\n").unwrap();
    let out = util::outpost()
        .args(["check-config", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("the configuration is empty"), "{err}");
    assert!(err.contains("--allow-empty"), "{err}");
    let out = util::outpost()
        .args(["check-config", "--allow-empty", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_unwritable_data_dir_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o500)).unwrap();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    // Root writes through permission bits; sysfs refuses it a directory.
    let (data_dir, why): (String, &[&str]) = if root {
        (
            "/sys/outpost-test-data".into(),
            &["Operation not permitted", "Read-only file system"],
        )
    } else {
        (data.display().to_string(), &["Permission denied"])
    };
    let path = dir.path().join("outpost.toml");
    std::fs::write(
        &path,
        format!("[agent]\nname = \"ro\"\ndata_dir = \"{data_dir}\"\nlisten = \"127.0.0.1:0\"\n\n[[sensor]]\nname = \"a\"\nplugin = \"http\"\nconfig = {{ url = \"http://127.0.0.1:1/\" }}\n"),
    )
    .unwrap();
    let out = util::outpost()
        .args(["run", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(why.iter().any(|w| err.contains(w)), "{err}");
    assert!(err.contains(&data_dir), "{err}");
    assert!(!err.contains("unable to open database file"), "{err}");
}

/// A bounded fuzz run of the config loader in the normal test command:
/// random mutations of a valid config never panic `check-config`; each
/// gets a one-line located error or passes.
#[test]
fn mutated_configs_never_panic_the_loader() {
    let base = br#"[agent]
name = "fuzz"
data_dir = "data"
listen = "127.0.0.1:0"
[agent.plugins]
memory_mb = 64
max_connections = 8

[defaults]
interval = "30s"

[[sensor]]
name = "web"
plugin = "http"
interval = "1m 30s"
timeout = 5
allow = ["127.0.0.1:8080"]
config = { url = "http://127.0.0.1:8080/", expect_status = ["2xx"], warn_latency = "500ms" }
  [[sensor.threshold]]
  metric = "latency_ms"
  warn_above = 1e3
  for = "2m"

[[service]]
name = "shop"
depends_on = ["web"]
"#;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outpost.toml");
    let junk: &[u8] = b"\"'[]{}=.,#\n 0123456789eE+-_:nainfsmhdw\\\xc3\xa9\x00\x1b";
    let mut x: u64 = 0x853c_49e6_748f_ea9b;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut failures = vec![];
    for i in 0..60 {
        let mut b = base.to_vec();
        for _ in 0..(1 + next() % 3) {
            let at = (next() % b.len() as u64) as usize;
            let c = junk[(next() % junk.len() as u64) as usize];
            match next() % 3 {
                0 => b[at] = c,
                1 => b.insert(at, c),
                _ => {
                    b.remove(at);
                }
            }
        }
        std::fs::write(&path, &b).unwrap();
        let out = util::outpost()
            .args(["check-config", "-c"])
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let ok = match out.status.code() {
            Some(0) => true,
            Some(2) => err.starts_with("error: ") && err.trim().lines().count() == 1,
            _ => false,
        };
        if !ok || err.contains("panicked") {
            failures.push(format!(
                "mutation {i}: exit {:?}: {err}\n{}",
                out.status.code(),
                String::from_utf8_lossy(&b)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}
