//! The scheduler: one tokio task per sensor runs its checks on time.
//!
//! Each task owns its sensor's plugin instance, state machine and threshold
//! evaluator (so at most one run per sensor is ever in flight, and no lock
//! is shared between sensors). Runs start on a fixed grid (start + stable
//! per-sensor offset + n × interval), so lateness does not accumulate; the
//! interval is the retry interval while a failure is soft or a recovery is
//! unconfirmed. A global semaphore caps how many checks run at once.
//! Lateness (start time minus due time) is measured for every run.
//!
//! After each check the task sends a [`CheckEvent`] down the pipeline; it
//! never calls back up. Stopping a task lets the check in flight finish
//! (it is bounded by its timeout) and hands back the sensor's runtime, so
//! a config reload keeps the state machine.

use crate::config::{SensorConfig, stable_offset};
use crate::connectivity::Guard;
use crate::metrics::Metrics;
use crate::state::{Machine, Policy, State, Transition};
use crate::thresholds::Evaluator;
use outpost_plugin_host::{NetPolicy, Plugin, RunError};
use outpost_types::time::now_ms;
use outpost_types::{CheckResult, Status};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What one check produced, sent down the pipeline.
#[derive(Debug, Clone)]
pub struct CheckEvent {
    /// The sensor's configuration.
    pub sensor: Arc<SensorConfig>,
    /// When the check started (Unix ms).
    pub at_ms: i64,
    /// The result, after threshold rules.
    pub result: CheckResult,
    /// The state after this result.
    pub state: State,
    /// Since when in that state (Unix ms).
    pub since_ms: i64,
    /// Consecutive failures.
    pub consecutive_failures: u32,
    /// Consecutive successes.
    pub consecutive_successes: u32,
    /// Flapping.
    pub flapping: bool,
    /// A state change, if any.
    pub transition: Option<Transition>,
    /// Flapping started or stopped.
    pub flapping_changed: Option<bool>,
    /// The check failed while the agent itself was offline (see
    /// [`crate::connectivity`]): the result is recorded but did not reach
    /// the state machine.
    pub offline: bool,
}

/// Everything a sensor's task owns; handed back when it stops.
pub struct SensorRuntime {
    cfg: Arc<SensorConfig>,
    instance: outpost_plugin_host::Instance,
    machine: Machine,
    thresholds: Evaluator,
}

impl SensorRuntime {
    /// A runtime for `cfg`, resuming `machine` if given.
    pub fn new(cfg: Arc<SensorConfig>, plugin: Arc<Plugin>, machine: Option<Machine>) -> Self {
        let policy = Policy {
            fail_after: cfg.fail_after,
            recover_after: cfg.recover_after,
        };
        let machine = match machine {
            Some(mut m) => {
                m.set_policy(policy);
                m
            }
            None => Machine::new(policy, now_ms()),
        };
        let net = NetPolicy::granted(
            plugin.info(),
            &cfg.config.value(),
            cfg.allow.as_deref(),
            &[],
        );
        let instance = plugin.instance(Arc::new(net), &cfg.name);
        Self {
            cfg,
            instance,
            machine,
            thresholds: Evaluator::default(),
        }
    }

    /// The state machine (to carry across reloads).
    pub fn into_machine(self) -> Machine {
        self.machine
    }
}

fn fault_kind(e: &RunError) -> &'static str {
    match e {
        RunError::Timeout(_) => "timeout",
        RunError::Memory(_) => "memory",
        RunError::Output(_) => "output",
        RunError::StackOverflow => "stack_overflow",
        RunError::HostLimit(_) => "host_limit",
        RunError::Trap(_) => "trap",
        RunError::WrongKind { .. } => "wrong_kind",
    }
}

async fn run_sensor(
    mut rt: SensorRuntime,
    mut stop: watch::Receiver<bool>,
    limit: Arc<Semaphore>,
    events: mpsc::Sender<CheckEvent>,
    metrics: Arc<Metrics>,
    guard: Option<Arc<Guard>>,
) -> SensorRuntime {
    let mut due = Instant::now() + stable_offset(&rt.cfg.name, rt.cfg.jitter);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(due) => {}
            _ = stop.changed() => return rt,
        }
        // Boxed: a run's future (the permit wait, the check, the event
        // send) is large and lives only while it runs; inline, every idle
        // sensor's task would be that much bigger.
        let run = Box::pin(run_once(
            &mut rt,
            &mut stop,
            &limit,
            &events,
            &metrics,
            guard.as_deref(),
            due,
        ));
        match run.await {
            Some(next) => due = next,
            None => return rt,
        }
    }
}

/// One run that was due at `due`: waits for a permit, checks, sends the
/// event. Returns when the next run is due, or `None` to stop.
async fn run_once(
    rt: &mut SensorRuntime,
    stop: &mut watch::Receiver<bool>,
    limit: &Semaphore,
    events: &mpsc::Sender<CheckEvent>,
    metrics: &Metrics,
    guard: Option<&Guard>,
    due: Instant,
) -> Option<Instant> {
    let permit = tokio::select! {
        p = limit.acquire() => p.expect("semaphore closed"),
        _ = stop.changed() => return None,
    };
    let started = Instant::now();
    metrics.observe_lateness(started.saturating_duration_since(due).as_secs_f64());
    let at_ms = now_ms();
    let mut result = match rt
        .instance
        .check(rt.cfg.config.json(), rt.cfg.timeout)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            metrics.plugin_error(fault_kind(&e));
            tracing::warn!(sensor = %rt.cfg.name, error = %e, "plugin fault");
            CheckResult::error(e.to_string())
        }
    };
    drop(permit);
    // A plugin may quote its configuration (a URL, a header) in its
    // message; secrets by reference never leave the agent through it.
    if let std::borrow::Cow::Owned(m) = crate::config::redact(&result.message) {
        result.message = m;
    }
    if result.latency_ms == 0.0 && result.status != Status::Error {
        result.latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    }
    rt.thresholds.apply(&rt.cfg.thresholds, &mut result, at_ms);
    // A failure while the agent itself has no network says nothing about
    // the target: it is recorded, but the state stays where it was.
    let failed = matches!(result.status, Status::Fail | Status::Error);
    let offline = match guard {
        Some(g) if failed => !g.online_now(started).await,
        _ => false,
    };
    let step = if offline {
        result.message = format!("agent offline: {}", result.message);
        Default::default()
    } else {
        rt.machine.observe(result.status, &result.message, at_ms)
    };
    let ev = CheckEvent {
        sensor: rt.cfg.clone(),
        at_ms,
        result,
        state: rt.machine.state(),
        since_ms: rt.machine.since_ms(),
        consecutive_failures: rt.machine.consecutive_failures(),
        consecutive_successes: rt.machine.consecutive_successes(),
        flapping: rt.machine.flapping(),
        transition: step.transition,
        flapping_changed: step.flapping_changed,
        offline,
    };
    events.send(ev).await.ok()?;
    let step = match rt.machine.state() {
        State::Soft | State::Recovering => rt.cfg.retry_interval,
        _ => rt.cfg.interval,
    };
    let mut next = due + step;
    let now = Instant::now();
    if next < now {
        // Missed slots (a check longer than its interval, or a stall) are
        // skipped rather than run back to back.
        let behind = now - next;
        let skip = (behind.as_nanos() / step.as_nanos().max(1)) as u32 + 1;
        next += step * skip;
    }
    Some(next)
}

struct Running {
    cfg: Arc<SensorConfig>,
    plugin: Arc<Plugin>,
    stop: watch::Sender<bool>,
    handle: JoinHandle<SensorRuntime>,
}

/// The set of running sensor tasks.
pub struct Scheduler {
    running: HashMap<String, Running>,
    limit: Arc<Semaphore>,
    events: mpsc::Sender<CheckEvent>,
    metrics: Arc<Metrics>,
    /// The self-connectivity guard every sensor consults when it fails.
    guard: Option<Arc<Guard>>,
}

impl Scheduler {
    /// A scheduler running at most `concurrency` checks at once, sending
    /// events to `events`.
    pub fn new(concurrency: u32, events: mpsc::Sender<CheckEvent>, metrics: Arc<Metrics>) -> Self {
        Self {
            running: HashMap::new(),
            limit: Arc::new(Semaphore::new(concurrency as usize)),
            events,
            metrics,
            guard: None,
        }
    }

    /// Failures are checked against `guard` before they change a state.
    pub fn with_guard(mut self, guard: Option<Arc<Guard>>) -> Self {
        self.guard = guard;
        self
    }

    /// Names of running sensors.
    pub fn sensors(&self) -> Vec<String> {
        self.running.keys().cloned().collect()
    }

    /// Makes the running set match `sensors`: unchanged sensors keep
    /// running untouched, changed ones restart with their state, removed
    /// ones stop, new ones start (resuming `resume[name]` if present).
    pub async fn apply(
        &mut self,
        sensors: &[Arc<SensorConfig>],
        plugins: &HashMap<String, Arc<Plugin>>,
        mut resume: HashMap<String, Machine>,
    ) -> Vec<String> {
        let wanted: HashMap<&str, &SensorConfig> =
            sensors.iter().map(|s| (s.name.as_str(), &**s)).collect();
        let mut removed = vec![];
        let names: Vec<String> = self.running.keys().cloned().collect();
        for name in names {
            let keep = match wanted.get(name.as_str()) {
                Some(new) => {
                    let r = &self.running[&name];
                    **new == *r.cfg
                        && plugins
                            .get(&new.plugin)
                            .is_some_and(|p| Arc::ptr_eq(p, &r.plugin))
                }
                None => false,
            };
            if keep {
                continue;
            }
            let r = self.running.remove(&name).unwrap();
            let _ = r.stop.send(true);
            if let Ok(rt) = r.handle.await {
                resume.insert(name.clone(), rt.into_machine());
            }
            if !wanted.contains_key(name.as_str()) {
                self.metrics.remove_sensor(&name);
                removed.push(name);
            }
        }
        for s in sensors {
            if self.running.contains_key(&s.name) {
                continue;
            }
            let Some(plugin) = plugins.get(&s.plugin) else {
                tracing::error!(sensor = %s.name, plugin = %s.plugin, "plugin not loaded; sensor not started");
                continue;
            };
            let rt = SensorRuntime::new(s.clone(), plugin.clone(), resume.remove(&s.name));
            let (stop, stop_rx) = watch::channel(false);
            let handle = tokio::spawn(run_sensor(
                rt,
                stop_rx,
                self.limit.clone(),
                self.events.clone(),
                self.metrics.clone(),
                self.guard.clone(),
            ));
            self.running.insert(
                s.name.clone(),
                Running {
                    cfg: s.clone(),
                    plugin: plugin.clone(),
                    stop,
                    handle,
                },
            );
        }
        removed
    }

    /// Stops every task, letting checks in flight finish (each is bounded
    /// by its timeout); waits at most `grace`.
    pub async fn shutdown(self, grace: Duration) {
        for r in self.running.values() {
            let _ = r.stop.send(true);
        }
        let all = futures_join(self.running.into_values().map(|r| r.handle).collect());
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("some checks were still running at shutdown; abandoned");
        }
    }
}

async fn futures_join(handles: Vec<JoinHandle<SensorRuntime>>) {
    for h in handles {
        let _ = h.await;
    }
}
