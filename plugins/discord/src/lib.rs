//! # Discord notifier
//!
//! Posts an incident notification to a Discord
//! [webhook](https://discord.com/developers/docs/resources/webhook#execute-webhook)
//! as one embed: colour per event, escaped Markdown, an Acknowledge link,
//! and a mention only where configured.
//!
//! Crate map:
//! - [`config`]: the typed configuration and its validation.
//! - [`message`]: builds the JSON body from an alert (pure).
//! - [`delivery`]: Discord's answers as delivered / retryable / permanent
//!   (pure).
//!
//! It keeps no state between calls and does not retry by itself.
#![deny(missing_docs)]

pub mod config;
pub mod delivery;
pub mod message;

use outpost_plugin_sdk::http::{self, Request};
use outpost_plugin_sdk::prelude::*;

pub use config::Config;

/// The Discord notifier.
pub struct Discord;

impl Notifier for Discord {
    type Config = Config;

    fn info() -> PluginInfo {
        config::info()
    }

    fn validate(config: &Config) -> Result<(), ConfigError> {
        config.check()
    }

    fn notify(config: Config, alert: Alert, ctx: &CheckContext) -> Result<(), DeliveryError> {
        let body = message::build(&config, &alert).to_string();
        let mut req = Request::post(config.post_url(), "application/json", body.into_bytes())
            .header(
                "user-agent",
                concat!("outpost-discord/", env!("CARGO_PKG_VERSION")),
            );
        req.timeout = outpost_plugin_sdk::delivery::exchange_timeout(ctx);
        req.max_body_bytes = outpost_plugin_sdk::delivery::MAX_ANSWER_BYTES;
        match http::send(&req) {
            Ok(resp) => delivery::classify(
                resp.status,
                resp.header("retry-after"),
                &resp.text(),
                std::time::SystemTime::now(),
            ),
            Err(e) => Err(delivery::transport_error(&e)),
        }
    }
}

outpost_plugin_sdk::export_notifier!(Discord);
