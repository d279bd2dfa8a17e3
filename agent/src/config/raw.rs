//! The configuration file as written (the "low" form): serde structs that
//! mirror the TOML exactly, with spans kept where later checks need to point
//! at a line. Unknown keys are errors. Nothing here is validated beyond
//! types; see [`super`] for the checked form.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use toml::Spanned;

/// A duration written as `"30s"`, `"5m"`, `"1h30m"`, or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a duration such as \"30s\", \"5m\" or a number of seconds")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Dur, E> {
                outpost_types::duration::parse(v)
                    .map(Dur)
                    .map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Dur, E> {
                self.visit_f64(v as f64)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Dur, E> {
                self.visit_f64(v as f64)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Dur, E> {
                outpost_types::duration::from_secs_f64(v)
                    .map(Dur)
                    .map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// The whole file.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    pub agent: Option<Spanned<RawAgent>>,
    #[serde(default)]
    pub include: Vec<Spanned<String>>,
    #[serde(default)]
    pub defaults: RawDefaults,
    #[serde(default)]
    pub sensor: Vec<Spanned<RawSensor>>,
    #[serde(default)]
    pub notifier: Vec<Spanned<RawNotifier>>,
    #[serde(default)]
    pub escalation: Vec<Spanned<RawEscalation>>,
    #[serde(default)]
    pub maintenance: Vec<Spanned<RawMaintenance>>,
    // Topology and federation (see `super::topology`).
    #[serde(default)]
    pub system: Vec<Spanned<RawNode>>,
    #[serde(default)]
    pub service: Vec<Spanned<RawNode>>,
    #[serde(default)]
    pub peer: Vec<Spanned<RawPeer>>,
    #[serde(default)]
    pub push: Vec<Spanned<RawPush>>,
    pub api: Option<RawApi>,
    // Providers and kind rules (see `super::providers`).
    #[serde(default)]
    pub provider: Vec<Spanned<super::providers::RawProvider>>,
    #[serde(default)]
    pub kind: Vec<Spanned<super::providers::RawKind>>,
}

/// A file pulled in by `include`: only sensors.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawIncluded {
    #[serde(default)]
    pub sensor: Vec<Spanned<RawSensor>>,
}

/// `[agent]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    pub name: Option<Spanned<String>>,
    pub data_dir: Option<String>,
    pub listen: Option<Spanned<String>>,
    pub public_url: Option<Spanned<String>>,
    pub admin_token_file: Option<String>,
    pub raw_retention: Option<Dur>,
    pub rollup_retention: Option<Dur>,
    #[serde(default)]
    pub plugins: RawPluginLimits,
    pub tls: Option<super::tls::RawTls>,
    #[serde(default)]
    pub http: super::tls::RawHttp,
    pub connectivity: Option<Spanned<RawConnectivity>>,
}

/// `[agent.connectivity]`: canaries that tell whether the agent itself is
/// online.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConnectivity {
    pub targets: Vec<Spanned<String>>,
    pub interval: Option<Spanned<Dur>>,
    pub timeout: Option<Spanned<Dur>>,
}

/// `[agent.plugins]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawPluginLimits {
    pub memory_mb: Option<u32>,
    pub concurrency: Option<u32>,
    pub output_kb: Option<u32>,
    pub reuse_instances: Option<bool>,
    pub warm_instances: Option<u32>,
    pub max_connections: Option<u32>,
    pub max_resources: Option<u32>,
    pub log_lines: Option<u32>,
    pub log_kb: Option<u32>,
    pub message_kb: Option<u32>,
    pub max_metrics: Option<u32>,
    pub details_kb: Option<u32>,
    pub max_plugin_mb: Option<u32>,
}

/// `[defaults]`: values every sensor inherits.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    pub interval: Option<Dur>,
    pub timeout: Option<Dur>,
    pub retry_interval: Option<Dur>,
    pub fail_after: Option<u32>,
    pub recover_after: Option<u32>,
}

/// `[[sensor]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSensor {
    pub name: Spanned<String>,
    pub plugin: Spanned<String>,
    pub interval: Option<Spanned<Dur>>,
    pub timeout: Option<Spanned<Dur>>,
    pub jitter: Option<Dur>,
    pub retry_interval: Option<Dur>,
    pub fail_after: Option<Spanned<u32>>,
    pub recover_after: Option<Spanned<u32>>,
    pub category: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub allow: Option<Vec<Spanned<String>>>,
    pub enabled: Option<bool>,
    pub config: Option<Spanned<toml::Table>>,
    #[serde(default)]
    pub threshold: Vec<Spanned<RawThreshold>>,
}

/// `[[sensor.threshold]]`: a rule on a metric the plugin returns.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawThreshold {
    pub metric: String,
    pub warn_above: Option<f64>,
    pub fail_above: Option<f64>,
    pub warn_below: Option<f64>,
    pub fail_below: Option<f64>,
    #[serde(rename = "for")]
    pub for_: Option<Dur>,
}

/// `[[notifier]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotifier {
    pub name: Spanned<String>,
    pub plugin: Spanned<String>,
    pub timeout: Option<Dur>,
    pub keepalive: Option<Spanned<Dur>>,
    pub allow: Option<Vec<Spanned<String>>>,
    pub config: Option<Spanned<toml::Table>>,
}

/// `[[escalation]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEscalation {
    pub name: Spanned<String>,
    pub targets: Vec<Spanned<String>>,
    pub alert_after: Option<Dur>,
    pub repeat_every: Option<Dur>,
    pub notify_on_resolve: Option<bool>,
    #[serde(default)]
    pub level: Vec<Spanned<RawLevel>>,
}

/// `[[escalation.level]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLevel {
    pub notify: Vec<Spanned<String>>,
    pub ack_within: Option<Dur>,
}

/// `[[maintenance]]`: a one-off window (`from`/`to`) or a weekly one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMaintenance {
    pub targets: Vec<Spanned<String>>,
    pub from: Option<Spanned<String>>,
    pub to: Option<Spanned<String>>,
    pub days: Option<Vec<Spanned<String>>>,
    pub start: Option<Spanned<String>>,
    pub duration: Option<Dur>,
    pub reason: Option<String>,
}

/// `[[system]]` or `[[service]]` as written (a system lists `members`, a
/// service `depends_on`; the keys are otherwise the same).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    pub name: Spanned<String>,
    pub members: Option<Spanned<Vec<Spanned<String>>>>,
    pub depends_on: Option<Spanned<Vec<Spanned<String>>>>,
    pub rule: Option<Spanned<String>>,
    pub quorum: Option<Spanned<u32>>,
    pub agree: Option<Spanned<u32>>,
    pub degraded_below: Option<Spanned<u32>>,
    pub category: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `[[peer]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPeer {
    pub name: Spanned<String>,
    pub url: Option<Spanned<String>>,
    pub token: Option<String>,
    pub token_file: Option<Spanned<String>>,
    pub interval: Option<Spanned<Dur>>,
    pub timeout: Option<Spanned<Dur>>,
    pub stale_after_misses: Option<Spanned<u32>>,
    pub tls: Option<Spanned<super::tls::RawClientTls>>,
}

/// `[[push]]` as written: an aggregator this agent posts its status to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPush {
    pub url: Spanned<String>,
    pub token: Option<String>,
    pub token_file: Option<Spanned<String>>,
    pub interval: Option<Dur>,
    pub tls: Option<Spanned<super::tls::RawClientTls>>,
}

/// `[api]` as written.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub read_token_file: Option<Spanned<String>>,
    pub push_token_file: Option<Spanned<String>>,
}
