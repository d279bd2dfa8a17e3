//! # Outpost agent
//!
//! Map of the crate (data flows down this list, never back up):
//! - [`config`]: the TOML file as written (`config::raw`) checked once into
//!   values that can only be valid (errors name file, line and key);
//!   [`connectivity`] and [`file_provider`] are leaves it and later stages
//!   use.
//! - [`scheduler`]: one task per sensor runs its plugin (through
//!   `outpost_plugin_host`, the only crate on wasmtime) on time; [`state`]
//!   (soft/hard/flapping) and [`thresholds`] judge each result;
//!   [`connectivity`] keeps failures while the agent itself is offline out
//!   of the state machine.
//! - [`recorder`]: stores every result (`outpost_store`), updates the
//!   [`status`] board and [`metrics`].
//! - [`evaluation`]: systems and services ([`topology`], [`targets`]) and
//!   peers ([`federation`]); [`providers`] turn discovered objects into
//!   sensors, systems and services through the reload path.
//! - [`escalation`]: incidents, durable timers, the outbox, notifiers.
//! - [`api`] (routes, status document), [`page`] (HTML), [`metrics`]
//!   (Prometheus text) and [`cli`] read the board and the store.
//! - [`agent`]: wires the stages together and runs the reload loop;
//!   [`memory`]: the process heap policy (two malloc arenas, freed heap
//!   returned to the OS after a config load and every minute).

pub mod agent;
pub mod api;
pub mod cli;
pub mod config;
pub mod connectivity;
pub mod escalation;
pub mod evaluation;
pub mod federation;
pub mod file_provider;
pub mod kubeconfig;
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
