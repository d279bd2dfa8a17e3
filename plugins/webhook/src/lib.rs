//! # Webhook notifier
//!
//! POSTs an incident notification as JSON to any HTTP receiver, in one of
//! two formats:
//! - `outpost`: the versioned Outpost payload (`outpost.alert.v1`,
//!   documented in this crate's README), with an `Idempotency-Key` header
//!   and, when a `secret` is configured, an HMAC-SHA256 signature header
//!   `X-Outpost-Signature: sha256=<hex>` over the exact body bytes.
//! - `pagerduty`: a PagerDuty Events API v2 event (`trigger`,
//!   `acknowledge`, `resolve`) with `dedup_key` = the incident id, so all
//!   notifications of one incident land on one PagerDuty alert.
//!
//! Crate map:
//! - [`config`]: the typed configuration and its validation.
//! - [`payload`]: builds the body and headers from an alert (pure).
//! - [`signature`]: the HMAC-SHA256 signature (pure).
//! - [`delivery`]: the SDK's delivered / retryable / permanent
//!   classification worded for the format's receiver (pure).
//!
//! It must not keep state between calls nor retry by itself: the agent's
//! outbox retries, honouring the `retry-after-ms` reported for HTTP 429.
#![deny(missing_docs)]

pub mod config;
pub mod delivery;
pub mod payload;
pub mod signature;

use outpost_plugin_sdk::http::{self, Request};
use outpost_plugin_sdk::prelude::*;

pub use config::{Config, Format};

/// The webhook notifier.
pub struct Webhook;

impl Notifier for Webhook {
    type Config = Config;

    fn info() -> PluginInfo {
        config::info()
    }

    fn validate(config: &Config) -> Result<(), ConfigError> {
        config.check()
    }

    fn notify(config: Config, alert: Alert, ctx: &CheckContext) -> Result<(), DeliveryError> {
        let body = payload::body(&config, &alert).to_string().into_bytes();
        let url = config.url();
        let mut req = Request::new("POST", url);
        req.headers = payload::headers(&config, &alert, &body);
        req.body = body;
        req.timeout = outpost_plugin_sdk::delivery::exchange_timeout(ctx);
        req.max_body_bytes = outpost_plugin_sdk::delivery::MAX_ANSWER_BYTES;
        let receiver = config.format.receiver();
        match http::send(&req) {
            Ok(resp) => delivery::classify(
                receiver,
                resp.status,
                resp.header("retry-after"),
                &resp.text(),
                std::time::SystemTime::now(),
            ),
            Err(e) => Err(delivery::transport_error(
                receiver,
                &e,
                config.url.is_none(),
            )),
        }
    }
}

outpost_plugin_sdk::export_notifier!(Webhook);
