//! Configuration of the Slack notifier (the `[notifier.config]` table).

use outpost_plugin_sdk::http::Url;
use outpost_plugin_sdk::prelude::*;

/// What the operator writes.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The incoming-webhook URL Slack gave when the webhook was created.
    pub webhook_url: String,
    /// Channel override (`#ops`); only honoured by legacy webhooks.
    #[serde(default)]
    pub channel: Option<String>,
    /// Sender name override; only honoured by legacy webhooks.
    #[serde(default)]
    pub username: Option<String>,
    /// Sender icon override such as `:rotating_light:`; legacy webhooks only.
    #[serde(default)]
    pub icon_emoji: Option<String>,
    /// Prepended to opened and escalated messages so people get pinged:
    /// `<!here>`, `<!channel>`, `<@U012AB3CD>` or `<!subteam^S012AB3CD>`.
    #[serde(default)]
    pub mention: Option<String>,
}

/// Name, version and configuration keys.
pub fn info() -> PluginInfo {
    PluginInfo::notifier(
        "slack",
        env!("CARGO_PKG_VERSION"),
        "Posts incident notifications to a Slack incoming webhook (Block Kit layout with an Acknowledge button)",
    )
    .field(ConfigField::required(
        "webhook_url",
        "url",
        "incoming-webhook URL (https://hooks.slack.com/services/...)",
    ))
    .field(ConfigField::optional(
        "channel",
        "string",
        None,
        "channel override, e.g. #ops (legacy webhooks only)",
    ))
    .field(ConfigField::optional(
        "username",
        "string",
        None,
        "sender name override (legacy webhooks only)",
    ))
    .field(ConfigField::optional(
        "icon_emoji",
        "string",
        None,
        "sender icon override, e.g. :rotating_light: (legacy webhooks only)",
    ))
    .field(ConfigField::optional(
        "mention",
        "string",
        None,
        "prepended on opened/escalated, e.g. <!here> or <@U012AB3CD>",
    ))
}

impl Config {
    /// Semantic checks beyond deserialization; no network.
    pub fn check(&self) -> Result<(), ConfigError> {
        Url::parse(&self.webhook_url)
            .map_err(|e| ConfigError::new("webhook_url", e.to_string()))?;
        if let Some(icon) = &self.icon_emoji {
            let ok = icon.len() > 2 && icon.starts_with(':') && icon.ends_with(':');
            if !ok {
                return Err(ConfigError::new(
                    "icon_emoji",
                    format!(
                        "`{icon}` is not an emoji name; write it with colons, e.g. `:rotating_light:`"
                    ),
                ));
            }
        }
        if let Some(m) = self
            .mention
            .as_ref()
            .filter(|m| !(m.starts_with('<') && m.ends_with('>')))
        {
            return Err(ConfigError::new(
                "mention",
                format!(
                    "`{m}` would not notify anyone; Slack needs the escaped form, e.g. `<!here>`, `<!channel>`, `<@U012AB3CD>` or `<!subteam^S012AB3CD>`"
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: serde_json::Value) -> Result<Config, ConfigError> {
        let mut v = serde_json::json!({"webhook_url": "https://hooks.slack.com/services/T/B/X"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let c: Config = outpost_plugin_sdk::parse_config(&v.to_string())?;
        c.check()?;
        Ok(c)
    }

    #[test]
    fn accepts_a_minimal_config() {
        assert!(cfg(serde_json::json!({})).is_ok());
    }

    #[test]
    fn names_the_bad_key() {
        let e = cfg(serde_json::json!({"webhook_url": "hooks.slack.com"})).unwrap_err();
        assert_eq!(e.field, "webhook_url");
        let e = cfg(serde_json::json!({"mention": "@here"})).unwrap_err();
        assert_eq!(e.field, "mention");
        assert!(e.message.contains("<!here>"), "{}", e.message);
        let e = cfg(serde_json::json!({"icon_emoji": "bell"})).unwrap_err();
        assert_eq!(e.field, "icon_emoji");
        let e = cfg(serde_json::json!({"chanel": "#ops"})).unwrap_err();
        assert!(e.message.contains("unknown field"), "{}", e.message);
    }
}
