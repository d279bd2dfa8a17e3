//! # Opsgenie notifier
//!
//! Sends incidents to the Opsgenie
//! [Alerts API](https://docs.opsgenie.com/docs/alert-api): creates an
//! alert with `alias` = `{agent}:{incident id}` (so every notification of
//! one incident lands on one Opsgenie alert), optionally acknowledges it,
//! and closes it on resolve. Requests carry `Authorization: GenieKey
//! <api_key>`.
//!
//! Crate map:
//! - [`config`]: the typed configuration and its validation.
//! - [`payload`]: which request an alert becomes, and its body (pure).
//! - [`delivery`]: Opsgenie's answers as delivered / retryable / permanent
//!   (pure).
//!
//! It keeps no state between calls and does not retry by itself.
#![deny(missing_docs)]

pub mod config;
pub mod delivery;
pub mod payload;

use outpost_plugin_sdk::http::{self, Request};
use outpost_plugin_sdk::prelude::*;

pub use config::Config;

/// The Opsgenie notifier.
pub struct Opsgenie;

impl Notifier for Opsgenie {
    type Config = Config;

    fn info() -> PluginInfo {
        config::info()
    }

    fn validate(config: &Config) -> Result<(), ConfigError> {
        config.check()
    }

    fn notify(config: Config, alert: Alert, ctx: &CheckContext) -> Result<(), DeliveryError> {
        let Some(call) = payload::call(&config, &alert) else {
            return Ok(());
        };
        let url = format!("{}{}", config.api_url(), call.path);
        let mut req = Request::post(url, "application/json", call.body.to_string().into_bytes())
            .header(
                "authorization",
                &format!("GenieKey {}", config.api_key.trim()),
            )
            .header(
                "user-agent",
                concat!("outpost-opsgenie/", env!("CARGO_PKG_VERSION")),
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

outpost_plugin_sdk::export_notifier!(Opsgenie);
