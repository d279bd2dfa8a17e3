//! The live status board: the latest view of every sensor (kept by the
//! recorder), system, service and peer (kept by the evaluation stage), read
//! by the HTTP API and status page. Readers never write.

use crate::config::SensorConfig;
use crate::state::State;
use crate::topology::NodeView;
use outpost_types::Status;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// What is known about one sensor now.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorView {
    /// The sensor's configuration (name, plugin, category, description,
    /// labels, interval), shared with the scheduler, not copied.
    pub sensor: Arc<SensorConfig>,
    /// State.
    pub state: State,
    /// Since when (Unix ms).
    pub since_ms: i64,
    /// Why it is in this state.
    pub reason: String,
    /// Flapping.
    pub flapping: bool,
    /// Last check time (Unix ms).
    pub last_check_ms: Option<i64>,
    /// Last check status.
    pub last_status: Option<Status>,
    /// Last check message.
    pub last_message: String,
    /// Last check latency (ms).
    pub last_latency_ms: Option<f64>,
    /// The last check failed while the agent was offline: shown as
    /// unknown ("agent offline") while `state` keeps the state from
    /// before.
    pub offline: bool,
}

impl SensorView {
    /// The sensor's name.
    pub fn name(&self) -> &str {
        &self.sensor.name
    }

    /// Check interval (ms).
    pub fn interval_ms(&self) -> u64 {
        self.sensor.interval.as_millis() as u64
    }
}

/// Peers as this agent sees them (defined with the status document).
pub use outpost_types::status::{ConnectivityDoc, PeerState, PeerView, ProviderView, RemoteNode};

/// Everything on the board at one version.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Changes whenever anything below changes.
    pub version: u64,
    /// Sensors by name.
    pub sensors: Vec<SensorView>,
    /// Systems and services, causes first.
    pub nodes: Vec<NodeView>,
    /// Peers by name.
    pub peers: Vec<PeerView>,
    /// Open incident per target (hook for the incident stage; empty until
    /// it is wired).
    pub incidents: BTreeMap<String, serde_json::Value>,
    /// Providers, in config order.
    pub providers: Vec<ProviderView>,
    /// The self-connectivity guard's verdict, when configured.
    pub connectivity: Option<ConnectivityDoc>,
}

#[derive(Debug, Default)]
struct Inner {
    version: u64,
    sensors: BTreeMap<String, SensorView>,
    nodes: Vec<NodeView>,
    peers: BTreeMap<String, PeerView>,
    incidents: BTreeMap<String, serde_json::Value>,
    providers: Vec<ProviderView>,
    connectivity: Option<ConnectivityDoc>,
}

/// All views, plus a change counter (for ETags). Written by the pipeline
/// (recorder: sensors; evaluation: nodes and peers; incidents: incident
/// summaries), read by the API.
#[derive(Debug, Default)]
pub struct Board {
    inner: RwLock<Inner>,
}

impl Board {
    /// Inserts or replaces a view.
    pub fn put(&self, view: SensorView) {
        let mut g = self.inner.write().unwrap();
        if g.sensors.get(view.name()) != Some(&view) {
            g.version += 1;
            g.sensors.insert(view.name().to_owned(), view);
        }
    }

    /// Applies `f` to a view if present.
    pub fn update(&self, name: &str, f: impl FnOnce(&mut SensorView)) {
        let mut g = self.inner.write().unwrap();
        if let Some(v) = g.sensors.get_mut(name) {
            f(v);
            g.version += 1;
        }
    }

    /// Removes sensors not in `keep`.
    pub fn retain(&self, keep: &[String]) {
        let mut g = self.inner.write().unwrap();
        let before = g.sensors.len();
        let keep: std::collections::HashSet<&str> = keep.iter().map(String::as_str).collect();
        g.sensors.retain(|k, _| keep.contains(k.as_str()));
        if g.sensors.len() != before {
            g.version += 1;
        }
    }

    /// Replaces the node views (evaluation order).
    pub fn put_nodes(&self, nodes: Vec<NodeView>) {
        let mut g = self.inner.write().unwrap();
        if g.nodes != nodes {
            g.version += 1;
            g.nodes = nodes;
        }
    }

    /// Replaces the connectivity guard's verdict.
    pub fn put_connectivity(&self, c: Option<ConnectivityDoc>) {
        let mut g = self.inner.write().unwrap();
        if g.connectivity != c {
            g.version += 1;
            g.connectivity = c;
        }
    }

    /// Replaces the providers' views.
    pub fn put_providers(&self, providers: Vec<ProviderView>) {
        let mut g = self.inner.write().unwrap();
        if g.providers != providers {
            g.version += 1;
            g.providers = providers;
        }
    }

    /// The providers' views.
    pub fn providers(&self) -> Vec<ProviderView> {
        self.inner.read().unwrap().providers.clone()
    }

    pub fn put_peers(&self, peers: BTreeMap<String, PeerView>) {
        let mut g = self.inner.write().unwrap();
        if g.peers != peers {
            g.version += 1;
            g.peers = peers;
        }
    }

    /// Sets (or clears) the incident summary shown for a target. The hook
    /// through which the incident stage fills `incident` in the status.
    pub fn set_incident(&self, target: &str, incident: Option<serde_json::Value>) {
        let mut g = self.inner.write().unwrap();
        let changed = match incident {
            Some(i) => g.incidents.insert(target.to_string(), i.clone()) != Some(i),
            None => g.incidents.remove(target).is_some(),
        };
        if changed {
            g.version += 1;
        }
    }

    /// A consistent copy of the sensors, with the version.
    pub fn snapshot(&self) -> (u64, Vec<SensorView>) {
        let g = self.inner.read().unwrap();
        (g.version, g.sensors.values().cloned().collect())
    }

    /// A consistent copy of everything.
    pub fn full(&self) -> Snapshot {
        let g = self.inner.read().unwrap();
        Snapshot {
            version: g.version,
            sensors: g.sensors.values().cloned().collect(),
            nodes: g.nodes.clone(),
            peers: g.peers.values().cloned().collect(),
            incidents: g.incidents.clone(),
            providers: g.providers.clone(),
            connectivity: g.connectivity.clone(),
        }
    }

    /// The current version (changes whenever any view changes).
    pub fn version(&self) -> u64 {
        self.inner.read().unwrap().version
    }

    /// One view.
    pub fn get(&self, name: &str) -> Option<SensorView> {
        self.inner.read().unwrap().sensors.get(name).cloned()
    }

    /// `f` of one view, without copying it (evaluation reads thousands).
    pub fn with<R>(&self, name: &str, f: impl FnOnce(&SensorView) -> R) -> Option<R> {
        self.inner.read().unwrap().sensors.get(name).map(f)
    }

    /// Whether a sensor is on the board.
    pub fn contains(&self, name: &str) -> bool {
        self.inner.read().unwrap().sensors.contains_key(name)
    }

    /// Why a sensor is in its state, if it is on the board.
    pub fn reason(&self, name: &str) -> Option<String> {
        let g = self.inner.read().unwrap();
        g.sensors.get(name).map(|v| v.reason.clone())
    }

    /// The node views.
    pub fn nodes(&self) -> Vec<NodeView> {
        self.inner.read().unwrap().nodes.clone()
    }
}
