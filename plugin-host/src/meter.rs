//! Per-run accounting of what a plugin makes the *host* hold or do:
//! connections (TCP connects and HTTP requests), host log lines and bytes.
//! The sandbox's hooks charge the [`Meter`]; when a charge goes over its
//! limit the hook refuses (the connect fails with `access-denied`, the log
//! line is dropped) and the meter remembers the first limit hit, which the
//! run then reports as an `error` result naming it ([`HostLimit`]).
//!
//! The meter is reset when a run starts, so the limits are per run. It
//! decides nothing about *which* hosts may be reached (that is `policy`)
//! and holds no resource itself.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A host-side limit a run went over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostLimit {
    /// More TCP connections and HTTP requests than allowed in one run.
    Connections(u32),
    /// More host log calls than allowed in one run.
    LogLines(u32),
    /// More bytes logged through the host than allowed in one run.
    LogBytes(usize),
    /// More live resources (sockets, streams, HTTP fields, ...) than the
    /// plugin's resource table may hold.
    Resources(u32),
}

impl std::fmt::Display for HostLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostLimit::Connections(n) => write!(
                f,
                "plugin opened more than {n} connections (TCP connects and HTTP requests) in one run (limit agent.plugins.max_connections)"
            ),
            HostLimit::LogLines(n) => write!(
                f,
                "plugin logged more than {n} lines through the host in one run (limit agent.plugins.log_lines)"
            ),
            HostLimit::LogBytes(n) => write!(
                f,
                "plugin logged more than {n} bytes through the host in one run (limit agent.plugins.log_kb)"
            ),
            HostLimit::Resources(n) => write!(
                f,
                "plugin held more than {n} host resources (sockets, streams, HTTP fields, ...) at once (limit agent.plugins.max_resources)"
            ),
        }
    }
}

/// Counters of one instance's current run (shared with the socket check
/// closure, which outlives a borrow of the store data).
#[derive(Debug)]
pub struct Meter {
    max_connections: u32,
    log_lines: u32,
    log_bytes: usize,
    connections: AtomicU64,
    lines: AtomicU64,
    bytes: AtomicU64,
    /// The first limit hit in this run.
    exceeded: Mutex<Option<HostLimit>>,
}

impl Meter {
    /// A meter with these per-run limits.
    pub fn new(max_connections: u32, log_lines: u32, log_bytes: usize) -> Self {
        Self {
            max_connections,
            log_lines,
            log_bytes,
            connections: AtomicU64::new(0),
            lines: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            exceeded: Mutex::new(None),
        }
    }

    /// Starts a new run: all counters at zero, no limit hit.
    pub fn reset(&self) {
        self.connections.store(0, Ordering::Relaxed);
        self.lines.store(0, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
        *self.exceeded.lock().unwrap() = None;
    }

    fn hit(&self, limit: HostLimit) {
        let mut e = self.exceeded.lock().unwrap();
        if e.is_none() {
            tracing::warn!(target: "plugin", "{limit}");
            *e = Some(limit);
        }
    }

    /// Charges one connection; `false` (and the limit recorded) when over.
    pub fn connect(&self) -> bool {
        let n = self.connections.fetch_add(1, Ordering::Relaxed) + 1;
        if n > u64::from(self.max_connections) {
            self.hit(HostLimit::Connections(self.max_connections));
            return false;
        }
        true
    }

    /// Charges one log line of `len` bytes; `false` when over (the line is
    /// then dropped).
    pub fn log(&self, len: usize) -> bool {
        let lines = self.lines.fetch_add(1, Ordering::Relaxed) + 1;
        let bytes = self.bytes.fetch_add(len as u64, Ordering::Relaxed) + len as u64;
        if lines > u64::from(self.log_lines) {
            self.hit(HostLimit::LogLines(self.log_lines));
            return false;
        }
        if bytes > self.log_bytes as u64 {
            self.hit(HostLimit::LogBytes(self.log_bytes));
            return false;
        }
        true
    }

    /// The first limit hit in this run, if any.
    pub fn exceeded(&self) -> Option<HostLimit> {
        self.exceeded.lock().unwrap().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_run_and_names_the_first_limit() {
        let m = Meter::new(2, 3, 10);
        assert!(m.connect() && m.connect());
        assert!(!m.connect());
        assert!(!m.log(100));
        assert_eq!(m.exceeded(), Some(HostLimit::Connections(2)));
        m.reset();
        assert_eq!(m.exceeded(), None);
        assert!(m.connect());
        assert!(m.log(4) && m.log(4));
        assert!(!m.log(4));
        assert_eq!(m.exceeded(), Some(HostLimit::LogBytes(10)));
        assert!(m.exceeded().unwrap().to_string().contains("log_kb"));
    }
}
