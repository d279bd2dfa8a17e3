//! Raw bindings generated from `plugin-sdk/wit/outpost.wit`.
//!
//! Plugin authors rarely need these: the [`Sensor`](crate::Sensor) and
//! [`Notifier`](crate::Notifier) traits wrap them. They are public for
//! plugins that want the raw ABI.
//!
//! The worlds import the WASI interfaces the agent grants (WASI 0.2.12);
//! here they are bound to the `wasi` crate, which the SDK and plugins use
//! for their I/O (WASI 0.2.4, which the agent serves under the component
//! model's semver rules). No `outpost:plugin` interface uses a WASI type,
//! so nothing generated here depends on the difference.
#![allow(missing_docs)]

/// Generates one world's bindings, its WASI imports bound to the `wasi` crate.
macro_rules! generate_world {
    ($world:literal, $module:literal) => {
        wit_bindgen::generate!({
            world: $world,
            path: "wit",
            pub_export_macro: true,
            default_bindings_module: $module,
            with: {
                "wasi:http/outgoing-handler@0.2.12": ::wasi::http::outgoing_handler,
                "wasi:http/types@0.2.12": ::wasi::http::types,
                "wasi:sockets/network@0.2.12": ::wasi::sockets::network,
                "wasi:sockets/instance-network@0.2.12": ::wasi::sockets::instance_network,
                "wasi:sockets/tcp@0.2.12": ::wasi::sockets::tcp,
                "wasi:sockets/tcp-create-socket@0.2.12": ::wasi::sockets::tcp_create_socket,
                "wasi:sockets/ip-name-lookup@0.2.12": ::wasi::sockets::ip_name_lookup,
                "wasi:clocks/monotonic-clock@0.2.12": ::wasi::clocks::monotonic_clock,
                "wasi:clocks/wall-clock@0.2.12": ::wasi::clocks::wall_clock,
                "wasi:random/random@0.2.12": ::wasi::random::random,
                "wasi:io/poll@0.2.12": ::wasi::io::poll,
                "wasi:io/streams@0.2.12": ::wasi::io::streams,
                "wasi:io/error@0.2.12": ::wasi::io::error,
            },
        });
    };
}

/// Bindings of the `sensor-plugin` world.
pub mod sensor {
    generate_world!("sensor-plugin", "outpost_plugin_sdk::bindings::sensor");
}

/// Bindings of the `notifier-plugin` world.
pub mod notifier {
    generate_world!("notifier-plugin", "outpost_plugin_sdk::bindings::notifier");
}

/// Bindings of the `provider-plugin` world.
pub mod provider {
    generate_world!("provider-plugin", "outpost_plugin_sdk::bindings::provider");
}
