//! `outpost run | check-config | status | history | sla`: the operator's
//! commands. `history` and `sla` read the database directly, so they work
//! while the agent runs (and when it does not); `status` asks the running
//! agent's API for the service tree with reasons and falls back to the
//! database when the agent is not reachable.

use super::term::safe;
use crate::config;
use anyhow::{Context, bail};
use clap::Args;
use outpost_store::{Period, Reader, SlaQuery};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `-c FILE`, shared by the operator commands.
#[derive(Debug, Args, Clone)]
pub struct ConfigArg {
    /// The agent's configuration file.
    #[arg(
        short = 'c',
        long = "config",
        env = "OUTPOST_CONFIG",
        default_value = "outpost.toml"
    )]
    pub path: PathBuf,
}

/// `run` and `check-config` arguments.
#[derive(Debug, Args, Clone)]
pub struct LoadArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Accept a configuration file that sets nothing (only comments or
    /// whitespace) and run on the defaults.
    #[arg(long)]
    pub allow_empty: bool,
}

/// `status` arguments.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `history` arguments.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The sensor.
    pub sensor: String,
    #[command(flatten)]
    pub config: ConfigArg,
    /// How far back (e.g. 30m, 1h, 7d).
    #[arg(long, default_value = "1h", value_parser = outpost_types::duration::parse)]
    pub since: std::time::Duration,
    /// At most this many results.
    #[arg(long, default_value_t = 200)]
    pub limit: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `sla` arguments.
#[derive(Debug, Args)]
pub struct SlaArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Only this sensor (default: all).
    #[arg(long)]
    pub sensor: Option<String>,
    /// Report per day, ISO week or calendar month (UTC).
    #[arg(long, default_value = "month", value_parser = ["day", "week", "month"])]
    pub period: String,
    /// First day, YYYY-MM-DD (UTC; default: start of the current period).
    #[arg(long)]
    pub from: Option<String>,
    /// Day after the last, YYYY-MM-DD (UTC; default: now).
    #[arg(long)]
    pub to: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `outpost run`.
pub async fn run(c: LoadArgs, cache_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    crate::agent::run(&c.config.path, cache_dir, c.allow_empty).await?;
    Ok(ExitCode::SUCCESS)
}

/// `outpost check-config`.
pub async fn check_config(c: LoadArgs, cache_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let (_, loaded) =
        crate::agent::load_config(&c.config.path, cache_dir, false, c.allow_empty).await?;
    let cfg = &loaded.config;
    println!("{}: ok", cfg.path.display());
    println!(
        "agent `{}`, listening on {}, data in {}",
        cfg.agent.name,
        cfg.agent.listen,
        cfg.agent.data_dir.display()
    );
    println!("{} sensor(s):", cfg.sensors.len());
    for s in &cfg.sensors {
        println!(
            "  {:<24} {:<10} every {:>6} (timeout {}, retry {}, down after {}, up after {})",
            s.name,
            short_plugin(&s.plugin),
            fmt_dur(s.interval),
            fmt_dur(s.timeout),
            fmt_dur(s.retry_interval),
            s.fail_after,
            s.recover_after
        );
        if let Some(p) = loaded.plugins.get(&s.plugin) {
            println!("    network: {}", grant(p, &s.config, s.allow.as_deref()));
        }
    }
    for n in &cfg.notifiers {
        if let Some(p) = loaded.plugins.get(&n.plugin) {
            println!(
                "  notifier {:<15} network: {}",
                n.name,
                grant(p, &n.config, n.allow.as_deref())
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The effective network grant of one configured plugin, for people.
fn grant(
    plugin: &outpost_plugin_host::Plugin,
    config: &crate::config::PluginConfig,
    allow: Option<&[outpost_plugin_host::Endpoint]>,
) -> String {
    let p = outpost_plugin_host::NetPolicy::granted(plugin.info(), &config.value(), allow, &[]);
    let from = if allow.is_some() {
        "allow"
    } else {
        "target fields"
    };
    format!("{} (from {from})", p.describe())
}

fn short_plugin(p: &str) -> &str {
    Path::new(p)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(p)
}

fn fmt_dur(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        format!("{ms}ms")
    } else if !ms.is_multiple_of(60_000) || ms == 0 {
        format!("{}s", ms / 1000)
    } else if !ms.is_multiple_of(3_600_000) {
        format!("{}m", ms / 60_000)
    } else {
        format!("{}h", ms / 3_600_000)
    }
}

fn reader(c: &ConfigArg) -> anyhow::Result<Reader> {
    let agent = config::agent_only(&c.path)?;
    let db = crate::agent::db_path(&agent.data_dir);
    if !db.exists() {
        bail!(
            "no database at {} yet: start the agent with `outpost run -c {}`",
            db.display(),
            c.path.display()
        );
    }
    Reader::open(&db).with_context(|| format!("cannot open {}", db.display()))
}

fn ago(ms: i64) -> String {
    let s = ((outpost_types::time::now_ms() - ms).max(0) / 1000) as u64;
    match s {
        0..=119 => format!("{s}s ago"),
        120..=7199 => format!("{}m ago", s / 60),
        7200..=172_799 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86400),
    }
}

/// How long `outpost status` waits for the running agent before reading
/// the database instead: a local agent answers in milliseconds.
const LIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

async fn live_status(c: &ConfigArg) -> Option<serde_json::Value> {
    let agent = config::agent_only(&c.path).ok()?;
    let api = config::topology::api_only(&c.path).ok()?;
    let mut addr = agent.listen;
    if addr.port() == 0 {
        // The kernel picked the port; the running agent wrote it down.
        addr = std::fs::read_to_string(agent.data_dir.join(crate::agent::LISTEN_ADDR_FILE))
            .ok()?
            .trim()
            .parse()
            .ok()?;
    }
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    if let Some(tls) = &agent.tls {
        // HTTPS: trust exactly the certificate the agent serves (its file
        // is right here); present it as our client certificate when the
        // agent requires one.
        use sha2::Digest;
        let cert = crate::tls::read_certs(&tls.cert_file)
            .ok()?
            .into_iter()
            .next()?;
        let mutual = tls.client_ca_file.is_some();
        let settings = crate::tls::ClientSettings {
            ca_file: None,
            cert_file: mutual.then(|| tls.cert_file.clone()),
            key_file: mutual.then(|| tls.key_file.clone()),
            pin_sha256: Some(sha2::Sha256::digest(cert.as_ref()).into()),
            pin_only: true,
        };
        let url = format!("https://{addr}/api/v1/status");
        let t = crate::federation::Transport::new(&url, Some(&settings)).ok()?;
        let (status, body) = tokio::time::timeout(
            LIVE_TIMEOUT,
            t.get(
                &url,
                api.read_token.as_deref(),
                crate::federation::MAX_STATUS_BYTES,
            ),
        )
        .await
        .ok()?
        .ok()?;
        return (status == 200).then(|| serde_json::from_slice(&body).ok())?;
    }
    let client = crate::federation::client();
    let mut req = client
        .get(format!("http://{addr}/api/v1/status"))
        .timeout(LIVE_TIMEOUT);
    if let Some(t) = &api.read_token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

fn print_node(doc: &serde_json::Value, name: &str, depth: usize, seen: &mut Vec<String>) {
    let find = |section: &str| {
        doc[section]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["name"] == name))
            .cloned()
    };
    let indent = "  ".repeat(depth);
    let node = find("systems").or_else(|| find("services"));
    if let Some(n) = node {
        println!(
            "{indent}{:<width$} {:<9} {:<10} {}",
            safe(name),
            safe(&n["state"].as_str().unwrap_or("?").to_uppercase()),
            n["since_ms"].as_i64().map(ago).unwrap_or_default(),
            safe(n["reason"].as_str().unwrap_or("")),
            width = 28usize.saturating_sub(indent.len())
        );
        if seen.iter().any(|s| s == name) {
            return;
        }
        seen.push(name.to_string());
        for m in n["members"].as_array().into_iter().flatten() {
            print_node(doc, m["name"].as_str().unwrap_or(""), depth + 1, seen);
        }
        seen.pop();
    } else if let Some(s) = find("sensors") {
        println!(
            "{indent}{:<width$} {:<9} {:<10} sensor: {}",
            safe(name),
            safe(&s["state"].as_str().unwrap_or("?").to_uppercase()),
            s["since_ms"].as_i64().map(ago).unwrap_or_default(),
            safe(s["reason"].as_str().unwrap_or("")),
            width = 28usize.saturating_sub(indent.len())
        );
    } else if let Some(rest) = name.strip_prefix("peer:") {
        let (agent, node) = rest.split_once('/').unwrap_or((rest, ""));
        let peer = doc["peers"]
            .as_array()
            .and_then(|a| a.iter().find(|p| p["name"] == agent));
        let remote = peer.and_then(|p| {
            p["nodes"]
                .as_array()
                .and_then(|n| n.iter().find(|n| n["name"] == node))
        });
        let (state, reason) = match (peer, remote) {
            (Some(p), _) if p["state"] == "stale" => (
                "UNKNOWN".to_string(),
                format!(
                    "peer {agent} is stale: {}",
                    p["reason"].as_str().unwrap_or("")
                ),
            ),
            (_, Some(r)) => (
                r["state"].as_str().unwrap_or("?").to_uppercase(),
                r["reason"].as_str().unwrap_or("").to_string(),
            ),
            _ => ("UNKNOWN".to_string(), format!("not reported by {agent}")),
        };
        println!(
            "{indent}{:<width$} {:<9} {:<10} remote: {}",
            safe(name),
            safe(&state),
            "",
            safe(&reason),
            width = 28usize.saturating_sub(indent.len())
        );
    }
}

fn print_tree(doc: &serde_json::Value) {
    let agent = &doc["agent"];
    println!(
        "agent `{}` (live, version {})",
        safe(agent["name"].as_str().unwrap_or("?")),
        safe(agent["version"].as_str().unwrap_or("?"))
    );
    let c = &agent["connectivity"];
    if c["online"] == false {
        println!(
            "AGENT OFFLINE: no connectivity canary answers ({}); failing checks show as unknown and open no incident",
            safe(c["reason"].as_str().unwrap_or("?"))
        );
    }
    let services = doc["services"].as_array().cloned().unwrap_or_default();
    if !services.is_empty() {
        println!("\n{:<28} {:<9} {:<10} REASON", "SERVICE", "STATE", "SINCE");
        for s in &services {
            print_node(doc, s["name"].as_str().unwrap_or(""), 0, &mut vec![]);
        }
    }
    println!(
        "\n{:<24} {:<11} {:<10} {:<10} MESSAGE",
        "SENSOR", "STATE", "SINCE", "CHECKED"
    );
    for s in doc["sensors"].as_array().into_iter().flatten() {
        let flap = if s["flapping"] == true {
            " (flapping)"
        } else {
            ""
        };
        println!(
            "{:<24} {:<11} {:<10} {:<10} {}{flap}",
            safe(s["name"].as_str().unwrap_or("")),
            safe(&s["state"].as_str().unwrap_or("").to_uppercase()),
            s["since_ms"].as_i64().map(ago).unwrap_or_default(),
            s["last_check_ms"]
                .as_i64()
                .map(ago)
                .unwrap_or_else(|| "never".into()),
            safe(s["last_message"].as_str().unwrap_or(""))
        );
    }
    let providers = doc["providers"].as_array().cloned().unwrap_or_default();
    if !providers.is_empty() {
        println!(
            "\n{:<24} {:<9} {:>7} {:>7} {:<10} PROBLEMS",
            "PROVIDER", "STATE", "OBJECTS", "SENSORS", "DISCOVERED"
        );
        for p in &providers {
            let mut problems: Vec<&str> = p["error"].as_str().into_iter().collect();
            problems.extend(
                p["problems"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str()),
            );
            println!(
                "{:<24} {:<9} {:>7} {:>7} {:<10} {}",
                safe(p["name"].as_str().unwrap_or("")),
                safe(&p["state"].as_str().unwrap_or("").to_uppercase()),
                p["objects"].as_u64().unwrap_or(0),
                p["sensors"].as_u64().unwrap_or(0),
                p["last_success_ms"]
                    .as_i64()
                    .map(ago)
                    .unwrap_or_else(|| "never".into()),
                safe(&if problems.is_empty() {
                    "-".to_string()
                } else {
                    problems.join("; ")
                })
            );
        }
    }
    let peers = doc["peers"].as_array().cloned().unwrap_or_default();
    if !peers.is_empty() {
        println!("\n{:<24} {:<9} {:<10} REASON", "PEER", "STATE", "VIA");
        for p in &peers {
            let via: Vec<&str> = p["via"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str())
                .collect();
            println!(
                "{:<24} {:<9} {:<10} {}",
                safe(p["name"].as_str().unwrap_or("")),
                safe(&p["state"].as_str().unwrap_or("").to_uppercase()),
                safe(&if via.is_empty() {
                    "-".to_string()
                } else {
                    via.join(">")
                }),
                safe(p["reason"].as_str().unwrap_or(""))
            );
        }
    }
}

/// `outpost status`.
pub async fn status(a: StatusArgs) -> anyhow::Result<ExitCode> {
    if let Some(doc) = live_status(&a.config).await {
        if a.json {
            println!("{}", serde_json::to_string_pretty(&doc)?);
        } else {
            print_tree(&doc);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let r = reader(&a.config)?;
    let states = r.sensor_states()?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&states)?);
        return Ok(ExitCode::SUCCESS);
    }
    if states.is_empty() {
        println!("no sensor has been checked yet");
    }
    println!(
        "{:<24} {:<11} {:<10} {:<10} MESSAGE",
        "SENSOR", "STATE", "SINCE", "CHECKED"
    );
    for s in &states {
        let flap = if s.flapping { " (flapping)" } else { "" };
        println!(
            "{:<24} {:<11} {:<10} {:<10} {}{flap}",
            safe(&s.sensor),
            safe(&s.state.to_uppercase()),
            ago(s.since_ms),
            s.last_check_ms.map(ago).unwrap_or_else(|| "never".into()),
            safe(&s.last_message)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `outpost history`.
pub async fn history(a: HistoryArgs) -> anyhow::Result<ExitCode> {
    let r = reader(&a.config)?;
    let since = outpost_types::time::now_ms() - a.since.as_millis() as i64;
    let results = r.history(&a.sensor, since, a.limit)?;
    let transitions = r.transitions(&a.sensor, since)?;
    if a.json {
        println!(
            "{}",
            serde_json::json!({"sensor": a.sensor, "results": results, "transitions": transitions})
        );
        return Ok(ExitCode::SUCCESS);
    }
    if results.is_empty() && transitions.is_empty() {
        println!(
            "no results for `{}` in that time (is the name right? see `outpost status`)",
            safe(&a.sensor)
        );
    }
    for t in &transitions {
        println!(
            "{}  {} → {}: {}",
            iso(t.at_ms),
            safe(&t.from),
            safe(&t.to),
            safe(&t.reason)
        );
    }
    if !transitions.is_empty() {
        println!();
    }
    for row in &results {
        println!(
            "{}  {:<5} {:>8.1} ms  {}",
            iso(row.at_ms),
            row.status.as_str(),
            row.latency_us as f64 / 1000.0,
            safe(&row.message)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// (target, opened, acknowledged, resolved) of the incidents opened since
/// `from_ms`; empty when the database has none (or cannot be read).
fn incident_times(c: &ConfigArg, from_ms: i64) -> Vec<(String, i64, Option<i64>, Option<i64>)> {
    let Ok(agent) = config::agent_only(&c.path) else {
        return vec![];
    };
    let Ok(db) = outpost_store::EscalationDb::open(crate::agent::db_path(&agent.data_dir)) else {
        return vec![];
    };
    db.tx(|t| t.recent_incidents(from_ms, 100_000))
        .unwrap_or_default()
        .into_iter()
        .filter(|i| !i.suppressed && i.opened_at_ms >= from_ms)
        .map(|i| (i.target, i.opened_at_ms, i.acked_at_ms, i.resolved_at_ms))
        .collect()
}

/// Incidents of `target` opened in `[from, to)`: how many, mean time to
/// acknowledge, mean time to resolve (ms).
fn incident_stats(
    all: &[(String, i64, Option<i64>, Option<i64>)],
    target: &str,
    from: i64,
    to: i64,
) -> (u64, Option<i64>, Option<i64>) {
    let mine: Vec<_> = all
        .iter()
        .filter(|(t, opened, _, _)| t == target && (from..to).contains(opened))
        .collect();
    let mean = |v: Vec<i64>| (!v.is_empty()).then(|| v.iter().sum::<i64>() / v.len() as i64);
    let mtta = mean(
        mine.iter()
            .filter_map(|(_, o, a, _)| a.map(|a| a - o))
            .collect(),
    );
    let mttr = mean(
        mine.iter()
            .filter_map(|(_, o, _, r)| r.map(|r| r - o))
            .collect(),
    );
    (mine.len() as u64, mtta, mttr)
}

/// Formats Unix ms as `YYYY-MM-DD HH:MM:SS` UTC.
pub fn iso(ms: i64) -> String {
    outpost_store::format_utc(ms)
}

/// `outpost sla`.
pub async fn sla(a: SlaArgs) -> anyhow::Result<ExitCode> {
    let r = reader(&a.config)?;
    let period = match a.period.as_str() {
        "day" => Period::Day,
        "week" => Period::Week,
        _ => Period::Month,
    };
    let now = outpost_types::time::now_ms();
    let from = match &a.from {
        Some(d) => outpost_store::parse_day(d).map_err(anyhow::Error::msg)?,
        None => outpost_store::period_start(period, now),
    };
    let to = match &a.to {
        Some(d) => outpost_store::parse_day(d).map_err(anyhow::Error::msg)?,
        None => now,
    };
    if to <= from {
        bail!("--to must be after --from");
    }
    let rows = r.sla(&SlaQuery {
        sensor: a.sensor.clone(),
        period,
        from_ms: from,
        to_ms: to,
    })?;
    let incidents = incident_times(&a.config, from);
    if a.json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                let mut j = serde_json::to_value(r).unwrap_or_default();
                let (n, mtta, mttr) =
                    incident_stats(&incidents, &r.sensor, r.period_start_ms, r.period_end_ms);
                if let Some(o) = j.as_object_mut() {
                    o.insert("incidents".into(), n.into());
                    o.insert("mtta_ms".into(), mtta.into());
                    o.insert("incident_mttr_ms".into(), mttr.into());
                }
                j
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<24} {:<10} {:>9} {:>10} {:>8} {:>10} {:>8} {:>9} {:>8}",
        "SENSOR", "PERIOD", "UPTIME", "DOWNTIME", "OUTAGES", "MTTR", "CHECKS", "INCIDENTS", "MTTA"
    );
    for row in &rows {
        let up = row
            .uptime_pct
            .map(|u| format!("{u:.3}%"))
            .unwrap_or_else(|| "n/a".into());
        let mttr = row
            .mttr_ms
            .map(|m| {
                fmt_dur(std::time::Duration::from_millis(
                    (m.max(0) as u64 / 1000) * 1000,
                ))
            })
            .unwrap_or_else(|| "-".into());
        let (n, mtta, _) = incident_stats(
            &incidents,
            &row.sensor,
            row.period_start_ms,
            row.period_end_ms,
        );
        let mtta = mtta
            .map(|m| {
                fmt_dur(std::time::Duration::from_millis(
                    (m.max(0) as u64 / 1000) * 1000,
                ))
            })
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<24} {:<10} {:>9} {:>10} {:>8} {:>10} {:>8} {:>9} {:>8}",
            row.sensor,
            &iso(row.period_start_ms)[..10],
            up,
            fmt_dur(std::time::Duration::from_millis(
                (row.downtime_ms.max(0) as u64 / 1000) * 1000
            )),
            row.outages,
            mttr,
            row.checks,
            n,
            mtta
        );
    }
    Ok(ExitCode::SUCCESS)
}
