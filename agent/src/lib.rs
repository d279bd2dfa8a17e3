//! # Outpost agent
//!
//! Map of the crate (data flows down this list, never back up):
//! - `outpost_plugin_host` (its own crate): loads WebAssembly plugin components and runs them in a
//!   sandbox (time, memory, output and network limits).
//! - [`cli`]: the `outpost` command line (argument parsing and output
//!   formatting only; the work is done by the modules above).
//! - [`memory`]: the process heap policy (two malloc arenas, freed heap
//!   returned to the OS after a config load and every minute).

pub mod agent;
pub mod api;
pub mod cli;
pub mod config;
pub mod escalation;
pub mod evaluation;
pub mod federation;
pub mod memory;
pub mod metrics;
pub mod page;
pub mod providers;
pub mod recorder;
pub mod scheduler;
pub mod server;
pub mod state;
pub mod status;
pub mod targets;
pub mod thresholds;
pub mod tls;
pub mod topology;
