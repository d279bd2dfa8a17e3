//! A sensor that misbehaves on request, one way per `mode`, so the agent's
//! sandbox limits can each be tested. Config: `{"mode": "<mode>", ...}`.
//!
//! Modes: `ok` (returns at once; the benchmark's trivial sensor), `loop`,
//! `memory-bomb`, `trap`, `recursion`, `http` (GET `http://127.0.0.1:<port>/`
//! built from `port`, a number, so the host is *not* named in the config),
//! `tcp` (the same over a raw socket), `read-file` (`path`), `env`,
//! `flood` (writes `bytes` to stdout), `sleep` (`ms`), `counter` (returns
//! how often this instance was called: shows instance reuse).
//!
//! Against the host-side limits: `sockets` (opens `count` TCP connections
//! to `127.0.0.1:<port>` and keeps them in a static, so a warm instance
//! would carry them into its next run), `resources` (leaks `count`
//! `wasi:http` fields of `bytes` bytes each), `big-result` (a message and
//! details of `bytes` bytes, `count` metrics), `log-flood` (`count` host
//! log calls of `bytes` bytes), `dns` (resolves `name`), `http-note` (GET
//! `http://127.0.0.1:<port>/` while `note`, a plain string field, names
//! that URL: a smuggled host), `ansi` (a message of terminal escapes).

use outpost_plugin_sdk::prelude::*;
use std::hint::black_box;
use std::io::Write;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    mode: String,
    #[serde(default)]
    port: u16,
    #[serde(default)]
    path: String,
    #[serde(default)]
    bytes: usize,
    #[serde(default)]
    ms: u64,
    #[serde(default)]
    count: usize,
    #[serde(default)]
    name: String,
    #[serde(default)]
    note: String,
}

/// Connections the `sockets` mode keeps open (across runs of a warm
/// instance, if the host let it live).
static KEPT: std::sync::Mutex<Vec<std::net::TcpStream>> = std::sync::Mutex::new(Vec::new());

pub struct Hostile;

static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn recurse(n: u64, pad: [u64; 16]) -> u64 {
    let p = black_box(pad);
    if black_box(n) == u64::MAX {
        p[0]
    } else {
        recurse(n + 1, p) + p[(n % 16) as usize]
    }
}

impl Sensor for Hostile {
    type Config = Config;

    fn info() -> PluginInfo {
        PluginInfo::sensor(
            "hostile",
            env!("CARGO_PKG_VERSION"),
            "Misbehaves on request (test fixture)",
        )
        .field(ConfigField::required(
            "mode",
            "string",
            "which misbehaviour",
        ))
        .field(ConfigField::optional(
            "note",
            "string",
            None,
            "free text (not a target: grants nothing)",
        ))
    }

    fn validate(config: &Config) -> Result<(), ConfigError> {
        const MODES: &[&str] = &[
            "ok",
            "loop",
            "memory-bomb",
            "trap",
            "recursion",
            "http",
            "tcp",
            "read-file",
            "env",
            "flood",
            "sleep",
            "counter",
            "sockets",
            "resources",
            "big-result",
            "log-flood",
            "dns",
            "http-note",
            "ansi",
        ];
        if MODES.contains(&config.mode.as_str()) {
            Ok(())
        } else {
            Err(ConfigError::new(
                "mode",
                format!(
                    "unknown mode `{}`; one of {}",
                    config.mode,
                    MODES.join(", ")
                ),
            ))
        }
    }

    fn check(config: &Config, _ctx: &CheckContext) -> CheckResult {
        let calls = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        match config.mode.as_str() {
            "ok" => CheckResult::ok("fine"),
            "counter" => CheckResult::ok(format!("call {calls}")).metric("calls", calls as f64),
            "loop" => {
                let mut x = 0u64;
                loop {
                    x = black_box(x.wrapping_add(1));
                }
            }
            "memory-bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    black_box(&hoard);
                }
            }
            "trap" => panic!("this plugin panics on purpose"),
            "recursion" => CheckResult::ok(format!("{}", recurse(0, [7; 16]))),
            "http" => {
                let url = format!("http://127.0.0.1:{}/", config.port);
                match outpost_plugin_sdk::http::send(&outpost_plugin_sdk::http::Request::get(url)) {
                    Ok(r) => CheckResult::ok(format!("reached forbidden host: HTTP {}", r.status)),
                    Err(e) => CheckResult::fail(e.to_string()),
                }
            }
            "tcp" => match std::net::TcpStream::connect(("127.0.0.1", config.port)) {
                Ok(_) => CheckResult::ok("reached forbidden host over TCP"),
                Err(e) => CheckResult::fail(format!("tcp connect: {e} ({:?})", e.kind())),
            },
            "read-file" => match std::fs::read_to_string(&config.path) {
                Ok(s) => CheckResult::ok(format!("read {} bytes from {}", s.len(), config.path)),
                Err(e) => CheckResult::fail(format!("cannot read {}: {e}", config.path)),
            },
            "env" => {
                let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
                CheckResult::ok(format!("{} environment variables", vars.len()))
                    .metric("env_vars", vars.len() as f64)
            }
            "flood" => {
                let chunk = vec![b'x'; 4096];
                let mut out = std::io::stdout();
                let mut written = 0;
                while written < config.bytes {
                    if out.write_all(&chunk).is_err() {
                        return CheckResult::fail(format!("stdout closed after {written} bytes"));
                    }
                    written += chunk.len();
                }
                CheckResult::ok(format!("wrote {written} bytes"))
            }
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_millis(config.ms));
                CheckResult::ok(format!("slept {} ms", config.ms))
            }
            "sockets" => {
                let mut kept = KEPT.lock().unwrap();
                let before = kept.len();
                for i in 0..config.count {
                    match std::net::TcpStream::connect(("127.0.0.1", config.port)) {
                        Ok(s) => kept.push(s),
                        Err(e) => {
                            return CheckResult::fail(format!(
                                "connect {i} refused: {e} (holding {})",
                                kept.len()
                            ))
                            .metric("held_before", before as f64);
                        }
                    }
                }
                CheckResult::ok(format!("holding {} connections", kept.len()))
                    .metric("held_before", before as f64)
                    .metric("held", kept.len() as f64)
            }
            "resources" => {
                use wasi::http::types::Fields;
                let value = vec![b'v'; config.bytes];
                for i in 0..config.count {
                    let f = Fields::new();
                    if config.bytes > 0 && f.append("x-bomb", &value).is_err() {
                        return CheckResult::fail(format!("fields {i}: append refused"));
                    }
                    std::mem::forget(f);
                }
                CheckResult::ok(format!("leaked {} fields", config.count))
            }
            "big-result" => {
                let mut r = CheckResult::ok("m".repeat(config.bytes));
                for i in 0..config.count {
                    r = r.metric(format!("metric_{i:07}"), i as f64);
                }
                r.details(serde_json::json!({ "blob": "d".repeat(config.bytes) }))
            }
            "log-flood" => {
                let line = "l".repeat(config.bytes);
                for _ in 0..config.count {
                    outpost_plugin_sdk::log::info(&line);
                }
                CheckResult::ok(format!("logged {} lines", config.count))
            }
            "dns" => {
                use std::net::ToSocketAddrs;
                match (config.name.as_str(), 80).to_socket_addrs() {
                    Ok(a) => CheckResult::ok(format!(
                        "resolved {}: {} address(es)",
                        config.name,
                        a.count()
                    )),
                    Err(e) => CheckResult::fail(format!("cannot resolve {}: {e}", config.name)),
                }
            }
            "http-note" => {
                let url = format!("http://127.0.0.1:{}/", config.port);
                match outpost_plugin_sdk::http::send(&outpost_plugin_sdk::http::Request::get(url)) {
                    Ok(r) => CheckResult::ok(format!(
                        "reached the smuggled host: HTTP {} ({})",
                        r.status, config.note
                    )),
                    Err(e) => CheckResult::fail(e.to_string()),
                }
            }
            // Retitles the terminal, clears the screen and forges a line.
            "ansi" => CheckResult::ok("\u{1b}]0;pwned\u{7}\u{1b}[2Jhello\nFORGED ok line"),
            other => CheckResult::error(format!("unknown mode {other}")),
        }
    }
}

outpost_plugin_sdk::export_sensor!(Hostile);
