//! Configuration of the Telegram notifier (the `[notifier.config]` table).

use outpost_plugin_sdk::http::Url;
use outpost_plugin_sdk::prelude::*;

/// The Bot API host used when `api_url` is not written.
pub const DEFAULT_API_URL: &str = "https://api.telegram.org";

/// A chat: its numeric id (`-1001234567890`) or a public `@channelusername`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(untagged)]
pub enum ChatId {
    /// Numeric id.
    Id(i64),
    /// As written (a number in a string, or `@username`).
    Name(String),
}

impl ChatId {
    /// As sent in `chat_id`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            ChatId::Id(i) => (*i).into(),
            ChatId::Name(s) => match s.trim().parse::<i64>() {
                Ok(i) => i.into(),
                Err(_) => s.trim().into(),
            },
        }
    }
}

/// What the operator writes.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The bot's token from @BotFather (`123456:ABC-DEF...`).
    pub bot_token: String,
    /// Where messages go.
    pub chat_id: ChatId,
    /// Bot API base URL (a local Bot API server or a test receiver).
    #[serde(default)]
    pub api_url: Option<String>,
    /// Topic of a forum supergroup.
    #[serde(default)]
    pub message_thread_id: Option<i64>,
    /// Send reminders, acknowledgements and resolutions without sound.
    #[serde(default)]
    pub quiet_followups: bool,
}

/// Name, version and configuration keys.
pub fn info() -> PluginInfo {
    PluginInfo::notifier(
        "telegram",
        env!("CARGO_PKG_VERSION"),
        "Sends incident notifications with the Telegram Bot API (sendMessage, HTML, inline Acknowledge button)",
    )
    .field(ConfigField::required(
        "bot_token",
        "string",
        "the bot's token from @BotFather, 123456789:AA...",
    ))
    .field(ConfigField::required(
        "chat_id",
        "integer or string",
        "numeric chat id (-100... for groups and channels) or @channelusername",
    ))
    .field(ConfigField::optional(
        "api_url",
        "url",
        Some("\"https://api.telegram.org\""),
        "Bot API base URL; write it so the agent's allow-list lets the plugin reach it",
    ))
    .field(ConfigField::optional(
        "message_thread_id",
        "integer",
        None,
        "topic id in a forum supergroup",
    ))
    .field(ConfigField::optional(
        "quiet_followups",
        "bool",
        Some("false"),
        "reminders, acknowledgements and resolutions arrive without sound",
    ))
}

impl Config {
    /// The Bot API base URL without a trailing `/`.
    pub fn api_url(&self) -> &str {
        self.api_url
            .as_deref()
            .unwrap_or(DEFAULT_API_URL)
            .trim_end_matches('/')
    }

    /// `{api_url}/bot{token}/sendMessage`.
    pub fn send_message_url(&self) -> String {
        format!(
            "{}/bot{}/sendMessage",
            self.api_url(),
            self.bot_token.trim()
        )
    }

    /// Semantic checks beyond deserialization; no network.
    pub fn check(&self) -> Result<(), ConfigError> {
        let t = self.bot_token.trim();
        let valid = t.split_once(':').is_some_and(|(id, secret)| {
            !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_digit())
                && !secret.is_empty()
                && secret
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
        if !valid {
            // Never echo the token: it is a secret.
            return Err(ConfigError::new(
                "bot_token",
                "not a bot token; @BotFather gives one like 123456789:AAE3x...",
            ));
        }
        match &self.chat_id {
            ChatId::Id(0) => return Err(ConfigError::new("chat_id", "0 is not a chat")),
            ChatId::Name(s) => {
                let s = s.trim();
                let numeric = s.parse::<i64>().is_ok_and(|i| i != 0);
                let username = s.strip_prefix('@').is_some_and(|u| {
                    u.len() >= 4 && u.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                });
                if !numeric && !username {
                    return Err(ConfigError::new(
                        "chat_id",
                        format!("`{s}` is neither a numeric chat id nor an @channelusername"),
                    ));
                }
            }
            ChatId::Id(_) => {}
        }
        if let Some(u) = &self.api_url {
            Url::parse(u).map_err(|e| ConfigError::new("api_url", e.to_string()))?;
        }
        if self.message_thread_id.is_some_and(|t| t <= 0) {
            return Err(ConfigError::new(
                "message_thread_id",
                "must be a positive topic id",
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

    const TOKEN: &str = "123456789:AAE3xYz_-abc";

    #[test]
    fn minimal_config_and_urls() {
        let c = cfg(json!({"bot_token": TOKEN, "chat_id": -1001234567890i64})).unwrap();
        assert_eq!(
            c.send_message_url(),
            "https://api.telegram.org/bot123456789:AAE3xYz_-abc/sendMessage"
        );
        assert_eq!(c.chat_id.to_json(), json!(-1001234567890i64));
        let c = cfg(json!({"bot_token": TOKEN, "chat_id": "@outpost_ops", "api_url": "http://127.0.0.1:8081/"})).unwrap();
        assert_eq!(c.chat_id.to_json(), json!("@outpost_ops"));
        assert!(
            c.send_message_url()
                .starts_with("http://127.0.0.1:8081/bot1234")
        );
        let c = cfg(json!({"bot_token": TOKEN, "chat_id": "-100123"})).unwrap();
        assert_eq!(c.chat_id.to_json(), json!(-100123));
    }

    #[test]
    fn bad_keys_are_named_without_echoing_the_token() {
        let e = cfg(json!({"bot_token": "secret-value", "chat_id": 1})).unwrap_err();
        assert_eq!(e.field, "bot_token");
        assert!(!e.message.contains("secret-value"));
        assert_eq!(
            cfg(json!({"bot_token": TOKEN, "chat_id": "ops"}))
                .unwrap_err()
                .field,
            "chat_id"
        );
        assert_eq!(
            cfg(json!({"bot_token": TOKEN, "chat_id": 0}))
                .unwrap_err()
                .field,
            "chat_id"
        );
        assert_eq!(
            cfg(json!({"bot_token": TOKEN, "chat_id": 1, "api_url": "telegram"}))
                .unwrap_err()
                .field,
            "api_url"
        );
        assert_eq!(
            cfg(json!({"bot_token": TOKEN, "chat_id": 1, "message_thread_id": -3}))
                .unwrap_err()
                .field,
            "message_thread_id"
        );
        let e = cfg(json!({"chat_id": 1})).unwrap_err();
        assert!(e.message.contains("bot_token"), "{}", e.message);
    }
}
