//! # Email notifier
//!
//! Sends an incident notification as a MIME `multipart/alternative` mail
//! (text/plain + text/html, both with the acknowledgement link) over SMTP,
//! speaking the protocol itself over a `wasi:sockets` TCP connection:
//! greeting, EHLO (HELO as fallback), AUTH PLAIN or LOGIN when credentials
//! are configured (chosen from the EHLO capabilities), MAIL FROM, RCPT TO
//! per recipient, DATA with dot-stuffing, QUIT.
//!
//! TLS (STARTTLS or implicit TLS) is not available inside the component: a
//! TLS stack for `wasm32-wasip2` (rustls with a crypto provider) needs a C
//! toolchain for that target, which the build does not have. A config that
//! asks for it is refused at validation rather than sent in clear text.
//!
//! Crate map:
//! - [`config`]: the typed configuration and its validation.
//! - [`message`]: the mail itself (headers, MIME parts, RFC 2047, QP) and
//!   dot-stuffing (pure).
//! - [`smtp`]: reply parsing and the SMTP dialogue over a [`net::Transport`].
//! - [`net`]: the TCP transport (`wasi:sockets` in the component,
//!   `std::net` natively) with one deadline for the whole exchange.
//!
//! It keeps no state between calls and does not retry by itself: the
//! agent's outbox retries what [`smtp`] reports as retryable (4xx replies,
//! network failures), never what it reports as permanent (5xx replies).
#![deny(missing_docs)]

pub mod config;
pub mod message;
pub mod net;
pub mod smtp;

use outpost_plugin_sdk::delivery;
use outpost_plugin_sdk::prelude::*;
use std::time::Instant;

pub use config::Config;

/// The email notifier.
pub struct Email;

impl Notifier for Email {
    type Config = Config;

    fn info() -> PluginInfo {
        config::info()
    }

    fn validate(config: &Config) -> Result<(), ConfigError> {
        config.check().map(|_| ())
    }

    fn notify(config: Config, alert: Alert, ctx: &CheckContext) -> Result<(), DeliveryError> {
        let server = config
            .check()
            .map_err(|e| DeliveryError::permanent(format!("invalid configuration: {e}")))?;
        // Short of the agent's deadline, so a slow server is reported by
        // this plugin (naming the SMTP stage it hung in) rather than the
        // call being killed.
        let deadline = Instant::now() + delivery::exchange_timeout(ctx);
        let mail = message::build(&config, &alert);
        let conn = net::connect(&server.host, server.port, deadline).map_err(|e| {
            smtp::Failure::Net {
                stage: "connect",
                error: e,
            }
            .into_delivery(&server)
        })?;
        smtp::send(conn, &config, &mail).map_err(|f| f.into_delivery(&server))
    }
}

outpost_plugin_sdk::export_notifier!(Email);
