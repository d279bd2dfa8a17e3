//! A sensor built against `outpost:plugin@0.1.0` as it was published
//! (`wit-0.1.0/`: the types interface still called `types`, no WASI in the
//! world): an agent of any later 0.1.x must load and run it.
#[cfg(target_family = "wasm")]
mod old {
    wit_bindgen::generate!({
        path: "wit-0.1.0",
        world: "sensor-plugin",
    });
    use exports::outpost::plugin::sensor::Guest;
    use outpost::plugin::types::{CheckResult, ConfigError, PluginInfo, PluginKind, Status};

    struct Old;
    impl Guest for Old {
        fn info() -> PluginInfo {
            PluginInfo {
                name: "old-minor".into(),
                version: "0.1.0".into(),
                kind: PluginKind::Sensor,
                description: "Built against outpost:plugin@0.1.0 (test fixture)".into(),
                config: vec![],
            }
        }
        fn validate(_config: String) -> Result<(), ConfigError> {
            Ok(())
        }
        fn check(_config: String, _timeout_ms: u32) -> CheckResult {
            CheckResult {
                status: Status::Ok,
                message: "built against 0.1.0".into(),
                latency_ms: 0.0,
                metrics: vec![],
                details: None,
            }
        }
    }
    export!(Old);
}

fn main() {}
