//! Configuration of the Alertmanager notifier (the `[notifier.config]`
//! table).

use outpost_plugin_sdk::http::Url;
use outpost_plugin_sdk::prelude::*;
use std::collections::BTreeMap;
use std::time::Duration;

/// The API path alerts are posted to, appended to each member's base URL.
pub const ALERTS_PATH: &str = "/api/v2/alerts";

/// Default `alertname` label.
pub const DEFAULT_ALERTNAME: &str = "OutpostTargetDown";

/// Default of `ends_after`.
pub const DEFAULT_ENDS_AFTER: Duration = Duration::from_secs(3600);

/// Labels the plugin sets itself; `labels` may not replace them.
pub const RESERVED_LABELS: &[&str] = &["alertname", "target", "target_kind", "agent"];

/// Headers the plugin sets itself; `headers` may not replace them.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
];

/// What the operator writes.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Base URL of every Alertmanager of the cluster
    /// (`http://am-1:9093`); each gets every alert.
    pub urls: Vec<String>,
    /// The `alertname` label.
    #[serde(default)]
    pub alertname: Option<String>,
    /// Extra labels on every alert (`severity`, `team`, ...).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Extra annotations on every alert (`runbook_url`, ...).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Whether the agent's name is a label (`true`, the default) or only an
    /// annotation (`false`: agents watching the same target post the same
    /// alert, which Alertmanager then deduplicates).
    #[serde(default = "yes")]
    pub agent_label: bool,
    /// How long a firing alert stays firing in Alertmanager without being
    /// posted again (`endsAt` = event time + this).
    #[serde(
        default,
        deserialize_with = "outpost_plugin_sdk::config::duration::deserialize_opt"
    )]
    pub ends_after: Option<Duration>,
    /// `generatorURL` of every alert; default: the agent's page, taken from
    /// the ack link.
    #[serde(default)]
    pub generator_url: Option<String>,
    /// Extra request headers (`Authorization` for a proxy in front).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

/// Name, version and configuration keys.
pub fn info() -> PluginInfo {
    PluginInfo::notifier(
        "alertmanager",
        env!("CARGO_PKG_VERSION"),
        "Posts incidents to Prometheus Alertmanager (API v2), to every member of an HA cluster",
    )
    .field(ConfigField::required(
        "urls",
        "list<url>",
        "base URL of every Alertmanager of the cluster, e.g. [\"http://am-1:9093\", \"http://am-2:9093\"]",
    ))
    .field(ConfigField::optional(
        "alertname",
        "string",
        Some("\"OutpostTargetDown\""),
        "the alertname label",
    ))
    .field(ConfigField::optional(
        "labels",
        "table",
        Some("{}"),
        "extra labels, e.g. { severity = \"critical\" }",
    ))
    .field(ConfigField::optional(
        "annotations",
        "table",
        Some("{}"),
        "extra annotations, e.g. { runbook_url = \"https://...\" }",
    ))
    .field(ConfigField::optional(
        "agent_label",
        "bool",
        Some("true"),
        "agent name as a label (false: annotation only, so several agents' alerts deduplicate)",
    ))
    .field(ConfigField::optional(
        "ends_after",
        "duration",
        Some("\"1h\""),
        "endsAt of a firing alert = event time + this; give the notifier a keepalive well under it so open (and acknowledged) incidents stay firing",
    ))
    .field(ConfigField::optional(
        "generator_url",
        "string",
        None,
        "generatorURL; default: the agent's page, from the ack link",
    ))
    .field(ConfigField::optional(
        "headers",
        "table",
        Some("{}"),
        "extra request headers, e.g. Authorization",
    ))
}

/// A Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with
/// `__` (reserved for internal use).
pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

impl Config {
    /// The `alertname` label.
    pub fn alertname(&self) -> &str {
        self.alertname.as_deref().unwrap_or(DEFAULT_ALERTNAME)
    }

    /// How long a firing alert stays firing without a re-post.
    pub fn ends_after(&self) -> Duration {
        self.ends_after.unwrap_or(DEFAULT_ENDS_AFTER)
    }

    /// Where alerts go: each member's `.../api/v2/alerts`.
    pub fn endpoints(&self) -> Vec<String> {
        self.urls.iter().map(|u| endpoint(u)).collect()
    }

    /// Semantic checks beyond deserialization; no network.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.urls.is_empty() {
            return Err(ConfigError::new(
                "urls",
                "empty; list every Alertmanager of the cluster, e.g. urls = [\"http://am-1:9093\", \"http://am-2:9093\"]",
            ));
        }
        for (i, u) in self.urls.iter().enumerate() {
            let field = format!("urls[{i}]");
            Url::parse(u).map_err(|e| ConfigError::new(&field, e.to_string()))?;
            if u.contains(['?', '#']) {
                return Err(ConfigError::new(
                    field,
                    "write the Alertmanager's base URL without query or fragment",
                ));
            }
            if self.urls[..i].iter().any(|p| endpoint(p) == endpoint(u)) {
                return Err(ConfigError::new(field, "listed twice"));
            }
        }
        if let Some(name) = &self.alertname
            && name.trim().is_empty()
        {
            return Err(ConfigError::new("alertname", "empty"));
        }
        for (name, value) in &self.labels {
            let field = format!("labels.{name}");
            if !valid_label_name(name) {
                return Err(ConfigError::new(
                    field,
                    "not a valid label name (letters, digits and _, not starting with a digit or __)",
                ));
            }
            if RESERVED_LABELS.contains(&name.as_str()) {
                return Err(ConfigError::new(
                    field,
                    "set by the plugin itself (use `alertname` for the alert name)",
                ));
            }
            if value.is_empty() {
                return Err(ConfigError::new(
                    field,
                    "empty; Alertmanager treats an empty label as absent",
                ));
            }
        }
        for name in self.annotations.keys() {
            let field = format!("annotations.{name}");
            if !valid_label_name(name) {
                return Err(ConfigError::new(
                    field,
                    "not a valid annotation name (letters, digits and _)",
                ));
            }
            if crate::payload::RESERVED_ANNOTATIONS.contains(&name.as_str()) {
                return Err(ConfigError::new(field, "set by the plugin itself"));
            }
        }
        if let Some(d) = self.ends_after
            && d < Duration::from_secs(60)
        {
            return Err(ConfigError::new(
                "ends_after",
                "must be at least 1m, or alerts flap between re-posts",
            ));
        }
        if let Some(g) = &self.generator_url {
            Url::parse(g).map_err(|e| ConfigError::new("generator_url", e.to_string()))?;
        }
        for (name, value) in &self.headers {
            let field = format!("headers.{name}");
            let token = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token {
                return Err(ConfigError::new(field, "not a valid HTTP header name"));
            }
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(ConfigError::new(
                    field,
                    "set by the plugin itself and cannot be overridden",
                ));
            }
            if value.contains(['\r', '\n']) {
                return Err(ConfigError::new(field, "the value contains a line break"));
            }
        }
        Ok(())
    }
}

/// `base` + `/api/v2/alerts`, unless `base` already ends with it.
pub fn endpoint(base: &str) -> String {
    let b = base.trim_end_matches('/');
    if b.ends_with(ALERTS_PATH) {
        b.to_string()
    } else {
        format!("{b}{ALERTS_PATH}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(v: serde_json::Value) -> Result<Config, ConfigError> {
        let c: Config = outpost_plugin_sdk::parse_config(&v.to_string())?;
        c.check()?;
        Ok(c)
    }

    #[test]
    fn urls_become_alert_endpoints() {
        let c =
            cfg(json!({"urls": ["http://a:9093", "http://b:9093/", "http://c/am/api/v2/alerts"]}))
                .unwrap();
        assert_eq!(
            c.endpoints(),
            [
                "http://a:9093/api/v2/alerts",
                "http://b:9093/api/v2/alerts",
                "http://c/am/api/v2/alerts"
            ]
        );
        assert_eq!(c.alertname(), DEFAULT_ALERTNAME);
        assert_eq!(c.ends_after(), DEFAULT_ENDS_AFTER);
        assert!(c.agent_label);
    }

    #[test]
    fn bad_keys_are_named() {
        assert!(cfg(json!({})).unwrap_err().message.contains("urls"));
        assert_eq!(cfg(json!({"urls": []})).unwrap_err().field, "urls");
        assert_eq!(
            cfg(json!({"urls": ["http://a", "am-2:9093"]}))
                .unwrap_err()
                .field,
            "urls[1]"
        );
        assert_eq!(
            cfg(json!({"urls": ["http://a", "http://a/"]}))
                .unwrap_err()
                .field,
            "urls[1]"
        );
        let u = json!(["http://a"]);
        let e = cfg(json!({"urls": u, "labels": {"target": "x"}})).unwrap_err();
        assert_eq!(e.field, "labels.target");
        let e = cfg(json!({"urls": u, "labels": {"1bad": "x"}})).unwrap_err();
        assert_eq!(e.field, "labels.1bad");
        let e = cfg(json!({"urls": u, "labels": {"team": ""}})).unwrap_err();
        assert_eq!(e.field, "labels.team");
        let e = cfg(json!({"urls": u, "annotations": {"run-book": "x"}})).unwrap_err();
        assert_eq!(e.field, "annotations.run-book");
        let e = cfg(json!({"urls": u, "annotations": {"summary": "x"}})).unwrap_err();
        assert_eq!(e.field, "annotations.summary");
        let e = cfg(json!({"urls": u, "ends_after": "10s"})).unwrap_err();
        assert_eq!(e.field, "ends_after");
        let e = cfg(json!({"urls": u, "ends_after": "soon"})).unwrap_err();
        assert_eq!(e.field, "ends_after");
        let e = cfg(json!({"urls": u, "headers": {"Content-Type": "x"}})).unwrap_err();
        assert_eq!(e.field, "headers.Content-Type");
        let e = cfg(json!({"urls": u, "alertname": " "})).unwrap_err();
        assert_eq!(e.field, "alertname");
        let e = cfg(json!({"urls": u, "url": "http://a"})).unwrap_err();
        assert!(e.message.contains("unknown field"), "{}", e.message);
        assert!(
            cfg(json!({"urls": u, "labels": {"severity": "critical"}, "ends_after": "2h"})).is_ok()
        );
    }
}
