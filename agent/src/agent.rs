//! `outpost run`: wires the pipeline together and keeps it running.
//!
//! schedule → run plugin → result → store → evaluate → incidents → notify / serve:
//! [`Scheduler`] tasks send [`CheckEvent`]s to the [`recorder`], which
//! stores them and updates the [`Board`] that the [`api`] serves, then
//! forwards them to the [`evaluation`] stage (systems, services, peers),
//! which sends [`TargetEvent`]s on to the incident [`Engine`], whose
//! notifications the [`escalation::outbox`] delivers. Peer pollers
//! ([`federation`]) and pushes received by the API feed the evaluation
//! stage too.
//! This module owns start-up (resuming sensor states from the database),
//! reloads (SIGHUP, or a change in an `include` directory: an invalid new
//! config is rejected and the old one keeps running) and graceful shutdown
//! (SIGINT/SIGTERM: checks in flight finish or hit their deadline, the
//! store is flushed).

use crate::api;
use crate::config::{self, Config};
use crate::escalation::{self, AlertingConfig, engine::Engine, token};
use crate::evaluation;
use crate::federation::{self, Identity, PeerUpdate};
use crate::metrics::Metrics;
use crate::providers;
use crate::recorder;
use crate::scheduler::{CheckEvent, Scheduler};
use crate::state::{Machine, Policy, State};
use crate::status::{Board, SensorView};
use crate::targets::TargetEvent;
use crate::topology::Graph;
use anyhow::Context;
use outpost_plugin_host::{HostConfig, PluginHost};
use outpost_store::{Store, StoreOptions};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, mpsc, watch};

/// How often `include` directories are looked at for changes. Two seconds
/// makes a dropped-in file take effect promptly at negligible cost.
const INCLUDE_POLL: Duration = Duration::from_secs(2);

/// Capacity of the scheduler → recorder channel: a few seconds of results
/// at 1,000 checks/s; beyond that, checks wait (backpressure) rather than
/// results being dropped.
const EVENT_QUEUE: usize = 4096;

/// Capacity of the federation → evaluation channel: one message per poll
/// or push; 1,024 covers a burst from a large fleet.
const PEER_QUEUE: usize = 1024;

/// The evaluation stage's view of a configuration.
fn eval_setup(cfg: &Config) -> evaluation::Setup {
    evaluation::Setup {
        graph: Graph::new(cfg.topology.nodes.clone()),
        peers: cfg.topology.peers.clone(),
        sensors: cfg.sensors.clone(),
    }
}

/// Starts a poller per polled peer and a pusher per `[[push]]`.
fn federation_tasks(
    cfg: &Config,
    peer_tx: &mpsc::Sender<PeerUpdate>,
    api_state: &api::AppState,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = vec![];
    for p in cfg.topology.peers.iter().filter(|p| p.url.is_some()) {
        tasks.push(tokio::spawn(federation::poll_peer(
            p.clone(),
            peer_tx.clone(),
        )));
    }
    for p in &cfg.topology.push {
        let st = api_state.clone();
        tasks.push(tokio::spawn(federation::push_to(p.clone(), move || {
            st.status_json().1
        })));
    }
    tasks
}

fn push_peers(cfg: &Config) -> Vec<String> {
    cfg.topology
        .peers
        .iter()
        .filter(|p| p.url.is_none())
        .map(|p| p.name.clone())
        .collect()
}

/// Fails with the cause (read-only file system, permission denied, disk
/// full) when the data directory cannot be written: SQLite would only say
/// "unable to open database file".
fn check_writable(dir: &Path) -> anyhow::Result<()> {
    let probe = dir.join(".outpost-write-test");
    let r = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe);
    let _ = std::fs::remove_file(&probe);
    r.map(drop).with_context(|| {
        format!(
            "the data directory {} is not writable (the agent keeps its database there; set [agent] data_dir to a writable directory)",
            dir.display()
        )
    })
}

/// The database file inside the data directory.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("outpost.db")
}

/// Builds the plugin host for an agent config. Compiled components are
/// cached in `cache_dir` (the one `plugin run|test` and `check-config` use
/// too), or in `<data_dir>/plugin-cache` when there is none.
pub fn plugin_host(
    agent: &config::AgentConfig,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<PluginHost> {
    PluginHost::new(HostConfig {
        cache_dir: Some(cache_dir.unwrap_or_else(|| agent.data_dir.join("plugin-cache"))),
        // The agent lives long: a cache miss is compiled by a child copy
        // of this executable, so the compiler's memory is never ours.
        compiler: std::env::current_exe().ok(),
        limits: agent.limits,
        reuse_instances: agent.reuse_instances,
        warm_instances: agent.warm_instances,
        // Checks (bounded by the scheduler), plus notifier deliveries and
        // the validation of a reloaded config running beside them.
        concurrent_runs: agent.concurrency + 32,
        max_plugin_bytes: agent.max_plugin_bytes,
        ..HostConfig::default()
    })
}

/// Loads a config for `outpost run` (and `check-config`): the `[agent]`
/// section first, on its own (it sets the plugin limits and the data
/// directory holding the compiled-component cache), then everything, once,
/// with the plugins of that host. `run` is false for `check-config`, which
/// must not create the data directory: it uses `cache_dir` only, and
/// compiles a miss in-process (it is short-lived).
pub async fn load_config(
    path: &Path,
    cache_dir: Option<PathBuf>,
    run: bool,
    allow_empty: bool,
) -> anyhow::Result<(Arc<PluginHost>, config::Loaded)> {
    let agent = config::agent_only(path)?;
    let host = if run {
        plugin_host(&agent, cache_dir)?
    } else {
        PluginHost::new(HostConfig {
            cache_dir,
            limits: agent.limits,
            max_plugin_bytes: agent.max_plugin_bytes,
            ..HostConfig::default()
        })?
    };
    let host = Arc::new(host);
    let loaded = load_guarded(path, &host, allow_empty).await?;
    Ok((host, loaded))
}

/// [`config::load`] in a task of its own, so that even a panic in config
/// code (a bug; no input should cause one) is an error of this load and
/// not the end of the agent: a reload that fails for any reason leaves the
/// running configuration in place. An empty main file is refused unless
/// `allow_empty`.
pub async fn load_guarded(
    path: &Path,
    host: &Arc<PluginHost>,
    allow_empty: bool,
) -> anyhow::Result<config::Loaded> {
    if !allow_empty {
        config::refuse_empty(path)?;
    }
    let (path, host) = (path.to_path_buf(), host.clone());
    match tokio::spawn(async move { config::load(&path, &host).await }).await {
        Ok(r) => Ok(r?),
        Err(e) if e.is_panic() => {
            let p = e.into_panic();
            let why = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown cause".into());
            anyhow::bail!("loading the configuration failed (internal error: {why})")
        }
        Err(e) => anyhow::bail!("loading the configuration was cancelled: {e}"),
    }
}

fn include_fingerprint(cfg: &Config) -> Vec<(PathBuf, u128, u64)> {
    let mut out = vec![];
    for dir in &cfg.include_dirs {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if let Ok(m) = e.metadata() {
                    let mtime = m
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map(|d| d.as_nanos())
                        .unwrap_or(0);
                    out.push((e.path(), mtime, m.len()));
                }
            }
        }
    }
    out.sort();
    out
}

fn resume_states(store: &Store, board: &Board, cfg: &Config) -> HashMap<String, Machine> {
    let mut resume = HashMap::new();
    let states = store.sensor_states().unwrap_or_default();
    // By name: a reload that adds thousands of sensors (a provider's
    // discovery) looks each one up once, not in a scan of all states.
    let states: HashMap<&str, &outpost_store::SensorState> =
        states.iter().map(|p| (p.sensor.as_str(), p)).collect();
    for s in cfg.sensors.iter() {
        let policy = Policy {
            fail_after: s.fail_after,
            recover_after: s.recover_after,
        };
        let prev = states.get(s.name.as_str()).copied();
        if let Some(p) = prev {
            let state = State::parse(&p.state).unwrap_or(State::Unknown);
            resume.insert(
                s.name.clone(),
                Machine::resume(
                    policy,
                    state,
                    p.since_ms,
                    p.consecutive_failures,
                    p.consecutive_successes,
                    p.flapping,
                ),
            );
        }
        board.put(SensorView {
            sensor: s.clone(),
            state: prev
                .and_then(|p| State::parse(&p.state))
                .unwrap_or(State::Unknown),
            since_ms: prev
                .map(|p| p.since_ms)
                .unwrap_or_else(outpost_types::time::now_ms),
            reason: if prev.is_some() {
                "resumed from the database".into()
            } else {
                "not checked yet".into()
            },
            flapping: prev.map(|p| p.flapping).unwrap_or(false),
            last_check_ms: prev.and_then(|p| p.last_check_ms),
            last_status: prev.and_then(|p| p.last_status),
            last_message: prev.map(|p| p.last_message.clone()).unwrap_or_default(),
            offline: false,
            last_latency_ms: prev
                .and_then(|p| p.last_latency_us)
                .map(|u| u as f64 / 1000.0),
        });
    }
    resume
}

/// Runs the agent until SIGINT or SIGTERM.
/// Name of the file in the data directory that holds the address the API
/// listens on, written once it listens: with `listen = "127.0.0.1:0"` the
/// kernel picks the port, and tools and tests read it back from here.
pub const LISTEN_ADDR_FILE: &str = "listen-addr";

/// Writes [`LISTEN_ADDR_FILE`] (atomically: a reader never sees half of
/// it). A failure is logged, not fatal: the address is also in the log.
fn publish_listen_addr(data_dir: &Path, bound: std::net::SocketAddr) {
    let tmp = data_dir.join(format!("{LISTEN_ADDR_FILE}.tmp"));
    let res = std::fs::write(&tmp, format!("{bound}\n"))
        .and_then(|()| std::fs::rename(&tmp, data_dir.join(LISTEN_ADDR_FILE)));
    if let Err(e) = res {
        tracing::warn!(error = %e, "cannot write {LISTEN_ADDR_FILE} in the data directory");
    }
}

/// The public URL of the API: as configured, or, when it defaulted to the
/// `listen` address, the address actually bound (the port the kernel chose
/// for port 0).
fn public_url(a: &config::AgentConfig, bound: std::net::SocketAddr) -> String {
    let scheme = if a.tls.is_some() { "https" } else { "http" };
    if a.public_url == format!("{scheme}://{}", a.listen) {
        format!("{scheme}://{bound}")
    } else {
        a.public_url.clone()
    }
}

/// Starts the connectivity guard's probing and mirrors its verdict onto
/// the board (status document, page) and `/metrics`.
fn show_connectivity(
    guard: Arc<crate::connectivity::Guard>,
    board: Arc<Board>,
    metrics: Arc<Metrics>,
) -> [tokio::task::JoinHandle<()>; 2] {
    let mut rx = guard.subscribe();
    let targets = guard.targets().to_vec();
    let mirror = tokio::spawn(async move {
        loop {
            let now = rx.borrow_and_update().clone();
            metrics.set_online(now.online);
            board.put_connectivity(Some(crate::status::ConnectivityDoc {
                online: now.online,
                since_ms: now.since_ms,
                reason: now.reason,
                targets: targets.clone(),
            }));
            if rx.changed().await.is_err() {
                return;
            }
        }
    });
    [tokio::spawn(guard.run()), mirror]
}

/// Runs the agent on the config at `path`; compiled plugins are cached in
/// `cache_dir` (see [`plugin_host`]). An empty config is refused unless
/// `allow_empty`.
pub async fn run(path: &Path, cache_dir: Option<PathBuf>, allow_empty: bool) -> anyhow::Result<()> {
    let (host, loaded) = load_config(path, cache_dir, true, allow_empty).await?;
    crate::memory::release_freed();
    let mut cfg = loaded.config;
    let mut plugins = loaded.plugins;
    // The TOML configuration and its plugins; `cfg` is the effective one
    // (the base plus what the providers' objects make).
    let mut base = cfg.clone();
    let mut base_plugins = plugins.clone();
    std::fs::create_dir_all(&cfg.agent.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            cfg.agent.data_dir.display()
        )
    })?;
    check_writable(&cfg.agent.data_dir)?;
    let db = db_path(&cfg.agent.data_dir);
    let store = Store::open(
        &db,
        StoreOptions {
            raw_retention: cfg.agent.raw_retention,
            rollup_retention: cfg.agent.rollup_retention,
            ..StoreOptions::default()
        },
    )
    .with_context(|| format!("cannot open the database {}", db.display()))?;

    // Listen before any check runs: the checks' outgoing connections take
    // ephemeral ports, and one of them must not be the port configured here.
    let mut http_limits = cfg.agent.http;
    http_limits.max_connections = crate::server::descriptor_budget(http_limits.max_connections);
    let tls = match &cfg.agent.tls {
        Some(t) => Some(Arc::new(
            crate::tls::ServerTls::new(t.clone()).context("agent.tls")?,
        )),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(cfg.agent.listen)
        .await
        .with_context(|| format!("cannot listen on {} (agent.listen)", cfg.agent.listen))?;
    let bound = listener.local_addr()?;
    publish_listen_addr(&cfg.agent.data_dir, bound);
    cfg.agent.public_url = public_url(&cfg.agent, bound);
    let metrics = Arc::new(Metrics::default());
    let board = Arc::new(Board::default());
    let resume = resume_states(&store, &board, &cfg);

    // Alerting: the incident engine after evaluation, the outbox after it.
    let key = token::AckKey::load_or_create(&cfg.agent.data_dir.join("ack.key"))
        .context("cannot read or create the acknowledgement key")?;
    let admin_token =
        token::read_or_create_secret(&cfg.agent.admin_token_file).with_context(|| {
            format!(
                "cannot read or create the admin token file {}",
                cfg.agent.admin_token_file.display()
            )
        })?;
    let (alerting_tx, alerting_rx) =
        watch::channel(Arc::new(AlertingConfig::new(&cfg, &plugins, key.clone())));
    let wake = Arc::new(Notify::new());
    let guard = cfg
        .agent
        .connectivity
        .clone()
        .map(|c| Arc::new(crate::connectivity::Guard::new(c)));
    let guard_tasks = guard
        .as_ref()
        .map(|g| show_connectivity(g.clone(), board.clone(), metrics.clone()));
    let engine = Engine::new(store.clone(), alerting_rx.borrow().clone(), wake.clone())
        .context("cannot read the incidents from the database")?
        .with_board(board.clone())
        .with_guard(guard.clone());
    let (stop_outbox, outbox_stop_rx) = watch::channel(false);
    let outbox_task = tokio::spawn(escalation::outbox::run(
        store.clone(),
        alerting_tx.subscribe(),
        wake.clone(),
        outbox_stop_rx,
    ));

    let me = Identity {
        name: cfg.agent.name.clone(),
        id: federation::agent_id(&cfg.agent.data_dir)
            .context("cannot read or create the agent id in the data directory")?,
    };

    // scheduler → recorder → evaluation → (target events) → incidents.
    let (tx, rx) = mpsc::channel::<CheckEvent>(EVENT_QUEUE);
    let (eval_tx, eval_rx) = mpsc::channel::<CheckEvent>(EVENT_QUEUE);
    let recorder = tokio::spawn(recorder::run(
        rx,
        store.clone(),
        board.clone(),
        metrics.clone(),
        Some(eval_tx),
    ));
    let (peer_tx, peer_rx) = mpsc::channel::<PeerUpdate>(PEER_QUEUE);
    let (setup_tx, setup_rx) = mpsc::channel::<evaluation::Setup>(4);
    let (target_tx, target_rx) = mpsc::channel::<TargetEvent>(EVENT_QUEUE);
    let stage = evaluation::Stage::new(
        me.clone(),
        board.clone(),
        metrics.clone(),
        target_tx,
        eval_setup(&cfg),
    );
    let evaluator = tokio::spawn(evaluation::run(stage, eval_rx, peer_rx, setup_rx));
    // The incident stage consumes the target events.
    let engine_task = tokio::spawn(engine.run(target_rx, alerting_tx.subscribe()));
    let mut scheduler =
        Scheduler::new(cfg.agent.concurrency, tx, metrics.clone()).with_guard(guard.clone());
    scheduler.apply(&cfg.sensors, &plugins, resume).await;

    let api_state = api::AppState::new(me, board.clone(), metrics.clone(), db.clone())
        .with_tokens(&cfg.topology.api)
        .with_push(push_peers(&cfg), peer_tx.clone())
        .with_mutual_tls(tls.as_ref().is_some_and(|t| t.mutual()));
    let mut fed_tasks = federation_tasks(&cfg, &peer_tx, &api_state);
    let extra = escalation::http::routes(escalation::http::EscalationApi {
        store: store.clone(),
        agent: cfg.agent.name.clone(),
        admin_token: Arc::new(admin_token),
        wake: wake.clone(),
    });
    let server = tokio::spawn(api::serve(
        listener,
        api_state.clone(),
        extra,
        tls.clone(),
        http_limits,
    ));
    let tls_watch = tls.clone().map(|t| tokio::spawn(crate::tls::watch(t)));
    let trimmer = tokio::spawn(crate::memory::trim_periodically());
    tracing::info!(
        agent = %cfg.agent.name,
        sensors = cfg.sensors.len(),
        listen = %bound,
        db = %db.display(),
        "outpost running; status at {}/api/v1/status",
        cfg.agent.public_url
    );

    // Providers: their runners report discoveries here.
    let (prov_tx, mut prov_rx) = mpsc::channel::<providers::Update>(16);
    let mut runners = providers::Runners::default();
    let mut states: std::collections::BTreeMap<String, providers::State> = Default::default();
    let mut verdicts = HashMap::new();
    let mut report = Default::default();
    runners.apply(&base, &base_plugins, &prov_tx);
    board.put_providers(providers::views(&base, &states, &report));

    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let mut fingerprint = include_fingerprint(&cfg);
    let mut poll = tokio::time::interval(INCLUDE_POLL);
    loop {
        let discovery = tokio::select! {
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = sighup.recv() => {
                if let Some(t) = &tls {
                    t.reload_logged("SIGHUP");
                }
                Err("SIGHUP")
            }
            _ = poll.tick() => {
                let now = include_fingerprint(&cfg);
                if now == fingerprint { continue; }
                fingerprint = now;
                Err("a change in an include directory")
            }
            Some(u) = prov_rx.recv() => Ok(u),
        };
        let loaded = match discovery {
            Err(reason) => {
                tracing::info!("reloading {} ({reason})", path.display());
                load_guarded(path, &host, allow_empty).await.map(|new| {
                    for gone in runners.apply(&new.config, &new.plugins, &prov_tx) {
                        states.remove(&gone);
                    }
                    base = new.config;
                    base_plugins = new.plugins;
                })
            }
            Ok(u) => {
                let started = std::time::Instant::now();
                let name = u.provider.clone();
                if !states.entry(name.clone()).or_default().apply(u) {
                    board.put_providers(providers::views(&base, &states, &report));
                    metrics.set_providers(&board.providers());
                    continue;
                }
                tracing::debug!(provider = %name, took_us = started.elapsed().as_micros() as u64, "discovery changed the set");
                Ok(())
            }
        };
        let loaded = match loaded {
            Ok(()) => {
                let (effective, rep) =
                    providers::expand(&base, &states, &base_plugins, &mut verdicts).await;
                report = rep;
                board.put_providers(providers::views(&base, &states, &report));
                metrics.set_providers(&board.providers());
                Ok(config::Loaded {
                    config: effective,
                    plugins: base_plugins.clone(),
                })
            }
            Err(e) => Err(e),
        };
        match loaded {
            Ok(mut new) => {
                new.config.agent.public_url = public_url(&new.config.agent, bound);
                if new.config.agent != cfg.agent {
                    tracing::warn!(
                        "changes to [agent] take effect at the next restart; sensors are reloaded now"
                    );
                }
                let removed = scheduler
                    .apply(&new.config.sensors, &new.plugins, HashMap::new())
                    .await;
                let keep: Vec<String> = new.config.sensors.iter().map(|s| s.name.clone()).collect();
                board.retain(&keep);
                for name in &removed {
                    let _ = store.delete_sensor_state(name);
                }
                let added: Vec<_> = new
                    .config
                    .sensors
                    .iter()
                    .filter(|s| !board.contains(&s.name))
                    .cloned()
                    .collect();
                resume_states(
                    &store,
                    &board,
                    &Config {
                        sensors: added,
                        ..new.config.clone()
                    },
                );
                let _ = setup_tx.send(eval_setup(&new.config)).await;
                if new.config.topology.peers != cfg.topology.peers
                    || new.config.topology.push != cfg.topology.push
                {
                    for t in fed_tasks.drain(..) {
                        t.abort();
                    }
                    fed_tasks = federation_tasks(&new.config, &peer_tx, &api_state);
                }
                if new.config.topology.api != cfg.topology.api {
                    tracing::warn!("changes to [api] take effect at the next restart");
                }
                tracing::info!(
                    sensors = new.config.sensors.len(),
                    removed = removed.len(),
                    nodes = new.config.topology.nodes.len(),
                    peers = new.config.topology.peers.len(),
                    "configuration reloaded"
                );
                crate::memory::release_freed();
                let _ = alerting_tx.send(Arc::new(AlertingConfig::new(
                    &new.config,
                    &new.plugins,
                    key.clone(),
                )));
                cfg = new.config;
                plugins = new.plugins;
                fingerprint = include_fingerprint(&cfg);
            }
            Err(e) => tracing::error!(
                "configuration reload rejected, the running configuration stays: {e:#}"
            ),
        }
    }

    runners.stop();
    tracing::info!("shutting down: letting checks in flight finish");
    let grace = cfg
        .sensors
        .iter()
        .map(|s| s.timeout)
        .max()
        .unwrap_or_default()
        + Duration::from_secs(1);
    scheduler.shutdown(grace).await;
    for t in fed_tasks {
        t.abort();
    }
    let _ = recorder.await;
    let _ = evaluator.await;
    let _ = engine_task.await;
    let _ = stop_outbox.send(true);
    let _ = outbox_task.await;
    server.abort();
    if let Some(t) = tls_watch {
        t.abort();
    }
    trimmer.abort();
    for t in guard_tasks.into_iter().flatten() {
        t.abort();
    }
    store.close_async().await.context("flushing the database")?;
    drop(plugins);
    tracing::info!("stopped; all results committed");
    Ok(())
}
