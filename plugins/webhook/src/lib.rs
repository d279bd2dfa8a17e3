//! webhook notifier (placeholder until implemented).
use outpost_plugin_sdk::prelude::*;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    url: String,
}

pub struct Plugin;

impl Notifier for Plugin {
    type Config = Config;
    fn info() -> PluginInfo {
        PluginInfo::notifier("webhook", env!("CARGO_PKG_VERSION"), "webhook notifier")
            .field(ConfigField::required("url", "string", "where to send"))
    }
    fn notify(config: Config, _alert: Alert, _ctx: &CheckContext) -> Result<(), DeliveryError> {
        Err(DeliveryError::permanent(format!(
            "not implemented yet ({})",
            config.url
        )))
    }
}

outpost_plugin_sdk::export_notifier!(Plugin);
