//! The values that cross the plugin boundary, as plain Rust: the shared
//! `outpost-types` ABI types (the same ones the agent uses), plus the
//! per-call [`CheckContext`]. Plugin code does not depend on generated
//! names; [`crate::__export`] converts at the edge.

pub use outpost_types::abi::{
    Alert, AlertEvent, CheckResult, ConfigError, ConfigField, DeliveryError, Details,
    DiscoveredObject, Discovery, DiscoveryError, DiscoveryErrorKind, PluginInfo, PluginKind,
    Status,
};
use std::time::{Duration, Instant};

/// Per-call context: how much time is left.
#[derive(Debug, Clone)]
pub struct CheckContext {
    started: Instant,
    timeout: Duration,
}

impl CheckContext {
    /// A context allowing `timeout` from now.
    pub fn new(timeout: Duration) -> Self {
        Self {
            started: Instant::now(),
            timeout,
        }
    }
    /// The whole time the agent allows for this call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
    /// When the call started.
    pub fn started(&self) -> Instant {
        self.started
    }
    /// Time left before the agent stops the call.
    pub fn remaining(&self) -> Duration {
        self.timeout.saturating_sub(self.started.elapsed())
    }
}
