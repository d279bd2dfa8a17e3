//! # The `http-inventory` provider
//!
//! Fetches an inventory document (see `outpost_types::inventory`: a JSON
//! list of objects with kind, id, name, labels, attributes and parents)
//! from a URL — a CMDB export, a service catalog, a file served by any web
//! server — and hands its objects to the agent, which makes sensors,
//! systems and services of them through `[[kind]]` rules.
//!
//! The answer's `ETag` is the discovery cursor: the next discovery sends
//! `If-None-Match`, and a `304 Not Modified` costs the agent nothing (the
//! set is unchanged). A failure (refused, timeout, HTTP error, a document
//! that does not parse) is a typed discovery error; the agent keeps the
//! last good set and marks the provider stale.
//!
//! Pure parts (the request, reading the answer) are unit-tested natively;
//! only [`discover`] does I/O.

use outpost_plugin_sdk::http::{self, Request, Response};
use outpost_plugin_sdk::prelude::*;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Largest document read (the host bounds the objects again).
pub const MAX_DOCUMENT_BYTES: usize = 32 << 20;

/// What the operator writes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the document is.
    pub url: String,
    /// Bearer token.
    #[serde(default)]
    pub token: Option<String>,
    /// Extra request headers (an API key).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The kind of objects that do not name one (`example.com/Host`).
    #[serde(default)]
    pub kind: Option<String>,
}

/// The request of one discovery.
pub fn request(c: &Config, cursor: Option<&str>, ctx: &CheckContext) -> Request {
    let mut req = Request::get(&c.url);
    req.timeout = ctx.remaining();
    req.max_body_bytes = MAX_DOCUMENT_BYTES;
    req = req.header("accept", "application/json");
    for (k, v) in &c.headers {
        req = req.header(k, v);
    }
    if let Some(t) = &c.token {
        req = req.header("authorization", &format!("Bearer {}", t.trim()));
    }
    if let Some(etag) = cursor {
        req = req.header("if-none-match", etag);
    }
    req
}

/// Reads the answer of one discovery.
pub fn read(c: &Config, cursor: Option<&str>, r: &Response) -> Result<Discovery, DiscoveryError> {
    let err = |kind, msg: String| DiscoveryError::new(kind, format!("{}: {msg}", c.url));
    match r.status {
        200 => {}
        304 => {
            return Ok(Discovery {
                objects: None,
                cursor: cursor.map(str::to_string),
            });
        }
        401 | 403 => {
            return Err(err(
                DiscoveryErrorKind::Denied,
                format!("HTTP {} (check `token` or `headers`)", r.status),
            ));
        }
        s => {
            let text: String = r.text().chars().take(200).collect();
            return Err(err(
                DiscoveryErrorKind::Unavailable,
                format!("HTTP {s}: {text}"),
            ));
        }
    }
    if r.truncated {
        return Err(err(
            DiscoveryErrorKind::BadAnswer,
            format!(
                "the document is larger than {} MiB",
                MAX_DOCUMENT_BYTES >> 20
            ),
        ));
    }
    let objects = outpost_types::inventory::parse_json(&r.body, c.kind.as_deref())
        .map_err(|e| err(DiscoveryErrorKind::BadAnswer, e.to_string()))?;
    Ok(Discovery {
        objects: Some(objects),
        cursor: r.header("etag").map(str::to_string),
    })
}

fn discover(
    c: &Config,
    cursor: Option<&str>,
    ctx: &CheckContext,
) -> Result<Discovery, DiscoveryError> {
    let r = http::send(&request(c, cursor, ctx)).map_err(|e| {
        DiscoveryError::new(DiscoveryErrorKind::Unavailable, format!("{}: {e}", c.url))
    })?;
    read(c, cursor, &r)
}

/// The provider.
pub struct HttpInventory;

impl Provider for HttpInventory {
    type Config = Config;

    fn info() -> PluginInfo {
        PluginInfo::provider(
            "http-inventory",
            env!("CARGO_PKG_VERSION"),
            "objects from a JSON inventory document at a URL (CMDB, service catalog), with ETag",
        )
        .field(ConfigField::required(
            "url",
            "url",
            "where the inventory document is (http:// or https://)",
        ))
        .field(ConfigField::optional(
            "token",
            "string",
            None,
            "bearer token",
        ))
        .field(ConfigField::optional(
            "headers",
            "table",
            Some("{}"),
            "extra request headers, e.g. { \"x-api-key\" = \"...\" }",
        ))
        .field(ConfigField::optional(
            "kind",
            "string",
            None,
            "kind of objects that do not name one (example.com/Host)",
        ))
    }

    fn validate(c: &Config) -> Result<(), ConfigError> {
        if !(c.url.starts_with("http://") || c.url.starts_with("https://")) {
            return Err(ConfigError::new(
                "url",
                "must start with http:// or https://",
            ));
        }
        if let Some(k) = &c.kind
            && !outpost_types::inventory::valid_kind(k)
        {
            return Err(ConfigError::new(
                "kind",
                format!("`{k}` is not domain/Name (e.g. example.com/Host)"),
            ));
        }
        for name in c.headers.keys() {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(ConfigError::new(
                    format!("headers.{name}"),
                    "is not a header name",
                ));
            }
        }
        Ok(())
    }

    fn discover(
        c: &Config,
        cursor: Option<&str>,
        ctx: &CheckContext,
    ) -> Result<Discovery, DiscoveryError> {
        discover(c, cursor, ctx)
    }
}

outpost_plugin_sdk::export_provider!(HttpInventory);

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg() -> Config {
        serde_json::from_str(
            r#"{"url":"http://cmdb:8080/hosts","token":"t","headers":{"x-api-key":"k"},"kind":"example.com/Host"}"#,
        )
        .unwrap()
    }

    fn answer(status: u16, etag: Option<&str>, body: &str) -> Response {
        Response {
            status,
            headers: etag
                .map(|e| vec![("etag".to_string(), e.to_string())])
                .unwrap_or_default(),
            body: body.as_bytes().to_vec(),
            truncated: false,
            final_url: String::new(),
            time_to_headers: Duration::ZERO,
            redirects: 0,
        }
    }

    #[test]
    fn the_request_carries_credentials_and_the_etag() {
        let r = request(
            &cfg(),
            Some("\"v7\""),
            &CheckContext::new(Duration::from_secs(5)),
        );
        let h = |n: &str| {
            r.headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(h("if-none-match"), Some("\"v7\""));
        assert_eq!(h("authorization"), Some("Bearer t"));
        assert_eq!(h("x-api-key"), Some("k"));
    }

    #[test]
    fn answers() {
        let c = cfg();
        let d = read(&c, None, &answer(200, Some("\"v1\""), r#"[{"id":"db-1"}]"#)).unwrap();
        let objects = d.objects.unwrap();
        assert_eq!(objects[0].kind, "example.com/Host");
        assert_eq!(d.cursor.as_deref(), Some("\"v1\""));

        let d = read(&c, Some("\"v1\""), &answer(304, None, "")).unwrap();
        assert!(d.objects.is_none());
        assert_eq!(d.cursor.as_deref(), Some("\"v1\""));

        let e = read(&c, None, &answer(403, None, "")).unwrap_err();
        assert_eq!(e.kind, DiscoveryErrorKind::Denied);
        let e = read(&c, None, &answer(500, None, "boom")).unwrap_err();
        assert_eq!(e.kind, DiscoveryErrorKind::Unavailable);
        assert!(e.message.contains("boom"));
        let e = read(&c, None, &answer(200, None, r#"[{"name":"x"}]"#)).unwrap_err();
        assert_eq!(e.kind, DiscoveryErrorKind::BadAnswer);
        assert!(e.message.contains("object 0"), "{}", e.message);
    }
}
