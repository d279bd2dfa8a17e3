//! The self-connectivity guard (`[agent.connectivity]`): is this agent
//! itself still on the network?
//!
//! When the host running the agent loses its network, every remote check
//! fails at once; paging people for all of them is an alert flood about
//! the monitor, not about the targets. The guard probes a few canary
//! targets (TCP connect to `host:port`, the way Gatus does it); the agent
//! counts as *online* while at least one of them answers.
//!
//! The guard is consulted at the moment a check fails, not only on its own
//! timer: the scheduler asks [`Guard::online_now`], which probes again
//! unless a probe started after the failed check did, so a failure caused by the network
//! dropping a second ago is seen as "agent offline" and never reaches the
//! state machine. While offline, the scheduler records failing results
//! without advancing state (the board shows the sensor as unknown, "agent
//! offline"), the incident engine opens nothing and holds its escalation
//! timers, and the status document, page and `/metrics` say so.
//!
//! This module owns only the probing and the online/offline state; what
//! the rest of the pipeline does with it lives in the scheduler, the
//! recorder and the incident engine.

use crate::config::Connectivity;
use outpost_types::time::now_ms;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// While offline the canaries are probed at least this often, so checking
/// resumes soon after the network returns.
const OFFLINE_PROBE: Duration = Duration::from_secs(5);

/// The agent's connectivity as last probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Online {
    /// At least one canary answered.
    pub online: bool,
    /// Since when (Unix ms).
    pub since_ms: i64,
    /// What the last probe found: the canary that answered, or why each
    /// one failed.
    pub reason: String,
}

/// Probes the canaries and holds the current verdict.
#[derive(Debug)]
pub struct Guard {
    cfg: Connectivity,
    state: watch::Sender<Online>,
    /// Serialises probes (one in flight) and remembers when the last one
    /// started.
    last_probe: tokio::sync::Mutex<Option<Instant>>,
    /// Transitions for the log, taken by the periodic task.
    logged: Mutex<bool>,
}

impl Guard {
    /// A guard that starts online (nothing is known to be wrong yet).
    pub fn new(cfg: Connectivity) -> Guard {
        let (state, _) = watch::channel(Online {
            online: true,
            since_ms: now_ms(),
            reason: "not probed yet".into(),
        });
        Guard {
            cfg,
            state,
            last_probe: tokio::sync::Mutex::new(None),
            logged: Mutex::new(true),
        }
    }

    /// The canary targets (`host:port`).
    pub fn targets(&self) -> &[String] {
        &self.cfg.targets
    }

    /// The last verdict, without probing.
    pub fn current(&self) -> Online {
        self.state.borrow().clone()
    }

    /// Changes of the verdict.
    pub fn subscribe(&self) -> watch::Receiver<Online> {
        self.state.subscribe()
    }

    /// Whether the agent is online at some moment after `since`: the
    /// verdict of a probe that started after `since` is reused (checks
    /// failing together cost one probe), otherwise the canaries are probed
    /// now. The scheduler passes the start of a failed check, before its
    /// result may change a state.
    pub async fn online_now(&self, since: Instant) -> bool {
        let mut last = self.last_probe.lock().await;
        if last.is_some_and(|t| t >= since) {
            return self.state.borrow().online;
        }
        *last = Some(Instant::now());
        let verdict = self.probe().await;
        let online = verdict.0;
        self.publish(verdict);
        online
    }

    /// Probes on the configured interval (more often while offline) until
    /// the task is aborted.
    pub async fn run(self: std::sync::Arc<Self>) {
        loop {
            self.online_now(Instant::now()).await;
            let wait = if self.state.borrow().online {
                self.cfg.interval
            } else {
                self.cfg.interval.min(OFFLINE_PROBE)
            };
            tokio::time::sleep(wait).await;
        }
    }

    fn publish(&self, (online, reason): (bool, String)) {
        let changed = self.state.send_if_modified(|s| {
            let flipped = s.online != online;
            if flipped {
                s.online = online;
                s.since_ms = now_ms();
            }
            let text_changed = s.reason != reason;
            s.reason = reason.clone();
            flipped || text_changed
        });
        if changed {
            let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
            if *logged != online {
                *logged = online;
                if online {
                    tracing::info!("agent online again ({reason}); checks count again");
                } else {
                    tracing::warn!(
                        "agent offline: no canary answers ({reason}); failing checks are recorded as unknown and no incident opens"
                    );
                }
            }
        }
    }

    /// Connects to every canary at once; online as soon as one connect
    /// succeeds.
    async fn probe(&self) -> (bool, String) {
        let mut attempts = tokio::task::JoinSet::new();
        for t in &self.cfg.targets {
            let (t, timeout) = (t.clone(), self.cfg.timeout);
            attempts.spawn(async move {
                match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(t.as_str()))
                    .await
                {
                    Ok(Ok(_)) => Ok(t),
                    Ok(Err(e)) => Err(format!("{t}: {e}")),
                    Err(_) => Err(format!("{t}: no answer within {timeout:?}")),
                }
            });
        }
        let mut failures = Vec::new();
        while let Some(r) = attempts.join_next().await {
            match r {
                Ok(Ok(t)) => return (true, format!("{t} answers")),
                Ok(Err(e)) => failures.push(e),
                Err(e) => failures.push(format!("probe failed: {e}")),
            }
        }
        failures.sort();
        (false, failures.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(targets: Vec<String>) -> Guard {
        Guard::new(Connectivity {
            targets,
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(1),
        })
    }

    #[tokio::test]
    async fn online_while_any_canary_answers() {
        let up = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let down = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let down_addr = down.local_addr().unwrap().to_string();
        drop(down);
        let g = guard(vec![
            down_addr.clone(),
            up.local_addr().unwrap().to_string(),
        ]);
        assert!(g.online_now(Instant::now()).await);
        assert!(g.current().reason.contains("answers"), "{:?}", g.current());

        let g = guard(vec![down_addr.clone()]);
        assert!(!g.online_now(Instant::now()).await);
        let now = g.current();
        assert!(!now.online);
        assert!(now.reason.contains(&down_addr), "{now:?}");
    }
}
