//! The sensor's configuration: what the operator writes in the sensor's
//! `config` table, deserialized into types that can only hold valid values
//! (status-code patterns, compiled regex, JSON pointers, operators), plus
//! the cross-field checks of [`validate`].
//!
//! Errors name the offending key (serde's path, or the field given to
//! [`ConfigError::new`]) so the agent can point at the TOML line. This
//! module performs no I/O.

use crate::expect::StatusPattern;
use crate::json_cond::JsonCondition;
use outpost_plugin_sdk::ConfigError;
use outpost_plugin_sdk::config::duration;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Warn this many days before the certificate expires. ACME clients renew
/// at 30 days left, so 14 days means renewal has already failed for two
/// weeks, and still leaves two weeks for a human to fix it.
pub const DEFAULT_CERT_WARN_DAYS: f64 = 14.0;

/// Fail this many days before expiry: enough to cover a weekend plus a
/// day, after which clients start refusing the server.
pub const DEFAULT_CERT_FAIL_DAYS: f64 = 3.0;

/// Redirects followed when `follow_redirects` is on. Health endpoints
/// redirect once or twice (http→https, add a slash); 5 stops loops fast.
pub const DEFAULT_MAX_REDIRECTS: u32 = 5;

/// Body bytes read by default: health and status documents are small, and
/// 1 MiB keeps the plugin's memory far below the agent's 64 MiB cap.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

/// Largest `max_body_bytes` accepted: the body is held in the plugin's
/// memory (capped by the agent at 64 MiB by default) along with its copy
/// as text and, for `json` conditions, its parsed form.
pub const MAX_BODY_BYTES_LIMIT: usize = 16 << 20;

/// The sensor's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `http://` or `https://` URL to request.
    pub url: String,
    /// HTTP method.
    #[serde(default = "default_method")]
    pub method: String,
    /// Request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request body.
    #[serde(default)]
    pub body: Option<String>,
    /// Status codes that count as success (default `["2xx"]`).
    #[serde(default)]
    pub expect_status: Option<Vec<StatusPattern>>,
    /// Warn when the response takes at least this long.
    #[serde(default, deserialize_with = "duration::deserialize_opt")]
    pub warn_latency: Option<Duration>,
    /// Fail when the response takes at least this long.
    #[serde(default, deserialize_with = "duration::deserialize_opt")]
    pub fail_latency: Option<Duration>,
    /// The body must contain this text.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// The body must match this regular expression.
    #[serde(default)]
    pub body_regex: Option<BodyRegex>,
    /// Conditions on the body parsed as JSON.
    #[serde(default)]
    pub json: Vec<JsonCondition>,
    /// Follow 3xx redirects.
    #[serde(default)]
    pub follow_redirects: bool,
    /// At most this many redirects are followed.
    #[serde(default = "default_max_redirects")]
    pub max_redirects: u32,
    /// Time allowed for the request (default and upper bound: the check's
    /// timeout set in the agent).
    #[serde(default, deserialize_with = "duration::deserialize_opt")]
    pub timeout: Option<Duration>,
    /// For https: warn when the certificate expires in fewer days.
    #[serde(default = "default_cert_warn_days")]
    pub cert_warn_days: f64,
    /// For https: fail when the certificate expires in fewer days.
    #[serde(default = "default_cert_fail_days")]
    pub cert_fail_days: f64,
    /// Read at most this many bytes of the body.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
}

fn default_method() -> String {
    "GET".into()
}
fn default_max_redirects() -> u32 {
    DEFAULT_MAX_REDIRECTS
}
fn default_cert_warn_days() -> f64 {
    DEFAULT_CERT_WARN_DAYS
}
fn default_cert_fail_days() -> f64 {
    DEFAULT_CERT_FAIL_DAYS
}
fn default_max_body_bytes() -> usize {
    DEFAULT_MAX_BODY_BYTES
}

impl Config {
    /// The status patterns in force (the default is `2xx`).
    pub fn expected_status(&self) -> Vec<StatusPattern> {
        self.expect_status
            .clone()
            .unwrap_or_else(|| vec![StatusPattern::class(2)])
    }
}

/// A compiled `body_regex`.
#[derive(Debug, Clone)]
pub struct BodyRegex(pub regex::Regex);

impl<'de> Deserialize<'de> for BodyRegex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        regex::Regex::new(&text).map(BodyRegex).map_err(|e| {
            // The plugin carries the Unicode tables of `\w`, `\d`, `\s`
            // and `(?i)` only: those of scripts, categories and other
            // properties would triple its memory image, which every
            // concurrent check maps.
            let hint = if e.to_string().contains("Unicode property") {
                " (`\\p{…}` properties are not supported; Unicode-aware \
                 `\\w`, `\\d`, `\\s` and `(?i)` are, and so are explicit \
                 ranges such as `[\\x{370}-\\x{3ff}]`)"
            } else {
                ""
            };
            serde::de::Error::custom(format!("invalid regular expression: {e}{hint}"))
        })
    }
}

/// Checks what deserialization cannot: URL syntax, method and header
/// syntax, and that thresholds are ordered.
pub fn validate(c: &Config) -> Result<(), ConfigError> {
    outpost_plugin_sdk::http::Url::parse(&c.url)
        .map_err(|e| ConfigError::new("url", e.to_string()))?;
    if c.method.is_empty() || !c.method.bytes().all(is_token_byte) {
        return Err(ConfigError::new(
            "method",
            format!(
                "`{}` is not an HTTP method; write e.g. GET, HEAD or POST",
                c.method
            ),
        ));
    }
    for (name, value) in &c.headers {
        let field = format!("headers.{name}");
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(ConfigError::new(
                field,
                format!(
                    "`{name}` is not a valid header name (letters, digits and -!#$%&'*+.^_`|~)"
                ),
            ));
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(ConfigError::new(
                field,
                "header values must not contain line breaks or NUL",
            ));
        }
    }
    if c.expect_status.as_ref().is_some_and(|v| v.is_empty()) {
        return Err(ConfigError::new(
            "expect_status",
            "the list is empty; list the codes that count as success, e.g. [\"2xx\"] or [200, 204]",
        ));
    }
    if let (Some(w), Some(f)) = (c.warn_latency, c.fail_latency)
        && w > f
    {
        return Err(ConfigError::new(
            "warn_latency",
            format!(
                "warn_latency ({} ms) is above fail_latency ({} ms); the warning would never show",
                w.as_millis(),
                f.as_millis()
            ),
        ));
    }
    if let Some(t) = c.timeout
        && t.is_zero()
    {
        return Err(ConfigError::new(
            "timeout",
            "must be more than 0, e.g. `5s`",
        ));
    }
    for (name, v) in [
        ("cert_warn_days", c.cert_warn_days),
        ("cert_fail_days", c.cert_fail_days),
    ] {
        if !v.is_finite() || v < 0.0 {
            return Err(ConfigError::new(
                name,
                format!("must be a number of days ≥ 0, got {v}"),
            ));
        }
    }
    if c.cert_fail_days > c.cert_warn_days {
        return Err(ConfigError::new(
            "cert_fail_days",
            format!(
                "cert_fail_days ({}) is above cert_warn_days ({}); the warning would never show",
                c.cert_fail_days, c.cert_warn_days
            ),
        ));
    }
    if c.max_body_bytes == 0 || c.max_body_bytes > MAX_BODY_BYTES_LIMIT {
        return Err(ConfigError::new(
            "max_body_bytes",
            format!(
                "must be between 1 and {MAX_BODY_BYTES_LIMIT} (16 MiB), got {}",
                c.max_body_bytes
            ),
        ));
    }
    if c.max_redirects == 0 && c.follow_redirects {
        return Err(ConfigError::new(
            "max_redirects",
            "is 0 while follow_redirects is true; set at least 1 or turn follow_redirects off",
        ));
    }
    for (i, cond) in c.json.iter().enumerate() {
        cond.validate()
            .map_err(|(field, msg)| ConfigError::new(format!("json[{i}].{field}"), msg))?;
    }
    Ok(())
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_plugin_sdk::parse_config;

    fn parse(json: &str) -> Result<Config, ConfigError> {
        let c: Config = parse_config(json)?;
        validate(&c)?;
        Ok(c)
    }

    #[test]
    fn defaults() {
        let c = parse(r#"{"url":"http://h/"}"#).unwrap();
        assert_eq!(c.method, "GET");
        assert_eq!(c.expected_status(), vec![StatusPattern::class(2)]);
        assert!(!c.follow_redirects);
        assert_eq!(c.max_redirects, 5);
        assert_eq!((c.cert_warn_days, c.cert_fail_days), (14.0, 3.0));
        assert_eq!(c.max_body_bytes, 1 << 20);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (r#"{"url":"ftp://h/"}"#, "url", "scheme `ftp`"),
            (
                r#"{"url":"http://h/","method":"GE T"}"#,
                "method",
                "not an HTTP method",
            ),
            (
                r#"{"url":"http://h/","headers":{"a b":"x"}}"#,
                "headers.a b",
                "header name",
            ),
            (
                r#"{"url":"http://h/","expect_status":["7xx"]}"#,
                "expect_status[0]",
                "7xx",
            ),
            (
                r#"{"url":"http://h/","expect_status":[]}"#,
                "expect_status",
                "empty",
            ),
            (
                r#"{"url":"http://h/","warn_latency":"2s","fail_latency":"1s"}"#,
                "warn_latency",
                "above",
            ),
            (
                r#"{"url":"http://h/","fail_latency":"fast"}"#,
                "fail_latency",
                "invalid duration",
            ),
            (
                r#"{"url":"http://h/","body_regex":"("}"#,
                "body_regex",
                "regular expression",
            ),
            (
                r#"{"url":"http://h/","body_regex":"\\p{Greek}"}"#,
                "body_regex",
                "Unicode property",
            ),
            (
                r#"{"url":"http://h/","cert_warn_days":1,"cert_fail_days":5}"#,
                "cert_fail_days",
                "above",
            ),
            (
                r#"{"url":"http://h/","max_body_bytes":0}"#,
                "max_body_bytes",
                "between",
            ),
            (
                r#"{"url":"http://h/","json":[{"pointer":"a","op":"=="}]}"#,
                "json[0].pointer",
                "start with `/`",
            ),
            (
                r#"{"url":"http://h/","json":[{"pointer":"/a","op":"=~","value":1}]}"#,
                "json[0].op",
                "unknown variant",
            ),
            (
                r#"{"url":"http://h/","json":[{"pointer":"/a","op":"=="}]}"#,
                "json[0].value",
                "needs a `value`",
            ),
            (
                r#"{"url":"http://h/","json":[{"pointer":"/a","op":"<","value":"x"}]}"#,
                "json[0].value",
                "number",
            ),
            (
                r#"{"url":"http://h/","timeout":"0s"}"#,
                "timeout",
                "more than 0",
            ),
        ];
        for (json, field, needle) in cases {
            let e = parse(json).unwrap_err();
            assert_eq!(e.field, field, "{json}: {e}");
            assert!(e.message.contains(needle), "{json}: {e}");
        }
    }
}
