//! `outpost plugin run|info` with the hostile fixtures: each sandbox limit
//! is contained and reported as an `error` result; bad input gets a
//! one-line error and exit code 2.

use crate::util::{self, fixture, run_plugin};
use serde_json::json;
use std::net::TcpListener;

fn hostile(config: serde_json::Value, extra: &[&str]) -> util::PluginRun {
    run_plugin(&fixture("hostile"), &config, extra)
}

#[test]
fn trivial_sensor_is_ok() {
    let r = hostile(json!({"mode": "ok"}), &[]);
    assert_eq!((r.code, r.status()), (0, "ok"), "{r:?}");
}

#[test]
fn endless_loop_is_stopped_at_the_deadline() {
    let started = std::time::Instant::now();
    let r = hostile(json!({"mode": "loop"}), &["--timeout", "500ms"]);
    assert_eq!((r.code, r.status()), (1, "error"), "{r:?}");
    assert!(
        r.message().contains("time limit of 500 ms"),
        "{}",
        r.message()
    );
    // The process (including engine start and compilation) ends well before
    // a runaway would; this bounds containment, it is not a speed test.
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn blocking_sleep_is_stopped_at_the_deadline() {
    let r = hostile(
        json!({"mode": "sleep", "ms": 60_000}),
        &["--timeout", "300ms"],
    );
    assert_eq!(r.status(), "error", "{r:?}");
    assert!(
        r.message().contains("time limit of 300 ms"),
        "{}",
        r.message()
    );
}

#[test]
fn memory_bomb_is_stopped_at_the_cap() {
    let r = hostile(json!({"mode": "memory-bomb"}), &["--memory-mb", "16"]);
    assert_eq!(r.status(), "error", "{r:?}");
    assert!(
        r.message().contains("memory limit of 16 MiB"),
        "{}",
        r.message()
    );
}

#[test]
fn panic_is_a_trap_reported_with_its_message() {
    let r = hostile(json!({"mode": "trap"}), &[]);
    assert_eq!(r.status(), "error", "{r:?}");
    assert!(
        r.message().contains("this plugin panics on purpose"),
        "{}",
        r.message()
    );
}

#[test]
fn deep_recursion_is_contained() {
    let r = hostile(json!({"mode": "recursion"}), &[]);
    assert_eq!(r.status(), "error", "{r:?}");
    assert!(r.message().contains("stack"), "{}", r.message());
}

#[test]
fn output_flood_is_stopped_at_the_cap() {
    let r = hostile(json!({"mode": "flood", "bytes": 50_000_000}), &[]);
    assert_eq!(r.status(), "error", "{r:?}");
    assert!(
        r.message().contains("more than 65536 bytes"),
        "{}",
        r.message()
    );
    // A little output is fine.
    let r = hostile(json!({"mode": "flood", "bytes": 1000}), &[]);
    assert_eq!(r.status(), "ok", "{r:?}");
}

#[test]
fn host_files_are_not_readable() {
    let r = hostile(json!({"mode": "read-file", "path": "/etc/passwd"}), &[]);
    assert_eq!(r.status(), "fail", "{r:?}");
    assert!(
        r.message().contains("cannot read /etc/passwd"),
        "{}",
        r.message()
    );
}

#[test]
fn environment_is_empty() {
    let r = hostile(json!({"mode": "env"}), &[]);
    assert_eq!(r.metric("env_vars"), Some(0.0), "{r:?}");
}

/// A listener that counts accepted connections.
fn counting_listener() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(s);
        }
    });
    (port, count)
}

/// The listener saw exactly `before` connections before ours: we connect
/// once and wait until it is counted (connections are accepted in arrival
/// order, so one the plugin made earlier would already be in the count).
fn only_ours_after(port: u16, accepted: &std::sync::atomic::AtomicUsize, before: usize) {
    let _probe = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    util::wait_until(
        "our probe accepted",
        std::time::Duration::from_secs(10),
        || accepted.load(std::sync::atomic::Ordering::SeqCst) > before,
    );
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        before + 1,
        "the listener saw other connections than the plugin's {before} and our probe"
    );
}

#[test]
fn http_to_a_host_not_in_the_config_is_denied() {
    let (port, accepted) = counting_listener();
    let r = hostile(json!({"mode": "http", "port": port}), &[]);
    assert_eq!(r.status(), "fail", "{r:?}");
    assert!(
        r.message()
            .contains("not in this plugin's network allow-list"),
        "{}",
        r.message()
    );
    only_ours_after(port, &accepted, 0);
}

#[test]
fn raw_tcp_to_a_host_not_in_the_config_is_denied() {
    let (port, accepted) = counting_listener();
    let r = hostile(json!({"mode": "tcp", "port": port}), &[]);
    assert_eq!(r.status(), "fail", "{r:?}");
    assert!(r.message().contains("PermissionDenied"), "{}", r.message());
    only_ours_after(port, &accepted, 0);
}

#[test]
fn an_explicitly_allowed_host_is_reachable_over_tcp() {
    let (port, accepted) = counting_listener();
    let allow = format!("127.0.0.1:{port}");
    let r = hostile(json!({"mode": "tcp", "port": port}), &["--allow", &allow]);
    assert_eq!(r.status(), "ok", "{r:?}");
    util::wait_until(
        "the plugin's connection accepted",
        std::time::Duration::from_secs(10),
        || accepted.load(std::sync::atomic::Ordering::SeqCst) >= 1,
    );
    only_ours_after(port, &accepted, 1);
}

fn expect_usage_error(args: &[&str], needle: &str) {
    let out = util::outpost().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(
        stderr.contains(needle),
        "{args:?}: expected `{needle}` in: {stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("stack backtrace"),
        "{stderr}"
    );
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one line expected: {stderr}"
    );
}

#[test]
fn wrong_world_is_refused_at_load() {
    expect_usage_error(
        &["plugin", "run", &fixture("wrong-world")],
        "is not an Outpost plugin: it exports wasi:cli/run",
    );
}

#[test]
fn unknown_version_is_refused_at_load() {
    expect_usage_error(
        &["plugin", "info", &fixture("future-version")],
        "was built for outpost:plugin/sensor@9.0.0",
    );
}

#[test]
fn bad_input_gets_one_line_and_exit_2() {
    expect_usage_error(
        &["plugin", "run", "nosuch"],
        "unknown plugin `nosuch`: the built-in plugins are http",
    );
    expect_usage_error(
        &["plugin", "run", "/nonexistent/x.wasm"],
        "cannot read plugin /nonexistent/x.wasm",
    );
    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("corrupt.wasm");
    std::fs::write(&corrupt, b"\0asm\x0d\0\x01\0garbage").unwrap();
    expect_usage_error(
        &["plugin", "run", corrupt.to_str().unwrap()],
        "is not a valid WebAssembly component",
    );
    let text = dir.path().join("text.wasm");
    std::fs::write(&text, b"hello").unwrap();
    expect_usage_error(
        &["plugin", "run", text.to_str().unwrap()],
        "does not start with the WebAssembly magic number",
    );
    expect_usage_error(
        &["plugin", "run", "http", "--config", "{\"url\": "],
        "--config is not valid JSON",
    );
    expect_usage_error(
        &["plugin", "run", "http", "--config", "{\"urll\": \"x\"}"],
        "`urll`: unknown field",
    );
    expect_usage_error(
        &[
            "plugin",
            "run",
            &fixture("hostile"),
            "--config",
            "{\"mode\": \"dance\"}",
        ],
        "`mode`: unknown mode `dance`",
    );
}

#[test]
fn info_describes_a_plugin() {
    let out = util::outpost()
        .args(["plugin", "info", "http", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["name"], "http");
    assert_eq!(v["kind"], "sensor");
    assert!(
        v["config"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "url")
    );
}
