//! # Microsoft Teams notifier
//!
//! Posts an incident notification to a Microsoft Teams **Workflows**
//! webhook (the Power Automate trigger "When a Teams webhook request is
//! received", which replaced the retired Office 365 connectors) as a
//! `message` with one Adaptive Card attachment and an `Action.OpenUrl`
//! Acknowledge button.
//!
//! Crate map:
//! - [`config`]: the typed configuration and its validation.
//! - [`card`]: builds the JSON body from an alert (pure).
//! - [`delivery`]: the workflow's answers as delivered / retryable /
//!   permanent (pure).
//!
//! It keeps no state between calls and does not retry by itself.
#![deny(missing_docs)]

pub mod card;
pub mod config;
pub mod delivery;

use outpost_plugin_sdk::http::{self, Request};
use outpost_plugin_sdk::prelude::*;

pub use config::Config;

/// The Teams notifier.
pub struct Teams;

impl Notifier for Teams {
    type Config = Config;

    fn info() -> PluginInfo {
        config::info()
    }

    fn validate(config: &Config) -> Result<(), ConfigError> {
        config.check()
    }

    fn notify(config: Config, alert: Alert, ctx: &CheckContext) -> Result<(), DeliveryError> {
        let body = card::build(&config, &alert).to_string();
        let mut req = Request::post(&config.webhook_url, "application/json", body.into_bytes())
            .header(
                "user-agent",
                concat!("outpost-teams/", env!("CARGO_PKG_VERSION")),
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

outpost_plugin_sdk::export_notifier!(Teams);
