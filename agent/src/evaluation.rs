//! The evaluation stage: after the recorder, before incidents.
//!
//! It consumes the recorder's [`CheckEvent`]s and the federation's
//! [`PeerUpdate`]s, keeps each peer's freshness (misses counted here, for
//! polled and pushed peers alike), re-evaluates the system/service graph
//! ([`crate::topology`]), publishes node and peer views on the [`Board`],
//! and sends [`TargetEvent`]s for sensors, systems, services and peers to
//! the incident stage, causes first, with `caused_by` naming the down
//! dependencies that explain a down node.
//!
//! It owns the peer freshness and node memory; it never writes the store
//! and never calls back up the pipeline.

use crate::config::SensorConfig;
use crate::config::topology::{Member, PeerConfig};
use crate::federation::{self, Identity, PeerUpdate};
use crate::metrics::Metrics;
use crate::scheduler::CheckEvent;
use crate::state::State;
use crate::status::{Board, PeerState, PeerView};
use crate::targets::{Health, TargetEvent, TargetKind};
use crate::topology::{self, Graph, Input, NodeState, NodeView};
use outpost_types::time::now_ms;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often pushed peers are checked for silence. One second keeps
/// staleness detection within a second of its deadline.
const FRESHNESS_TICK: Duration = Duration::from_secs(1);

/// A configuration (re)load for the stage.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Systems and services.
    pub graph: Graph,
    /// Configured peers.
    pub peers: Vec<PeerConfig>,
    /// Enabled sensors (category and labels for events).
    pub sensors: Vec<std::sync::Arc<SensorConfig>>,
}

struct PeerTrack {
    cfg: PeerConfig,
    misses: u32,
    last_ok_ms: Option<i64>,
    last_error: Option<String>,
}

struct SensorTrack {
    state: State,
    health: Health,
    since_ms: i64,
}

/// The stage's memory.
pub struct Stage {
    me: Identity,
    board: Arc<Board>,
    metrics: Arc<Metrics>,
    out: mpsc::Sender<TargetEvent>,
    setup: Setup,
    sensors: HashMap<String, SensorTrack>,
    peers: HashMap<String, PeerTrack>,
    /// Direct and relayed peer views by agent name.
    views: BTreeMap<String, PeerView>,
    nodes: HashMap<String, NodeView>,
    started_ms: i64,
}

fn sensor_health(s: State) -> Health {
    match s {
        // Recovering is still down until `recover_after` successes in a
        // row: one good check must not resolve an incident or a service.
        State::Down | State::Recovering => Health::Down,
        State::Unknown => Health::Unknown,
        State::Up | State::Soft => Health::Up,
    }
}

fn node_health(s: NodeState) -> Health {
    match s {
        NodeState::Up | NodeState::Degraded => Health::Up,
        NodeState::Down => Health::Down,
        NodeState::Unknown => Health::Unknown,
    }
}

impl Stage {
    /// A stage for `setup`; sensor states start from the board (resumed
    /// from the database by the agent).
    pub fn new(
        me: Identity,
        board: Arc<Board>,
        metrics: Arc<Metrics>,
        out: mpsc::Sender<TargetEvent>,
        setup: Setup,
    ) -> Stage {
        let mut s = Stage {
            me,
            board,
            metrics,
            out,
            setup: Setup {
                graph: Graph::default(),
                peers: vec![],
                sensors: vec![],
            },
            sensors: HashMap::new(),
            peers: HashMap::new(),
            views: BTreeMap::new(),
            nodes: HashMap::new(),
            started_ms: now_ms(),
        };
        s.apply(setup);
        s
    }

    /// Applies a new configuration (keeps what is known about peers and
    /// sensors that remain).
    pub fn apply(&mut self, setup: Setup) {
        let (_, views) = self.board.snapshot();
        for v in views {
            self.sensors
                .entry(v.name().to_owned())
                .or_insert(SensorTrack {
                    state: v.state,
                    health: sensor_health(v.state),
                    since_ms: v.since_ms,
                });
        }
        let configured: std::collections::HashSet<&str> =
            setup.sensors.iter().map(|s| s.name.as_str()).collect();
        self.sensors.retain(|n, _| configured.contains(n.as_str()));
        let mut peers = HashMap::new();
        for p in &setup.peers {
            let track = match self.peers.remove(&p.name) {
                Some(mut t) => {
                    t.cfg = p.clone();
                    t
                }
                None => PeerTrack {
                    cfg: p.clone(),
                    misses: 0,
                    last_ok_ms: None,
                    last_error: None,
                },
            };
            peers.insert(p.name.clone(), track);
            self.views
                .entry(p.name.clone())
                .or_insert_with(|| PeerView {
                    name: p.name.clone(),
                    agent_id: None,
                    via: vec![],
                    mode: if p.url.is_some() { "poll" } else { "push" }.into(),
                    state: PeerState::Unknown,
                    reason: "not heard from yet".into(),
                    since_ms: now_ms(),
                    last_seen_ms: None,
                    nodes: vec![],
                });
        }
        self.peers = peers;
        // Views of peers no longer configured, and what they relayed, go.
        let configured: Vec<String> = setup.peers.iter().map(|p| p.name.clone()).collect();
        self.views.retain(|n, v| {
            if v.via.is_empty() {
                configured.contains(n)
            } else {
                configured.contains(&v.via[0])
            }
        });
        self.setup = setup;
    }

    fn leaf(&self, m: &Member) -> Input {
        match m {
            Member::Sensor(name) => match self.board.with(name, |v| {
                let state = NodeState::of_sensor(v.state);
                let reason = match v.state {
                    State::Down => format!("sensor {name} is down: {}", v.reason),
                    State::Unknown => format!("sensor {name} has no result yet"),
                    s => format!("sensor {name} is {s}"),
                };
                Input { state, reason }
            }) {
                Some(input) => input,
                None => Input {
                    state: NodeState::Unknown,
                    reason: format!("sensor {name} is not known"),
                },
            },
            Member::Peer { agent, node } => {
                let spec = m.spec();
                match self.views.get(agent) {
                    None => Input {
                        state: NodeState::Unknown,
                        reason: format!("{spec}: peer {agent} is not known"),
                    },
                    Some(p) if p.state == PeerState::Unknown => Input {
                        state: NodeState::Unknown,
                        reason: format!("{spec}: peer {agent} has not been heard from yet"),
                    },
                    Some(p) if p.state == PeerState::Stale => Input {
                        state: NodeState::Unknown,
                        reason: format!("{spec} is unknown: peer {agent} is stale ({})", p.reason),
                    },
                    Some(p) => match p.nodes.iter().find(|n| &n.name == node) {
                        Some(n) => {
                            let state = NodeState::parse_remote(&n.state);
                            let reason = if state == NodeState::Up {
                                format!("{spec} is up")
                            } else {
                                format!("{spec} is {} on {agent}: {}", n.state, n.reason)
                            };
                            Input { state, reason }
                        }
                        None => Input {
                            state: NodeState::Unknown,
                            reason: format!("{spec}: peer {agent} reports no `{node}`"),
                        },
                    },
                }
            }
            Member::Node(n) => Input {
                state: NodeState::Unknown,
                reason: format!("{n} is not evaluated"),
            },
        }
    }

    fn evaluate(&mut self) -> Vec<NodeView> {
        let now = now_ms();
        let views = topology::evaluate(&self.setup.graph, |m| self.leaf(m), &self.nodes, now);
        self.nodes = views.iter().map(|v| (v.name.clone(), v.clone())).collect();
        for v in &views {
            self.metrics.set_node_state(&v.name, v.kind, v.state.code());
        }
        self.board.put_nodes(views.clone());
        views
    }

    async fn emit_nodes(&self, views: &[NodeView], only: Option<&[&str]>) {
        let now = now_ms();
        for v in views {
            if let Some(names) = only
                && !names.contains(&v.name.as_str())
            {
                continue;
            }
            let kind = if v.kind == "system" {
                TargetKind::System
            } else {
                TargetKind::Service
            };
            let _ = self
                .out
                .send(TargetEvent {
                    target: v.name.clone(),
                    kind,
                    category: v.category.clone(),
                    labels: v.labels.clone(),
                    health: node_health(v.state),
                    since_ms: v.since_ms,
                    at_ms: now,
                    reason: v.reason.clone(),
                    caused_by: v.caused_by.clone(),
                    flapping: false,
                })
                .await;
        }
    }

    /// Handles one sensor result: the sensor's event, then its dependents'.
    pub async fn on_check(&mut self, ev: &CheckEvent) {
        let name = ev.sensor.name.clone();
        let health = sensor_health(ev.state);
        let track = self.sensors.entry(name.clone()).or_insert(SensorTrack {
            state: ev.state,
            health,
            since_ms: ev.since_ms,
        });
        if track.health != health {
            track.since_ms = ev.since_ms;
        }
        track.health = health;
        track.state = ev.state;
        let since_ms = track.since_ms;
        let reason = match self.board.get(&name) {
            Some(v) if ev.state == State::Down => format!("sensor {name} is down: {}", v.reason),
            Some(v) => format!("sensor {name} is {}: {}", ev.state, v.reason),
            None => format!("sensor {name} is {}", ev.state),
        };
        let _ = self
            .out
            .send(TargetEvent {
                target: name.clone(),
                kind: TargetKind::Sensor,
                category: ev.sensor.category.clone(),
                labels: ev.sensor.labels.clone(),
                health,
                since_ms,
                at_ms: ev.at_ms,
                reason,
                caused_by: vec![],
                flapping: ev.flapping,
            })
            .await;
        let affected: Vec<String> = self
            .setup
            .graph
            .affected_by(&Member::Sensor(name))
            .into_iter()
            .map(str::to_string)
            .collect();
        if !affected.is_empty() {
            let views = self.evaluate();
            let names: Vec<&str> = affected.iter().map(String::as_str).collect();
            self.emit_nodes(&views, Some(&names)).await;
        }
    }

    /// Handles one peer outcome: freshness, views, the `peer:<name>`
    /// event, then the dependents'.
    pub async fn on_peer(&mut self, u: PeerUpdate) {
        let now = now_ms();
        let (peer, result) = match u {
            PeerUpdate::Status { peer, status } => {
                let mode = match self.peers.get(&peer).map(|t| t.cfg.url.is_some()) {
                    Some(true) => "poll",
                    Some(false) => "push",
                    None => return,
                };
                let r = federation::views_from(&peer, mode, &status, &self.me, now);
                (peer, r.map(Some))
            }
            PeerUpdate::NotModified { peer } => (peer, Ok(None)),
            PeerUpdate::Failed { peer, error } => (peer, Err(error)),
        };
        let Some(track) = self.peers.get_mut(&peer) else {
            return;
        };
        // Whether any view changed (a 304 or a miss below the limit changes
        // nothing, so the board and the dependents are left alone).
        let mut changed = false;
        match result {
            Ok(new) => {
                if track.misses > 0 {
                    tracing::info!(peer = %peer, "peer answers again");
                }
                track.misses = 0;
                track.last_ok_ms = Some(now);
                track.last_error = None;
                // None is a 304: alive and unchanged. `last_seen_ms` stays
                // the time of the last new document, so that this agent's
                // own status does not change on every poll.
                if let Some(list) = new {
                    changed = true;
                    let direct: Vec<String> = self.peers.keys().cloned().collect();
                    self.views.retain(|_, v| v.via.first() != Some(&peer));
                    for v in list {
                        if v.via.is_empty() {
                            let since = match self.views.get(&peer) {
                                Some(old) if old.state == PeerState::Fresh => old.since_ms,
                                _ => now,
                            };
                            self.views.insert(
                                peer.clone(),
                                PeerView {
                                    since_ms: since,
                                    ..v
                                },
                            );
                        } else if !direct.contains(&v.name)
                            && self
                                .views
                                .get(&v.name)
                                .is_none_or(|o| o.via.len() > v.via.len())
                        {
                            self.views.insert(v.name.clone(), v);
                        }
                    }
                }
            }
            Err(error) => {
                track.misses += 1;
                tracing::debug!(peer = %peer, misses = track.misses, "peer poll failed: {error}");
                let limit = track.cfg.stale_after_misses;
                let misses = track.misses;
                track.last_error = Some(error.clone());
                if misses >= limit {
                    let why = format!("{error} (stale after {limit} failed polls)");
                    self.set_stale(&peer, &why, now);
                    changed = true;
                }
            }
        }
        self.after_peer_change(&peer, now, changed).await;
    }

    fn set_stale(&mut self, peer: &str, why: &str, now: i64) {
        let was = self.views.get(peer).map(|v| v.state);
        if was != Some(PeerState::Stale) {
            tracing::warn!(peer = %peer, "peer is stale: {why}");
        }
        for v in self.views.values_mut() {
            if v.name == peer {
                federation::mark_stale(v, why, now);
            } else if v.via.first().map(String::as_str) == Some(peer) {
                federation::mark_stale(v, &format!("relayed by stale peer {peer}"), now);
            }
        }
    }

    async fn after_peer_change(&mut self, peer: &str, now: i64, changed: bool) {
        if let Some(t) = self.peers.get(peer) {
            let stale_s = t
                .last_ok_ms
                .map(|ok| (now - ok).max(0) as f64 / 1000.0)
                .unwrap_or((now - self.started_ms).max(0) as f64 / 1000.0);
            let state = self
                .views
                .get(peer)
                .map(|v| v.state)
                .unwrap_or(PeerState::Unknown);
            self.metrics
                .set_peer(peer, stale_s, state == PeerState::Fresh);
        }
        if changed {
            self.board.put_peers(self.views.clone());
        }
        if let Some(v) = self.views.get(peer) {
            let health = match v.state {
                PeerState::Fresh => Health::Up,
                PeerState::Stale => Health::Down,
                PeerState::Unknown => Health::Unknown,
            };
            let reason = match v.state {
                PeerState::Stale => format!("peer {peer} is stale: {}", v.reason),
                PeerState::Fresh => format!("peer {peer} is answering"),
                PeerState::Unknown => format!("peer {peer} has not been heard from yet"),
            };
            let _ = self
                .out
                .send(TargetEvent {
                    target: format!("peer:{peer}"),
                    kind: TargetKind::Peer,
                    category: None,
                    labels: BTreeMap::new(),
                    health,
                    since_ms: v.since_ms,
                    at_ms: now,
                    reason,
                    caused_by: vec![],
                    flapping: false,
                })
                .await;
        }
        // Nodes using this peer, or an agent relayed through it.
        let mut affected: Vec<String> = Vec::new();
        for (name, v) in &self.views {
            if name != peer && v.via.first().map(String::as_str) != Some(peer) {
                continue;
            }
            for n in self.setup.graph.affected_by_peer(name) {
                if !affected.iter().any(|a| a == n) {
                    affected.push(n.to_string());
                }
            }
        }
        if changed && !affected.is_empty() {
            let views = self.evaluate();
            let names: Vec<&str> = affected.iter().map(String::as_str).collect();
            self.emit_nodes(&views, Some(&names)).await;
        }
    }

    /// Marks pushed peers stale when they have been silent too long.
    pub async fn check_silence(&mut self) {
        let now = now_ms();
        let mut silent = vec![];
        for (name, t) in &self.peers {
            if t.cfg.url.is_some() {
                continue;
            }
            let allowed = t.cfg.interval.as_millis() as i64 * t.cfg.stale_after_misses as i64;
            let since = t.last_ok_ms.unwrap_or(self.started_ms);
            let state = self.views.get(name).map(|v| v.state);
            if now - since > allowed && state != Some(PeerState::Stale) {
                silent.push((name.clone(), (now - since) / 1000));
            }
        }
        for (name, secs) in silent {
            self.set_stale(&name, &format!("no push received for {secs} s"), now);
            self.after_peer_change(&name, now, true).await;
        }
    }

    /// Evaluates everything and emits every node (start and reload).
    pub async fn full_round(&mut self) {
        let views = self.evaluate();
        self.board.put_peers(self.views.clone());
        self.emit_nodes(&views, None).await;
    }
}

/// Runs the stage until the check channel closes (agent shutdown).
pub async fn run(
    mut stage: Stage,
    mut checks: mpsc::Receiver<CheckEvent>,
    mut peers: mpsc::Receiver<PeerUpdate>,
    mut control: mpsc::Receiver<Setup>,
) {
    stage.full_round().await;
    let mut tick = tokio::time::interval(FRESHNESS_TICK);
    loop {
        tokio::select! {
            ev = checks.recv() => match ev {
                Some(ev) => stage.on_check(&ev).await,
                None => break,
            },
            Some(u) = peers.recv() => stage.on_peer(u).await,
            Some(setup) = control.recv() => {
                stage.apply(setup);
                stage.full_round().await;
            }
            _ = tick.tick() => stage.check_silence().await,
        }
    }
}

/// The end of the chain until the incident stage is wired: consumes and
/// drops target events (so the stage never blocks on a full channel).
pub async fn discard(mut rx: mpsc::Receiver<TargetEvent>) {
    while let Some(ev) = rx.recv().await {
        tracing::trace!(target_name = %ev.target, health = ?ev.health, "target event (no incident stage)");
    }
}
