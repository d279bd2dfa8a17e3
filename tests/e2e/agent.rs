//! `outpost run` end to end: a real HTTP target whose behaviour the test
//! switches, the real binary, its HTTP API, CLI and SQLite file.

use crate::util::{Agent, Mode, Target, fixture};
use serde_json::Value;
use std::time::Duration;

fn sensor(name: &str, url: &str, extra: &str) -> String {
    format!(
        "[[sensor]]\nname = \"{name}\"\nplugin = \"http\"\n{extra}\nconfig = {{ url = \"{url}\" }}\n"
    )
}

/// Results of a sensor, oldest first: (at_ms, status).
fn results(agent: &Agent, name: &str) -> Vec<(i64, String)> {
    let h = agent.history(name);
    let mut v: Vec<(i64, String)> = h["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["at_ms"].as_i64().unwrap(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn transitions(agent: &Agent, name: &str) -> Vec<(i64, String, String)> {
    let h = agent.history(name);
    let mut v: Vec<(i64, String, String)> = h["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["at_ms"].as_i64().unwrap(),
                t["from"].as_str().unwrap().into(),
                t["to"].as_str().unwrap().into(),
            )
        })
        .collect();
    v.sort();
    v
}

fn state(s: &Value) -> &str {
    s["state"].as_str().unwrap_or("")
}

#[test]
fn soft_hard_recovered_after_exact_counts() {
    let target = Target::start(Mode::Up);
    let agent = Agent::start(&sensor(
        "api",
        &target.url(),
        "interval = \"300ms\"\nretry_interval = \"150ms\"\ntimeout = \"250ms\"\nfail_after = 3\nrecover_after = 2",
    ));
    agent.wait_sensor("api", Duration::from_secs(30), |s| state(s) == "up");
    target.set(Mode::Error);
    let down = agent.wait_sensor("api", Duration::from_secs(30), |s| state(s) == "down");
    assert!(
        down["reason"]
            .as_str()
            .unwrap()
            .starts_with("3 consecutive failures: HTTP 500"),
        "{down}"
    );
    target.set(Mode::Up);
    agent.wait_sensor("api", Duration::from_secs(30), |s| state(s) == "up");

    // The store commits in batches: wait for the last transition to land.
    agent.wait_until("5 transitions stored", Duration::from_secs(10), || {
        transitions(&agent, "api").len() >= 5
    });
    let r = results(&agent, "api");
    let t = transitions(&agent, "api");
    let names: Vec<(&str, &str)> = t
        .iter()
        .map(|(_, f, to)| (f.as_str(), to.as_str()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("unknown", "up"),
            ("up", "soft"),
            ("soft", "down"),
            ("down", "recovering"),
            ("recovering", "up")
        ],
        "{t:?}"
    );
    let count_between = |from: i64, to: i64, status: &str| {
        r.iter()
            .filter(|(at, s)| *at >= from && *at <= to && s == status)
            .count()
    };
    // Exactly fail_after failures from the first failure to hard down.
    assert_eq!(count_between(t[1].0, t[2].0, "fail"), 3, "{r:?}\n{t:?}");
    // Exactly recover_after successes from the first success to up.
    assert_eq!(count_between(t[3].0, t[4].0, "ok"), 2, "{r:?}\n{t:?}");
    assert_eq!(count_between(t[3].0, t[4].0, "fail"), 0);
}

/// The long-running agent never compiles a plugin itself: on a first
/// start a child copy of the binary compiles it into the cache, and the
/// agent maps the image from there; a restart finds it and compiles
/// nothing.
#[test]
fn a_first_start_compiles_plugins_in_a_child_process_and_a_restart_reuses_them() {
    let target = Target::start(Mode::Up);
    let mut agent = Agent::start(&sensor("web", &target.url(), "interval = \"200ms\""));
    agent.wait_sensor("web", Duration::from_secs(30), |s| state(s) == "up");
    let compiled = |logs: &str| logs.matches("compiled in a child process").count();
    let logs = agent.logs();
    assert_eq!(compiled(&logs), 1, "{logs}");
    assert!(!logs.contains("compiling it here"), "{logs}");
    let cache = agent.db().with_file_name("plugin-cache");
    let files: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        files.len() == 1 && files[0].ends_with(".cwasm"),
        "{files:?}"
    );
    agent.stop();
    let hits = target.hits();
    agent.spawn();
    agent.wait_sensor("web", Duration::from_secs(30), |_| target.hits() > hits + 2);
    let logs = agent.logs();
    assert_eq!(compiled(&logs), 1, "the restart compiled again:\n{logs}");
}

#[test]
fn soft_failures_are_rechecked_at_the_retry_interval() {
    let target = Target::start(Mode::Up);
    let agent = Agent::start(&sensor(
        "api",
        &target.url(),
        "interval = \"2s\"\nretry_interval = \"200ms\"\ntimeout = \"1s\"\nfail_after = 4\njitter = \"0s\"",
    ));
    agent.wait_sensor("api", Duration::from_secs(30), |s| state(s) == "up");
    target.set(Mode::Error);
    agent.wait_sensor("api", Duration::from_secs(30), |s| state(s) == "down");
    let r = agent.wait_some("4 failures stored", Duration::from_secs(10), || {
        let r = results(&agent, "api");
        (r.iter().filter(|(_, s)| s == "fail").count() >= 4).then_some(r)
    });
    let fails: Vec<i64> = r
        .iter()
        .filter(|(_, s)| s == "fail")
        .map(|(at, _)| *at)
        .collect();
    assert!(fails.len() >= 4, "{r:?}");
    // The first failure came on the normal schedule; the next three on the
    // retry schedule: ~200 ms apart, far less than the 2 s interval.
    for w in fails[..4].windows(2) {
        let gap = w[1] - w[0];
        assert!(
            (150..=900).contains(&gap),
            "retry gap {gap} ms in {fails:?}"
        );
    }
    // While hard down the normal interval applies again.
    let oks: Vec<i64> = r
        .iter()
        .filter(|(_, s)| s == "ok")
        .map(|(at, _)| *at)
        .collect();
    if oks.len() >= 2 {
        let gap = oks[1] - oks[0];
        assert!(gap >= 1800, "normal gap {gap} ms");
    }
}

#[test]
fn an_alternating_target_is_detected_as_flapping() {
    let target = Target::start(Mode::Alternate);
    let agent = Agent::start(&sensor(
        "flappy",
        &target.url(),
        "interval = \"100ms\"\ntimeout = \"90ms\"\nretry_interval = \"100ms\"",
    ));
    let s = agent.wait_sensor("flappy", Duration::from_secs(30), |s| s["flapping"] == true);
    assert_eq!(s["flapping"], true);
    assert!(
        agent.logs().contains("flapping started"),
        "{}",
        agent.logs()
    );
}

#[test]
fn sighup_applies_a_new_interval_and_keeps_history_and_state() {
    let target = Target::start(Mode::Up);
    let mut agent = Agent::start(&sensor(
        "api",
        &target.url(),
        "interval = \"1s\"\njitter = \"0s\"",
    ));
    let first = agent.wait_sensor("api", Duration::from_secs(30), |s| state(s) == "up");
    // Two results at the old interval, stored.
    let before = agent.wait_some("2 results stored", Duration::from_secs(10), || {
        let r = results(&agent, "api");
        (r.len() >= 2).then_some(r)
    });
    let old_gap = before[1].0 - before[0].0;
    assert!(old_gap >= 900, "old interval: {before:?}");

    // `reconfigure` returns once the agent logged the reload.
    agent.reconfigure(&sensor(
        "api",
        &target.url(),
        "interval = \"100ms\"\njitter = \"0s\"",
    ));
    // Ten more checks, then their spacing on the agent's own clock: the
    // new 100 ms interval, not the old 1 s one.
    let after = agent.wait_some(
        "11 results at the new interval",
        Duration::from_secs(20),
        || {
            let r = results(&agent, "api");
            (r.len() >= before.len() + 11).then_some(r)
        },
    );
    let new: Vec<i64> = after[after.len() - 10..]
        .iter()
        .map(|(at, _)| *at)
        .collect();
    let gaps: Vec<i64> = new.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|g| *g < 900) && gaps.iter().sum::<i64>() < 9 * 300,
        "checks {gaps:?} ms apart after the reload; logs:\n{}",
        agent.logs()
    );
    let now = agent.sensor("api");
    assert_eq!(
        now["since_ms"], first["since_ms"],
        "state was reset by the reload"
    );
    assert!(agent.logs().contains("configuration reloaded"));

    // An invalid config is rejected; the old one keeps running.
    std::fs::write(&agent.config, "[agent\nbroken").unwrap();
    agent.signal(libc::SIGHUP);
    agent.wait_log("configuration reload rejected", 1, Duration::from_secs(10));
    // Checks go on at the old config's pace after the rejection.
    let hits = target.hits();
    agent.wait_until(
        "checks go on after an invalid reload",
        Duration::from_secs(10),
        || target.hits() > hits + 3,
    );
    assert!(agent.stop().success());
}

#[test]
fn a_file_dropped_into_an_include_directory_adds_a_sensor() {
    let target = Target::start(Mode::Up);
    let agent = Agent::start(&format!(
        "include = [\"conf.d/*.toml\"]\n{}",
        sensor("main", &target.url(), "interval = \"1s\"")
    ));
    agent.wait_sensor("main", Duration::from_secs(30), |s| state(s) == "up");
    std::fs::create_dir_all(agent.dir.path().join("conf.d")).unwrap();
    std::fs::write(
        agent.dir.path().join("conf.d/extra.toml"),
        sensor("extra", &target.url(), "interval = \"1s\""),
    )
    .unwrap();
    agent.wait_sensor("extra", Duration::from_secs(30), |s| state(s) == "up");
    std::fs::remove_file(agent.dir.path().join("conf.d/extra.toml")).unwrap();
    agent.wait_until(
        "removed sensor no longer listed",
        Duration::from_secs(30),
        || agent.sensor("extra").is_null(),
    );
}

fn count_results(db: &std::path::Path) -> i64 {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    let total: i64 = c
        .query_row(
            // Plain rows plus the results held in the store's result blocks.
            "SELECT COALESCE(SUM(cnt), 0) FROM (SELECT COUNT(*) AS cnt FROM results \
             UNION ALL SELECT SUM(n) FROM result_blocks)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    total
}

#[test]
fn kill_9_while_writing_loses_no_committed_result() {
    // 200 sensors every 100 ms: ~2,000 results a second.
    let plugin = fixture("hostile");
    let mut body = String::new();
    for i in 0..200 {
        body.push_str(&format!(
            "[[sensor]]\nname = \"s{i}\"\nplugin = \"{plugin}\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nconfig = {{ mode = \"ok\" }}\n"
        ));
    }
    let mut agent = Agent::start(&body);
    let first = agent.wait_some("1,000 results committed", Duration::from_secs(30), || {
        let n = count_results(&agent.db());
        (n > 1000).then_some(n)
    });
    // Kill it mid-stream: 500 more commits since, so the writer is busy.
    let committed = agent.wait_some("writes going on", Duration::from_secs(30), || {
        let n = count_results(&agent.db());
        (n > first + 500).then_some(n)
    });
    agent.kill9();

    let c = rusqlite::Connection::open(agent.db()).unwrap();
    let check: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(c);
    let after_crash = count_results(&agent.db());
    assert!(
        after_crash >= committed,
        "lost committed results: {committed} seen before the kill, {after_crash} after"
    );

    // The agent starts again on the same file and carries on.
    agent.spawn();
    agent.wait_until(
        "500 more results after the restart",
        Duration::from_secs(30),
        || count_results(&agent.db()) > after_crash + 500,
    );
    assert!(agent.stop().success());
}

#[test]
fn status_history_and_sla_commands_read_the_database() {
    let target = Target::start(Mode::Up);
    let agent = Agent::start(&sensor("web", &target.url(), "interval = \"200ms\""));
    agent.wait_sensor("web", Duration::from_secs(30), |s| state(s) == "up");
    let out = agent.cli(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("web") && text.contains("UP"),
        "{text}"
    );
    let sla = || {
        let out = agent.cli(&["sla", "--period", "day", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["sensor"] == "web")
            .cloned()
    };
    // The store commits in batches: wait for a row with three checks.
    let row = agent.wait_some("3 checks in the SLA", Duration::from_secs(10), || {
        sla().filter(|row| row["checks"].as_u64().unwrap_or(0) >= 3)
    });
    assert_eq!(row["uptime_pct"].as_f64(), Some(100.0), "{row}");
    let (code, _, body) = crate::util::http_get(&agent.api("/metrics"), &[]);
    assert_eq!(code, 200);
    assert!(
        body.contains("outpost_checks_total{sensor=\"web\",status=\"ok\"}"),
        "{body}"
    );
}

#[test]
fn time_in_a_maintenance_window_is_left_out_of_the_sla() {
    // Both sensors check the same failing target; only `db` is inside a
    // weekly window that covers every moment of the week.
    let target = Target::start(Mode::Error);
    let url = target.url();
    let agent = Agent::start(&format!(
        "{}{}\n[[maintenance]]\ntargets = [\"db\"]\ndays = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"]\nstart = \"00:00\"\nduration = \"24h\"\nreason = \"migration\"\n",
        sensor(
            "db",
            &url,
            "interval = \"200ms\"\nretry_interval = \"200ms\""
        ),
        sensor(
            "web",
            &url,
            "interval = \"200ms\"\nretry_interval = \"200ms\""
        ),
    ));
    let sla = |name: &str| -> Value {
        let out = agent.cli(&["sla", "--period", "day", "--sensor", name, "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
        rows[0].clone()
    };
    // Time is counted between checks, so wait for both time and counts.
    let (web, db) = agent.wait_some(
        "failures, downtime and maintenance counted",
        Duration::from_secs(30),
        || {
            let (web, db) = (sla("web"), sla("db"));
            (web["failures"].as_u64().unwrap_or(0) >= 4
                && web["downtime_ms"].as_i64().unwrap_or(0) >= 600
                && db["maintenance_ms"].as_i64().unwrap_or(0) >= 600
                && results(&agent, "db").len() >= 4)
                .then_some((web, db))
        },
    );
    // Outside maintenance every failure counts.
    assert!(web["failures"].as_u64().unwrap() >= 4, "{web}");
    assert!(web["downtime_ms"].as_i64().unwrap() >= 600, "{web}");
    assert_eq!(web["uptime_pct"].as_f64(), Some(0.0), "{web}");
    assert_eq!(web["maintenance_ms"].as_i64(), Some(0), "{web}");
    // Inside it the same failures are neither checks, downtime nor outages.
    assert!(db["maintenance_ms"].as_i64().unwrap() >= 600, "{db}");
    assert_eq!(db["checks"].as_u64(), Some(0), "{db}");
    assert_eq!(db["failures"].as_u64(), Some(0), "{db}");
    assert_eq!(db["downtime_ms"].as_i64(), Some(0), "{db}");
    assert_eq!(db["outages"].as_u64(), Some(0), "{db}");
    assert!(db["uptime_pct"].is_null(), "{db}");
    // The results themselves are still recorded.
    assert!(results(&agent, "db").len() >= 4);
}
