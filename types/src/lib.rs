//! # Outpost's shared types
//!
//! One home for the values that cross a boundary between Outpost's parts:
//! - [`abi`]: what plugins return and receive (status, check result, plugin
//!   info, alert, delivery error). The plugin host converts the generated WIT
//!   bindings to these at one edge, the SDK converts them to its bindings at
//!   the other, and the store and the agent use them as they are.
//! - [`status`]: the status document (schema version, every field once),
//!   written by the API and read by peers, the CLI and tests.
//! - [`duration`]: the one duration parser (config, CLI, API, plugins).
//! - [`time`]: wall-clock milliseconds.
//!
//! This crate is compiled into the agent and into every Rust plugin
//! (`wasm32-wasip2`): it holds plain data and pure functions, and must not
//! know about wasmtime, SQLite, schedules or HTTP.
#![deny(missing_docs)]

pub mod abi;
pub mod duration;
pub mod inventory;
pub mod status;
pub mod time;

pub use abi::*;
