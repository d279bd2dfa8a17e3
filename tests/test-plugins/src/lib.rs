//! A sensor that misbehaves on request, one way per `mode`, so the agent's
//! sandbox limits can each be tested. Config: `{"mode": "<mode>", ...}`.
//!
//! Modes: `ok` (returns at once; the benchmark's trivial sensor), `loop`,
//! `memory-bomb`, `trap`, `recursion`, `http` (GET `http://127.0.0.1:<port>/`
//! built from `port`, a number, so the host is *not* named in the config),
//! `tcp` (the same over a raw socket), `read-file` (`path`), `env`,
//! `flood` (writes `bytes` to stdout), `sleep` (`ms`), `counter` (returns
//! how often this instance was called: shows instance reuse).

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
}

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
            other => CheckResult::error(format!("unknown mode {other}")),
        }
    }
}

outpost_plugin_sdk::export_sensor!(Hostile);
