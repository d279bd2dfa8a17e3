//! The built-in `http` sensor end to end: `outpost plugin run http --json`
//! against real servers on loopback (plain and TLS), checking the status,
//! the exact message and the metrics the operator would see.

use crate::util::http_server::{HttpServer, Recorded, Reply, TestCa};
use crate::util::{self, PluginRun, run_plugin};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn http(config: Value) -> PluginRun {
    run_plugin("http", &config, &[])
}

fn assert_result(r: &PluginRun, status: &str, message: &str) {
    assert_eq!((r.status(), r.message()), (status, message), "{r:?}");
}

fn always(reply: Reply) -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    move |_| reply.clone()
}

#[test]
fn expected_status_passes_with_metrics() {
    let s = HttpServer::start(always(Reply::new(200, "hello")));
    let r = http(json!({"url": s.url("/health")}));
    assert_eq!(
        (r.code, r.status(), r.message()),
        (0, "ok", "HTTP 200"),
        "{r:?}"
    );
    assert_eq!(r.metric("status_code"), Some(200.0));
    assert_eq!(r.metric("body_bytes"), Some(5.0));
    assert_eq!(r.metric("redirects"), Some(0.0));
    assert!(r.metric("latency_ms").is_some_and(|l| l > 0.0), "{r:?}");
    assert_eq!(
        r.metric("cert_days_left"),
        None,
        "no certificate over plain http"
    );
    let details = &r.json.as_ref().unwrap()["details"];
    assert_eq!(details["status_code"], 200, "{details}");
    assert_eq!(s.requests()[0].path, "/health");
}

#[test]
fn unexpected_status_fails_naming_the_expectation() {
    let s = HttpServer::start(always(Reply::new(503, "down")));
    let r = http(json!({"url": s.url("/")}));
    assert_eq!(r.code, 1);
    assert_result(&r, "fail", "HTTP 503, expected 2xx");
    assert_eq!(r.metric("status_code"), Some(503.0));

    let s = HttpServer::start(always(Reply::new(201, "")));
    let r = http(json!({"url": s.url("/"), "expect_status": [200, 204]}));
    assert_result(&r, "fail", "HTTP 201, expected 200, 204");
}

#[test]
fn status_ranges_and_classes() {
    let s = HttpServer::start(|req: &Recorded| match req.path.as_str() {
        "/missing" => Reply::new(404, "nope"),
        "/moved" => Reply::redirect(302, "/elsewhere"),
        _ => Reply::new(500, "boom"),
    });
    let r = http(json!({"url": s.url("/missing"), "expect_status": ["4xx"]}));
    assert_eq!(r.status(), "ok", "{r:?}");
    let r = http(json!({"url": s.url("/moved"), "expect_status": ["300-399"]}));
    assert_eq!(r.status(), "ok", "{r:?}");
    let r = http(json!({"url": s.url("/boom"), "expect_status": ["200-299", "404"]}));
    assert_result(&r, "fail", "HTTP 500, expected 200-299, 404");
}

#[test]
fn slow_responses_warn_then_fail() {
    let s = HttpServer::start(always(
        Reply::new(200, "ok").delay(Duration::from_millis(400)),
    ));
    let r = http(json!({"url": s.url("/"), "warn_latency": "150ms", "fail_latency": "5s"}));
    assert_eq!(r.status(), "warn", "{r:?}");
    assert!(
        r.message().starts_with("response took ")
            && r.message().ends_with(" ms (warn above 150 ms)"),
        "{r:?}"
    );
    assert!(r.metric("latency_ms").unwrap() >= 400.0, "{r:?}");

    let r = http(json!({"url": s.url("/"), "warn_latency": "100ms", "fail_latency": "200ms"}));
    assert_eq!(r.status(), "fail", "{r:?}");
    assert!(r.message().ends_with(" ms (fail above 200 ms)"), "{r:?}");

    let fast = HttpServer::start(always(Reply::new(200, "ok")));
    let r = http(json!({"url": fast.url("/"), "warn_latency": "3s", "fail_latency": "5s"}));
    assert_eq!(r.status(), "ok", "{r:?}");
}

#[test]
fn body_substring_and_regex() {
    let s = HttpServer::start(always(Reply::new(200, "service: ready\nversion: v2.14\n")));
    let r = http(json!({"url": s.url("/"), "body_contains": "ready"}));
    assert_eq!(r.status(), "ok", "{r:?}");
    let r = http(json!({"url": s.url("/"), "body_contains": "healthy"}));
    assert_result(&r, "fail", "body does not contain `healthy`");
    let r = http(json!({"url": s.url("/"), "body_regex": r"(?m)^version: v2\.\d+$"}));
    assert_eq!(r.status(), "ok", "{r:?}");
    let r = http(json!({"url": s.url("/"), "body_regex": r"version: v3\.\d+"}));
    assert_result(&r, "fail", r"body does not match regex `version: v3\.\d+`");
}

#[test]
fn body_beyond_max_body_bytes_is_not_read() {
    let s = HttpServer::start(always(Reply::new(
        200,
        &format!("{}ready", "x".repeat(1000)),
    )));
    let r = http(json!({"url": s.url("/"), "body_contains": "ready", "max_body_bytes": 100}));
    assert_result(
        &r,
        "fail",
        "body does not contain `ready` (only the first 100 bytes were read: max_body_bytes)",
    );
    assert_eq!(r.metric("body_bytes"), Some(100.0));
}

fn json_doc() -> Value {
    json!({
        "status": "down",
        "version": "1.2.3",
        "queue": {"depth": 7, "max": 100},
        "tags": ["eu", "primary"],
        "ratio": 0.25,
        "checks": [{"name": "db", "ok": true}]
    })
}

fn with_json(conds: Value) -> PluginRun {
    let s = HttpServer::start(always(Reply::json(&json_doc())));
    http(json!({"url": s.url("/status"), "json": conds}))
}

#[test]
fn json_conditions_that_hold() {
    let r = with_json(json!([
        {"pointer": "/status", "op": "==", "value": "down"},
        {"pointer": "/status", "op": "!=", "value": "up"},
        {"pointer": "/queue/depth", "op": "<", "value": 10},
        {"pointer": "/queue/max", "op": ">", "value": 99.5},
        {"pointer": "/queue/depth", "op": "<=", "value": 7},
        {"pointer": "/ratio", "op": ">=", "value": 0.25},
        {"pointer": "/version", "op": "contains", "value": "1.2"},
        {"pointer": "/tags", "op": "contains", "value": "primary"},
        {"pointer": "/checks/0/ok", "op": "exists"},
        {"pointer": "/nothing", "op": "exists", "value": false}
    ]));
    assert_eq!(r.status(), "ok", "{r:?}");
}

#[test]
fn each_json_operator_reports_what_failed() {
    let cases = [
        (
            json!({"pointer": "/status", "op": "==", "value": "up"}),
            "$.status is \"down\", expected == \"up\"",
        ),
        (
            json!({"pointer": "/status", "op": "!=", "value": "down"}),
            "$.status is \"down\", expected != \"down\"",
        ),
        (
            json!({"pointer": "/queue/depth", "op": "<", "value": 5}),
            "$.queue.depth is 7, expected < 5",
        ),
        (
            json!({"pointer": "/queue/depth", "op": ">", "value": 7}),
            "$.queue.depth is 7, expected > 7",
        ),
        (
            json!({"pointer": "/ratio", "op": "<=", "value": 0.1}),
            "$.ratio is 0.25, expected <= 0.1",
        ),
        (
            json!({"pointer": "/queue/max", "op": ">=", "value": 101}),
            "$.queue.max is 100, expected >= 101",
        ),
        (
            json!({"pointer": "/tags", "op": "contains", "value": "us"}),
            "$.tags is [\"eu\",\"primary\"], expected contains \"us\"",
        ),
        (
            json!({"pointer": "/checks/0/latency", "op": "exists"}),
            "$.checks[0].latency is missing, expected it to exist",
        ),
    ];
    for (cond, message) in cases {
        let r = with_json(json!([cond]));
        assert_result(&r, "fail", message);
    }
}

#[test]
fn json_missing_pointer_and_non_json_body() {
    let r = with_json(json!([{"pointer": "/health/db", "op": "==", "value": "up"}]));
    assert_result(&r, "fail", "$.health.db is missing, expected == \"up\"");

    let s = HttpServer::start(always(Reply::new(200, "<html>fine</html>")));
    let r = http(
        json!({"url": s.url("/"), "json": [{"pointer": "/status", "op": "==", "value": "up"}]}),
    );
    assert_eq!(r.status(), "fail", "{r:?}");
    assert!(r.message().starts_with("body is not JSON ("), "{r:?}");
    assert!(
        r.message()
            .ends_with("so 1 json condition(s) could not be checked"),
        "{r:?}"
    );
}

#[test]
fn method_headers_and_body_are_sent() {
    let s = HttpServer::start(always(Reply::new(202, "queued")));
    let r = http(json!({
        "url": s.url("/jobs?dry=1"),
        "method": "post",
        "headers": {"X-Token": "s3cret", "Content-Type": "application/json"},
        "body": "{\"ping\":1}",
        "expect_status": [202]
    }));
    assert_eq!(r.status(), "ok", "{r:?}");
    let reqs = s.requests();
    assert_eq!(reqs.len(), 1);
    let q = &reqs[0];
    assert_eq!(
        (q.method.as_str(), q.path.as_str()),
        ("POST", "/jobs?dry=1")
    );
    assert_eq!(q.header("x-token"), Some("s3cret"));
    assert_eq!(q.header("content-type"), Some("application/json"));
    assert!(
        q.header("user-agent")
            .is_some_and(|u| u.starts_with("outpost-http/")),
        "{q:?}"
    );
    assert_eq!(q.body, b"{\"ping\":1}");
    assert_eq!(q.header("content-length"), Some("10"));

    let r = http(
        json!({"url": s.url("/"), "method": "HEAD", "headers": {"User-Agent": "probe/1"}, "expect_status": ["2xx"]}),
    );
    assert_eq!(r.status(), "ok", "{r:?}");
    let q = s.requests().pop().unwrap();
    assert_eq!(
        (q.method.as_str(), q.header("user-agent")),
        ("HEAD", Some("probe/1"))
    );
}

#[test]
fn redirects_are_followed_only_when_asked() {
    let s = HttpServer::start(|req: &Recorded| match req.path.as_str() {
        "/old" => Reply::redirect(301, "/new"),
        "/loop" => Reply::redirect(302, "/loop"),
        _ => Reply::new(200, "new page"),
    });
    let r = http(json!({"url": s.url("/old")}));
    assert_result(
        &r,
        "fail",
        "HTTP 301, expected 2xx (redirect to /new not followed: follow_redirects is false)",
    );
    assert_eq!(s.requests().len(), 1);

    let r =
        http(json!({"url": s.url("/old"), "follow_redirects": true, "body_contains": "new page"}));
    assert_eq!(r.status(), "ok", "{r:?}");
    assert_eq!(r.metric("redirects"), Some(1.0));
    let paths: Vec<String> = s.requests().into_iter().map(|q| q.path).collect();
    assert_eq!(paths, ["/old", "/old", "/new"]);

    let r = http(json!({"url": s.url("/loop"), "follow_redirects": true, "max_redirects": 3}));
    assert_result(
        &r,
        "fail",
        "HTTP 302, expected 2xx (gave up at redirect to /loop after 3 redirects: max_redirects)",
    );
}

#[test]
fn redirect_to_a_host_outside_the_allow_list_fails_clearly() {
    let other = HttpServer::start(always(Reply::new(200, "elsewhere")));
    let target = format!("http://localhost:{}/landing", other.port);
    let s = HttpServer::start(always(Reply::redirect(302, &target)));
    let r = http(json!({"url": s.url("/"), "follow_redirects": true}));
    assert_result(
        &r,
        "fail",
        &format!(
            "redirected to localhost:{}, which is not in this sensor's network allow-list (add it to the sensor's `allow` list if the redirect is expected)",
            other.port
        ),
    );
    assert!(other.requests().is_empty(), "the denied host was contacted");

    // Allowed explicitly, the same redirect is followed.
    let allow = format!("localhost:{}", other.port);
    let r = run_plugin(
        "http",
        &json!({"url": s.url("/"), "follow_redirects": true}),
        &["--allow", &allow],
    );
    assert_eq!(r.status(), "ok", "{r:?}");
    assert_eq!(other.requests()[0].path, "/landing");
}

#[test]
fn connection_refused_fails() {
    let refused = util::ReservedPort::new();
    let port = refused.port;
    let r = http(json!({"url": format!("http://127.0.0.1:{port}/")}));
    assert_eq!(r.code, 1);
    assert_result(
        &r,
        "fail",
        &format!("connection refused by 127.0.0.1:{port}"),
    );
}

#[test]
fn handler_slower_than_the_timeout_fails_in_time() {
    let s = HttpServer::start(always(
        Reply::new(200, "late").delay(Duration::from_secs(4)),
    ));
    let started = Instant::now();
    let r = run_plugin("http", &json!({"url": s.url("/")}), &["--timeout", "600ms"]);
    assert_eq!(r.status(), "fail", "{r:?}");
    assert!(
        r.message().starts_with(&format!(
            "no complete response from 127.0.0.1:{} within ",
            s.port
        )) && r.message().ends_with(" ms (timeout)"),
        "{r:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the run waited for the slow handler"
    );

    // A `timeout` in the config shorter than the agent's applies too.
    let r = run_plugin(
        "http",
        &json!({"url": s.url("/"), "timeout": "300ms"}),
        &["--timeout", "5s"],
    );
    assert_eq!(r.status(), "fail", "{r:?}");
    assert!(r.message().ends_with("within 300 ms (timeout)"), "{r:?}");
}

/// Runs the sensor with the test CA trusted by the agent.
fn https(ca: &TestCa, config: Value) -> PluginRun {
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    util::outpost()
        .env("OUTPOST_CA_FILE", &ca_file)
        .args([
            "plugin",
            "run",
            "http",
            "--json",
            "--config",
            &config.to_string(),
        ])
        .output()
        .expect("run outpost")
        .into()
}

/// An hour past the whole days, so "expires in N days" is exact however
/// long the test takes.
fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400 + 3_600)
}

#[test]
fn certificate_expiring_in_2_days_fails() {
    let ca = TestCa::new();
    let s = HttpServer::start_tls(&ca.server_cert(days(2)), always(Reply::new(200, "ok")));
    let r = https(&ca, json!({"url": s.url("/")}));
    assert_result(
        &r,
        "fail",
        "certificate for 127.0.0.1 expires in 2 days (fail below 3)",
    );
    assert_eq!(
        r.metric("status_code"),
        Some(200.0),
        "the request itself worked: {r:?}"
    );
    let left = r.metric("cert_days_left").unwrap();
    assert!((2.0..2.1).contains(&left), "{left}");
}

#[test]
fn certificate_expiring_in_10_days_warns() {
    let ca = TestCa::new();
    let cert = ca.server_cert(days(10));
    let s = HttpServer::start_tls(&cert, always(Reply::new(200, "ok")));
    let r = https(&ca, json!({"url": s.url("/")}));
    assert_result(
        &r,
        "warn",
        "certificate for 127.0.0.1 expires in 10 days (warn below 14)",
    );
    let details = &r.json.as_ref().unwrap()["details"]["certificate"];
    assert_eq!(details["not_after"], cert.not_after, "{details}");
    assert!(
        details["issuer"]
            .as_str()
            .unwrap()
            .contains("Outpost Test CA"),
        "{details}"
    );

    // Thresholds are the operator's.
    let r = https(
        &ca,
        json!({"url": s.url("/"), "cert_warn_days": 7, "cert_fail_days": 2}),
    );
    assert_eq!(r.status(), "ok", "{r:?}");
}

#[test]
fn certificate_expiring_in_90_days_is_ok() {
    let ca = TestCa::new();
    let s = HttpServer::start_tls(&ca.server_cert(days(90)), always(Reply::new(200, "secure")));
    let r = https(&ca, json!({"url": s.url("/"), "body_contains": "secure"}));
    assert_eq!((r.code, r.status()), (0, "ok"), "{r:?}");
    assert_eq!(
        r.message(),
        "HTTP 200; certificate for 127.0.0.1 expires in 90 days"
    );
    let left = r.metric("cert_days_left").unwrap();
    assert!((90.0..90.1).contains(&left), "{left}");
}

#[test]
fn untrusted_certificate_fails_but_still_reports_its_expiry() {
    let ca = TestCa::new();
    let s = HttpServer::start_tls(&ca.server_cert(days(90)), always(Reply::new(200, "ok")));
    // No OUTPOST_CA_FILE: the test CA is not trusted.
    let r = http(json!({"url": s.url("/")}));
    assert_eq!(r.status(), "fail", "{r:?}");
    assert!(
        r.message()
            .starts_with(&format!("TLS error with 127.0.0.1:{}: ", s.port)),
        "{r:?}"
    );
    assert!(
        r.metric("cert_days_left").is_some_and(|d| d > 89.0),
        "{r:?}"
    );
    assert!(
        s.requests().is_empty(),
        "no HTTP request over an untrusted connection"
    );
}
