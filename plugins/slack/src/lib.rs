//! # Slack notifier
//!
//! Posts an incident notification to a Slack
//! [incoming webhook](https://api.slack.com/messaging/webhooks) as a
//! Block Kit message: a header with the state emoji and the target, fields
//! (state change, target kind, since when, level, agent), the message, an
//! "Acknowledge" link button when the alert carries an ack URL, and a
//! plain `text` fallback for notifications and old clients.
//!
//! Crate map:
//! - [`config`]: the typed configuration and its validation.
//! - [`message`]: builds the JSON payload from an alert (pure).
//! - [`delivery`]: Slack's wording of the SDK's delivered / retryable /
//!   permanent classification, with hints for Slack's refusals (pure).
//!
//! What it must not do: keep state between calls (the agent may use a fresh
//! instance per call) or retry by itself (the agent's outbox retries,
//! honouring the `retry-after-ms` this plugin reports for HTTP 429).
#![deny(missing_docs)]

pub mod config;
pub mod delivery;
pub mod message;

use outpost_plugin_sdk::http::{self, Request};
use outpost_plugin_sdk::prelude::*;

pub use config::Config;

/// The Slack notifier.
pub struct Slack;

impl Notifier for Slack {
    type Config = Config;

    fn info() -> PluginInfo {
        config::info()
    }

    fn validate(config: &Config) -> Result<(), ConfigError> {
        config.check()
    }

    fn notify(config: Config, alert: Alert, ctx: &CheckContext) -> Result<(), DeliveryError> {
        let body = message::build(&config, &alert).to_string();
        let mut req = Request::post(&config.webhook_url, "application/json", body.into_bytes())
            .header(
                "user-agent",
                concat!("outpost-slack/", env!("CARGO_PKG_VERSION")),
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

outpost_plugin_sdk::export_notifier!(Slack);
