//! # Outpost plugin SDK
//!
//! Write an Outpost sensor (a check) or notifier as a WebAssembly component
//! in Rust. You write the check; the SDK does the ABI.
//!
//! ```ignore
//! use outpost_plugin_sdk::prelude::*;
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Config { url: String }
//!
//! struct Ping;
//!
//! impl Sensor for Ping {
//!     type Config = Config;
//!     fn info() -> PluginInfo {
//!         PluginInfo::sensor("ping", env!("CARGO_PKG_VERSION"), "Says hello")
//!             .field(ConfigField::required("url", "string", "what to check"))
//!     }
//!     fn check(config: &Config, ctx: &CheckContext) -> CheckResult {
//!         CheckResult::ok(format!("{} is fine", config.url))
//!     }
//! }
//!
//! outpost_plugin_sdk::export_sensor!(Ping);
//! ```
//!
//! Build with `cargo build --target wasm32-wasip2 --release` (crate type
//! `cdylib`); the `.wasm` file is a component the agent loads with
//! `outpost plugin run path/to/plugin.wasm --config '{...}'`.
//!
//! What the SDK owns: the generated bindings of the `outpost:plugin` WIT
//! package ([`bindings`]), the conversion between them and plain Rust types
//! ([`types`]), typed configuration parsing with errors that name the field
//! ([`config`]), logging into the agent ([`log`]), a small blocking HTTP
//! client over `wasi:http` ([`http`]) and what a notifier's HTTP answer
//! means for delivery: retryable or permanent ([`delivery`]). It must not
//! hold state between calls (the agent may run each call in a fresh
//! instance), with one exception that changes no outcome: a sensor's last
//! parsed and validated configuration is kept with its text, so a reused
//! instance does not parse the same JSON on every check.
//!
//! Natively (not on `wasm32`) everything compiles, so plugin logic can be
//! unit-tested with `cargo test`; only calls into the host are unavailable.
#![deny(missing_docs)]

pub mod bindings;
pub mod config;
pub mod delivery;
pub mod http;
pub mod log;
pub mod types;

#[doc(hidden)]
pub mod __export;

pub use config::{parse_config, parse_duration};
pub use types::*;

/// The version of the `outpost:plugin` WIT package this SDK implements.
pub const WIT_VERSION: &str = "0.1.1";

/// Everything a plugin usually needs.
pub mod prelude {
    pub use crate::types::*;
    pub use crate::{Notifier, Provider, Sensor};
}

/// A check. Implement this and call [`export_sensor!`].
pub trait Sensor {
    /// The plugin's configuration, deserialized from the JSON the agent
    /// passes. Use `#[serde(deny_unknown_fields)]` so typos are reported.
    type Config: serde::de::DeserializeOwned + 'static;

    /// Name, version, description and configuration keys.
    fn info() -> PluginInfo;

    /// Semantic checks beyond what deserialization already enforces
    /// (ranges, URL syntax, ...). Must not touch the network.
    fn validate(config: &Self::Config) -> Result<(), ConfigError> {
        let _ = config;
        Ok(())
    }

    /// Runs one check. A failing target is a [`CheckResult`] with status
    /// `Fail`, never a panic. The configuration has been validated; the
    /// same parsed value may serve several checks of a reused instance.
    fn check(config: &Self::Config, ctx: &CheckContext) -> CheckResult;
}

/// A notifier. Implement this and call [`export_notifier!`].
pub trait Notifier {
    /// The plugin's configuration (see [`Sensor::Config`]).
    type Config: serde::de::DeserializeOwned;

    /// Name, version, description and configuration keys.
    fn info() -> PluginInfo;

    /// Semantic checks of the configuration. Must not touch the network.
    fn validate(config: &Self::Config) -> Result<(), ConfigError> {
        let _ = config;
        Ok(())
    }

    /// Delivers one alert.
    fn notify(config: Self::Config, alert: Alert, ctx: &CheckContext) -> Result<(), DeliveryError>;
}

/// A provider: lists the objects of an external system (Kubernetes
/// ingresses, a service catalog's entries) that the agent turns into
/// sensors, systems and services. Implement this and call
/// [`export_provider!`].
pub trait Provider {
    /// The provider's configuration (see [`Sensor::Config`]).
    type Config: serde::de::DeserializeOwned;

    /// Name, version, description, configuration keys and the kinds of
    /// objects produced ([`PluginInfo::provider`], [`PluginInfo::produces`]).
    fn info() -> PluginInfo;

    /// Semantic checks of the configuration. Must not touch the network.
    fn validate(config: &Self::Config) -> Result<(), ConfigError> {
        let _ = config;
        Ok(())
    }

    /// Lists the objects. `cursor` is what the previous successful call
    /// returned in [`Discovery::cursor`] (an ETag); return
    /// `objects: None` when nothing changed since. The agent keeps the
    /// last good set when this fails.
    fn discover(
        config: &Self::Config,
        cursor: Option<&str>,
        ctx: &CheckContext,
    ) -> Result<Discovery, DiscoveryError>;
}

/// Exports a type implementing [`Provider`] as the component's
/// `outpost:plugin/provider` interface.
#[macro_export]
macro_rules! export_provider {
    ($ty:ty) => {
        #[cfg(target_family = "wasm")]
        const _: () = {
            struct __OutpostProvider;
            impl $crate::bindings::provider::exports::outpost::plugin::provider::Guest for __OutpostProvider {
                fn info() -> $crate::bindings::provider::exports::outpost::plugin::provider::ProviderInfo {
                    $crate::__export::provider_info::<$ty>()
                }
                fn validate(
                    config: ::std::string::String,
                ) -> ::std::result::Result<(), $crate::bindings::provider::outpost::plugin::plugin_types::ConfigError> {
                    $crate::__export::provider_validate::<$ty>(&config)
                }
                fn discover(
                    config: ::std::string::String,
                    cursor: ::std::option::Option<::std::string::String>,
                    timeout_ms: u32,
                ) -> ::std::result::Result<
                    $crate::bindings::provider::exports::outpost::plugin::provider::Discovery,
                    $crate::bindings::provider::exports::outpost::plugin::provider::DiscoveryError,
                > {
                    $crate::__export::provider_discover::<$ty>(&config, cursor.as_deref(), timeout_ms)
                }
            }
            $crate::bindings::provider::export!(__OutpostProvider with_types_in $crate::bindings::provider);
        };
    };
}

/// Exports a type implementing [`Sensor`] as the component's
/// `outpost:plugin/sensor` interface.
#[macro_export]
macro_rules! export_sensor {
    ($ty:ty) => {
        #[cfg(target_family = "wasm")]
        const _: () = {
            struct __OutpostSensor;
            impl $crate::bindings::sensor::exports::outpost::plugin::sensor::Guest for __OutpostSensor {
                fn info() -> $crate::bindings::sensor::outpost::plugin::plugin_types::PluginInfo {
                    $crate::__export::sensor_info::<$ty>()
                }
                fn validate(
                    config: ::std::string::String,
                ) -> ::std::result::Result<(), $crate::bindings::sensor::outpost::plugin::plugin_types::ConfigError> {
                    $crate::__export::sensor_validate::<$ty>(&config)
                }
                fn check(
                    config: ::std::string::String,
                    timeout_ms: u32,
                ) -> $crate::bindings::sensor::outpost::plugin::plugin_types::CheckResult {
                    $crate::__export::sensor_check::<$ty>(&config, timeout_ms)
                }
            }
            $crate::bindings::sensor::export!(__OutpostSensor with_types_in $crate::bindings::sensor);
        };
    };
}

/// Exports a type implementing [`Notifier`] as the component's
/// `outpost:plugin/notifier` interface.
#[macro_export]
macro_rules! export_notifier {
    ($ty:ty) => {
        #[cfg(target_family = "wasm")]
        const _: () = {
            struct __OutpostNotifier;
            impl $crate::bindings::notifier::exports::outpost::plugin::notifier::Guest for __OutpostNotifier {
                fn info() -> $crate::bindings::notifier::outpost::plugin::plugin_types::PluginInfo {
                    $crate::__export::notifier_info::<$ty>()
                }
                fn validate(
                    config: ::std::string::String,
                ) -> ::std::result::Result<(), $crate::bindings::notifier::outpost::plugin::plugin_types::ConfigError> {
                    $crate::__export::notifier_validate::<$ty>(&config)
                }
                fn notify(
                    config: ::std::string::String,
                    alert: $crate::bindings::notifier::outpost::plugin::plugin_types::Alert,
                    timeout_ms: u32,
                ) -> ::std::result::Result<(), $crate::bindings::notifier::outpost::plugin::plugin_types::DeliveryError> {
                    $crate::__export::notifier_notify::<$ty>(&config, alert, timeout_ms)
                }
            }
            $crate::bindings::notifier::export!(__OutpostNotifier with_types_in $crate::bindings::notifier);
        };
    };
}
