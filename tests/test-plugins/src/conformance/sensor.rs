// A sensor that breaks exactly one rule of `outpost plugin test`, the one
// named by `BROKEN` in the bin that includes this file; it follows every
// other rule where it can. Config: `{"url": "..."}`.

use outpost_plugin_sdk::http::{self, HttpError, Request};
use outpost_plugin_sdk::prelude::*;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    // Any JSON type, so the wrong-type rule can be broken on purpose.
    #[serde(default)]
    url: Option<serde_json::Value>,
}

struct Broken;

impl Sensor for Broken {
    type Config = Config;

    fn info() -> PluginInfo {
        if BROKEN == "info.well-formed" {
            // No name, no description, and a notifier's kind on a sensor.
            return PluginInfo::notifier("", "", "");
        }
        PluginInfo::sensor("broken", "0.1.0", "Breaks one conformance rule (test fixture)")
            .field(ConfigField::required("url", "string", "the target"))
    }

    fn validate(config: &Config) -> Result<(), ConfigError> {
        match (BROKEN, &config.url) {
            ("validate.accepts", _) => Err(ConfigError::new("url", "never good enough")),
            ("validate.rejects-empty", _) => Ok(()),
            (_, None) => Err(ConfigError::new("url", "missing required key `url`")),
            ("validate.rejects-wrong-type", Some(_)) => Ok(()),
            (_, Some(serde_json::Value::String(_))) => Ok(()),
            (_, Some(_)) => Err(ConfigError::new("url", "must be a string")),
        }
    }

    fn check(config: &Config, ctx: &CheckContext) -> CheckResult {
        let url = match &config.url {
            Some(serde_json::Value::String(u)) => u.clone(),
            _ => return CheckResult::error("no url"),
        };
        if BROKEN == "check.ok-200" {
            return CheckResult::fail("always failing");
        }
        let mut req = Request::get(&url);
        req.timeout = if BROKEN == "check.deadline" {
            // Waits longer than the agent allows.
            ctx.timeout() * 3
        } else {
            ctx.remaining().saturating_sub(std::time::Duration::from_millis(100))
        };
        match http::send(&req) {
            Ok(r) if BROKEN == "check.fail-500" || (200..300).contains(&r.status) => {
                CheckResult::ok(format!("HTTP {}", r.status))
            }
            Ok(r) => CheckResult::fail(format!("HTTP {}", r.status)),
            Err(HttpError::Denied(h)) if BROKEN == "check.denied" => panic!("denied: {h}"),
            Err(e) if BROKEN == "check.refused" => CheckResult::ok(format!("ignoring {e}")),
            Err(e) => CheckResult::fail(e.to_string()),
        }
    }
}

outpost_plugin_sdk::export_sensor!(Broken);

fn main() {}
