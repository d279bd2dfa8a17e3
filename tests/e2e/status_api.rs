//! The status API end to end: the status document against the published
//! JSON Schema, ETag/304, `/metrics` through a real Prometheus parser, the
//! read token, SLA and incidents endpoints, push mode, topology config
//! errors.

use crate::util::{
    Agent, Mode, ReservedPort, Target, entry, http_get, http_request, parse_metrics, schema_errors,
};
use serde_json::Value;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn sensor(name: &str, url: &str) -> String {
    format!(
        "[[sensor]]\nname = \"{name}\"\nplugin = \"http\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\nfail_after = 1\nrecover_after = 1\ncategory = \"Data\"\nconfig = {{ url = \"{url}\" }}\n"
    )
}

fn topology() -> &'static str {
    "[[system]]\nname = \"payments-db\"\nmembers = [\"mongo-a\", \"mongo-b\"]\nquorum = 1\n\
     [[service]]\nname = \"checkout\"\ncategory = \"Shop\"\ndescription = \"Pay for an order\"\ndepends_on = [\"payments-db\", \"web\"]\n"
}

fn state(v: &Value) -> &str {
    v["state"].as_str().unwrap_or("")
}

#[test]
fn status_validates_against_the_schema_and_answers_304_when_unchanged() {
    let (ok, bad) = (Target::start(Mode::Up), Target::start(Mode::Error));
    let far = ReservedPort::new();
    let a = Agent::start(&format!(
        "{}{}{}{}[[peer]]\nname = \"far\"\nurl = \"http://127.0.0.1:{}\"\ninterval = \"200ms\"\ntimeout = \"100ms\"\n",
        sensor("mongo-a", &bad.url()),
        sensor("mongo-b", &bad.url()),
        sensor("web", &ok.url()),
        topology(),
        far.port
    ));
    let s = a.wait_status("checkout down, peer stale", WAIT, |s| {
        state(entry(s, "services", "checkout")) == "down"
            && state(entry(s, "peers", "far")) == "stale"
    });
    let checkout = entry(&s, "services", "checkout");
    assert!(
        checkout["reason"]
            .as_str()
            .unwrap()
            .starts_with("checkout is down because payments-db is down (0 of 2 members up, needs 1) because sensor mongo-a is down:"),
        "{checkout}"
    );
    assert_eq!(checkout["caused_by"], serde_json::json!(["payments-db"]));
    assert_eq!(checkout["incident"], Value::Null);
    assert_eq!(s["schema_version"], 1);
    assert!(s["agent"]["id"].as_str().unwrap().len() >= 16);

    let (code, head, body) = http_get(&a.api("/api/v1/status"), &[]);
    assert_eq!(code, 200);
    let errors = schema_errors(&body);
    assert!(errors.is_empty(), "schema errors: {errors:#?}\n{body}");

    // Conditional requests: the same ETag answers 304 while nothing
    // changed. Sensors are checked every 200 ms, so each try fetches a
    // fresh ETag first; a changed board must give a new ETag.
    let etag_of = |head: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix("etag: "))
            .expect("an ETag")
            .trim()
            .to_string()
    };
    assert!(etag_of(&head).starts_with('"'));
    let mut got_304 = false;
    for _ in 0..50 {
        let (_, head, _) = http_get(&a.api("/api/v1/status"), &[]);
        let etag = etag_of(&head);
        let (code, head2, body2) = http_get(&a.api("/api/v1/status"), &[("if-none-match", &etag)]);
        if code == 304 {
            assert!(body2.is_empty());
            assert_eq!(etag_of(&head2), etag);
            got_304 = true;
            break;
        }
        assert_eq!(code, 200);
        assert_ne!(etag_of(&head2), etag);
    }
    assert!(got_304, "never answered 304");

    // `outpost status` asks the running agent: the service tree with reasons.
    let out = a.cli(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |start: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(start))
            .unwrap_or("")
            .to_string()
    };
    assert!(
        line("checkout").contains("DOWN")
            && line("checkout").contains("because payments-db is down"),
        "{text}"
    );
    assert!(line("payments-db").starts_with("  payments-db"), "{text}");
    assert!(
        line("mongo-a").starts_with("    mongo-a") && line("mongo-a").contains("DOWN"),
        "{text}"
    );
    assert!(line("far").contains("STALE"), "{text}");

    // The error documents are JSON too.
    let (code, _, body) = http_get(&a.api("/api/v1/sensors/nope/history"), &[]);
    assert_eq!(code, 404);
    assert!(body.contains("no sensor named `nope`"));
}

#[test]
fn metrics_parse_with_a_real_prometheus_parser() {
    let ok = Target::start(Mode::Up);
    let far = ReservedPort::new();
    let a = Agent::start(&format!(
        "{}{}{}{}[[peer]]\nname = \"far\"\nurl = \"http://127.0.0.1:{}\"\ninterval = \"200ms\"\ntimeout = \"100ms\"\n",
        sensor("mongo-a", &ok.url()),
        sensor("mongo-b", &ok.url()),
        sensor("web", &ok.url()),
        topology(),
        far.port
    ));
    a.wait_status("checkout up", WAIT, |s| {
        state(entry(s, "services", "checkout")) == "up"
    });
    // The samples checked below have values to check: two ok checks of
    // `web`, and a failed poll of the peer that never answers.
    a.wait_until("web checked twice, far polled", WAIT, || {
        a.metric("outpost_checks_total{sensor=\"web\",status=\"ok\"}")
            .is_some_and(|n| n >= 2.0)
            && a.metric("outpost_peer_staleness_seconds{peer=\"far\"}")
                .is_some_and(|s| s > 0.0)
    });
    let (code, head, text) = http_get(&a.api("/metrics"), &[]);
    assert_eq!(code, 200);
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    let m = parse_metrics(&text);
    let kind = |f: &str| m[f]["type"].as_str().unwrap_or("<missing>").to_string();
    assert_eq!(kind("outpost_sensor_up"), "gauge");
    assert_eq!(kind("outpost_sensor_state"), "gauge");
    // prometheus_client names counter families without `_total`.
    assert_eq!(kind("outpost_checks"), "counter");
    assert_eq!(kind("outpost_check_latency_seconds"), "histogram");
    assert_eq!(kind("outpost_scheduler_lateness_seconds"), "histogram");
    assert_eq!(kind("outpost_plugin_errors"), "counter");
    assert_eq!(kind("outpost_store_writes"), "counter");
    assert_eq!(kind("outpost_peer_staleness_seconds"), "gauge");
    assert_eq!(kind("outpost_peer_up"), "gauge");
    assert_eq!(kind("outpost_node_state"), "gauge");
    let sample = |f: &str, labels: Value| -> Option<f64> {
        m[f]["samples"]
            .as_array()?
            .iter()
            .find(|s| s[1] == labels)
            .and_then(|s| s[2].as_f64())
    };
    assert_eq!(
        sample(
            "outpost_node_state",
            serde_json::json!({"node": "checkout", "kind": "service"})
        ),
        Some(1.0)
    );
    assert_eq!(
        sample("outpost_peer_up", serde_json::json!({"peer": "far"})),
        Some(0.0)
    );
    assert!(
        sample(
            "outpost_peer_staleness_seconds",
            serde_json::json!({"peer": "far"})
        )
        .unwrap()
            > 0.0
    );
    assert_eq!(
        sample("outpost_sensor_up", serde_json::json!({"sensor": "web"})),
        Some(1.0)
    );
    let checks = m["outpost_checks"]["samples"].as_array().unwrap();
    assert!(checks.iter().any(|s| s[1]["sensor"] == "web"
        && s[1]["status"] == "ok"
        && s[2].as_f64().unwrap() >= 2.0));
}

#[test]
fn a_read_token_guards_the_status_endpoints() {
    let ok = Target::start(Mode::Up);
    let mut a = Agent::new("guarded");
    a.write_file("read.token", "letmein-0123456789\n");
    a.launch(&format!(
        "{}[api]\nread_token_file = \"read.token\"\n",
        sensor("web", &ok.url())
    ));
    for path in [
        "/api/v1/status",
        "/metrics",
        "/",
        "/api/v1/incidents",
        "/api/v1/sla",
    ] {
        let (code, head, _) = http_get(&a.api(path), &[]);
        assert_eq!(code, 401, "{path}");
        assert!(
            head.to_ascii_lowercase()
                .contains("www-authenticate: bearer"),
            "{path}: {head}"
        );
        let (code, _, _) = http_get(&a.api(path), &[("authorization", "Bearer wrong")]);
        assert_eq!(code, 401, "{path}");
        let (code, _, _) = http_get(
            &a.api(path),
            &[("authorization", "Bearer letmein-0123456789")],
        );
        assert_eq!(code, 200, "{path}");
    }
    assert_eq!(http_get(&a.api("/healthz"), &[]).0, 200);
}

#[test]
fn sla_and_incidents_endpoints_read_the_store() {
    let ok = Target::start(Mode::Up);
    let a = Agent::start(&sensor("web", &ok.url()));
    a.wait_sensor("web", WAIT, |s| state(s) == "up");
    let (code, _, body) = http_get(&a.api("/api/v1/sla?sensor=web&period=day"), &[]);
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["rows"].is_array(), "{v}");
    let (code, _, body) = http_get(&a.api("/api/v1/sla?period=year"), &[]);
    assert_eq!(code, 400);
    assert!(body.contains("use day, week or month"), "{body}");
    let (code, _, body) = http_get(&a.api("/api/v1/sla?from=2026-13-01"), &[]);
    assert_eq!(code, 400, "{body}");
    let (code, _, body) = http_get(&a.api("/api/v1/incidents?state=all"), &[]);
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["incidents"], serde_json::json!([]));
}

#[test]
fn push_mode_is_authenticated_limited_and_goes_stale_when_silent() {
    let t = Target::start(Mode::Error);
    let mut agg = Agent::new("agg");
    agg.write_file("push.token", "push-secret-42\n");
    agg.launch(
        "[[peer]]\nname = \"edge\"\ninterval = \"300ms\"\n\
         [[service]]\nname = \"edge-api\"\ndepends_on = [\"peer:edge/api\"]\n\
         [api]\npush_token_file = \"push.token\"\n",
    );
    let agg_port = agg.port;
    let mut edge = Agent::new("edge");
    edge.write_file("agg.token", "push-secret-42\n");
    edge.launch(&format!(
        "{}[[push]]\nurl = \"http://127.0.0.1:{agg_port}\"\ntoken_file = \"agg.token\"\ninterval = \"200ms\"\n",
        sensor("api", &t.url())
    ));
    let s = agg.wait_status("edge pushed", WAIT, |s| {
        state(entry(s, "services", "edge-api")) == "down"
    });
    let p = entry(&s, "peers", "edge");
    assert_eq!(p["mode"], "push");
    assert_eq!(p["state"], "fresh");
    assert!(
        entry(&s, "services", "edge-api")["reason"]
            .as_str()
            .unwrap()
            .contains("peer:edge/api is down on edge")
    );

    // Wrong token, undeclared agent, oversized body.
    let url = agg.api("/api/v1/push");
    let doc = edge.status().to_string();
    let (code, _, _) = http_request(
        "POST",
        &url,
        &[("authorization", "Bearer nope")],
        doc.as_bytes(),
    );
    assert_eq!(code, 401);
    let stranger = doc.replace("\"name\":\"edge\"", "\"name\":\"stranger\"");
    let (code, _, body) = http_request(
        "POST",
        &url,
        &[("authorization", "Bearer push-secret-42")],
        stranger.as_bytes(),
    );
    assert_eq!(code, 403, "{body}");
    // A body announced as larger than the limit is refused before it is read.
    let (code, _, _) = crate::util::http_head_only(
        "POST",
        &url,
        &[
            ("authorization", "Bearer push-secret-42"),
            ("content-length", "5242880"),
        ],
    );
    assert_eq!(code, 413);
    // One that streams past the limit (chunked, no length) is cut off.
    let (code, _, _) = crate::util::http_chunked_post(
        &url,
        &[("authorization", "Bearer push-secret-42")],
        5 << 20,
    );
    assert_eq!(code, 413);
    let (code, _, body) = http_request(
        "POST",
        &url,
        &[("authorization", "Bearer push-secret-42")],
        b"{\"schema_version\": 9}",
    );
    assert_eq!(code, 400);
    assert!(body.contains("unsupported schema_version 9"), "{body}");

    // The edge goes away: silence makes it stale and its service unknown.
    edge.stop();
    let s = agg.wait_status("edge stale", WAIT, |s| {
        state(entry(s, "peers", "edge")) == "stale"
    });
    assert!(
        entry(&s, "peers", "edge")["reason"]
            .as_str()
            .unwrap()
            .contains("no push received")
    );
    let s = agg.wait_status("edge-api unknown", WAIT, |s| {
        state(entry(s, "services", "edge-api")) == "unknown"
    });
    assert!(schema_errors(&s.to_string()).is_empty());
}

#[test]
fn topology_errors_name_the_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[[sensor]]\nname = \"s\"\nplugin = \"http\"\nconfig = { url = \"http://127.0.0.1:1/\" }\n\
             [[system]]\nname = \"a\"\nmembers = [\"b\"]\n[[system]]\nname = \"b\"\nmembers = [\"a\", \"s\"]\n",
            ":7:",
            "`system[0].members`: dependency cycle: a → b → a",
        ),
        (
            "[[service]]\nname = \"x\"\ndepends_on = [\"ghost\"]\n",
            ":3:",
            "`service[0].depends_on`: `ghost` is not a sensor, system or service",
        ),
        (
            "[[sensor]]\nname = \"s\"\nplugin = \"http\"\nconfig = { url = \"http://127.0.0.1:1/\" }\n[[service]]\nname = \"s\"\ndepends_on = [\"s\"]\n",
            ":6:",
            "`service[0].name`: `s` is already the name of a sensor",
        ),
    ];
    for (i, (text, line, msg)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("c{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = crate::util::outpost()
            .args(["check-config", "-c"])
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(&format!("c{i}.toml{line}")) && err.contains(msg),
            "case {i}: {err}"
        );
    }
}
