//! MongoDB sensor: speaks the MongoDB wire protocol itself over
//! `wasi:sockets` TCP (the official driver cannot run in the sandbox) and
//! reports whether each server of a connection string is really serving:
//! its role, replica set, wire version and latencies.
//!
//! Crate map:
//! - [`config`]: the JSON configuration and its checked form.
//! - [`uri`]: the `mongodb://` connection string.
//! - [`wire`]: message framing (`OP_MSG`, `OP_QUERY`/`OP_REPLY`) and limits.
//! - [`connection`]: one TCP connection with a deadline; the error vocabulary.
//! - [`scram`]: SCRAM-SHA-1/-256 client steps (RFC 5802, RFC 7677).
//! - [`probe`]: `hello`/`isMaster`, authentication and `ping` on one server.
//! - [`check`]: probing every host and judging the set's view.
//!
//! It never connects to a host that is not in the connection string, even
//! when a server's reply names other members: that string is exactly the
//! sensor's network allow-list. See `README.md` for the wire conversation.
#![deny(missing_docs)]

pub mod check;
pub mod config;
pub mod connection;
pub mod probe;
pub mod scram;
pub mod uri;
pub mod wire;

use config::{Config, Settings};
use outpost_plugin_sdk::prelude::*;

/// The sensor.
pub struct Mongo;

impl Sensor for Mongo {
    type Config = Config;

    fn info() -> PluginInfo {
        PluginInfo::sensor(
            "mongo",
            env!("CARGO_PKG_VERSION"),
            "MongoDB reachability, role and latency over the wire protocol: hello \
             (or legacy isMaster), optional SCRAM authentication, ping; a connection \
             string with several hosts is checked host by host and reported as a set",
        )
        .field(ConfigField::required(
            "uri",
            "url",
            "mongodb:// connection string: hosts, replicaSet, authSource, authMechanism, \
             directConnection, user:password (percent-encoded); mongodb+srv:// and TLS are not supported",
        ))
        .field(ConfigField::optional(
            "timeout",
            "duration",
            None,
            "time for the whole check, shared by the hosts (default and upper bound: the agent's timeout)",
        ))
        .field(ConfigField::optional(
            "role",
            "string",
            Some("\"any\""),
            "expected role: primary (isWritablePrimary), secondary, or any",
        ))
        .field(ConfigField::optional(
            "warn_latency",
            "duration",
            None,
            "warn when connect + hello + ping of the slowest host takes longer",
        ))
        .field(ConfigField::optional(
            "fail_latency",
            "duration",
            None,
            "fail when connect + hello + ping of the slowest host takes longer",
        ))
        .field(ConfigField::optional(
            "replica_set",
            "string",
            None,
            "replica-set name every host must report (defaults to the uri's replicaSet)",
        ))
    }

    fn validate(config: &Config) -> Result<(), ConfigError> {
        Settings::from_config(config).map(|_| ())
    }

    fn check(config: &Config, ctx: &CheckContext) -> CheckResult {
        match Settings::from_config(config) {
            Ok(s) => check::run(&s, ctx.remaining(), None),
            Err(e) => CheckResult::error(format!("invalid configuration: {e}")),
        }
    }
}

outpost_plugin_sdk::export_sensor!(Mongo);
