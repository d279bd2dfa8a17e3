//! A provider that misbehaves on request, one way per `mode`, for the
//! bounds on discoveries. Config: `{"mode": "<mode>", "count": N}`.
//!
//! Modes: `many` (`count` objects, default 1,000,000), `deep` (a parent
//! chain of `count` objects), `cycle` (objects that are each other's
//! parents, plus one good object), `collide` (the same id several times,
//! plus one good object), `huge-id` (an id of 1 MiB, plus one good
//! object), `fail` (a typed error), `ok` (`count` well-formed objects).
// Natively (clippy, tests) the export macro is compiled out.
#![cfg_attr(not(target_family = "wasm"), allow(dead_code))]
use outpost_plugin_sdk::prelude::*;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    mode: String,
    #[serde(default)]
    count: Option<usize>,
}

struct HostileProvider;

const KIND: &str = "example.com/Thing";

fn good() -> DiscoveredObject {
    DiscoveredObject::new(KIND, "good").attr("url", "http://127.0.0.1:9/")
}

impl Provider for HostileProvider {
    type Config = Config;
    fn info() -> PluginInfo {
        PluginInfo::provider("hostile-provider", "0", "misbehaves on request").produces(KIND)
    }
    fn discover(
        c: &Config,
        _cursor: Option<&str>,
        _ctx: &CheckContext,
    ) -> Result<Discovery, DiscoveryError> {
        let objects = match c.mode.as_str() {
            "many" => (0..c.count.unwrap_or(1_000_000))
                .map(|i| DiscoveredObject {
                    kind: KIND.into(),
                    id: i.to_string(),
                    ..Default::default()
                })
                .collect(),
            "deep" => (0..c.count.unwrap_or(10_000))
                .map(|i| {
                    let o = DiscoveredObject::new(KIND, format!("d{i}"));
                    if i == 0 {
                        o
                    } else {
                        o.parent(format!("d{}", i - 1))
                    }
                })
                .collect(),
            "cycle" => vec![
                DiscoveredObject::new(KIND, "a").parent("b"),
                DiscoveredObject::new(KIND, "b").parent("c"),
                DiscoveredObject::new(KIND, "c").parent("a"),
                good(),
            ],
            "collide" => vec![
                DiscoveredObject::new(KIND, "same").attr("url", "http://127.0.0.1:9/a"),
                DiscoveredObject::new(KIND, "same").attr("url", "http://127.0.0.1:9/b"),
                DiscoveredObject::new(KIND, "same"),
                good(),
            ],
            "huge-id" => vec![DiscoveredObject::new(KIND, "x".repeat(1 << 20)), good()],
            "fail" => {
                return Err(DiscoveryError::new(
                    DiscoveryErrorKind::Unavailable,
                    "the inventory is down",
                ));
            }
            _ => (0..c.count.unwrap_or(1))
                .map(|i| {
                    DiscoveredObject::new(KIND, format!("obj-{i}"))
                        .label("group", format!("g{}", i % 10))
                        .attr("url", format!("http://127.0.0.1:9/{i}"))
                })
                .collect(),
        };
        Ok(Discovery {
            objects: Some(objects),
            cursor: None,
        })
    }
}

outpost_plugin_sdk::export_provider!(HostileProvider);

fn main() {}
