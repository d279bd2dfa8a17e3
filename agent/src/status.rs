//! The live status board: the latest view of every sensor, kept by the
//! recorder and read by the HTTP API and status page. Readers never write.

use crate::plugin_host::Status;
use crate::state::State;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::RwLock;

/// What is known about one sensor now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SensorView {
    /// Name.
    pub name: String,
    /// Plugin spec.
    pub plugin: String,
    /// Category, if any.
    pub category: Option<String>,
    /// Description, if any.
    pub description: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
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
    /// Check interval (ms).
    pub interval_ms: u64,
}

/// All sensors' views, plus a change counter (for ETags).
#[derive(Debug, Default)]
pub struct Board {
    inner: RwLock<(u64, BTreeMap<String, SensorView>)>,
}

impl Board {
    /// Inserts or replaces a view.
    pub fn put(&self, view: SensorView) {
        let mut g = self.inner.write().unwrap();
        if g.1.get(&view.name) != Some(&view) {
            g.0 += 1;
            g.1.insert(view.name.clone(), view);
        }
    }

    /// Applies `f` to a view if present.
    pub fn update(&self, name: &str, f: impl FnOnce(&mut SensorView)) {
        let mut g = self.inner.write().unwrap();
        if let Some(v) = g.1.get_mut(name) {
            f(v);
            g.0 += 1;
        }
    }

    /// Removes sensors not in `keep`.
    pub fn retain(&self, keep: &[String]) {
        let mut g = self.inner.write().unwrap();
        let before = g.1.len();
        g.1.retain(|k, _| keep.contains(k));
        if g.1.len() != before {
            g.0 += 1;
        }
    }

    /// A consistent copy, with its version.
    pub fn snapshot(&self) -> (u64, Vec<SensorView>) {
        let g = self.inner.read().unwrap();
        (g.0, g.1.values().cloned().collect())
    }

    /// The current version (changes whenever any view changes).
    pub fn version(&self) -> u64 {
        self.inner.read().unwrap().0
    }

    /// One view.
    pub fn get(&self, name: &str) -> Option<SensorView> {
        self.inner.read().unwrap().1.get(name).cloned()
    }
}
