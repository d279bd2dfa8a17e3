//! End-to-end tests: the real `outpost` binary, real servers on loopback.
//!
//! One test binary (it links once); topics live in `tests/e2e/*.rs`, shared
//! helpers in `tests/util/mod.rs`.

#[path = "util/mod.rs"]
mod util;

#[path = "e2e/plugin_cli.rs"]
mod plugin_cli;

#[path = "e2e/plugin_authors.rs"]
mod plugin_authors;

#[path = "e2e/sandbox.rs"]
mod sandbox;

#[path = "e2e/providers.rs"]
mod providers;

#[path = "e2e/agent.rs"]
mod agent;

#[path = "e2e/config_errors.rs"]
mod config_errors;

#[path = "e2e/escalation.rs"]
mod escalation;
#[path = "e2e/federation.rs"]
mod federation;
#[path = "e2e/keepalive.rs"]
mod keepalive;
#[path = "e2e/mongo.rs"]
mod mongo;
#[path = "e2e/notifiers.rs"]
mod notifiers;
#[path = "e2e/alertmanager.rs"]
mod notifiers_alertmanager;
#[path = "e2e/notifiers_more.rs"]
mod notifiers_more;

#[path = "e2e/status_api.rs"]
mod status_api;

#[path = "e2e/connectivity.rs"]
mod connectivity;
#[path = "e2e/contrib.rs"]
mod contrib;
#[path = "e2e/http_sensor.rs"]
mod http_sensor;
#[path = "e2e/limits.rs"]
mod limits;
#[path = "e2e/recipes.rs"]
mod recipes;
#[path = "e2e/status_page.rs"]
mod status_page;
#[path = "e2e/tls.rs"]
mod tls;
