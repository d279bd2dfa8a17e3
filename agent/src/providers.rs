//! Providers at run time: a runner task per `[[provider]]` that discovers
//! objects every interval, and the expansion of the objects (through the
//! `[[kind]]` rules) into sensors, systems and services "as if written in
//! TOML".
//!
//! The agent keeps the TOML configuration (the *base*) and each
//! provider's last good set of objects. After a reload or a discovery that
//! changed something it builds the *effective* configuration with
//! [`expand`] and applies it through the same path a reload uses
//! (`agent::Live::apply`), so the scheduler, history, topology, status,
//! page, metrics and incidents need no special cases:
//! - a sensor is named `<provider>.<object id>.<template>` (sanitised,
//!   hashed when long), so the same object keeps its sensor, its state
//!   and its history across discoveries;
//! - a vanished object's sensors stop, and their open incidents resolve as
//!   "removed" (the incident engine resolves every target a new
//!   configuration no longer has);
//! - a failed discovery keeps the last good set; the provider shows as
//!   `stale` in the status document, on the page and in `/metrics`;
//! - a generated name that collides with a TOML sensor (or node) is not
//!   created and is reported, naming both.

use crate::config::providers::{GroupBy, ProviderConfig, substitute};
use crate::config::topology::{Member, NodeConfig, NodeKind};
use crate::config::{
    Config, DEFAULT_FAIL_AFTER, DEFAULT_INTERVAL, DEFAULT_RECOVER_AFTER, DEFAULT_RETRY_INTERVAL,
    DEFAULT_TIMEOUT, MAX_DEFAULT_JITTER, PluginConfig, SensorConfig,
};
use outpost_plugin_host::provider::{Bounded, DiscoveryLimits, bound};
use outpost_plugin_host::{DiscoveredObject, NetPolicy, Plugin};
use outpost_types::status::ProviderView;
use outpost_types::time::now_ms;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// What a runner reports after each discovery.
#[derive(Debug)]
pub struct Update {
    /// The provider.
    pub provider: String,
    /// When the discovery ended.
    pub at_ms: i64,
    /// `Ok(None)`: unchanged since the cursor; `Ok(Some)`: the new set;
    /// `Err`: why it failed.
    pub outcome: Result<Option<Bounded>, String>,
}

/// Runs discoveries of one provider until `stop` is set.
pub async fn run(
    pc: ProviderConfig,
    plugin: Arc<Plugin>,
    tx: mpsc::Sender<Update>,
    mut stop: watch::Receiver<bool>,
) {
    let policy = NetPolicy::granted(plugin.info(), &pc.config.value(), pc.allow.as_deref(), &[]);
    let mut inst = plugin.instance(Arc::new(policy), &format!("provider {}", pc.name));
    let limits = DiscoveryLimits {
        max_objects: pc.max_objects,
        ..DiscoveryLimits::default()
    };
    let mut cursor: Option<String> = None;
    let mut tick = tokio::time::interval(pc.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let outcome = match inst
            .discover(pc.config.json(), cursor.as_deref(), pc.timeout)
            .await
        {
            Err(e) => Err(e.to_string()),
            Ok(Err(e)) => Err(format!(
                "{}: {}",
                serde_json::to_value(e.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                e.message
            )),
            Ok(Ok(d)) => match d.objects {
                None => Ok(None),
                Some(list) => {
                    let b = tokio::task::block_in_place(|| bound(list, &limits));
                    if b.is_ok() {
                        cursor = d.cursor;
                    }
                    b.map(Some)
                }
            },
        };
        if !report(&pc.name, &tx, outcome).await {
            return;
        }
    }
}

/// Logs a failed discovery and sends the update; false when the agent no
/// longer listens.
async fn report(
    provider: &str,
    tx: &mpsc::Sender<Update>,
    outcome: Result<Option<Bounded>, String>,
) -> bool {
    if let Err(e) = &outcome {
        tracing::warn!(provider = %provider, "discovery failed, the last good set stays: {e}");
    }
    let u = Update {
        provider: provider.to_string(),
        at_ms: now_ms(),
        outcome,
    };
    tx.send(u).await.is_ok()
}

/// Runs the built-in `file` provider (see [`crate::file_provider`]) until
/// `stop` is set: the file is looked at every interval and read again
/// when its size or modification time changed.
pub async fn run_file(
    pc: ProviderConfig,
    tx: mpsc::Sender<Update>,
    mut stop: watch::Receiver<bool>,
) {
    let cfg = match crate::file_provider::FileConfig::parse(
        &pc.config.value(),
        std::path::Path::new("/"),
    ) {
        Ok(c) => c,
        Err((field, m)) => {
            // Checked at load; only a hand-made config gets here.
            tracing::error!(provider = %pc.name, "config.{field}: {m}");
            return;
        }
    };
    let limits = DiscoveryLimits {
        max_objects: pc.max_objects,
        ..DiscoveryLimits::default()
    };
    let mut stamp = None;
    let mut tick = tokio::time::interval(pc.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let (c, last) = (cfg.clone(), stamp);
        let read = tokio::task::spawn_blocking(move || {
            crate::file_provider::read(&c, last).and_then(|r| match r {
                None => Ok(None),
                Some((objects, s)) => bound(objects, &limits).map(|b| Some((b, s))),
            })
        })
        .await
        .unwrap_or_else(|e| Err(format!("reading the file failed: {e}")));
        let outcome = match read {
            Ok(None) => Ok(None),
            Ok(Some((b, s))) => {
                stamp = Some(s);
                Ok(Some(b))
            }
            Err(e) => Err(e),
        };
        if !report(&pc.name, &tx, outcome).await {
            return;
        }
    }
}

/// One provider's last good set and how it got there.
#[derive(Debug, Clone, Default)]
pub struct State {
    /// The plugin.
    pub plugin: String,
    /// Objects in use (the last good set).
    pub objects: Arc<Vec<DiscoveredObject>>,
    /// Any discovery succeeded yet.
    pub discovered: bool,
    /// Last success.
    pub last_success_ms: Option<i64>,
    /// Last attempt.
    pub last_attempt_ms: Option<i64>,
    /// The last attempt's error.
    pub error: Option<String>,
    /// Problems of the last good set (bounds) and of its expansion.
    pub problems: Vec<String>,
    /// Objects dropped by the bounds.
    pub dropped: usize,
}

impl State {
    /// Takes in a discovery; whether the set in use changed.
    pub fn apply(&mut self, u: Update) -> bool {
        self.last_attempt_ms = Some(u.at_ms);
        match u.outcome {
            Ok(None) => {
                self.error = None;
                self.last_success_ms = Some(u.at_ms);
                false
            }
            Ok(Some(b)) => {
                self.error = None;
                self.last_success_ms = Some(u.at_ms);
                self.dropped = b.dropped;
                self.problems = b.problems;
                let changed = !self.discovered || *self.objects != b.objects;
                self.discovered = true;
                if changed {
                    self.objects = Arc::new(b.objects);
                }
                changed
            }
            Err(e) => {
                self.error = Some(e);
                false
            }
        }
    }
}

/// What [`expand`] reports per provider.
#[derive(Debug, Default, Clone)]
pub struct Expansion {
    /// Sensors made.
    pub sensors: usize,
    /// What could not be made.
    pub problems: Vec<String>,
    /// How many items were left out.
    pub dropped: usize,
}

const MAX_PROBLEMS: usize = 20;

impl Expansion {
    fn problem(&mut self, m: String) {
        self.dropped += 1;
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(m);
        }
    }
}

/// FNV-1a, stable across runs.
fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// A valid name (see [`config::check_name`]) made of `parts`: other
/// characters become `-`; a name over 64 characters keeps its start and
/// ends with a hash of the whole, so it stays unique and stable.
pub fn name_of(parts: &[&str]) -> String {
    let raw = parts.join(".");
    let mut s: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    let s = s
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string();
    if s.len() <= 64 && !s.is_empty() {
        return s;
    }
    let hash = format!("{:08x}", fnv(&raw) as u32);
    let keep: String = s.chars().take(64 - 9).collect();
    format!(
        "{}-{hash}",
        keep.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
    )
}

/// Builds the effective configuration: `base` plus the sensors, systems
/// and services the providers' objects make through the kind rules.
/// Configs the template's plugin rejects are left out and reported (each
/// distinct config is judged once; `verdicts` keeps the answers).
pub async fn expand(
    base: &Config,
    states: &BTreeMap<String, State>,
    plugins: &HashMap<String, Arc<Plugin>>,
    verdicts: &mut HashMap<(String, String), Result<(), String>>,
) -> (Config, BTreeMap<String, Expansion>) {
    let mut out = base.clone();
    let mut report: BTreeMap<String, Expansion> = BTreeMap::new();
    let taken: HashMap<&str, &str> = base
        .sensors
        .iter()
        .map(|s| (s.name.as_str(), s.origin.as_str()))
        .collect();
    let nodes_taken: HashSet<&str> = base
        .topology
        .nodes
        .iter()
        .map(|n| n.name.as_str())
        .collect();
    let mut made: HashMap<String, String> = HashMap::new();
    let mut sensors: Vec<SensorConfig> = Vec::new();
    // Per kind rule: system name -> members; all sensors of the rule.
    type Systems = BTreeMap<String, (usize, Vec<Member>)>;
    let mut systems: Vec<Systems> = vec![BTreeMap::new(); base.kinds.len()];
    let mut rule_sensors: Vec<Vec<Member>> = vec![Vec::new(); base.kinds.len()];
    let mut owner: Vec<String> = vec![String::new(); base.kinds.len()];
    for (pname, st) in states {
        let rep = report.entry(pname.clone()).or_default();
        for o in st.objects.iter() {
            for (ki, k) in base
                .kinds
                .iter()
                .enumerate()
                .filter(|(_, k)| k.kind == o.kind)
            {
                let mut mine = Vec::new();
                for t in &k.sensors {
                    let name = name_of(&[pname, &o.id, &t.name]);
                    if let Some(origin) = taken.get(name.as_str()) {
                        rep.problem(format!(
                            "sensor `{name}` (provider `{pname}`, object `{}`) collides with the sensor `{name}` defined at {origin}; it is not created",
                            o.id
                        ));
                        continue;
                    }
                    if nodes_taken.contains(name.as_str()) {
                        rep.problem(format!(
                            "sensor `{name}` (provider `{pname}`, object `{}`) collides with a system or service of that name; it is not created",
                            o.id
                        ));
                        continue;
                    }
                    if let Some(other) = made.get(&name) {
                        rep.problem(format!(
                            "sensor `{name}` for object `{}` collides with the one made for {other}; it is not created",
                            o.id
                        ));
                        continue;
                    }
                    let lookup = |key: &str| -> Option<String> {
                        match key {
                            "object.id" => Some(o.id.clone()),
                            "object.name" => Some(o.name.clone()),
                            "object.kind" => Some(o.kind.clone()),
                            _ => match key.strip_prefix("label.") {
                                Some(l) => o.label_value(l).map(str::to_string),
                                None => o.attribute(key).map(str::to_string),
                            },
                        }
                    };
                    let cfg = match substitute(&t.config, &lookup) {
                        Ok(c) => c,
                        Err(ph) => {
                            rep.problem(format!(
                                "object `{}`: the `{}` template of the kind rule at {} uses `{{{ph}}}`, which the object does not have",
                                o.id, t.name, k.origin
                            ));
                            continue;
                        }
                    };
                    let json = cfg.to_string();
                    let key = (t.plugin.clone(), json);
                    if !verdicts.contains_key(&key) {
                        let verdict = match plugins.get(&t.plugin) {
                            Some(p) => {
                                let mut probe = p.instance(
                                    Arc::new(NetPolicy::deny_all()),
                                    &format!("template {}", t.name),
                                );
                                match probe.validate(&key.1).await {
                                    Ok(Ok(())) => Ok(()),
                                    Ok(Err(e)) => Err(if e.field.is_empty() {
                                        e.message
                                    } else {
                                        format!("config.{}: {}", e.field, e.message)
                                    }),
                                    Err(e) => {
                                        Err(format!("the plugin failed while validating: {e}"))
                                    }
                                }
                            }
                            None => Err(format!("plugin {} is not loaded", t.plugin)),
                        };
                        verdicts.insert(key.clone(), verdict);
                    }
                    if let Some(Err(e)) = verdicts.get(&key) {
                        rep.problem(format!(
                            "sensor `{name}` (object `{}`): {e} (template `{}` of the kind rule at {})",
                            o.id, t.name, k.origin
                        ));
                        continue;
                    }
                    let interval = t.interval.unwrap_or(DEFAULT_INTERVAL);
                    let mut labels: BTreeMap<String, String> = o.labels.iter().cloned().collect();
                    labels.insert("provider".into(), pname.clone());
                    labels.insert("kind".into(), o.kind.clone());
                    labels.insert("object".into(), o.id.clone());
                    made.insert(
                        name.clone(),
                        format!("object `{}` of provider `{pname}`", o.id),
                    );
                    mine.push(Member::Sensor(name.clone()));
                    sensors.push(SensorConfig {
                        name,
                        plugin: t.plugin.clone(),
                        interval,
                        timeout: t.timeout.unwrap_or(DEFAULT_TIMEOUT.min(interval)),
                        jitter: t.jitter.unwrap_or(interval.min(MAX_DEFAULT_JITTER)),
                        retry_interval: DEFAULT_RETRY_INTERVAL.min(interval),
                        fail_after: t.fail_after.unwrap_or(DEFAULT_FAIL_AFTER),
                        recover_after: t.recover_after.unwrap_or(DEFAULT_RECOVER_AFTER),
                        category: t.category.clone(),
                        description: Some(o.name.clone()),
                        labels,
                        allow: t.allow.clone(),
                        config: PluginConfig::from_json(key.1),
                        thresholds: Vec::new(),
                        origin: format!(
                            "provider `{pname}`, object `{}` (kind rule at {})",
                            o.id, k.origin
                        ),
                        maintenance: Vec::new(),
                    });
                    rep.sensors += 1;
                }
                if mine.is_empty() {
                    continue;
                }
                if owner[ki].is_empty() {
                    owner[ki] = pname.clone();
                }
                for (gi, g) in k.systems.iter().enumerate() {
                    let values: Vec<&str> = match &g.by {
                        GroupBy::Label(l) => o.label_value(l).into_iter().collect(),
                        GroupBy::Parent => o.parents.iter().map(String::as_str).collect(),
                    };
                    for v in values {
                        let sys = name_of(&[&g.name.replace("{value}", v)]);
                        systems[ki]
                            .entry(sys)
                            .or_insert_with(|| (gi, Vec::new()))
                            .1
                            .extend(mine.iter().cloned());
                    }
                }
                rule_sensors[ki].extend(mine);
            }
        }
    }
    // Nodes: systems of every rule, then their services.
    let mut nodes: Vec<NodeConfig> = Vec::new();
    let mut services: Vec<NodeConfig> = Vec::new();
    let mut node_names: HashSet<String> = HashSet::new();
    for (ki, k) in base.kinds.iter().enumerate() {
        let mut mine = Vec::new();
        for (sys, (gi, members)) in std::mem::take(&mut systems[ki]) {
            let g = &k.systems[gi];
            if taken.contains_key(sys.as_str())
                || nodes_taken.contains(sys.as_str())
                || made.contains_key(&sys)
                || !node_names.insert(sys.clone())
            {
                let rep = report.entry(owner[ki].clone()).or_default();
                rep.problem(format!(
                    "system `{sys}` (kind rule at {}) collides with a sensor, system or service of that name; it is not created",
                    k.origin
                ));
                continue;
            }
            let n = members.len() as u32;
            mine.push(Member::Node(sys.clone()));
            nodes.push(NodeConfig {
                name: sys,
                kind: NodeKind::System,
                members,
                rule: g.rule,
                degraded_below: n,
                category: g.category.clone(),
                description: Some(format!("made by the kind rule at {}", k.origin)),
                labels: BTreeMap::from([("kind".to_string(), k.kind.clone())]),
            });
        }
        let Some(svc) = &k.service else { continue };
        let members = if k.systems.is_empty() {
            std::mem::take(&mut rule_sensors[ki])
        } else {
            mine
        };
        if members.is_empty() {
            continue;
        }
        if taken.contains_key(svc.name.as_str())
            || nodes_taken.contains(svc.name.as_str())
            || made.contains_key(&svc.name)
            || !node_names.insert(svc.name.clone())
        {
            let rep = report.entry(owner[ki].clone()).or_default();
            rep.problem(format!(
                "service `{}` (kind rule at {}) collides with a sensor, system or service of that name; it is not created",
                svc.name, k.origin
            ));
            continue;
        }
        let n = members.len() as u32;
        services.push(NodeConfig {
            name: svc.name.clone(),
            kind: NodeKind::Service,
            members,
            rule: svc.rule,
            degraded_below: n,
            category: svc.category.clone(),
            description: Some(format!("made by the kind rule at {}", k.origin)),
            labels: BTreeMap::from([("kind".to_string(), k.kind.clone())]),
        });
    }
    let mut all = out.sensors.clone();
    all.extend(sensors.into_iter().map(Arc::new));
    out.sensors = all;
    out.topology.nodes.extend(nodes);
    out.topology.nodes.extend(services);
    (out, report)
}

/// The status document's view of the providers.
pub fn views(
    base: &Config,
    states: &BTreeMap<String, State>,
    report: &BTreeMap<String, Expansion>,
) -> Vec<ProviderView> {
    base.providers
        .iter()
        .map(|p| {
            let st = states.get(&p.name).cloned().unwrap_or_default();
            let ex = report.get(&p.name).cloned().unwrap_or_default();
            let mut problems = st.problems.clone();
            problems.extend(ex.problems);
            problems.truncate(MAX_PROBLEMS);
            ProviderView {
                name: p.name.clone(),
                plugin: p.plugin.clone(),
                state: if st.error.is_some() {
                    "stale"
                } else if st.discovered {
                    "ok"
                } else {
                    "pending"
                }
                .into(),
                objects: st.objects.len(),
                sensors: ex.sensors,
                last_success_ms: st.last_success_ms,
                last_attempt_ms: st.last_attempt_ms,
                error: st.error.clone(),
                dropped: st.dropped + ex.dropped,
                problems,
            }
        })
        .collect()
}

/// A runner per provider, restarted when its configuration changes.
#[derive(Default)]
pub struct Runners {
    running: HashMap<String, (ProviderConfig, watch::Sender<bool>)>,
}

impl Runners {
    /// Makes the runners match `cfg.providers`; returns the names of
    /// providers that are gone or changed (their state is to be dropped).
    pub fn apply(
        &mut self,
        cfg: &Config,
        plugins: &HashMap<String, Arc<Plugin>>,
        tx: &mpsc::Sender<Update>,
    ) -> Vec<String> {
        let mut gone = Vec::new();
        let wanted: HashMap<&str, &ProviderConfig> =
            cfg.providers.iter().map(|p| (p.name.as_str(), p)).collect();
        self.running.retain(|name, (pc, stop)| {
            let keep = wanted.get(name.as_str()).is_some_and(|w| *w == pc);
            if !keep {
                let _ = stop.send(true);
                gone.push(name.clone());
            }
            keep
        });
        for p in &cfg.providers {
            if self.running.contains_key(&p.name) {
                continue;
            }
            let (stop, stop_rx) = watch::channel(false);
            if p.plugin == crate::file_provider::NAME {
                tokio::spawn(run_file(p.clone(), tx.clone(), stop_rx));
                self.running.insert(p.name.clone(), (p.clone(), stop));
                continue;
            }
            let Some(plugin) = plugins.get(&p.plugin) else {
                tracing::error!(provider = %p.name, "plugin not loaded; provider not started");
                continue;
            };
            tokio::spawn(run(p.clone(), plugin.clone(), tx.clone(), stop_rx));
            self.running.insert(p.name.clone(), (p.clone(), stop));
        }
        gone
    }

    /// Stops all runners.
    pub fn stop(&mut self) {
        for (_, (_, stop)) in self.running.drain() {
            let _ = stop.send(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_stable_and_short() {
        assert_eq!(
            name_of(&["k8s", "prod/shop/shop.example/api", "http"]),
            "k8s.prod-shop-shop.example-api.http"
        );
        let long = "x".repeat(300);
        let a = name_of(&["k8s", &long, "http"]);
        assert!(a.len() <= 64, "{a}");
        assert!(crate::config::check_name(&a).is_ok(), "{a}");
        assert_eq!(a, name_of(&["k8s", &long, "http"]));
        assert_ne!(a, name_of(&["k8s", &format!("{long}y"), "http"]));
        assert!(crate::config::check_name(&name_of(&["p", "/", "t"])).is_ok());
    }
}
