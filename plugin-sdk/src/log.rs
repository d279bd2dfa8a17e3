//! Logging into the agent's log (`outpost:plugin/host.log`).
//!
//! Lines are tagged by the agent with the plugin and the sensor or notifier
//! they come from. Prefer this over printing: the agent caps captured
//! stdout/stderr and treats a flood as a fault. Natively (unit tests) the
//! lines go to stderr.

use crate::bindings::sensor::outpost::plugin::host::{self, LogLevel};

fn emit(level: LogLevel, message: &str) {
    #[cfg(target_family = "wasm")]
    host::log(level, message);
    #[cfg(not(target_family = "wasm"))]
    {
        let _ = host::log;
        eprintln!("[{level:?}] {message}");
    }
}

/// Logs at debug level.
pub fn debug(message: impl AsRef<str>) {
    emit(LogLevel::Debug, message.as_ref())
}

/// Logs at info level.
pub fn info(message: impl AsRef<str>) {
    emit(LogLevel::Info, message.as_ref())
}

/// Logs at warn level.
pub fn warn(message: impl AsRef<str>) {
    emit(LogLevel::Warn, message.as_ref())
}

/// Logs at error level.
pub fn error(message: impl AsRef<str>) {
    emit(LogLevel::Error, message.as_ref())
}
