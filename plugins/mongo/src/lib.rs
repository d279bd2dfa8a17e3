//! MongoDB sensor (placeholder until implemented).
use outpost_plugin_sdk::prelude::*;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    uri: String,
}

pub struct Mongo;

impl Sensor for Mongo {
    type Config = Config;
    fn info() -> PluginInfo {
        PluginInfo::sensor(
            "mongo",
            env!("CARGO_PKG_VERSION"),
            "MongoDB reachability and role",
        )
        .field(ConfigField::required(
            "uri",
            "string",
            "mongodb:// connection string",
        ))
    }
    fn check(config: Config, _ctx: &CheckContext) -> CheckResult {
        CheckResult::error(format!("not implemented yet ({})", config.uri))
    }
}

outpost_plugin_sdk::export_sensor!(Mongo);
