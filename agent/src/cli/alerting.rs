//! `outpost ack | silence | incidents`: what an operator does about
//! incidents from a shell. They work on the database directly (through
//! [`crate::escalation::actions`]), so they work whether or not the agent
//! runs; a running agent picks the result up within a fraction of a second.

use super::agent::{ConfigArg, iso};
use super::term::safe;
use crate::config;
use crate::escalation::actions::{self, AckOutcome};
use anyhow::{Context, bail};
use clap::Args;
use outpost_store::EscalationDb;
use std::process::ExitCode;

/// `ack` arguments.
#[derive(Debug, Args)]
pub struct AckArgs {
    /// The token from a notification's acknowledgement link (the part after
    /// `/ack/`), or the whole link.
    pub token: String,
    /// Who acknowledges (default: $USER).
    #[arg(long)]
    pub by: Option<String>,
    #[command(flatten)]
    pub config: ConfigArg,
}

/// `silence` arguments.
#[derive(Debug, Args)]
pub struct SilenceArgs {
    /// A target: a sensor, system or service name, `category:NAME`,
    /// `label:KEY=VALUE` or `*`.
    #[arg(required_unless_present_any = ["list", "end"])]
    pub target: Option<String>,
    /// How long (e.g. 30m, 2h).
    #[arg(long = "for", value_parser = outpost_types::duration::parse, required_unless_present_any = ["list", "end"])]
    pub duration: Option<std::time::Duration>,
    /// Why (shown with the silence).
    #[arg(long, default_value = "")]
    pub reason: String,
    /// List the silences in force or coming.
    #[arg(long, conflicts_with_all = ["target", "end"])]
    pub list: bool,
    /// End the silence with this id now.
    #[arg(long, value_name = "ID", conflicts_with = "target")]
    pub end: Option<i64>,
    #[command(flatten)]
    pub config: ConfigArg,
}

/// `incidents` arguments.
#[derive(Debug, Args)]
pub struct IncidentsArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// How far back (e.g. 1d, 7d).
    #[arg(long, default_value = "7d", value_parser = outpost_types::duration::parse)]
    pub since: std::time::Duration,
    /// Also print each incident's history and notifications.
    #[arg(long, short)]
    pub verbose: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn open(c: &ConfigArg) -> anyhow::Result<(config::AgentConfig, EscalationDb)> {
    let agent = config::agent_only(&c.path)?;
    let db = crate::agent::db_path(&agent.data_dir);
    if !db.exists() {
        bail!(
            "no database at {} yet: start the agent with `outpost run -c {}`",
            db.display(),
            c.path.display()
        );
    }
    let e = EscalationDb::open(&db).with_context(|| format!("cannot open {}", db.display()))?;
    Ok((agent, e))
}

fn who(by: Option<String>) -> String {
    by.or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "cli".into())
}

/// `outpost ack`.
pub async fn ack(a: AckArgs) -> anyhow::Result<ExitCode> {
    let (agent, db) = open(&a.config)?;
    let token = a
        .token
        .rsplit('/')
        .next()
        .unwrap_or(&a.token)
        .trim()
        .to_string();
    let by = who(a.by);
    let now = outpost_types::time::now_ms();
    let out = db.tx(|t| actions::acknowledge(t, &agent.name, &token, &by, now))?;
    match out {
        AckOutcome::Acknowledged { incident } => {
            println!(
                "acknowledged incident #{} ({}) as {}; escalation stopped",
                incident.id,
                incident.target,
                incident.acked_by.unwrap_or_default()
            );
            Ok(ExitCode::SUCCESS)
        }
        AckOutcome::AlreadyAcknowledged { incident } => {
            eprintln!(
                "incident #{} ({}) was already acknowledged by {} at {}; nothing changed",
                incident.id,
                incident.target,
                incident.acked_by.unwrap_or_default(),
                incident.acked_at_ms.map(iso).unwrap_or_default()
            );
            Ok(ExitCode::from(1))
        }
        AckOutcome::Resolved { incident } => {
            eprintln!(
                "incident #{} ({}) is resolved; nothing to acknowledge",
                incident.id, incident.target
            );
            Ok(ExitCode::from(1))
        }
        AckOutcome::Unknown => {
            eprintln!(
                "no incident has this token (check that it was copied whole); nothing changed"
            );
            Ok(ExitCode::from(1))
        }
    }
}

/// `outpost silence`.
pub async fn silence(a: SilenceArgs) -> anyhow::Result<ExitCode> {
    let (_, db) = open(&a.config)?;
    let now = outpost_types::time::now_ms();
    if a.list {
        let list = db.tx(|t| t.silences(now, true))?;
        if list.is_empty() {
            println!("no silences");
        }
        for s in list {
            println!(
                "#{:<4} {:<24} {} → {}  by {}  {}",
                s.id,
                safe(&s.target),
                iso(s.from_ms),
                iso(s.until_ms),
                safe(&s.created_by),
                safe(&s.reason)
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(id) = a.end {
        return if db.tx(|t| t.end_silence(id, now))? {
            println!("silence #{id} ended");
            Ok(ExitCode::SUCCESS)
        } else {
            eprintln!("no silence #{id} in force");
            Ok(ExitCode::from(1))
        };
    }
    let target = a.target.unwrap_or_default();
    let d = a.duration.unwrap_or_default();
    let by = who(None);
    let s = db
        .tx(|t| {
            Ok(actions::silence(
                t,
                &target,
                d.as_millis() as i64,
                &a.reason,
                &by,
                now,
            ))
        })?
        .map_err(anyhow::Error::msg)?;
    println!(
        "silence #{} for {} until {} UTC: notifications are held, results are still recorded",
        s.id,
        s.target,
        iso(s.until_ms)
    );
    Ok(ExitCode::SUCCESS)
}

/// `outpost incidents`.
pub async fn incidents(a: IncidentsArgs) -> anyhow::Result<ExitCode> {
    let (_, db) = open(&a.config)?;
    let since = outpost_types::time::now_ms() - a.since.as_millis() as i64;
    let list = db.tx(|t| {
        let mut out = Vec::new();
        for i in t.recent_incidents(since, 1000)? {
            let events = t.events(i.id)?;
            let outbox = t.outbox_of(i.id)?;
            out.push((i, events, outbox));
        }
        Ok(out)
    })?;
    if a.json {
        let v: Vec<_> = list
            .iter()
            .map(|(i, ev, ob)| {
                let mut j = serde_json::to_value(i).unwrap_or_default();
                if let Some(o) = j.as_object_mut() {
                    o.remove("token_hash");
                    o.remove("ack_nonce");
                    o.insert(
                        "events".into(),
                        serde_json::to_value(ev).unwrap_or_default(),
                    );
                    o.insert(
                        "notifications".into(),
                        serde_json::to_value(
                            ob.iter()
                                .map(|e| {
                                    serde_json::json!({
                                        "notifier": e.notifier,
                                        "event": e.payload.get("event"),
                                        "level": e.payload.get("level"),
                                        "attempts": e.attempts,
                                        "delivered_at_ms": e.delivered_at_ms,
                                        "gave_up_at_ms": e.gave_up_at_ms,
                                        "last_error": e.last_error,
                                    })
                                })
                                .collect::<Vec<_>>(),
                        )
                        .unwrap_or_default(),
                    );
                }
                j
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        println!("no incidents in that time");
    }
    for (i, events, outbox) in &list {
        let state = match i.state {
            outpost_store::IncidentState::Open if i.suppressed => "suppressed".to_string(),
            s => s.as_str().to_string(),
        };
        println!(
            "#{:<4} {:<24} {:<10} level {}  opened {}  {}",
            i.id,
            safe(&i.target),
            state,
            i.level,
            iso(i.opened_at_ms),
            safe(&i.message)
        );
        if a.verbose {
            for e in events {
                println!(
                    "        {}  {:<16} {}",
                    iso(e.at_ms),
                    safe(&e.kind),
                    safe(&e.detail)
                );
            }
            for o in outbox {
                let st = if o.delivered_at_ms.is_some() {
                    "delivered"
                } else if o.gave_up_at_ms.is_some() {
                    "given up"
                } else {
                    "pending"
                };
                println!(
                    "        → {:<16} {:<13} {:<10} attempts {}{}",
                    safe(&o.notifier),
                    o.payload
                        .get("event")
                        .and_then(|v| v.as_str())
                        .unwrap_or("?"),
                    st,
                    o.attempts,
                    o.last_error
                        .as_ref()
                        .map(|e| format!("  last error: {}", safe(e)))
                        .unwrap_or_default()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
