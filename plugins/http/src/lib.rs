//! HTTP(S) sensor (placeholder until implemented).
use outpost_plugin_sdk::prelude::*;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    url: String,
}

pub struct Http;

impl Sensor for Http {
    type Config = Config;
    fn info() -> PluginInfo {
        PluginInfo::sensor(
            "http",
            env!("CARGO_PKG_VERSION"),
            "HTTP(S) availability check",
        )
        .field(ConfigField::required("url", "string", "URL to request"))
    }
    fn check(config: Config, ctx: &CheckContext) -> CheckResult {
        let mut req = outpost_plugin_sdk::http::Request::get(&config.url);
        req.timeout = ctx.remaining();
        match outpost_plugin_sdk::http::send(&req) {
            Ok(r) if (200..300).contains(&r.status) => {
                CheckResult::ok(format!("HTTP {}", r.status)).latency(r.time_to_headers)
            }
            Ok(r) => CheckResult::fail(format!("HTTP {} (expected 200-299)", r.status))
                .latency(r.time_to_headers),
            Err(e) => CheckResult::fail(e.to_string()),
        }
    }
}

outpost_plugin_sdk::export_sensor!(Http);
