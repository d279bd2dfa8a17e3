//! # Telegram notifier
//!
//! Sends an incident notification with the Telegram Bot API's
//! [`sendMessage`](https://core.telegram.org/bots/api#sendmessage) to
//! `{api_url}/bot{token}/sendMessage`: HTML text with everything from the
//! alert escaped, and an inline keyboard with an **Acknowledge** URL button
//! while acknowledging makes sense.
//!
//! Crate map:
//! - [`config`]: the typed configuration and its validation.
//! - [`message`]: builds the JSON body from an alert (pure).
//! - [`delivery`]: the Bot API's answers as delivered / retryable /
//!   permanent, with Telegram's description and hints (pure).
//!
//! It keeps no state between calls and does not retry by itself: the
//! agent's outbox retries, honouring the `retry-after-ms` reported for
//! flood control.
#![deny(missing_docs)]

pub mod config;
pub mod delivery;
pub mod message;

use outpost_plugin_sdk::http::{self, Request};
use outpost_plugin_sdk::prelude::*;

pub use config::Config;

/// The Telegram notifier.
pub struct Telegram;

impl Notifier for Telegram {
    type Config = Config;

    fn info() -> PluginInfo {
        config::info()
    }

    fn validate(config: &Config) -> Result<(), ConfigError> {
        config.check()
    }

    fn notify(config: Config, alert: Alert, ctx: &CheckContext) -> Result<(), DeliveryError> {
        let body = message::build(&config, &alert).to_string();
        let mut req = Request::post(
            config.send_message_url(),
            "application/json",
            body.into_bytes(),
        )
        .header(
            "user-agent",
            concat!("outpost-telegram/", env!("CARGO_PKG_VERSION")),
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
            Err(e) => Err(delivery::transport_error(&e, config.api_url.is_none())),
        }
    }
}

outpost_plugin_sdk::export_notifier!(Telegram);
