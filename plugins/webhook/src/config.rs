//! Configuration of the webhook notifier (the `[notifier.config]` table).

use outpost_plugin_sdk::http::Url;
use outpost_plugin_sdk::prelude::*;
use std::collections::BTreeMap;

/// PagerDuty's Events API v2 endpoint, used when `format = "pagerduty"` and
/// no `url` is written.
pub const PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// Headers the plugin sets itself; the `headers` table may not replace them.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "idempotency-key",
    "x-outpost-signature",
    "x-outpost-event",
    "transfer-encoding",
    "connection",
];

/// PagerDuty's accepted `payload.severity` values.
pub const SEVERITIES: &[&str] = &["critical", "error", "warning", "info"];

/// Which payload is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The versioned Outpost payload (`outpost.alert.v1`).
    #[default]
    Outpost,
    /// A PagerDuty Events API v2 event.
    Pagerduty,
}

impl Format {
    /// How the receiver is named in messages.
    pub fn receiver(self) -> &'static str {
        match self {
            Format::Outpost => "the webhook receiver",
            Format::Pagerduty => "PagerDuty",
        }
    }
}

/// What the operator writes.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where to POST. Required for `outpost`; defaults to
    /// [`PAGERDUTY_URL`] for `pagerduty`.
    #[serde(default)]
    pub url: Option<String>,
    /// `outpost` (default) or `pagerduty`.
    #[serde(default)]
    pub format: Format,
    /// Extra request headers (for example `Authorization`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Key of the `X-Outpost-Signature` HMAC-SHA256 header; no header when
    /// absent.
    #[serde(default)]
    pub secret: Option<String>,
    /// PagerDuty integration key (Events API v2); `pagerduty` only.
    #[serde(default)]
    pub routing_key: Option<String>,
    /// PagerDuty `payload.severity` of triggered alerts; `pagerduty` only.
    #[serde(default)]
    pub severity: Option<String>,
}

/// Name, version and configuration keys.
pub fn info() -> PluginInfo {
    PluginInfo::notifier(
        "webhook",
        env!("CARGO_PKG_VERSION"),
        "POSTs incident notifications as JSON: the versioned Outpost payload (outpost.alert.v1, optionally HMAC-signed) or PagerDuty Events API v2",
    )
    .field(ConfigField::optional(
        "url",
        "url",
        None,
        "receiver URL; required for format outpost, defaults to the PagerDuty Events v2 endpoint for pagerduty",
    ))
    .field(ConfigField::optional(
        "format",
        "string",
        Some("\"outpost\""),
        "outpost or pagerduty",
    ))
    .field(ConfigField::optional(
        "headers",
        "table",
        Some("{}"),
        "extra request headers, e.g. Authorization",
    ))
    .field(ConfigField::optional(
        "secret",
        "string",
        None,
        "HMAC-SHA256 key for the X-Outpost-Signature header",
    ))
    .field(ConfigField::optional(
        "routing_key",
        "string",
        None,
        "PagerDuty integration key (required for format pagerduty)",
    ))
    .field(ConfigField::optional(
        "severity",
        "string",
        Some("\"critical\""),
        "PagerDuty severity: critical, error, warning or info",
    ))
}

impl Config {
    /// The URL requests go to.
    pub fn url(&self) -> String {
        match (&self.url, self.format) {
            (Some(u), _) => u.clone(),
            (None, _) => PAGERDUTY_URL.to_string(),
        }
    }

    /// PagerDuty severity of triggered alerts.
    pub fn severity(&self) -> &str {
        self.severity.as_deref().unwrap_or("critical")
    }

    /// Semantic checks beyond deserialization; no network.
    pub fn check(&self) -> Result<(), ConfigError> {
        match (&self.url, self.format) {
            (None, Format::Outpost) => {
                return Err(ConfigError::new(
                    "url",
                    "missing; write the receiver's URL, e.g. url = \"https://hooks.example.com/outpost\"",
                ));
            }
            (Some(u), _) => {
                Url::parse(u).map_err(|e| ConfigError::new("url", e.to_string()))?;
            }
            (None, Format::Pagerduty) => {}
        }
        match self.format {
            Format::Pagerduty => {
                if self
                    .routing_key
                    .as_deref()
                    .is_none_or(|k| k.trim().is_empty())
                {
                    return Err(ConfigError::new(
                        "routing_key",
                        "format pagerduty needs the integration key of an Events API v2 integration",
                    ));
                }
                if !SEVERITIES.contains(&self.severity()) {
                    return Err(ConfigError::new(
                        "severity",
                        format!(
                            "`{}` is not one of {}",
                            self.severity(),
                            SEVERITIES.join(", ")
                        ),
                    ));
                }
            }
            Format::Outpost => {
                for key in ["routing_key", "severity"] {
                    let given = match key {
                        "routing_key" => self.routing_key.is_some(),
                        _ => self.severity.is_some(),
                    };
                    if given {
                        return Err(ConfigError::new(
                            key,
                            "only used with format = \"pagerduty\"",
                        ));
                    }
                }
            }
        }
        if self.secret.as_deref() == Some("") {
            return Err(ConfigError::new(
                "secret",
                "empty; remove the key or set a random string",
            ));
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
    fn outpost_needs_a_url_pagerduty_has_a_default() {
        assert_eq!(cfg(json!({})).unwrap_err().field, "url");
        let c = cfg(json!({"format": "pagerduty", "routing_key": "k"})).unwrap();
        assert_eq!(c.url(), PAGERDUTY_URL);
        let c =
            cfg(json!({"url": "http://127.0.0.1:1/x", "format": "pagerduty", "routing_key": "k"}))
                .unwrap();
        assert_eq!(c.url(), "http://127.0.0.1:1/x");
    }

    #[test]
    fn pagerduty_keys_are_checked() {
        assert_eq!(
            cfg(json!({"format": "pagerduty"})).unwrap_err().field,
            "routing_key"
        );
        let e = cfg(json!({"format": "pagerduty", "routing_key": "k", "severity": "high"}))
            .unwrap_err();
        assert_eq!(e.field, "severity");
        let e = cfg(json!({"url": "http://h/", "routing_key": "k"})).unwrap_err();
        assert_eq!(e.field, "routing_key");
        let e = cfg(json!({"url": "http://h/", "format": "opsgenie"})).unwrap_err();
        assert_eq!(e.field, "format");
    }

    #[test]
    fn headers_are_checked() {
        assert!(cfg(json!({"url": "http://h/", "headers": {"Authorization": "Bearer x"}})).is_ok());
        let e = cfg(json!({"url": "http://h/", "headers": {"Content-Type": "text/plain"}}))
            .unwrap_err();
        assert_eq!(e.field, "headers.Content-Type");
        let e = cfg(json!({"url": "http://h/", "headers": {"bad name": "x"}})).unwrap_err();
        assert!(e.message.contains("header name"));
        let e = cfg(json!({"url": "http://h/", "headers": {"X-A": "a\r\nX-B: b"}})).unwrap_err();
        assert!(e.message.contains("line break"));
        assert_eq!(
            cfg(json!({"url": "http://h/", "secret": ""}))
                .unwrap_err()
                .field,
            "secret"
        );
    }
}
