//! Helpers shared by the end-to-end tests: run the real binary, start real
//! servers on loopback ports. Keep them here, not copied into test modules.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// Path of the `outpost` binary under test.
pub fn outpost_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_outpost"))
}

/// A directory shared by all tests of this run for the compiled-component
/// cache, so each plugin is compiled once per run rather than per test.
pub fn shared_cache_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("outpost-e2e-cache-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `Command` for the binary with a quiet log and the shared cache.
pub fn outpost() -> Command {
    let mut c = Command::new(outpost_bin());
    c.env("OUTPOST_CACHE_DIR", shared_cache_dir())
        .env("RUST_LOG", "warn")
        .env_remove("OUTPOST_CONFIG");
    c
}

/// The outcome of `outpost plugin run ... --json`.
#[derive(Debug)]
pub struct PluginRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// The parsed JSON result (None when the command printed none).
    pub json: Option<serde_json::Value>,
}

impl PluginRun {
    /// `status` of the result: "ok", "warn", "fail" or "error".
    pub fn status(&self) -> &str {
        self.json
            .as_ref()
            .and_then(|j| j["status"].as_str())
            .unwrap_or("<none>")
    }
    /// `message` of the result.
    pub fn message(&self) -> &str {
        self.json
            .as_ref()
            .and_then(|j| j["message"].as_str())
            .unwrap_or("<none>")
    }
    /// A metric by name.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.json.as_ref().and_then(|j| j["metrics"][name].as_f64())
    }
}

impl From<Output> for PluginRun {
    fn from(o: Output) -> Self {
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        let json = serde_json::from_str(stdout.trim()).ok();
        PluginRun {
            code: o.status.code().unwrap_or(-1),
            stdout,
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            json,
        }
    }
}

/// Runs `outpost plugin run <plugin> --json --config <config> <extra...>`.
pub fn run_plugin(plugin: &str, config: &serde_json::Value, extra: &[&str]) -> PluginRun {
    let out = outpost()
        .args([
            "plugin",
            "run",
            plugin,
            "--json",
            "--config",
            &config.to_string(),
        ])
        .args(extra)
        .output()
        .expect("run outpost");
    out.into()
}

/// A test fixture component built by `agent/build.rs`.
pub fn fixture(name: &str) -> String {
    match name {
        "hostile" => env!("OUTPOST_FIXTURE_HOSTILE").to_string(),
        "wrong-world" => env!("OUTPOST_FIXTURE_WRONG_WORLD").to_string(),
        "future-version" => env!("OUTPOST_FIXTURE_FUTURE_VERSION").to_string(),
        other => panic!("no fixture {other}"),
    }
}
