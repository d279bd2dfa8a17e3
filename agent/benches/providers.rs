//! Provider benchmark (`cargo bench -p outpost --bench providers`): issue
//! 19's figure. A discovery of 10,000 objects merges into a running agent:
//! the agent's CPU for the merge, and the scheduling lateness of the
//! sensors that were already running, each next to a baseline window of
//! the same agent without a merge, in the same run.
//!
//! The real `outpost run` binary runs 200 `http` sensors at 1 s against a
//! loopback server (a separate process) and a `file` provider (the
//! cheapest way to hand it 10,000 objects) whose kind rule makes one
//! `http` sensor per object, plus a system per label value. Each round
//! writes a file of 10,000 *new* objects (so every generated sensor is
//! replaced: 10,000 stop, 10,000 start), and the merge is over when the
//! agent logs "configuration reloaded" with the new sensor count (read
//! from its log file, so observing costs the agent nothing).
//!
//! - **Merge CPU**: user + system time of the agent process (from
//!   `/proc/<pid>/stat`, 10 ms ticks) from the file write to that log
//!   line, minus what the same wall time costs in the baseline window
//!   (the 200 sensors' own checks). The generated sensors get a 1 h
//!   interval and jitter, so their first checks are spread over an hour
//!   and do not count as merge cost.
//! - **Lateness**: p99 of the agent's `outpost_scheduler_lateness_seconds`
//!   histogram (bucket upper bounds) over a window that contains the merge,
//!   next to the same window length without one.
//!
//! Goal (issue 19): ≤ 200 ms of CPU per merge, p99 lateness unchanged
//! within 2 ms. `OUTPOST_BENCH_ROUNDS` (default 3) sets the rounds.
//!
//! Measured 2026-12-04 (release, the 2-core machine shared with other
//! builds): median merge 435 ms of CPU (355–560 ms over 3 rounds; 576 ms
//! before sensor views were read without copying and states looked up by
//! name), p99 lateness 5 ms with and without a merge (bucket bounds). The
//! CPU goal is missed: a perf profile of the merge is mostly malloc/free of
//! the 10,000 stopped and 10,000 new sensors' configs, tasks and instance
//! handles, and the clone of the whole configuration on each reload.

mod common;
use common::{cpu_of, scrape};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const OBJECTS: usize = 10_000;
const SENSORS: usize = 200;
/// Lateness window around a merge (and of the baseline).
const WINDOW: Duration = Duration::from_secs(4);

fn main() {
    if std::env::var_os(common::SERVER_ENV).is_some() {
        return common::serve();
    }
    let rounds: usize = std::env::var("OUTPOST_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let (mut server, port) = common::spawn_server();
    let work = tempfile::tempdir().unwrap();
    let objects = work.path().join("objects.json");
    std::fs::write(&objects, "[]").unwrap();
    let (mut agent, api) = start(work.path(), port, &objects);
    let log = work.path().join("agent.log");
    let pid = agent.id();

    // Every sensor has run a few times before anything is measured.
    std::thread::sleep(Duration::from_secs(5));
    println!(
        "providers bench: {SENSORS} http sensors at 1 s, {OBJECTS} objects per discovery, {rounds} rounds\n"
    );
    let mut merges = Vec::new();
    let mut base_p99 = Vec::new();
    let mut merge_p99 = Vec::new();
    for round in 0..rounds {
        // Baseline: the same wall time with no merge.
        let h0 = lateness(api);
        let c0 = cpu_of(pid);
        let t0 = Instant::now();
        std::thread::sleep(WINDOW);
        let base_rate = (cpu_of(pid) - c0).as_secs_f64() / t0.elapsed().as_secs_f64();
        base_p99.push(p99(&delta(&lateness(api), &h0)));

        // A merge of 10,000 new objects.
        let reloads = count(&log, "configuration reloaded");
        let h1 = lateness(api);
        let body: Vec<String> = (0..OBJECTS)
            .map(|i| {
                format!(
                    "{{\"id\":\"r{round}-o{i}\",\"labels\":{{\"zone\":\"z{}\"}},\"attributes\":{{\"url\":\"http://127.0.0.1:{port}/o{i}\"}}}}",
                    i % 50
                )
            })
            .collect();
        let c1 = cpu_of(pid);
        let t1 = Instant::now();
        write_atomically(&objects, &format!("[{}]", body.join(",")));
        let deadline = Instant::now() + Duration::from_secs(120);
        while count(&log, "configuration reloaded") == reloads {
            assert!(
                Instant::now() < deadline,
                "no reload after 120 s; see {}",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let wall = t1.elapsed();
        let cpu = (cpu_of(pid) - c1).as_secs_f64();
        let merge = (cpu - base_rate * wall.as_secs_f64()).max(0.0);
        merges.push(merge);
        std::thread::sleep(WINDOW.saturating_sub(t1.elapsed()));
        merge_p99.push(p99(&delta(&lateness(api), &h1)));
        println!(
            "round {round}: merge took {:.0} ms wall, {:.0} ms CPU ({:.0} ms in all minus {:.0} ms of baseline); p99 lateness {:.1} ms with the merge, {:.1} ms without",
            wall.as_secs_f64() * 1000.0,
            merge * 1000.0,
            cpu * 1000.0,
            base_rate * wall.as_secs_f64() * 1000.0,
            merge_p99[round] * 1000.0,
            base_p99[round] * 1000.0
        );
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (m, b, w) = (
        median(&mut merges),
        median(&mut base_p99),
        median(&mut merge_p99),
    );
    println!(
        "\nmedian merge CPU {:.0} ms (goal ≤ 200 ms: {}); p99 lateness {:.1} ms with a merge vs {:.1} ms without (goal: within 2 ms: {})",
        m * 1000.0,
        if m <= 0.2 { "met" } else { "missed" },
        w * 1000.0,
        b * 1000.0,
        if w - b <= 0.002 { "met" } else { "missed" }
    );
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    println!(
        "agent after the rounds ({} sensors): RssAnon {}, VmRSS {}",
        SENSORS + OBJECTS,
        field("RssAnon:"),
        field("VmRSS:")
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let _ = agent.wait();
    let _ = server.kill();
    let _ = server.wait();
}

fn start(dir: &Path, port: u16, objects: &Path) -> (Child, u16) {
    let data = dir.join("data");
    let mut cfg = format!(
        "[agent]\nname = \"bench\"\ndata_dir = \"{}\"\nlisten = \"127.0.0.1:0\"\n\n\
         [[provider]]\nname = \"inv\"\nplugin = \"file\"\ninterval = \"200ms\"\nconfig = {{ path = \"{}\", kind = \"example.com/Host\" }}\n\n\
         [[kind]]\nmatch = \"example.com/Host\"\n  [[kind.sensor]]\n  name = \"http\"\n  plugin = \"http\"\n  interval = \"1h\"\n  jitter = \"1h\"\n  config = {{ url = \"{{url}}\" }}\n  \
         [[kind.system]]\n  by = \"label:zone\"\n  name = \"zone-{{value}}\"\n  rule = \"all\"\n\n",
        data.display(),
        objects.display()
    );
    for i in 0..SENSORS {
        cfg.push_str(&format!(
            "[[sensor]]\nname = \"s{i:04}\"\nplugin = \"http\"\ninterval = \"1s\"\ntimeout = \"900ms\"\nconfig = {{ url = \"http://127.0.0.1:{port}/s{i}\" }}\n"
        ));
    }
    let path = dir.join("outpost.toml");
    std::fs::write(&path, cfg).unwrap();
    let log = std::fs::File::create(dir.join("agent.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_outpost"))
        .args(["run", "-c"])
        .arg(&path)
        .env("RUST_LOG", "info")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start outpost run");
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Some(a) = std::fs::read_to_string(data.join("listen-addr"))
            .ok()
            .and_then(|a| a.trim().parse::<std::net::SocketAddr>().ok())
            && !scrape(a).is_empty()
        {
            return (child, a.port());
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!(
                "agent exited with {st}; see {}",
                dir.join("agent.log").display()
            );
        }
        assert!(Instant::now() < deadline, "agent did not start in 180 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Replaces the file in one rename, as editors and config tools do, so
/// the agent never reads half of it.
fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn count(log: &Path, needle: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches(needle)
        .count()
}

/// The lateness histogram: (upper bound, cumulative count).
fn lateness(port: u16) -> Vec<(f64, u64)> {
    scrape(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .lines()
        .filter_map(|l| l.strip_prefix("outpost_scheduler_lateness_seconds_bucket{le=\""))
        .filter_map(|l| {
            let (le, n) = l.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, n.trim().parse().ok()?))
        })
        .collect()
}

fn delta(now: &[(f64, u64)], before: &[(f64, u64)]) -> Vec<(f64, u64)> {
    now.iter()
        .zip(before)
        .map(|(a, b)| (a.0, a.1.saturating_sub(b.1)))
        .collect()
}

/// Upper bound of the bucket holding the 99th percentile.
fn p99(h: &[(f64, u64)]) -> f64 {
    let total = h.last().map_or(0, |x| x.1);
    let want = (total as f64 * 0.99).ceil() as u64;
    h.iter()
        .find(|(_, n)| *n >= want && total > 0)
        .map_or(f64::NAN, |x| x.0)
}
