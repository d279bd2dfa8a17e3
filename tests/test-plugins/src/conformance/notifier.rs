// A notifier that breaks exactly one rule of `outpost plugin test`, the
// one named by `BROKEN` in the bin that includes this file.
// Config: `{"url": "..."}`.

use outpost_plugin_sdk::http::{self, Request};
use outpost_plugin_sdk::prelude::*;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    url: String,
}

struct Broken;

impl Notifier for Broken {
    type Config = Config;

    fn info() -> PluginInfo {
        PluginInfo::notifier("broken-notifier", "0.1.0", "Breaks one conformance rule (test fixture)")
            .field(ConfigField::required("url", "string", "the receiver"))
    }

    fn notify(config: Config, _alert: Alert, ctx: &CheckContext) -> Result<(), DeliveryError> {
        if BROKEN == "notify.delivers" {
            // Claims success without sending anything.
            return Ok(());
        }
        let mut req = Request::post(&config.url, "application/json", b"{}".to_vec());
        req.timeout = ctx.remaining() / 2;
        let r = http::send(&req).map_err(|e| DeliveryError::retry(e.to_string()))?;
        match r.status {
            200..=299 => Ok(()),
            s if BROKEN == "notify.retryable-500" => Err(DeliveryError::permanent(format!("HTTP {s}"))),
            s if BROKEN == "notify.permanent-400" => Err(DeliveryError::retry(format!("HTTP {s}"))),
            s if s >= 500 => Err(DeliveryError::retry(format!("HTTP {s}"))),
            s => Err(DeliveryError::permanent(format!("HTTP {s}"))),
        }
    }
}

outpost_plugin_sdk::export_notifier!(Broken);

fn main() {}
