//! `{{name}}`: an Outpost notifier. It POSTs each alert as JSON to `url`;
//! a 2xx answer is delivered, 429 and 5xx are retried by the agent, other
//! 4xx are permanent.
//!
//! `./build` makes `{{name}}.wasm`; `outpost plugin test {{name}}.wasm`
//! checks it against the conformance suite.

use outpost_plugin_sdk::delivery::{self, Receiver};
use outpost_plugin_sdk::http::{self, Request};
use outpost_plugin_sdk::prelude::*;

/// The configuration (`config = { ... }` of the notifier in outpost.toml).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    url: String,
}

/// The notifier.
pub struct Plugin;

const RECEIVER: Receiver<'static> = Receiver {
    name: "the receiver",
    item: "alert",
    redirect_advice: "check `url`",
};

impl Notifier for Plugin {
    type Config = Config;

    fn info() -> PluginInfo {
        PluginInfo::notifier("{{name}}", env!("CARGO_PKG_VERSION"), "Posts alerts as JSON")
            .field(ConfigField::required("url", "url", "the http:// or https:// URL to POST to"))
    }

    fn validate(config: &Config) -> Result<(), ConfigError> {
        if !(config.url.starts_with("http://") || config.url.starts_with("https://")) {
            return Err(ConfigError::new("url", format!("`url` must start with http:// or https://, got {:?}", config.url)));
        }
        Ok(())
    }

    fn notify(config: Config, alert: Alert, ctx: &CheckContext) -> Result<(), DeliveryError> {
        let body = serde_json::json!({
            "target": alert.target,
            "event": alert.event.as_str(),
            "state": alert.new_state,
            "message": alert.message,
            "ack_url": alert.ack_url,
        });
        let mut req = Request::post(&config.url, "application/json", body.to_string().into_bytes());
        req.timeout = delivery::exchange_timeout(ctx);
        let r = http::send(&req).map_err(|e| delivery::transport_error(RECEIVER.name, &e))?;
        delivery::classify(&RECEIVER, r.status, r.header("retry-after"), &r.text(), std::time::SystemTime::now())
    }
}

outpost_plugin_sdk::export_notifier!(Plugin);
