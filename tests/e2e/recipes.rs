//! The recipes of `docs/recipes.md`, each run as written (the TOML block is
//! read from the document; only the URL's scheme, host and port are
//! pointed at the test server) through `outpost plugin run http --json`,
//! against loopback servers answering as the products document, and for
//! the Prometheus recipes against Debian's real Prometheus.

use crate::util::http_server::{HttpServer, Recorded, Reply};
use crate::util::prometheus::Prometheus;
use crate::util::{self, PluginRun, run_plugin};
use serde_json::{Value, json};
use std::time::Duration;

/// Every ```toml block of docs/recipes.md.
fn blocks() -> Vec<String> {
    let text = std::fs::read_to_string(util::repo_root().join("docs/recipes.md")).unwrap();
    let mut out = vec![];
    let mut cur: Option<String> = None;
    for line in text.lines() {
        match (&mut cur, line.trim_end()) {
            (None, "```toml") => cur = Some(String::new()),
            (Some(b), "```") => {
                out.push(std::mem::take(b));
                cur = None;
            }
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            _ => {}
        }
    }
    out
}

/// The `config` of the recipe's sensor called `name`, as JSON.
fn recipe(name: &str) -> Value {
    for b in blocks() {
        let doc: toml::Value = toml::from_str(&b).unwrap_or_else(|e| panic!("{e}\n{b}"));
        let sensor = &doc["sensor"][0];
        if sensor["name"].as_str() == Some(name) {
            assert_eq!(sensor["plugin"].as_str(), Some("http"), "{b}");
            return serde_json::to_value(sensor["config"].clone()).unwrap();
        }
    }
    panic!("no recipe `{name}` in docs/recipes.md");
}

/// The recipe with its URL's `scheme://host:port` replaced by `base`;
/// returns the config and the documented path (with its query).
fn recipe_at(name: &str, base: &str) -> (Value, String) {
    let mut c = recipe(name);
    let url = c["url"].as_str().unwrap().to_string();
    let after_scheme = url.split_once("://").unwrap().1;
    let path = &after_scheme[after_scheme.find('/').unwrap()..];
    c["url"] = json!(format!("{base}{path}"));
    (c, path.to_string())
}

fn base(s: &HttpServer) -> String {
    s.url("").trim_end_matches('/').to_string()
}

fn assert_result(r: &PluginRun, status: &str, message: &str) {
    assert_eq!((r.status(), r.message()), (status, message), "{r:?}");
}

#[test]
fn every_recipe_passes_check_config() {
    let blocks = blocks();
    assert!(blocks.len() >= 8, "{} recipes", blocks.len());
    for b in blocks {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("outpost.toml");
        std::fs::write(
            &cfg,
            format!("[agent]\nname = \"recipes\"\ndata_dir = \"data\"\n\n{b}"),
        )
        .unwrap();
        let out = util::outpost()
            .args(["check-config", "-c"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{b}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

// --- Kubernetes --------------------------------------------------------------

/// `/readyz?verbose` as kube-apiserver writes it.
fn readyz(failing: Option<&str>) -> Reply {
    let checks = [
        "ping",
        "log",
        "etcd",
        "etcd-readiness",
        "informer-sync",
        "poststarthook/start-apiserver-admission-initializer",
        "shutdown",
    ];
    let mut body = String::new();
    for c in checks {
        if Some(c) == failing {
            body.push_str(&format!("[-]{c} failed: reason withheld\n"));
        } else {
            body.push_str(&format!("[+]{c} ok\n"));
        }
    }
    let (status, last) = match failing {
        None => (200, "readyz check passed\n"),
        Some(_) => (500, "readyz check failed\n"),
    };
    body.push_str(last);
    Reply::new(status, &body)
        .header("content-type", "text/plain; charset=utf-8")
        .header("x-content-type-options", "nosniff")
}

#[test]
fn kubernetes_readyz_verbose() {
    let ready = HttpServer::start(|_: &Recorded| readyz(None));
    let (c, path) = recipe_at("k8s-ready", &base(&ready));
    assert_eq!(path, "/readyz?verbose");
    assert_result(&run_plugin("http", &c, &[]), "ok", "HTTP 200");
    assert_eq!(ready.requests()[0].path, "/readyz?verbose");

    let etcd_down = HttpServer::start(|_: &Recorded| readyz(Some("etcd")));
    let (c, _) = recipe_at("k8s-ready", &base(&etcd_down));
    assert_result(
        &run_plugin("http", &c, &[]),
        "fail",
        "HTTP 500, expected 200",
    );

    let slow = HttpServer::start(|_: &Recorded| readyz(None).delay(Duration::from_millis(1200)));
    let (c, _) = recipe_at("k8s-ready", &base(&slow));
    let r = run_plugin("http", &c, &[]);
    assert_eq!(r.status(), "warn", "{r:?}");
    assert!(r.message().ends_with("(warn above 1000 ms)"), "{r:?}");
}

#[test]
fn kubernetes_livez() {
    let live = HttpServer::start(|_: &Recorded| {
        Reply::new(200, "ok").header("content-type", "text/plain; charset=utf-8")
    });
    let (c, path) = recipe_at("k8s-live", &base(&live));
    assert_eq!(path, "/livez");
    assert_result(&run_plugin("http", &c, &[]), "ok", "HTTP 200");

    let dead = HttpServer::start(|_: &Recorded| {
        Reply::new(
            500,
            "[+]ping ok\n[+]log ok\n[-]etcd failed: reason withheld\nlivez check failed\n",
        )
    });
    let (c, _) = recipe_at("k8s-live", &base(&dead));
    assert_result(
        &run_plugin("http", &c, &[]),
        "fail",
        "HTTP 500, expected 200",
    );
}

// --- Elasticsearch / OpenSearch -----------------------------------------------

/// `GET _cluster/health` as Elasticsearch documents it (HTTP 200 for every
/// status); 401 without the API key.
fn cluster_health(status: &'static str) -> HttpServer {
    HttpServer::start(move |req: &Recorded| {
        if req
            .header("authorization")
            .is_none_or(|a| !a.starts_with("ApiKey "))
        {
            return Reply::new(401, r#"{"error":{"root_cause":[{"type":"security_exception","reason":"missing authentication credentials for REST request [/_cluster/health]"}],"type":"security_exception","reason":"missing authentication credentials for REST request [/_cluster/health]"},"status":401}"#)
                .header("content-type", "application/json")
                .header("www-authenticate", "ApiKey");
        }
        let (unassigned, pct) = match status {
            "green" => (0, 100.0),
            "yellow" => (5, 50.0),
            _ => (10, 0.0),
        };
        Reply::json(&json!({
            "cluster_name": "testcluster",
            "status": status,
            "timed_out": false,
            "number_of_nodes": 1,
            "number_of_data_nodes": 1,
            "active_primary_shards": if status == "red" { 0 } else { 5 },
            "active_shards": 5 - unassigned.min(5),
            "relocating_shards": 0,
            "initializing_shards": 0,
            "unassigned_shards": unassigned,
            "unassigned_primary_shards": if status == "red" { 5 } else { 0 },
            "delayed_unassigned_shards": 0,
            "number_of_pending_tasks": 0,
            "number_of_in_flight_fetch": 0,
            "task_max_waiting_in_queue_millis": 0,
            "active_shards_percent_as_number": pct
        }))
    })
}

#[test]
fn elasticsearch_cluster_health_green_yellow_red() {
    let green = cluster_health("green");
    let (c, path) = recipe_at("es-health", &base(&green));
    assert_eq!(path, "/_cluster/health");
    assert_result(&run_plugin("http", &c, &[]), "ok", "HTTP 200");
    let req = &green.requests()[0];
    assert_eq!(
        req.header("authorization"),
        c["headers"]["Authorization"].as_str()
    );

    let yellow = cluster_health("yellow");
    let (c, _) = recipe_at("es-health", &base(&yellow));
    assert_result(
        &run_plugin("http", &c, &[]),
        "warn",
        "$.status is \"yellow\", expected == \"green\"",
    );

    let red = cluster_health("red");
    let (c, _) = recipe_at("es-health", &base(&red));
    assert_result(
        &run_plugin("http", &c, &[]),
        "fail",
        "$.status is \"red\", expected != \"red\"; $.status is \"red\", expected == \"green\"",
    );

    // Without the key the cluster refuses: the check fails, it does not
    // read the error document as a health status.
    let (mut c, _) = recipe_at("es-health", &base(&green));
    c.as_object_mut().unwrap().remove("headers");
    assert_result(
        &run_plugin("http", &c, &[]),
        "fail",
        "HTTP 401, expected 2xx",
    );
}

// --- Kong and gateways -------------------------------------------------------

#[test]
fn kong_admin_status_with_admin_token() {
    let reachable = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let r2 = reachable.clone();
    let kong = HttpServer::start(move |req: &Recorded| {
        if req.header("kong-admin-token") != Some("s3cr3t-admin-token") {
            return Reply::new(
                401,
                r#"{"message":"Invalid credentials. Token or User credentials required"}"#,
            )
            .header("content-type", "application/json; charset=utf-8");
        }
        Reply::json(&json!({
            "database": {"reachable": r2.load(std::sync::atomic::Ordering::SeqCst)},
            "memory": {
                "workers_lua_vms": [{"http_allocated_gc": "29.67 MiB", "pid": 1363}],
                "lua_shared_dicts": {"kong": {"allocated_slabs": "0.04 MiB", "capacity": "5.00 MiB"}}
            },
            "server": {
                "connections_writing": 1,
                "total_requests": 3,
                "connections_handled": 3,
                "connections_accepted": 3,
                "connections_reading": 0,
                "connections_active": 1,
                "connections_waiting": 0
            },
            "configuration_hash": "779742c3d7afee2e38f977044d2ed96b"
        }))
    });
    let (c, path) = recipe_at("kong-status", &base(&kong));
    assert_eq!(path, "/status");
    assert_result(&run_plugin("http", &c, &[]), "ok", "HTTP 200");

    reachable.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_result(
        &run_plugin("http", &c, &[]),
        "fail",
        "$.database.reachable is false, expected == true",
    );

    let mut wrong = c.clone();
    wrong["headers"]["Kong-Admin-Token"] = json!("guess");
    assert_result(
        &run_plugin("http", &wrong, &[]),
        "fail",
        "HTTP 401, expected 2xx",
    );
}

#[test]
fn gateway_route_with_an_api_key_header() {
    let upstream_up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let up = upstream_up.clone();
    // Kong's key-auth plugin in front of an upstream.
    let gw = HttpServer::start(move |req: &Recorded| {
        let json = |status, body: &str| {
            Reply::new(status, body).header("content-type", "application/json; charset=utf-8")
        };
        match req.header("apikey") {
            None => json(401, r#"{"message":"No API key found in request"}"#)
                .header("www-authenticate", "Key"),
            Some("monitoring-key-9f8e7d") if up.load(std::sync::atomic::Ordering::SeqCst) => {
                json(200, r#"{"status":"ok"}"#)
            }
            Some("monitoring-key-9f8e7d") => json(
                503,
                r#"{"message":"failure to get a peer from the ring-balancer"}"#,
            ),
            Some(_) => json(401, r#"{"message":"Unauthorized"}"#),
        }
    });
    let (c, path) = recipe_at("gateway-orders", &base(&gw));
    assert_eq!(path, "/orders/health");
    assert_result(&run_plugin("http", &c, &[]), "ok", "HTTP 200");
    assert_eq!(
        gw.requests()[0].header("apikey"),
        Some("monitoring-key-9f8e7d")
    );

    let mut wrong = c.clone();
    wrong["headers"]["apikey"] = json!("old-key");
    assert_result(
        &run_plugin("http", &wrong, &[]),
        "fail",
        "HTTP 401, expected 200",
    );

    upstream_up.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_result(
        &run_plugin("http", &c, &[]),
        "fail",
        "HTTP 503, expected 200",
    );
}

// --- Prometheus (the real server) --------------------------------------------

fn prometheus() -> Prometheus {
    Prometheus::start(
        "prometheus.yml",
        &[("prometheus.yml", "global:\n  scrape_interval: 15s\n")],
    )
}

#[test]
fn prometheus_healthy_and_ready_on_the_real_server() {
    let mut p = prometheus();
    let base = p.url("");
    let base = base.trim_end_matches('/');
    let (healthy, path) = recipe_at("prometheus-healthy", base);
    assert_eq!(path, "/-/healthy");
    assert_result(&run_plugin("http", &healthy, &[]), "ok", "HTTP 200");
    let (ready, path) = recipe_at("prometheus-ready", base);
    assert_eq!(path, "/-/ready");
    assert_result(&run_plugin("http", &ready, &[]), "ok", "HTTP 200");

    p.stop();
    for c in [healthy, ready] {
        let r = run_plugin("http", &c, &[]);
        assert_eq!(r.status(), "fail", "{r:?}");
        assert!(r.message().contains("refused"), "{r:?}");
    }
}

/// The `fleet-cpu` recipe with its query replaced by `query` (URL-encoded
/// here), against the real server: the answers are Prometheus' own.
fn cpu_recipe_with_query(p: &Prometheus, query: &str) -> PluginRun {
    let base = p.url("");
    let (mut c, path) = recipe_at("fleet-cpu", base.trim_end_matches('/'));
    assert!(path.starts_with("/api/v1/query?query="), "{path}");
    let encoded: String = query
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    c["url"] = json!(p.url(&format!("/api/v1/query?query={encoded}")));
    run_plugin("http", &c, &[])
}

#[test]
fn prometheus_query_threshold_on_the_real_server() {
    let p = prometheus();
    // The documented query itself is valid PromQL the server accepts; with
    // no node_exporter behind it the result is empty, which fails saying so.
    let base = p.url("");
    let (c, _) = recipe_at("fleet-cpu", base.trim_end_matches('/'));
    assert_result(
        &run_plugin("http", &c, &[]),
        "fail",
        "$.data.result[0].value[1] is missing, expected < 0.9; \
         $.data.result[0].value[1] is missing, expected < 0.8",
    );
    // A one-series vector like the documented query's answer.
    assert_result(&cpu_recipe_with_query(&p, "vector(0.42)"), "ok", "HTTP 200");
    assert_result(
        &cpu_recipe_with_query(&p, "vector(0.85)"),
        "warn",
        "$.data.result[0].value[1] is \"0.85\", expected < 0.8",
    );
    assert_result(
        &cpu_recipe_with_query(&p, "vector(0.97)"),
        "fail",
        "$.data.result[0].value[1] is \"0.97\", expected < 0.9; \
         $.data.result[0].value[1] is \"0.97\", expected < 0.8",
    );
    // `or vector(0)`: absence counts as fine.
    assert_result(
        &cpu_recipe_with_query(&p, "max(no_such_metric) or vector(0)"),
        "ok",
        "HTTP 200",
    );
    // A query the server rejects (400, "status":"error").
    assert_result(
        &cpu_recipe_with_query(&p, "max(("),
        "fail",
        "HTTP 400, expected 2xx",
    );
}
