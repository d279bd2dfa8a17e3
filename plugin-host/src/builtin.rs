//! The plugins compiled into the binary (see `agent/build.rs`).

/// A built-in plugin: its name and component bytes.
pub struct Builtin {
    /// Name used in configs and on the command line.
    pub name: &'static str,
    /// The component.
    pub wasm: &'static [u8],
}

/// All built-in plugins.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "http",
        wasm: include_bytes!(env!("OUTPOST_PLUGIN_HTTP")),
    },
    Builtin {
        name: "mongo",
        wasm: include_bytes!(env!("OUTPOST_PLUGIN_MONGO")),
    },
    Builtin {
        name: "slack",
        wasm: include_bytes!(env!("OUTPOST_PLUGIN_SLACK")),
    },
    Builtin {
        name: "webhook",
        wasm: include_bytes!(env!("OUTPOST_PLUGIN_WEBHOOK")),
    },
    Builtin {
        name: "email",
        wasm: include_bytes!(env!("OUTPOST_PLUGIN_EMAIL")),
    },
    Builtin {
        name: "alertmanager",
        wasm: include_bytes!(env!("OUTPOST_PLUGIN_ALERTMANAGER")),
    },
    Builtin {
        name: "telegram",
        wasm: include_bytes!(env!("OUTPOST_PLUGIN_TELEGRAM")),
    },
    Builtin {
        name: "discord",
        wasm: include_bytes!(env!("OUTPOST_PLUGIN_DISCORD")),
    },
    Builtin {
        name: "teams",
        wasm: include_bytes!(env!("OUTPOST_PLUGIN_TEAMS")),
    },
    Builtin {
        name: "opsgenie",
        wasm: include_bytes!(env!("OUTPOST_PLUGIN_OPSGENIE")),
    },
    Builtin {
        name: "kubernetes",
        wasm: include_bytes!(env!("OUTPOST_PLUGIN_KUBERNETES")),
    },
    Builtin {
        name: "http-inventory",
        wasm: include_bytes!(env!("OUTPOST_PLUGIN_HTTP_INVENTORY")),
    },
];

/// The built-in plugin called `name`.
pub fn find(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// Names of all built-ins, for error messages.
pub fn names() -> Vec<&'static str> {
    BUILTINS.iter().map(|b| b.name).collect()
}
