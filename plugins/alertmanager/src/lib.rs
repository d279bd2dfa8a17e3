//! # Alertmanager notifier
//!
//! Posts incidents to Prometheus Alertmanager's API v2
//! (`POST /api/v2/alerts`, a JSON array of `postableAlert`) on **every**
//! member of an HA cluster, as Alertmanager's documentation asks of alert
//! senders: the members deduplicate notifications among themselves by
//! gossip. An alert stays firing until `endsAt`; the resolve posts it again
//! with `endsAt` = the resolution time.
//!
//! Crate map:
//! - [`config`]: the typed configuration and its validation.
//! - [`payload`]: builds the body from an alert (pure).
//! - [`delivery`]: per-member classification and how the members' results
//!   combine: delivered if one accepted (pure).
//!
//! It keeps no state between calls and does not retry by itself: the
//! agent's outbox retries what is reported retryable.
#![deny(missing_docs)]

pub mod config;
pub mod delivery;
pub mod payload;

use outpost_plugin_sdk::http::{self, Request};
use outpost_plugin_sdk::prelude::*;
use std::time::{SystemTime, UNIX_EPOCH};

pub use config::Config;

/// The Alertmanager notifier.
pub struct Alertmanager;

impl Notifier for Alertmanager {
    type Config = Config;

    fn info() -> PluginInfo {
        config::info()
    }

    fn validate(config: &Config) -> Result<(), ConfigError> {
        config.check()
    }

    fn notify(config: Config, alert: Alert, ctx: &CheckContext) -> Result<(), DeliveryError> {
        let now = SystemTime::now();
        let now_ms = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let body = payload::body(&config, &alert, now_ms).to_string();
        let endpoints = config.endpoints();
        let n = endpoints.len();
        let mut results = Vec::with_capacity(n);
        for (i, (base, url)) in config.urls.iter().zip(&endpoints).enumerate() {
            let member = delivery::member_name(base);
            let mut req = Request::post(url, "application/json", body.clone().into_bytes()).header(
                "user-agent",
                concat!("outpost-alertmanager/", env!("CARGO_PKG_VERSION")),
            );
            for (k, v) in &config.headers {
                req = req.header(k, v);
            }
            // The members left share what is left of the call, so one that
            // hangs cannot starve the others.
            req.timeout = outpost_plugin_sdk::delivery::exchange_timeout(ctx) / (n - i) as u32;
            req.max_body_bytes = outpost_plugin_sdk::delivery::MAX_ANSWER_BYTES;
            results.push(match http::send(&req) {
                Ok(resp) => delivery::classify(
                    &member,
                    resp.status,
                    resp.header("retry-after"),
                    &resp.text(),
                    now,
                ),
                Err(e) => Err(delivery::transport_error(&member, &e)),
            });
        }
        let (result, failed) = delivery::combine(results);
        if !failed.is_empty() {
            outpost_plugin_sdk::log::warn(format!(
                "delivered to {} of {n} Alertmanagers; not to: {}",
                n - failed.len(),
                failed.join("; ")
            ));
        }
        result
    }
}

outpost_plugin_sdk::export_notifier!(Alertmanager);
