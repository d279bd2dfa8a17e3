//! Raw bindings generated from `plugin-sdk/wit/outpost.wit`.
//!
//! Plugin authors rarely need these: the [`Sensor`](crate::Sensor) and
//! [`Notifier`](crate::Notifier) traits wrap them. They are public for
//! plugins that want the raw ABI.
#![allow(missing_docs)]

/// Bindings of the `sensor-plugin` world.
pub mod sensor {
    wit_bindgen::generate!({
        world: "sensor-plugin",
        path: "wit",
        pub_export_macro: true,
        default_bindings_module: "outpost_plugin_sdk::bindings::sensor",
    });
}

/// Bindings of the `notifier-plugin` world.
pub mod notifier {
    wit_bindgen::generate!({
        world: "notifier-plugin",
        path: "wit",
        pub_export_macro: true,
        default_bindings_module: "outpost_plugin_sdk::bindings::notifier",
    });
}

/// Bindings of the `provider-plugin` world.
pub mod provider {
    wit_bindgen::generate!({
        world: "provider-plugin",
        path: "wit",
        pub_export_macro: true,
        default_bindings_module: "outpost_plugin_sdk::bindings::provider",
    });
}
