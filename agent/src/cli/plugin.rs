//! `outpost plugin run|info`: run one plugin once by hand, as a plugin
//! author or an operator trying a config would.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use outpost_plugin_host::{
    Alert, Endpoint, HostConfig, Limits, NetPolicy, PluginHost, PluginKind, Status,
};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Plugin commands.
#[derive(Debug, Subcommand)]
pub enum PluginCmd {
    /// Run a plugin once: a sensor's check, or a notifier's notify with a
    /// test alert. Exit code 0 ok/delivered, 1 warn/fail/error/not
    /// delivered, 2 usage or load error.
    Run(RunArgs),
    /// Print what a plugin says about itself (name, version, config keys).
    Info(InfoArgs),
}

/// `plugin run` arguments.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// A built-in plugin name (http, mongo, slack, webhook, email,
    /// alertmanager, telegram, discord, teams, opsgenie) or the
    /// path of a .wasm component.
    pub plugin: String,
    /// The plugin's configuration as JSON.
    #[arg(long, default_value = "{}", conflicts_with = "config_file")]
    pub config: String,
    /// Read the configuration (JSON) from a file instead.
    #[arg(long)]
    pub config_file: Option<PathBuf>,
    /// Time allowed for the run (e.g. 500ms, 10s).
    #[arg(long, default_value = "10s", value_parser = outpost_types::duration::parse)]
    pub timeout: Duration,
    /// Memory limit in MiB.
    #[arg(long, default_value_t = 64)]
    pub memory_mb: usize,
    /// Allow a further host:port besides those named in the config
    /// (repeatable).
    #[arg(long = "allow", value_name = "HOST:PORT")]
    pub allow: Vec<String>,
    /// Allow exactly these host:port endpoints instead of those the config
    /// names (repeatable), as an `allow` list in the agent's config does.
    #[arg(
        long = "allow-only",
        value_name = "HOST:PORT",
        conflicts_with = "allow"
    )]
    pub allow_only: Vec<String>,
    /// For a notifier: the alert as JSON (field names as in the WIT
    /// `alert` record, snake_case); missing fields get sample values.
    #[arg(long)]
    pub alert: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `plugin info` arguments.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// A built-in plugin name or the path of a .wasm component.
    pub plugin: String,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs a plugin command.
pub async fn run(cmd: PluginCmd, cache_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    match cmd {
        PluginCmd::Run(a) => run_once(a, cache_dir).await,
        PluginCmd::Info(a) => info(a, cache_dir).await,
    }
}

fn host(cache_dir: Option<PathBuf>, memory_mb: usize) -> anyhow::Result<PluginHost> {
    let config = HostConfig {
        cache_dir,
        limits: Limits {
            memory_bytes: memory_mb.max(1) << 20,
            ..Limits::default()
        },
        ..HostConfig::default()
    };
    PluginHost::new(config).context("cannot start the WebAssembly engine")
}

async fn info(a: InfoArgs, cache_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let host = host(cache_dir, 64)?;
    let plugin = host.load_spec(&a.plugin).await?;
    let i = plugin.info();
    if a.json {
        println!("{}", serde_json::to_string_pretty(i)?);
    } else {
        use crate::cli::term::safe;
        let mut out = String::new();
        out.push_str(&format!(
            "{} {} ({})\n{}\n",
            safe(&i.name),
            safe(&i.version),
            i.kind,
            safe(&i.description)
        ));
        if !i.config.is_empty() {
            out.push_str("\nconfig:\n");
            for f in &i.config {
                let req = if f.required {
                    "required".to_string()
                } else {
                    format!("default {}", f.default.as_deref().unwrap_or("none"))
                };
                out.push_str(&format!(
                    "  {:<24} {:<14} {:<18} {}\n",
                    safe(&f.name),
                    safe(&f.ty),
                    safe(&req),
                    safe(&f.description)
                ));
            }
        }
        out.push_str(&format!("\nnetwork: {}\n", grant_text(i)));
        crate::cli::term::print(&out);
    }
    Ok(ExitCode::SUCCESS)
}

/// The grant a plugin gets without an `allow` list, for people.
pub fn grant_text(i: &outpost_plugin_host::PluginInfo) -> String {
    use crate::cli::term::safe;
    let targets: Vec<String> = i
        .config
        .iter()
        .filter(|f| outpost_plugin_host::policy::is_target_type(&f.ty))
        .map(|f| format!("`{}`", safe(&f.name)))
        .collect();
    if targets.is_empty() {
        "nothing unless the sensor or notifier sets `allow = [\"host:port\", ...]`".into()
    } else {
        format!(
            "the hosts named in {} (or exactly an `allow = [\"host:port\", ...]` list)",
            targets.join(", ")
        )
    }
}

async fn run_once(a: RunArgs, cache_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let config_text = match &a.config_file {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("cannot read --config-file {}", p.display()))?,
        None => a.config.clone(),
    };
    let config: serde_json::Value = serde_json::from_str(&config_text)
        .map_err(|e| anyhow::anyhow!("--config is not valid JSON: {e}"))?;
    if !config.is_object() {
        bail!("--config must be a JSON object, like '{{\"url\": \"http://127.0.0.1:8080/\"}}'");
    }
    let parse_endpoints = |list: &[String], flag: &str| -> anyhow::Result<Vec<Endpoint>> {
        list.iter()
            .map(|s| Endpoint::parse(s))
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("{flag} {e}"))
    };
    let extra = parse_endpoints(&a.allow, "--allow")?;
    let only = parse_endpoints(&a.allow_only, "--allow-only")?;
    let host = host(cache_dir, a.memory_mb)?;
    let plugin = host.load_spec(&a.plugin).await?;
    let policy = Arc::new(NetPolicy::granted(
        plugin.info(),
        &config,
        (!only.is_empty()).then_some(&only[..]),
        &extra,
    ));
    let mut inst = plugin.instance(policy, "cli");
    let json = config.to_string();
    if let Err(e) = inst
        .validate(&json)
        .await
        .map_err(|e| anyhow::anyhow!("{}: validate failed: {e}", plugin.label()))?
    {
        bail!("invalid configuration for {}: {e}", plugin.label());
    }
    match plugin.kind() {
        PluginKind::Provider => {
            let outcome = inst.discover(&json, None, a.timeout).await;
            let (ok, body) = match outcome {
                Ok(Ok(d)) => (
                    true,
                    serde_json::json!({"objects": d.objects, "cursor": d.cursor}),
                ),
                Ok(Err(e)) => (false, serde_json::json!({"error": e})),
                Err(e) => (false, serde_json::json!({"error": e.to_string()})),
            };
            if a.json {
                println!("{body}");
            } else {
                println!("{}", serde_json::to_string_pretty(&body)?);
            }
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        PluginKind::Sensor => {
            let r = inst.check_result(&json, a.timeout).await;
            if a.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "{:<5} {} ({:.1} ms)",
                    r.status.as_str().to_uppercase(),
                    r.message,
                    r.latency_ms
                );
                for (k, v) in &r.metrics {
                    println!("  {k:<24} {v}");
                }
                if let Some(d) = &r.details {
                    println!("  details: {d}");
                }
            }
            Ok(if r.status == Status::Ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        PluginKind::Notifier => {
            let alert: Alert = match &a.alert {
                Some(t) => serde_json::from_str(t)
                    .map_err(|e| anyhow::anyhow!("--alert is not a valid alert: {e}"))?,
                None => Alert::default(),
            };
            let outcome = inst.notify(&json, &alert, a.timeout).await;
            let (delivered, body) = match &outcome {
                Ok(Ok(())) => (true, serde_json::json!({"delivered": true})),
                Ok(Err(e)) => (
                    false,
                    serde_json::json!({"delivered": false, "error": e.message, "retry_after_ms": e.retry_after_ms, "permanent": e.permanent}),
                ),
                Err(e) => (
                    false,
                    serde_json::json!({"delivered": false, "error": e.to_string(), "retry_after_ms": null, "permanent": false}),
                ),
            };
            if a.json {
                println!("{body}");
            } else if delivered {
                println!("delivered");
            } else {
                println!("NOT delivered: {}", body["error"].as_str().unwrap_or(""));
            }
            Ok(if delivered {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}
