//! `{{name}}`: an Outpost sensor. It GETs `url` and reports
//! - `ok` when the status is `expect_status` and the body contains
//!   `body_contains` (when set), `warn` when slower than `warn_latency_ms`;
//! - `fail` with a message on another status, a missing text, a refused
//!   connection, a timeout or a host outside the allow-list.
//!
//! `./build` makes `{{name}}.wasm`; `outpost plugin test {{name}}.wasm`
//! checks it against the conformance suite.

use outpost_plugin_sdk::http::{self, Request};
use outpost_plugin_sdk::prelude::*;
use std::time::Duration;

/// Time kept back from the agent's deadline: a slow target is reported
/// here as `fail` (with a message) before the agent stops the run as
/// `error`.
const DEADLINE_MARGIN: Duration = Duration::from_millis(100);

/// The configuration (`config = { ... }` of the sensor in outpost.toml).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    url: String,
    #[serde(default = "default_status")]
    expect_status: u16,
    #[serde(default)]
    body_contains: Option<String>,
    #[serde(default = "default_warn")]
    warn_latency_ms: f64,
}

fn default_status() -> u16 {
    200
}

fn default_warn() -> f64 {
    1000.0
}

/// The sensor.
pub struct Plugin;

impl Sensor for Plugin {
    type Config = Config;

    fn info() -> PluginInfo {
        PluginInfo::sensor("{{name}}", env!("CARGO_PKG_VERSION"), "HTTP check: status, latency and body text")
            .field(ConfigField::required("url", "url", "the http:// or https:// URL to GET"))
            .field(ConfigField::optional("expect_status", "integer", Some("200"), "the status that means up"))
            .field(ConfigField::optional("body_contains", "string", None, "text the body must contain"))
            .field(ConfigField::optional("warn_latency_ms", "number", Some("1000"), "slower than this is `warn`"))
    }

    fn validate(config: &Config) -> Result<(), ConfigError> {
        if !(config.url.starts_with("http://") || config.url.starts_with("https://")) {
            return Err(ConfigError::new("url", format!("`url` must start with http:// or https://, got {:?}", config.url)));
        }
        if !(100..=599).contains(&config.expect_status) {
            return Err(ConfigError::new("expect_status", "must be an HTTP status between 100 and 599"));
        }
        Ok(())
    }

    fn check(config: &Config, ctx: &CheckContext) -> CheckResult {
        let mut req = Request::get(&config.url);
        req.timeout = ctx.remaining().saturating_sub(DEADLINE_MARGIN).max(ctx.remaining() / 2);
        let r = match http::send(&req) {
            Ok(r) => r,
            Err(e) => return CheckResult::fail(e.to_string()),
        };
        let ms = r.time_to_headers.as_secs_f64() * 1000.0;
        let result = |status: Status, message: String| {
            CheckResult::new(status, message)
                .latency(r.time_to_headers)
                .metric("status_code", f64::from(r.status))
        };
        if r.status != config.expect_status {
            return result(Status::Fail, format!("HTTP {} (expected {})", r.status, config.expect_status));
        }
        if let Some(want) = &config.body_contains
            && !r.text().contains(want.as_str())
        {
            return result(Status::Fail, format!("HTTP {} but the body does not contain {want:?}", r.status));
        }
        if ms > config.warn_latency_ms {
            return result(Status::Warn, format!("HTTP {} in {ms:.0} ms (over {} ms)", r.status, config.warn_latency_ms));
        }
        result(Status::Ok, format!("HTTP {} in {ms:.1} ms", r.status))
    }
}

outpost_plugin_sdk::export_sensor!(Plugin);
