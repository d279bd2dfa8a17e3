//! Configuration of the Opsgenie notifier (the `[notifier.config]` table).

use outpost_plugin_sdk::http::Url;
use outpost_plugin_sdk::prelude::*;

/// The Alerts API host used when `api_url` is not written (EU accounts:
/// `https://api.eu.opsgenie.com`).
pub const DEFAULT_API_URL: &str = "https://api.opsgenie.com";

/// Opsgenie's priorities.
pub const PRIORITIES: &[&str] = &["P1", "P2", "P3", "P4", "P5"];

/// Responder types of the Alerts API.
pub const RESPONDER_TYPES: &[&str] = &["team", "user", "escalation", "schedule"];

/// One responder: `type` and exactly one of `id`, `name` (teams,
/// escalations, schedules) or `username` (users).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Responder {
    /// `team`, `user`, `escalation` or `schedule`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The responder's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The team's, escalation's or schedule's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The user's e-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// What the operator writes.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The API key of an "API" integration (sent as `GenieKey`).
    pub api_key: String,
    /// Alerts API base URL.
    #[serde(default)]
    pub api_url: Option<String>,
    /// `P1` ... `P5` for created alerts (Opsgenie's default is P3).
    #[serde(default)]
    pub priority: Option<String>,
    /// Who is notified (default: the integration's team).
    #[serde(default)]
    pub responders: Vec<Responder>,
    /// Tags on created alerts, besides `outpost`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Also acknowledge the Opsgenie alert when the incident is
    /// acknowledged in Outpost.
    #[serde(default)]
    pub acknowledge: bool,
}

/// Name, version and configuration keys.
pub fn info() -> PluginInfo {
    PluginInfo::notifier(
        "opsgenie",
        env!("CARGO_PKG_VERSION"),
        "Creates Opsgenie alerts (alias = agent:incident id), acknowledges and closes them (Alerts API v2)",
    )
    .field(ConfigField::required(
        "api_key",
        "string",
        "API key of an Opsgenie API integration",
    ))
    .field(ConfigField::optional(
        "api_url",
        "url",
        Some("\"https://api.opsgenie.com\""),
        "Alerts API base URL (EU: https://api.eu.opsgenie.com); write it so the allow-list lets the plugin reach it",
    ))
    .field(ConfigField::optional(
        "priority",
        "string",
        None,
        "P1 to P5 (Opsgenie's default: P3)",
    ))
    .field(ConfigField::optional(
        "responders",
        "list<table>",
        Some("[]"),
        "e.g. [{ type = \"team\", name = \"ops\" }]",
    ))
    .field(ConfigField::optional(
        "tags",
        "list<string>",
        Some("[]"),
        "tags besides \"outpost\"",
    ))
    .field(ConfigField::optional(
        "acknowledge",
        "bool",
        Some("false"),
        "acknowledge the Opsgenie alert when the incident is acknowledged in Outpost",
    ))
}

impl Config {
    /// The API base URL without a trailing `/`.
    pub fn api_url(&self) -> &str {
        self.api_url
            .as_deref()
            .unwrap_or(DEFAULT_API_URL)
            .trim_end_matches('/')
    }

    /// Semantic checks beyond deserialization; no network.
    pub fn check(&self) -> Result<(), ConfigError> {
        let k = self.api_key.trim();
        if k.is_empty() || k.chars().any(|c| c.is_whitespace() || c.is_control()) {
            // Never echo the key.
            return Err(ConfigError::new(
                "api_key",
                "not an API key; copy it from the API integration's settings",
            ));
        }
        if let Some(u) = &self.api_url {
            Url::parse(u).map_err(|e| ConfigError::new("api_url", e.to_string()))?;
        }
        if let Some(p) = &self.priority
            && !PRIORITIES.contains(&p.as_str())
        {
            return Err(ConfigError::new(
                "priority",
                format!("`{p}` is not one of {}", PRIORITIES.join(", ")),
            ));
        }
        for (i, r) in self.responders.iter().enumerate() {
            let field = format!("responders[{i}]");
            if !RESPONDER_TYPES.contains(&r.kind.as_str()) {
                return Err(ConfigError::new(
                    format!("{field}.type"),
                    format!("`{}` is not one of {}", r.kind, RESPONDER_TYPES.join(", ")),
                ));
            }
            let given = [&r.id, &r.name, &r.username]
                .iter()
                .filter(|v| v.is_some())
                .count();
            if given != 1 {
                return Err(ConfigError::new(
                    field,
                    "write exactly one of id, name (teams, escalations, schedules) or username (users)",
                ));
            }
            if r.username.is_some() && r.kind != "user" {
                return Err(ConfigError::new(
                    format!("{field}.username"),
                    "only users have a username; write name or id",
                ));
            }
            if r.name.is_some() && r.kind == "user" {
                return Err(ConfigError::new(
                    format!("{field}.name"),
                    "a user is named by username (e-mail address) or id",
                ));
            }
        }
        for (i, t) in self.tags.iter().enumerate() {
            if t.trim().is_empty() || t.chars().count() > 50 {
                return Err(ConfigError::new(
                    format!("tags[{i}]"),
                    "a tag has 1 to 50 characters",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(extra: serde_json::Value) -> Result<Config, ConfigError> {
        let mut v = json!({"api_key": "eb243592-faa2-4ba2-a551q-1afdf565c889"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let c: Config = outpost_plugin_sdk::parse_config(&v.to_string())?;
        c.check()?;
        Ok(c)
    }

    #[test]
    fn accepts_a_full_config() {
        let c = cfg(json!({"priority": "P1", "responders": [{"type": "team", "name": "ops"}, {"type": "user", "username": "a@b.c"}], "tags": ["web"], "acknowledge": true, "api_url": "https://api.eu.opsgenie.com/"})).unwrap();
        assert_eq!(c.api_url(), "https://api.eu.opsgenie.com");
        assert_eq!(cfg(json!({})).unwrap().api_url(), DEFAULT_API_URL);
    }

    #[test]
    fn names_the_bad_key() {
        assert_eq!(cfg(json!({"api_key": " "})).unwrap_err().field, "api_key");
        assert_eq!(
            cfg(json!({"priority": "high"})).unwrap_err().field,
            "priority"
        );
        assert_eq!(
            cfg(json!({"api_url": "opsgenie"})).unwrap_err().field,
            "api_url"
        );
        assert_eq!(
            cfg(json!({"responders": [{"type": "group", "name": "x"}]}))
                .unwrap_err()
                .field,
            "responders[0].type"
        );
        assert_eq!(
            cfg(json!({"responders": [{"type": "team"}]}))
                .unwrap_err()
                .field,
            "responders[0]"
        );
        assert_eq!(
            cfg(json!({"responders": [{"type": "team", "username": "a@b"}]}))
                .unwrap_err()
                .field,
            "responders[0].username"
        );
        assert_eq!(cfg(json!({"tags": [""]})).unwrap_err().field, "tags[0]");
    }
}
