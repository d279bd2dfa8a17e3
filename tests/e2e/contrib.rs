//! The operator artifacts of `contrib/` against the real agent: its
//! `/metrics` passes `promtool check metrics`, every metric the rules and
//! the dashboard use exists, and Debian's real Prometheus, run on
//! `contrib/prometheus/prometheus.yml` (file-based discovery) and
//! `rules.yml`, scrapes the agent and evaluates the rules on its series.

use crate::util::ReservedPort;
use crate::util::prometheus::{Prometheus, contrib_file, promtool};
use crate::util::{Agent, Mode, Target, http_get};
use std::collections::BTreeMap;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// An agent with a sensor that is up, one that is down (hard down after
/// one failure), a service on the first and an unreachable peer: every
/// family of the exposition has samples.
fn agent() -> (Agent, Target, Target, ReservedPort) {
    let (ok, bad) = (Target::start(Mode::Up), Target::start(Mode::Error));
    let sensor = |name: &str, url: &str| {
        format!(
            "[[sensor]]\nname = \"{name}\"\nplugin = \"http\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\n\
             fail_after = 1\nrecover_after = 1\nconfig = {{ url = \"{url}\" }}\n"
        )
    };
    let far = ReservedPort::new();
    // The ok target doubles as the connectivity canary, so the guard's
    // gauge is exported too.
    let a = Agent::start(&format!(
        "[agent.connectivity]\ntargets = [\"127.0.0.1:{}\"]\n{}{}[[service]]\nname = \"shop\"\ndepends_on = [\"web\"]\n\
         [[peer]]\nname = \"far\"\nurl = \"http://127.0.0.1:{}\"\ninterval = \"200ms\"\ntimeout = \"100ms\"\n",
        ok.port,
        sensor("web", &ok.url()),
        sensor("broken", &bad.url()),
        far.port
    ));
    a.wait_status("web up, broken down", WAIT, |s| {
        let st = |n| crate::util::entry(s, "sensors", n)["state"].clone();
        st("web") == "up" && st("broken") == "down"
    });
    (a, ok, bad, far)
}

/// `# TYPE name type` lines of an exposition.
fn families(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect()
}

/// Every `outpost_...` metric name in `text`.
fn metric_names(text: &str) -> Vec<String> {
    let mut out = vec![];
    let mut rest = text;
    while let Some(i) = rest.find("outpost_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn metrics_pass_promtool_check_metrics() {
    let (a, _ok, _bad, _far) = agent();
    let (code, _, text) = http_get(&a.api("/metrics"), &[]);
    assert_eq!(code, 200, "{text}");
    let out = promtool(&["check", "metrics"], text.as_bytes());
    assert!(
        out.status.success(),
        "promtool check metrics: {}\nstdout:\n{}\nstderr:\n{}\nexposition:\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The incidents and outbox gauges come from the store at scrape time.
    let fams = families(&text);
    for (name, kind) in [
        ("outpost_incidents", "gauge"),
        ("outpost_outbox_pending", "gauge"),
        ("outpost_outbox_oldest_pending_seconds", "gauge"),
    ] {
        assert_eq!(fams.get(name).map(String::as_str), Some(kind), "{text}");
    }
    assert!(
        text.contains("outpost_incidents{state=\"open\"} 0\n"),
        "{text}"
    );
    assert!(text.contains("outpost_outbox_pending 0\n"), "{text}");
}

#[test]
fn every_metric_the_rules_and_the_dashboard_use_is_exported() {
    let (a, _ok, _bad, _far) = agent();
    let (_, _, text) = http_get(&a.api("/metrics"), &[]);
    let fams = families(&text);
    for file in [
        "prometheus/rules.yml",
        "prometheus/rules_test.yml",
        "grafana/outpost.json",
    ] {
        let (path, body) = contrib_file(file);
        let names = metric_names(&body);
        assert!(names.len() >= 5, "{}: {names:?}", path.display());
        for n in names {
            let known = fams.contains_key(&n)
                || ["_bucket", "_sum", "_count"].iter().any(|s| {
                    n.strip_suffix(s)
                        .is_some_and(|b| fams.get(b).is_some_and(|t| t == "histogram"))
                });
            assert!(
                known,
                "{} uses `{n}`, which the agent does not export; it exports {:?}",
                path.display(),
                fams.keys().collect::<Vec<_>>()
            );
        }
    }
}

/// A PromQL query for a URL.
fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `text` with `from` replaced by `to`, which must occur.
fn replace(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "`{from}` not found in:\n{text}");
    text.replace(from, to)
}

#[test]
fn prometheus_scrapes_the_agent_through_file_sd_and_evaluates_the_rules() {
    let (a, _ok, _bad, _far) = agent();
    // The contrib files as shipped, with the intervals shortened so a test
    // does not wait half a minute per scrape.
    let (_, config) = contrib_file("prometheus/prometheus.yml");
    let config = replace(&config, "scrape_interval: 30s", "scrape_interval: 1s");
    let config = replace(
        &config,
        "evaluation_interval: 30s",
        "evaluation_interval: 1s",
    );
    let config = replace(&config, "scrape_timeout: 10s", "scrape_timeout: 1s");
    let (_, rules) = contrib_file("prometheus/rules.yml");
    let rules = replace(&rules, "interval: 30s", "interval: 1s");
    let targets = format!(
        "- targets: [\"127.0.0.1:{}\"]\n  labels:\n    agent: edge-a\n",
        a.port
    );
    let p = Prometheus::start(
        "prometheus.yml",
        &[
            ("prometheus.yml", &config),
            ("rules.yml", &rules),
            ("targets/fleet.yml", &targets),
        ],
    );
    let query = |q: &str| format!("/api/v1/query?query={}", encode(q));
    let value = |v: &serde_json::Value| {
        v["data"]["result"][0]["value"][1]
            .as_str()
            .unwrap_or("")
            .to_string()
    };

    // Discovered from the targets file, relabelled, scraped.
    p.wait_api("/api/v1/targets", WAIT, |v| {
        v["data"]["activeTargets"].as_array().is_some_and(|t| {
            t.iter()
                .any(|t| t["labels"]["instance"] == "edge-a" && t["health"] == "up")
        })
    });
    p.wait_api(
        &query(r#"outpost_sensor_up{job="outpost", instance="edge-a", sensor="web"}"#),
        WAIT,
        |v| value(v) == "1",
    );
    p.wait_api(
        &query(r#"outpost_agent_online{job="outpost", instance="edge-a"}"#),
        WAIT,
        |v| value(v) == "1",
    );
    // The recording rules on the agent's real series.
    p.wait_api(
        &query(r#"outpost:sensor_success:ratio_rate1h{instance="edge-a", sensor="web"}"#),
        WAIT,
        |v| value(v) == "1",
    );
    p.wait_api(
        &query(r#"outpost:sensor_success:ratio_rate1h{instance="edge-a", sensor="broken"}"#),
        WAIT,
        |v| value(v) == "0",
    );
    // The down sensor's alert is pending (it fires after `for: 1m`); the
    // peer that never answered is not stale yet (staleness under 120 s).
    let alerts = p.wait_api("/api/v1/alerts", WAIT, |v| {
        v["data"]["alerts"].as_array().is_some_and(|a| {
            a.iter().any(|a| {
                a["labels"]["alertname"] == "OutpostSensorDown"
                    && a["labels"]["sensor"] == "broken"
                    && a["labels"]["instance"] == "edge-a"
                    && a["state"] == "pending"
            })
        })
    });
    let names: Vec<&str> = alerts["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["labels"]["alertname"].as_str())
        .collect();
    assert!(
        !names.contains(&"OutpostAgentDown") && !names.contains(&"OutpostPeerStale"),
        "{alerts}"
    );
    // Every rule evaluates without error.
    p.wait_api("/api/v1/rules", WAIT, |v| {
        let rules: Vec<&serde_json::Value> = v["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .collect();
        rules.len() == 11 && rules.iter().all(|r| r["health"] == "ok")
    });
}

#[test]
fn version_names_the_plugin_abi_and_wasmtime() {
    let out = crate::util::outpost().arg("--version").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    // The WIT package the SDK publishes and the wasmtime Cargo.lock holds.
    let wit = std::fs::read_to_string(crate::util::repo_root().join("plugin-sdk/wit/outpost.wit"))
        .unwrap();
    let package = wit
        .lines()
        .find_map(|l| l.trim().strip_prefix("package "))
        .unwrap()
        .trim_end_matches(';');
    let lock = std::fs::read_to_string(crate::util::repo_root().join("Cargo.lock")).unwrap();
    let wasmtime = lock
        .split("[[package]]")
        .find_map(|p| {
            p.contains("\nname = \"wasmtime\"\n")
                .then(|| p.split("version = \"").nth(1)?.split('"').next())
                .flatten()
        })
        .unwrap();
    assert_eq!(
        text.trim(),
        format!(
            "outpost {} (plugin ABI {package}, wasmtime {wasmtime})",
            env!("CARGO_PKG_VERSION")
        )
    );
}
