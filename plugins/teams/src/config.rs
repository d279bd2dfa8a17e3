//! Configuration of the Microsoft Teams notifier (the `[notifier.config]`
//! table).

use outpost_plugin_sdk::http::Url;
use outpost_plugin_sdk::prelude::*;

/// What the operator writes.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The URL of the Workflows trigger "When a Teams webhook request is
    /// received" (`https://...powerplatform.com/...` or
    /// `https://prod-NN....logic.azure.com/workflows/...`).
    pub webhook_url: String,
    /// Card width: `full` (the default, `msteams.width = "Full"`) or
    /// `default`.
    #[serde(default)]
    pub width: Option<String>,
}

/// Name, version and configuration keys.
pub fn info() -> PluginInfo {
    PluginInfo::notifier(
        "teams",
        env!("CARGO_PKG_VERSION"),
        "Posts incident notifications to a Microsoft Teams Workflows webhook as an Adaptive Card with an Acknowledge button",
    )
    .field(ConfigField::required(
        "webhook_url",
        "url",
        "URL of the Workflows trigger \"When a Teams webhook request is received\"",
    ))
    .field(ConfigField::optional(
        "width",
        "string",
        Some("\"full\""),
        "card width: full or default",
    ))
}

impl Config {
    /// Whether the card asks for the full width.
    pub fn full_width(&self) -> bool {
        self.width.as_deref() != Some("default")
    }

    /// Semantic checks beyond deserialization; no network.
    pub fn check(&self) -> Result<(), ConfigError> {
        Url::parse(&self.webhook_url)
            .map_err(|e| ConfigError::new("webhook_url", e.to_string()))?;
        if self.webhook_url.contains("webhook.office.com/webhookb2") {
            return Err(ConfigError::new(
                "webhook_url",
                "an Office 365 connector URL; Microsoft retired those connectors, create a Workflows webhook (\"When a Teams webhook request is received\") and write its URL",
            ));
        }
        if let Some(w) = &self.width
            && w != "full"
            && w != "default"
        {
            return Err(ConfigError::new(
                "width",
                format!("`{w}` is not full or default"),
            ));
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
    fn checks() {
        let c = cfg(json!({"webhook_url": "https://x.powerplatform.com/p/workflows/1/triggers/manual/paths/invoke?sig=s"})).unwrap();
        assert!(c.full_width());
        assert_eq!(
            cfg(json!({"webhook_url": "teams"})).unwrap_err().field,
            "webhook_url"
        );
        assert_eq!(
            cfg(json!({"webhook_url": "https://contoso.webhook.office.com/webhookb2/abc"}))
                .unwrap_err()
                .field,
            "webhook_url"
        );
        assert_eq!(
            cfg(json!({"webhook_url": "https://h/", "width": "wide"}))
                .unwrap_err()
                .field,
            "width"
        );
        assert!(
            !cfg(json!({"webhook_url": "https://h/", "width": "default"}))
                .unwrap()
                .full_width()
        );
    }
}
