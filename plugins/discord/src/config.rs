//! Configuration of the Discord notifier (the `[notifier.config]` table).

use outpost_plugin_sdk::http::Url;
use outpost_plugin_sdk::prelude::*;

/// What the operator writes.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The webhook URL from the channel's Integrations settings
    /// (`https://discord.com/api/webhooks/<id>/<token>`).
    pub webhook_url: String,
    /// Sender name override.
    #[serde(default)]
    pub username: Option<String>,
    /// Sender avatar override (an image URL).
    #[serde(default)]
    pub avatar_url: Option<String>,
    /// Put in front of opened and escalated messages so people get pinged:
    /// `@here`, `@everyone`, `<@USER_ID>` or `<@&ROLE_ID>`.
    #[serde(default)]
    pub mention: Option<String>,
    /// Post into this thread of a forum or text channel.
    #[serde(default)]
    pub thread_id: Option<String>,
}

/// Name, version and configuration keys.
pub fn info() -> PluginInfo {
    PluginInfo::notifier(
        "discord",
        env!("CARGO_PKG_VERSION"),
        "Posts incident notifications to a Discord webhook as an embed (colour per event, Acknowledge link)",
    )
    .field(ConfigField::required(
        "webhook_url",
        "url",
        "webhook URL, https://discord.com/api/webhooks/<id>/<token>",
    ))
    .field(ConfigField::optional(
        "username",
        "string",
        None,
        "sender name override",
    ))
    .field(ConfigField::optional(
        "avatar_url",
        "string",
        None,
        "sender avatar override (image URL)",
    ))
    .field(ConfigField::optional(
        "mention",
        "string",
        None,
        "pinged on opened/escalated: @here, @everyone, <@USER_ID> or <@&ROLE_ID>",
    ))
    .field(ConfigField::optional(
        "thread_id",
        "string",
        None,
        "post into this thread",
    ))
}

/// A Discord snowflake: digits only.
fn snowflake(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

/// What `mention` allows to ping, as Discord's `allowed_mentions`.
pub fn allowed_mentions(mention: Option<&str>) -> serde_json::Value {
    let Some(m) = mention else {
        return serde_json::json!({"parse": []});
    };
    let m = m.trim();
    if m == "@here" || m == "@everyone" {
        serde_json::json!({"parse": ["everyone"]})
    } else if let Some(id) = m.strip_prefix("<@&").and_then(|r| r.strip_suffix('>')) {
        serde_json::json!({"parse": [], "roles": [id]})
    } else if let Some(id) = m
        .strip_prefix("<@")
        .and_then(|r| r.strip_suffix('>'))
        .map(|r| r.trim_start_matches('!'))
    {
        serde_json::json!({"parse": [], "users": [id]})
    } else {
        serde_json::json!({"parse": []})
    }
}

impl Config {
    /// Where to POST: the webhook URL with `wait=true` (Discord then
    /// answers `200` with the message instead of `204`, and reports errors
    /// of the message itself) and the thread, if any.
    pub fn post_url(&self) -> String {
        let sep = if self.webhook_url.contains('?') {
            '&'
        } else {
            '?'
        };
        let mut url = format!("{}{sep}wait=true", self.webhook_url);
        if let Some(t) = &self.thread_id {
            url.push_str(&format!("&thread_id={t}"));
        }
        url
    }

    /// Semantic checks beyond deserialization; no network.
    pub fn check(&self) -> Result<(), ConfigError> {
        Url::parse(&self.webhook_url)
            .map_err(|e| ConfigError::new("webhook_url", e.to_string()))?;
        if self.webhook_url.contains('#') {
            return Err(ConfigError::new(
                "webhook_url",
                "remove the `#...` fragment",
            ));
        }
        if let Some(n) = &self.username {
            let lower = n.to_ascii_lowercase();
            if n.trim().is_empty() || n.chars().count() > 80 {
                return Err(ConfigError::new("username", "must be 1 to 80 characters"));
            }
            if lower.contains("discord") || lower.contains("clyde") {
                return Err(ConfigError::new(
                    "username",
                    "Discord refuses webhook names containing \"discord\" or \"clyde\"",
                ));
            }
        }
        if let Some(a) = &self.avatar_url {
            Url::parse(a).map_err(|e| ConfigError::new("avatar_url", e.to_string()))?;
        }
        if let Some(m) = &self.mention {
            let m = m.trim();
            let ok = m == "@here"
                || m == "@everyone"
                || m.strip_prefix("<@&")
                    .or_else(|| m.strip_prefix("<@!"))
                    .or_else(|| m.strip_prefix("<@"))
                    .and_then(|r| r.strip_suffix('>'))
                    .is_some_and(snowflake);
            if !ok {
                return Err(ConfigError::new(
                    "mention",
                    format!(
                        "`{m}` would not notify anyone; write @here, @everyone, <@USER_ID> or <@&ROLE_ID> (ids are numbers)"
                    ),
                ));
            }
        }
        if let Some(t) = &self.thread_id
            && !snowflake(t)
        {
            return Err(ConfigError::new(
                "thread_id",
                "a thread id is a number (right-click the thread, Copy Thread ID)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(extra: serde_json::Value) -> Result<Config, ConfigError> {
        let mut v = json!({"webhook_url": "https://discord.com/api/webhooks/1/abc"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let c: Config = outpost_plugin_sdk::parse_config(&v.to_string())?;
        c.check()?;
        Ok(c)
    }

    #[test]
    fn post_url_waits_and_targets_the_thread() {
        let c = cfg(json!({})).unwrap();
        assert_eq!(
            c.post_url(),
            "https://discord.com/api/webhooks/1/abc?wait=true"
        );
        let c = cfg(json!({"thread_id": "123"})).unwrap();
        assert_eq!(
            c.post_url(),
            "https://discord.com/api/webhooks/1/abc?wait=true&thread_id=123"
        );
    }

    #[test]
    fn names_the_bad_key() {
        assert_eq!(
            cfg(json!({"webhook_url": "discord"})).unwrap_err().field,
            "webhook_url"
        );
        assert_eq!(
            cfg(json!({"mention": "here"})).unwrap_err().field,
            "mention"
        );
        assert_eq!(
            cfg(json!({"mention": "<@&abc>"})).unwrap_err().field,
            "mention"
        );
        assert!(cfg(json!({"mention": "<@&123>"})).is_ok());
        assert_eq!(
            cfg(json!({"username": "Discord bot"})).unwrap_err().field,
            "username"
        );
        assert_eq!(
            cfg(json!({"thread_id": "x1"})).unwrap_err().field,
            "thread_id"
        );
        assert_eq!(
            cfg(json!({"avatar_url": "pic"})).unwrap_err().field,
            "avatar_url"
        );
    }

    #[test]
    fn mentions_allow_exactly_what_is_configured() {
        assert_eq!(allowed_mentions(None), json!({"parse": []}));
        assert_eq!(
            allowed_mentions(Some("@here")),
            json!({"parse": ["everyone"]})
        );
        assert_eq!(
            allowed_mentions(Some("<@&42>")),
            json!({"parse": [], "roles": ["42"]})
        );
        assert_eq!(
            allowed_mentions(Some("<@!7>")),
            json!({"parse": [], "users": ["7"]})
        );
    }
}
