//! The command line: argument definitions ([`Cli`]), logging set-up and
//! dispatch to one module per command group. Exit codes: 0 success / ok,
//! 1 a check or delivery did not succeed, 2 usage, config or load errors.

mod agent;
mod alerting;
mod plugin;
pub mod term;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// `outpost --version`: the agent, the plugin ABI it speaks (the WIT
/// package) and the wasmtime that runs the plugins.
static VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{} (plugin ABI outpost:plugin@{}, wasmtime {})",
        env!("CARGO_PKG_VERSION"),
        outpost_plugin_host::WIT_VERSION,
        outpost_plugin_host::WASMTIME_VERSION
    )
});

/// Outpost: a monitoring agent whose checks and notifiers are WebAssembly
/// plugins.
#[derive(Debug, Parser)]
#[command(name = "outpost", version = VERSION.as_str(), about, propagate_version = true)]
pub struct Cli {
    /// Log filter (`info`, `debug`, `outpost=debug,plugin=trace`, ...);
    /// the RUST_LOG environment variable is used when absent.
    #[arg(long, global = true, env = "OUTPOST_LOG")]
    pub log: Option<String>,

    /// Directory for compiled plugins (default: $XDG_CACHE_HOME/outpost or
    /// ~/.cache/outpost).
    #[arg(long, global = true, env = "OUTPOST_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent until SIGINT/SIGTERM (SIGHUP reloads the config).
    Run(agent::LoadArgs),
    /// Check a configuration (including each plugin's own validation) and
    /// print a summary. Exit code 2 with file:line:column on errors.
    CheckConfig(agent::LoadArgs),
    /// Every sensor's current state, from the database.
    Status(agent::StatusArgs),
    /// Recent results and state changes of one sensor.
    History(agent::HistoryArgs),
    /// Uptime, downtime, outages and MTTR per day, week or month (UTC).
    Sla(agent::SlaArgs),
    /// Acknowledge an incident with the token of its notification (stops
    /// the escalation).
    Ack(alerting::AckArgs),
    /// Hold notifications for a target for a while (results are still
    /// recorded); `--list` and `--end ID` manage silences.
    Silence(alerting::SilenceArgs),
    /// Recent incidents, with their history (`-v`).
    Incidents(alerting::IncidentsArgs),
    /// Run, inspect and test plugins by hand.
    #[command(subcommand)]
    Plugin(plugin::PluginCmd),
    /// Internal: compiles a component read from stdin for the agent's
    /// engine, so `outpost run` keeps Cranelift out of its own memory.
    #[command(hide = true)]
    CompilePlugin(CompilePluginArgs),
}

/// Arguments of the hidden `compile-plugin` (see
/// [`outpost_plugin_host::compiler`]).
#[derive(Debug, clap::Args)]
pub struct CompilePluginArgs {
    /// Where to write the compiled image.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    engine: outpost_plugin_host::compiler::EngineArgs,
}

/// Sets up tracing to stderr.
pub fn init_logging(cli: &Cli) {
    let filter = cli
        .log
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok())
        // wasmtime-wasi-http logs every refused connection at warn level;
        // the check result already reports it.
        .unwrap_or_else(|| "info,wasmtime_wasi_http=error".to_string());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .with_target(true)
        .try_init();
}

/// Runs the parsed command.
pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let cache_dir = cli.cache_dir.clone().or_else(default_cache_dir);
    if !matches!(cli.command, Command::Run(_)) {
        term::die_on_closed_pipe();
    }
    match cli.command {
        Command::Plugin(cmd) => plugin::run(cmd, cache_dir).await,
        Command::Run(c) => agent::run(c).await,
        Command::CheckConfig(c) => agent::check_config(c).await,
        Command::Status(a) => agent::status(a).await,
        Command::History(a) => agent::history(a).await,
        Command::Sla(a) => agent::sla(a).await,
        Command::Ack(a) => alerting::ack(a).await,
        Command::Silence(a) => alerting::silence(a).await,
        Command::Incidents(a) => alerting::incidents(a).await,
        Command::CompilePlugin(a) => {
            outpost_plugin_host::compiler::child_main(a.engine, &a.out)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `$XDG_CACHE_HOME/outpost`, else `~/.cache/outpost`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(x).join("outpost"));
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|h| PathBuf::from(h).join(".cache").join("outpost"))
}
