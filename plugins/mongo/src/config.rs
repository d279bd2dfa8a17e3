//! The sensor's configuration: the raw JSON shape ([`Config`]) and the
//! checked form ([`Settings`]) the check works from. Errors name the field.

use crate::uri::ConnString;
use outpost_plugin_sdk::{ConfigError, parse_duration};
use std::time::Duration;

/// The configuration as the agent passes it.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `mongodb://` connection string.
    pub uri: String,
    /// Time for the whole check (all hosts); the agent's timeout when
    /// absent or longer.
    #[serde(default)]
    pub timeout: Option<String>,
    /// `primary`, `secondary` or `any`.
    #[serde(default)]
    pub role: Option<String>,
    /// Latency above which the result is `warn`.
    #[serde(default)]
    pub warn_latency: Option<String>,
    /// Latency above which the result is `fail`.
    #[serde(default)]
    pub fail_latency: Option<String>,
    /// Replica-set name every host must report.
    #[serde(default)]
    pub replica_set: Option<String>,
}

/// The role the check expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedRole {
    /// Writable: `isWritablePrimary: true` (a replica-set primary, and
    /// also a standalone server or a mongos, which accept writes).
    Primary,
    /// A replica-set secondary.
    Secondary,
    /// Anything that answers.
    Any,
}

impl ExpectedRole {
    /// The name as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            ExpectedRole::Primary => "primary",
            ExpectedRole::Secondary => "secondary",
            ExpectedRole::Any => "any",
        }
    }
}

/// A valid configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The parsed connection string.
    pub conn: ConnString,
    /// Own time limit, if set.
    pub timeout: Option<Duration>,
    /// Expected role.
    pub role: ExpectedRole,
    /// Warning latency.
    pub warn_latency: Option<Duration>,
    /// Failure latency.
    pub fail_latency: Option<Duration>,
    /// Expected replica set (from `replica_set` or the URI's `replicaSet`).
    pub replica_set: Option<String>,
}

fn duration(field: &str, v: &Option<String>) -> Result<Option<Duration>, ConfigError> {
    match v {
        None => Ok(None),
        Some(s) => {
            let d = parse_duration(s).map_err(|m| ConfigError::new(field, m))?;
            if d.is_zero() {
                return Err(ConfigError::new(field, "must be more than 0"));
            }
            Ok(Some(d))
        }
    }
}

impl Settings {
    /// Checks `config`; the error names the offending field.
    pub fn from_config(config: &Config) -> Result<Settings, ConfigError> {
        let conn = ConnString::parse(&config.uri).map_err(|m| ConfigError::new("uri", m))?;
        let role = match config.role.as_deref().unwrap_or("any") {
            "primary" => ExpectedRole::Primary,
            "secondary" => ExpectedRole::Secondary,
            "any" => ExpectedRole::Any,
            other => {
                return Err(ConfigError::new(
                    "role",
                    format!("unknown role `{other}`; one of primary, secondary, any"),
                ));
            }
        };
        let timeout = duration("timeout", &config.timeout)?;
        let warn_latency = duration("warn_latency", &config.warn_latency)?;
        let fail_latency = duration("fail_latency", &config.fail_latency)?;
        if let (Some(w), Some(f)) = (warn_latency, fail_latency)
            && w > f
        {
            return Err(ConfigError::new(
                "warn_latency",
                format!(
                    "{} ms is above fail_latency ({} ms); the warning must come first",
                    w.as_millis(),
                    f.as_millis()
                ),
            ));
        }
        if let Some(rs) = &config.replica_set {
            if rs.is_empty() {
                return Err(ConfigError::new(
                    "replica_set",
                    "is empty; remove it or name the set",
                ));
            }
            if let Some(u) = &conn.replica_set
                && u != rs
            {
                return Err(ConfigError::new(
                    "replica_set",
                    format!("`{rs}` contradicts `replicaSet={u}` in `uri`"),
                ));
            }
        }
        let replica_set = config
            .replica_set
            .clone()
            .or_else(|| conn.replica_set.clone());
        Ok(Settings {
            conn,
            timeout,
            role,
            warn_latency,
            fail_latency,
            replica_set,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> Result<Settings, ConfigError> {
        let c: Config = outpost_plugin_sdk::parse_config(json)?;
        Settings::from_config(&c)
    }

    #[test]
    fn defaults_and_full() {
        let s = cfg(r#"{"uri": "mongodb://h"}"#).unwrap();
        assert_eq!(s.role, ExpectedRole::Any);
        assert!(s.timeout.is_none() && s.replica_set.is_none());
        let s = cfg(
            r#"{"uri": "mongodb://h/?replicaSet=rs0", "role": "secondary", "timeout": "2s",
                     "warn_latency": "100ms", "fail_latency": "1s"}"#,
        )
        .unwrap();
        assert_eq!(s.role, ExpectedRole::Secondary);
        assert_eq!(s.replica_set.as_deref(), Some("rs0"));
        assert_eq!(s.warn_latency, Some(Duration::from_millis(100)));
    }

    #[test]
    fn errors_name_the_field() {
        let field = |j: &str| cfg(j).unwrap_err().field;
        assert_eq!(field(r#"{"uri": "mongodb+srv://x"}"#), "uri");
        assert_eq!(field(r#"{"uri": "mongodb://h", "role": "leader"}"#), "role");
        assert_eq!(
            field(r#"{"uri": "mongodb://h", "timeout": "soon"}"#),
            "timeout"
        );
        assert_eq!(
            field(r#"{"uri": "mongodb://h", "timeout": "0s"}"#),
            "timeout"
        );
        assert_eq!(
            field(r#"{"uri": "mongodb://h", "warn_latency": "2s", "fail_latency": "1s"}"#),
            "warn_latency"
        );
        assert_eq!(
            field(r#"{"uri": "mongodb://h/?replicaSet=a", "replica_set": "b"}"#),
            "replica_set"
        );
        assert_eq!(field(r#"{"uri": "mongodb://h", "rol": "any"}"#), "rol");
        assert_eq!(field(r#"{"uri": 5}"#), "uri");
    }
}
