//! Counters and histograms the agent exports in the Prometheus text format
//! (`GET /metrics`). Written by the scheduler (lateness, plugin faults) and
//! the recorder (check outcomes, store writes); read only by the renderer.
//! Names follow Prometheus conventions: `outpost_` prefix, base units
//! (seconds), `_total` for counters.

use outpost_types::Status;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bucket bounds (seconds) for check latency: 1 ms to 30 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Bucket bounds (seconds) for scheduler lateness: 0.5 ms to 5 s (the
/// target is p99 ≤ 10 ms, so the low end is fine-grained).
const LATENESS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A cumulative histogram.
#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    /// Adds a sample.
    pub fn observe(&mut self, v: f64) {
        for (i, b) in self.bounds.iter().enumerate() {
            if v <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    /// Samples so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Upper bound of the bucket holding quantile `q` (an over-estimate
    /// at bucket resolution), `None` when empty.
    pub fn quantile_upper_bound(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let want = (q * self.count as f64).ceil() as u64;
        self.bounds
            .iter()
            .zip(&self.counts)
            .find(|(_, c)| **c >= want)
            .map(|(b, _)| *b)
            .or(Some(f64::INFINITY))
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// Per-sensor series.
#[derive(Debug, Clone)]
struct SensorSeries {
    /// Checks by status, indexed by `status as usize`.
    checks: [u64; STATUSES.len()],
    latency: Histogram,
    up: f64,
    state_code: f64,
}

/// Every status in declaration order (`status as usize` indexes it), the
/// order the counters are printed in.
const STATUSES: [Status; 4] = [Status::Ok, Status::Warn, Status::Fail, Status::Error];

/// The agent's metrics.
#[derive(Debug)]
pub struct Metrics {
    sensors: Mutex<BTreeMap<String, SensorSeries>>,
    lateness: Mutex<Histogram>,
    plugin_errors: Mutex<BTreeMap<String, u64>>,
    store_writes: AtomicU64,
    store_errors: AtomicU64,
    /// Per peer: (seconds since its last valid answer, fresh).
    peers: Mutex<BTreeMap<String, (f64, bool)>>,
    /// Per system/service: (kind, state code).
    nodes: Mutex<BTreeMap<String, (&'static str, u8)>>,
    /// Providers as the status document shows them.
    providers: Mutex<Vec<outpost_types::status::ProviderView>>,
    /// The connectivity guard's verdict: 1 online, 0 offline, absent
    /// (u8::MAX) when no guard is configured.
    online: std::sync::atomic::AtomicU8,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            sensors: Mutex::default(),
            lateness: Mutex::new(Histogram::new(LATENESS_BUCKETS)),
            plugin_errors: Mutex::default(),
            store_writes: AtomicU64::new(0),
            store_errors: AtomicU64::new(0),
            peers: Mutex::default(),
            nodes: Mutex::default(),
            providers: Mutex::default(),
            online: std::sync::atomic::AtomicU8::new(u8::MAX),
        }
    }
}

/// Appends the escalation backlog (read from the store at scrape time)
/// to a Prometheus text exposition.
pub fn render_backlog(out: &mut String, b: &outpost_store::Backlog) {
    let oldest_s = b.oldest_pending_ms.map_or(0.0, |ms| {
        (outpost_types::time::now_ms() - ms).max(0) as f64 / 1000.0
    });
    out.push_str("# HELP outpost_incidents Unresolved incidents, by state (open or acked).\n# TYPE outpost_incidents gauge\n");
    let _ = writeln!(out, "outpost_incidents{{state=\"open\"}} {}", b.open);
    let _ = writeln!(out, "outpost_incidents{{state=\"acked\"}} {}", b.acked);
    out.push_str("# HELP outpost_outbox_pending Notifications not yet delivered (nor given up).\n# TYPE outpost_outbox_pending gauge\n");
    let _ = writeln!(out, "outpost_outbox_pending {}", b.pending);
    out.push_str("# HELP outpost_outbox_oldest_pending_seconds Age of the oldest notification not yet delivered (0 when none).\n# TYPE outpost_outbox_oldest_pending_seconds gauge\n");
    let _ = writeln!(out, "outpost_outbox_oldest_pending_seconds {oldest_s}");
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Records how late a check started, in seconds.
    pub fn observe_lateness(&self, seconds: f64) {
        self.lateness.lock().unwrap().observe(seconds.max(0.0));
    }

    /// A snapshot of the lateness histogram.
    pub fn lateness(&self) -> Histogram {
        self.lateness.lock().unwrap().clone()
    }

    /// Records a check outcome.
    pub fn observe_check(
        &self,
        sensor: &str,
        status: Status,
        latency_s: f64,
        up: bool,
        state_code: f64,
    ) {
        let mut s = self.sensors.lock().unwrap();
        let e = s.entry(sensor.to_string()).or_insert_with(|| SensorSeries {
            checks: [0; STATUSES.len()],
            latency: Histogram::new(LATENCY_BUCKETS),
            up: 0.0,
            state_code: 0.0,
        });
        e.checks[status as usize] += 1;
        e.latency.observe(latency_s);
        e.up = if up { 1.0 } else { 0.0 };
        e.state_code = state_code;
    }

    /// Forgets a sensor removed by a reload.
    pub fn remove_sensor(&self, sensor: &str) {
        self.sensors.lock().unwrap().remove(sensor);
    }

    /// The connectivity guard's verdict.
    pub fn set_online(&self, online: bool) {
        self.online.store(online as u8, Ordering::Relaxed);
    }

    /// Replaces the providers' figures.
    pub fn set_providers(&self, views: &[outpost_types::status::ProviderView]) {
        *self.providers.lock().unwrap() = views.to_vec();
    }

    /// Counts a plugin fault by kind (`timeout`, `memory`, `trap`, ...).
    pub fn plugin_error(&self, kind: &str) {
        *self
            .plugin_errors
            .lock()
            .unwrap()
            .entry(kind.to_string())
            .or_default() += 1;
    }

    /// Counts a result handed to the store.
    pub fn store_write(&self, ok: bool) {
        if ok {
            self.store_writes.fetch_add(1, Ordering::Relaxed);
        } else {
            self.store_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A peer's freshness: seconds since it last answered with a valid
    /// status, and whether it counts as fresh.
    pub fn set_peer(&self, peer: &str, seconds: f64, fresh: bool) {
        self.peers
            .lock()
            .unwrap()
            .insert(peer.to_string(), (seconds, fresh));
    }

    /// A system's or service's state code (0 unknown, 1 up, 2 degraded,
    /// 3 down).
    pub fn set_node_state(&self, node: &str, kind: &'static str, code: u8) {
        self.nodes
            .lock()
            .unwrap()
            .insert(node.to_string(), (kind, code));
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let sensors = self.sensors.lock().unwrap().clone();
        // About 1.2 KiB of text per sensor: sized once (a large block is
        // mapped on its own and handed back when the response is sent).
        let mut out = String::with_capacity(4096 + sensors.len() * 1280);
        out.push_str("# HELP outpost_sensor_up Whether the last check of the sensor succeeded (ok or warn).\n# TYPE outpost_sensor_up gauge\n");
        for (name, s) in &sensors {
            let _ = writeln!(
                out,
                "outpost_sensor_up{{sensor=\"{}\"}} {}",
                escape(name),
                s.up
            );
        }
        out.push_str("# HELP outpost_sensor_state Sensor state: 0 unknown, 1 up, 2 soft, 3 down, 4 recovering.\n# TYPE outpost_sensor_state gauge\n");
        for (name, s) in &sensors {
            let _ = writeln!(
                out,
                "outpost_sensor_state{{sensor=\"{}\"}} {}",
                escape(name),
                s.state_code
            );
        }
        out.push_str("# HELP outpost_checks_total Checks run, by sensor and status.\n# TYPE outpost_checks_total counter\n");
        for (name, s) in &sensors {
            for (st, &n) in STATUSES.iter().zip(&s.checks).filter(|(_, n)| **n > 0) {
                let _ = writeln!(
                    out,
                    "outpost_checks_total{{sensor=\"{}\",status=\"{}\"}} {n}",
                    escape(name),
                    st.as_str()
                );
            }
        }
        out.push_str("# HELP outpost_check_latency_seconds Latency of checks as the plugin measured it.\n# TYPE outpost_check_latency_seconds histogram\n");
        for (name, s) in &sensors {
            s.latency.render(
                &mut out,
                "outpost_check_latency_seconds",
                &format!("sensor=\"{}\"", escape(name)),
            );
        }
        out.push_str("# HELP outpost_scheduler_lateness_seconds How late checks started relative to their schedule.\n# TYPE outpost_scheduler_lateness_seconds histogram\n");
        self.lateness
            .lock()
            .unwrap()
            .render(&mut out, "outpost_scheduler_lateness_seconds", "");
        out.push_str("# HELP outpost_plugin_errors_total Plugin runs that ended in a fault, by kind.\n# TYPE outpost_plugin_errors_total counter\n");
        for (k, n) in self.plugin_errors.lock().unwrap().iter() {
            let _ = writeln!(
                out,
                "outpost_plugin_errors_total{{kind=\"{}\"}} {n}",
                escape(k)
            );
        }
        let online = self.online.load(Ordering::Relaxed);
        if online != u8::MAX {
            out.push_str("# HELP outpost_agent_online Whether a connectivity canary answers (0: the agent is offline; failing checks count as unknown and open no incident).\n# TYPE outpost_agent_online gauge\n");
            let _ = writeln!(out, "outpost_agent_online {online}");
        }
        out.push_str("# HELP outpost_store_writes_total Results handed to the store.\n# TYPE outpost_store_writes_total counter\n");
        let _ = writeln!(
            out,
            "outpost_store_writes_total {}",
            self.store_writes.load(Ordering::Relaxed)
        );
        out.push_str("# HELP outpost_store_write_errors_total Results the store refused.\n# TYPE outpost_store_write_errors_total counter\n");
        let _ = writeln!(
            out,
            "outpost_store_write_errors_total {}",
            self.store_errors.load(Ordering::Relaxed)
        );
        out.push_str("# HELP outpost_peer_staleness_seconds Seconds since a peer last answered with a valid status.\n# TYPE outpost_peer_staleness_seconds gauge\n");
        let peers = self.peers.lock().unwrap().clone();
        for (p, (s, _)) in &peers {
            let _ = writeln!(
                out,
                "outpost_peer_staleness_seconds{{peer=\"{}\"}} {s}",
                escape(p)
            );
        }
        out.push_str("# HELP outpost_peer_up Whether a peer answers with a valid status (1) or is stale or not heard from yet (0).\n# TYPE outpost_peer_up gauge\n");
        for (p, (_, fresh)) in &peers {
            let _ = writeln!(
                out,
                "outpost_peer_up{{peer=\"{}\"}} {}",
                escape(p),
                u8::from(*fresh)
            );
        }
        out.push_str("# HELP outpost_node_state System or service state: 0 unknown, 1 up, 2 degraded, 3 down.\n# TYPE outpost_node_state gauge\n");
        for (n, (kind, code)) in self.nodes.lock().unwrap().iter() {
            let _ = writeln!(
                out,
                "outpost_node_state{{node=\"{}\",kind=\"{kind}\"}} {code}",
                escape(n)
            );
        }
        let providers = self.providers.lock().unwrap().clone();
        if !providers.is_empty() {
            out.push_str("# HELP outpost_provider_stale Whether the provider's last discovery failed (1: the last good set is kept).\n# TYPE outpost_provider_stale gauge\n");
            for p in &providers {
                let _ = writeln!(
                    out,
                    "outpost_provider_stale{{provider=\"{}\"}} {}",
                    escape(&p.name),
                    u8::from(p.state == "stale")
                );
            }
            out.push_str("# HELP outpost_provider_objects Objects in the provider's set in use.\n# TYPE outpost_provider_objects gauge\n");
            for p in &providers {
                let _ = writeln!(
                    out,
                    "outpost_provider_objects{{provider=\"{}\"}} {}",
                    escape(&p.name),
                    p.objects
                );
            }
            out.push_str("# HELP outpost_provider_sensors Sensors made from the provider's objects.\n# TYPE outpost_provider_sensors gauge\n");
            for p in &providers {
                let _ = writeln!(
                    out,
                    "outpost_provider_sensors{{provider=\"{}\"}} {}",
                    escape(&p.name),
                    p.sensors
                );
            }
            out.push_str("# HELP outpost_provider_dropped Objects or sensors left out of the provider's last discovery (bounds, collisions, invalid configs).\n# TYPE outpost_provider_dropped gauge\n");
            for p in &providers {
                let _ = writeln!(
                    out,
                    "outpost_provider_dropped{{provider=\"{}\"}} {}",
                    escape(&p.name),
                    p.dropped
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_bucket_upper_bounds() {
        let mut h = Histogram::new(LATENESS_BUCKETS);
        for _ in 0..99 {
            h.observe(0.0004);
        }
        h.observe(0.3);
        assert_eq!(h.quantile_upper_bound(0.99), Some(0.0005));
        assert_eq!(h.quantile_upper_bound(1.0), Some(0.5));
    }

    #[test]
    fn renders_exposition() {
        let m = Metrics::default();
        m.observe_check("a\"b", Status::Ok, 0.01, true, 1.0);
        m.observe_lateness(0.001);
        let t = m.render();
        assert!(
            t.contains("outpost_checks_total{sensor=\"a\\\"b\",status=\"ok\"} 1"),
            "{t}"
        );
        assert!(t.contains("outpost_scheduler_lateness_seconds_count 1"));
    }
}
