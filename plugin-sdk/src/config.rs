//! Typed configuration parsing.
//!
//! The agent passes a plugin's `config` table as JSON. [`parse_config`]
//! deserializes it into the plugin's own type and, on failure, names the
//! offending key as a dotted path so the agent can point the operator at
//! the right line of their TOML.

use crate::types::ConfigError;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Deserializes a plugin configuration, naming the bad field on error.
pub fn parse_config<T: DeserializeOwned>(json: &str) -> Result<T, ConfigError> {
    let de = &mut serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let mut field = if path == "." { String::new() } else { path };
        let inner = e.into_inner();
        // serde_json appends " at line L column C", which refers to the
        // generated JSON rather than anything the operator wrote.
        let mut message = inner.to_string();
        if let Some(i) = message.rfind(" at line ") {
            message.truncate(i);
        }
        // A missing key is reported at its parent: name the key itself.
        if let Some(missing) = message
            .strip_prefix("missing field `")
            .and_then(|m| m.strip_suffix('`'))
        {
            field = if field.is_empty() {
                missing.to_string()
            } else {
                format!("{field}.{missing}")
            };
        }
        ConfigError::new(field, message)
    })
}

/// Parses a duration written as `250ms`, `10s`, `5m`, `1h`, `2d` or a
/// combination such as `1h30m`; a bare number is seconds. The same parser
/// as the agent's (`outpost_types::duration`), with the same range checks.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    outpost_types::duration::parse(text).map_err(|e| e.to_string())
}

/// Serde helpers for fields written as durations (`"30s"`) or numbers of
/// seconds.
pub mod duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Secs(f64),
    }

    /// `#[serde(deserialize_with = "outpost_plugin_sdk::config::duration::deserialize")]`
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Text(t) => super::parse_duration(&t).map_err(serde::de::Error::custom),
            Raw::Secs(s) => {
                outpost_types::duration::from_secs_f64(s).map_err(serde::de::Error::custom)
            }
        }
    }

    /// The same for `Option<Duration>` fields (use with `#[serde(default)]`).
    pub fn deserialize_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        status: u16,
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Cfg {
        url: String,
        expect: Option<Inner>,
    }

    #[test]
    fn names_nested_field() {
        let e = parse_config::<Cfg>(r#"{"url":"x","expect":{"status":"no"}}"#).unwrap_err();
        assert_eq!(e.field, "expect.status");
        assert!(e.message.contains("invalid type"), "{}", e.message);
    }

    #[test]
    fn names_missing_and_unknown_fields() {
        let e = parse_config::<Cfg>(r#"{}"#).unwrap_err();
        assert!(e.message.contains("missing field `url`"), "{}", e.message);
        assert_eq!(e.field, "url");
        let e = parse_config::<Cfg>(r#"{"url":"x","urll":1}"#).unwrap_err();
        assert_eq!(e.field, "urll");
        assert!(e.message.contains("unknown field"), "{}", e.message);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("").is_err());
    }
}
