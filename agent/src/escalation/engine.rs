//! The incident engine: turns target health into incidents, escalations,
//! reminders and resolutions.
//!
//! Rules (one policy per target: the first `[[escalation]]` covering it):
//! * a target down for `alert_after` (measured from when it went down)
//!   opens **one** incident; level 1 is notified with the incident's
//!   acknowledgement link;
//! * a target that is down *because* a dependency is down (its
//!   `caused_by`) does not page anyone: its incident is linked to the
//!   dependency's and suppressed; it waits while the dependency is down but
//!   has no incident yet, so a dependent's alert never races ahead of its
//!   cause. When the cause resolves and the dependent stays down for its
//!   own alerting window, the dependent alerts on its own;
//! * no acknowledgement within the level's `ack_within`: the next level is
//!   notified; `repeat_every` reminds the current level;
//! * while a target is in a maintenance window or silenced, no incident
//!   opens and due escalations wait for the end of the window; the same
//!   holds while the connectivity guard says the agent itself is offline;
//! * a target that is up again (and not flapping) resolves the incident;
//!   everybody told is told (`notify_on_resolve`);
//! * a notifier with a `keepalive` is re-posted every incident it was told
//!   about while the incident is unresolved, acknowledged or not, quiet
//!   time or not ([`super::keepalive`]).
//!
//! Timers and notifications are rows written in the same transaction as
//! the decision that implies them, so after a crash or restart a pending
//! escalation fires at its original time (at once if it became due while
//! the agent was down), exactly once (a timer is claimed by a conditional
//! update). What is kept in memory (the last observation per target) is
//! rebuilt from the next evaluation round.
//!
//! This module owns incident decisions; it does not deliver (see
//! [`super::outbox`]) and never calls back into evaluation.

use super::actions::{announce_to_told, silenced_until};
use super::{AlertingConfig, alert_payload, idempotency_key};
use crate::config::EscalationPolicy;
use crate::targets::{Health, TargetEvent};
use outpost_store::{Incident, IncidentState, NewIncident, NewOutbox, Silence, Store, Tx};
use outpost_types::AlertEvent;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};

/// How often due timers and alerting windows are looked at. A quarter
/// second keeps escalations within ~0.25 s of their due time for the cost
/// of one indexed query per tick.
pub const TICK: Duration = Duration::from_millis(250);

/// How long the list of silences is cached (silences are added by other
/// processes too, so it is re-read; once a second is prompt enough).
const SILENCE_CACHE: i64 = 1_000;

/// How often the unresolved incidents are re-read from the database (an
/// acknowledgement by the CLI or the API happens outside the engine) and
/// shown on the status board.
const SYNC_EVERY: i64 = 1_000;

/// Timer kinds stored in `timers.kind`.
/// While the agent is offline, an incident that would open or a timer
/// that fires waits this long and is looked at again.
const OFFLINE_HOLD_MS: i64 = 5_000;

const ESCALATE: &str = "escalate";
const REMIND: &str = "remind";

/// What the engine remembers about a target.
#[derive(Debug, Clone)]
struct Seen {
    ev: TargetEvent,
    /// When the current down period began (kept across `Recovering`).
    down_since: Option<i64>,
}

/// The incident engine.
pub struct Engine {
    store: Store,
    cfg: Arc<AlertingConfig>,
    seen: HashMap<String, Seen>,
    /// Unresolved incidents by target (the database is the truth; this is
    /// its cache, refreshed after every change).
    open: HashMap<String, Incident>,
    silences: Vec<Silence>,
    silences_read_ms: i64,
    /// Wakes the outbox when notifications were enqueued.
    wake: Arc<Notify>,
    /// Where incidents are shown (status API and page), if anywhere.
    board: Option<Arc<crate::status::Board>>,
    /// The self-connectivity guard: while it says offline, nothing opens
    /// or escalates.
    guard: Option<Arc<crate::connectivity::Guard>>,
    /// Targets whose incident the board shows.
    shown: std::collections::HashSet<String>,
    /// Suppressed incidents whose cause resolved while they were still
    /// down, with when: they alert on their own once still down for their
    /// alerting window (the cause's recovery usually brings theirs within
    /// the same evaluation round, so they resolve silently instead).
    orphaned: HashMap<i64, i64>,
    synced_ms: i64,
}

use outpost_types::time::now_ms;

impl Engine {
    /// An engine over `store`, resuming the unresolved incidents in it.
    pub fn new(
        store: Store,
        cfg: Arc<AlertingConfig>,
        wake: Arc<Notify>,
    ) -> outpost_store::Result<Self> {
        let open = store
            .tx(|t| t.unresolved_incidents())?
            .into_iter()
            .map(|i| (i.target.clone(), i))
            .collect();
        let engine = Engine {
            store,
            cfg,
            seen: HashMap::new(),
            open,
            silences: Vec::new(),
            silences_read_ms: i64::MIN,
            wake,
            board: None,
            guard: None,
            shown: Default::default(),
            orphaned: HashMap::new(),
            synced_ms: i64::MIN,
        };
        // A notifier may have been given a keepalive while the agent was
        // stopped.
        engine.ensure_keepalives(now_ms())?;
        Ok(engine)
    }

    /// Starts the keepalive chains that the current configuration implies
    /// for the unresolved incidents and that are not running (after a
    /// restart or a reload gave a notifier a keepalive).
    fn ensure_keepalives(&self, now: i64) -> outpost_store::Result<()> {
        if self
            .cfg
            .notifiers
            .values()
            .all(|(n, _)| n.keepalive.is_none())
        {
            return Ok(());
        }
        let cfg = &self.cfg;
        self.store.tx(|tx| {
            for inc in tx.unresolved_incidents()? {
                super::keepalive::ensure(tx, &inc, &|n| cfg.keepalive_of(n), now)?;
            }
            Ok(())
        })
    }

    /// Shows each target's unresolved incident on `board`.
    pub fn with_board(mut self, board: Arc<crate::status::Board>) -> Self {
        self.board = Some(board);
        self
    }

    /// Holds incidents and escalations while `guard` says the agent is
    /// offline.
    pub fn with_guard(mut self, guard: Option<Arc<crate::connectivity::Guard>>) -> Self {
        self.guard = guard;
        self
    }

    /// Re-reads the unresolved incidents and shows them on the board.
    fn sync(&mut self, now: i64) {
        if now.saturating_sub(self.synced_ms) < SYNC_EVERY {
            return;
        }
        self.synced_ms = now;
        let list = match self.store.tx(|t| t.unresolved_incidents()) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("cannot read the incidents: {e}");
                return;
            }
        };
        self.open = list.into_iter().map(|i| (i.target.clone(), i)).collect();
        let Some(board) = &self.board else { return };
        for (t, i) in &self.open {
            board.set_incident(
                t,
                Some(serde_json::json!({
                    "id": i.id,
                    "state": if i.suppressed { "suppressed" } else { i.state.as_str() },
                    "level": i.level,
                    "opened_at_ms": i.opened_at_ms,
                    "acked_by": i.acked_by,
                    "acked_at_ms": i.acked_at_ms,
                    "parent_id": i.parent_id,
                    "message": i.message,
                })),
            );
        }
        for t in self.shown.iter().filter(|t| !self.open.contains_key(*t)) {
            board.set_incident(t, None);
        }
        self.shown = self.open.keys().cloned().collect();
    }

    /// Runs until the event channel closes.
    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<TargetEvent>,
        mut config: watch::Receiver<Arc<AlertingConfig>>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(ev) => {
                        let now = now_ms();
                        if self.may_touch_store(&ev) {
                            tokio::task::block_in_place(|| self.observe(ev, now));
                        } else {
                            // The common case (up, no incident): memory only.
                            // Handing the worker over to another thread for it,
                            // a thousand times a second, cost a thread switch
                            // per check and kept a dozen threads alive.
                            self.observe(ev, now);
                        }
                    }
                    None => break,
                },
                changed = config.changed() => {
                    if changed.is_ok() {
                        let new = config.borrow_and_update().clone();
                        let gone: Vec<String> = self
                            .open
                            .keys()
                            .filter(|t| self.cfg.targets.contains(*t) && !new.targets.contains(*t))
                            .cloned()
                            .collect();
                        self.cfg = new;
                        tokio::task::block_in_place(|| {
                            if let Err(e) = self.ensure_keepalives(now_ms()) {
                                tracing::error!("keepalive bookkeeping failed: {e}");
                            }
                        });
                        if !gone.is_empty() {
                            let now = now_ms();
                            tokio::task::block_in_place(|| {
                                for t in gone {
                                    if let Err(e) = self.resolve_removed(&t, now) {
                                        tracing::error!(target = %t, "incident bookkeeping failed: {e}");
                                    }
                                }
                            });
                        }
                    }
                }
                _ = tick.tick() => {
                    let now = now_ms();
                    tokio::task::block_in_place(|| self.tick(now));
                }
            }
        }
    }

    /// Whether observing `ev` may read or write the database: a down
    /// target may open an incident (and read silences first), an up one may
    /// resolve its open incident; anything else only updates memory.
    fn may_touch_store(&self, ev: &TargetEvent) -> bool {
        match ev.health {
            Health::Down => true,
            Health::Up => self.open.contains_key(&ev.target),
            Health::Unknown => false,
        }
    }

    /// Takes in one observation.
    pub fn observe(&mut self, ev: TargetEvent, now: i64) {
        let prev_down = self
            .seen
            .get(&ev.target)
            .filter(|s| s.ev.health == Health::Down)
            .and_then(|s| s.down_since);
        let down_since = match ev.health {
            Health::Down => Some(prev_down.unwrap_or(ev.since_ms)),
            _ => None,
        };
        let target = ev.target.clone();
        let health = ev.health;
        self.seen.insert(target.clone(), Seen { ev, down_since });
        let r = match health {
            Health::Down => self.maybe_open(&target, now),
            Health::Up => self.maybe_resolve(&target, now),
            Health::Unknown => Ok(()),
        };
        if let Err(e) = r {
            tracing::error!(target = %target, "incident bookkeeping failed: {e}");
        }
    }

    /// Periodic work: alerting windows that have passed, due timers,
    /// incidents whose flapping ended.
    pub fn tick(&mut self, now: i64) {
        let waiting: Vec<String> = self
            .seen
            .iter()
            .filter(|(t, s)| {
                (s.ev.health == Health::Down && !self.open.contains_key(*t))
                    || (s.ev.health == Health::Up && self.open.contains_key(*t))
                    || self.open.get(*t).is_some_and(|i| i.suppressed)
            })
            .map(|(t, _)| t.clone())
            .collect();
        for t in waiting {
            let r = match self.seen[&t].ev.health {
                Health::Down => self.maybe_open(&t, now),
                _ => self.maybe_resolve(&t, now),
            };
            if let Err(e) = r {
                tracing::error!(target = %t, "incident bookkeeping failed: {e}");
            }
        }
        if let Err(e) = self.fire_timers(now) {
            tracing::error!("escalation timers failed: {e}");
        }
        self.sync(now);
    }

    fn refresh_silences(&mut self, now: i64) {
        if now.saturating_sub(self.silences_read_ms) >= SILENCE_CACHE {
            match self.store.tx(|t| t.silences(now, true)) {
                Ok(s) => {
                    self.silences = s;
                    self.silences_read_ms = now;
                }
                Err(e) => tracing::warn!("cannot read silences: {e}"),
            }
        }
    }

    /// End of the quiet time (maintenance, silence, or the agent being
    /// offline) of a target, if any.
    fn quiet_until(&mut self, ev: &TargetEvent, now: i64) -> Option<i64> {
        if self.guard.as_ref().is_some_and(|g| !g.current().online) {
            // Nothing is known about any target while the agent has no
            // network; look again shortly.
            return Some(now + OFFLINE_HOLD_MS);
        }
        self.refresh_silences(now);
        let m = self.cfg.maintenance_end(ev, now);
        let s = silenced_until(
            &self.silences,
            &ev.target,
            ev.category.as_deref(),
            &ev.labels,
            now,
        );
        m.max(s)
    }

    fn maybe_open(&mut self, target: &str, now: i64) -> outpost_store::Result<()> {
        if let Some(inc) = self.open.get(target).cloned() {
            // Still down: only an orphaned suppressed incident has more to do.
            return self.maybe_unsuppress(inc, now);
        }
        let Some(seen) = self.seen.get(target).cloned() else {
            return Ok(());
        };
        let Some(policy) = self.cfg.policy_for(&seen.ev).cloned() else {
            return Ok(());
        };
        let since = seen.down_since.unwrap_or(seen.ev.since_ms);
        if now < since.saturating_add(policy.alert_after.as_millis() as i64) {
            return Ok(());
        }
        if self.quiet_until(&seen.ev, now).is_some() {
            return Ok(());
        }
        // Dependency-aware: link to a cause's incident, or wait for it.
        let parent = seen
            .ev
            .caused_by
            .iter()
            .find_map(|c| self.open.get(c).map(|i| (c.clone(), i.id)));
        if parent.is_none()
            && seen.ev.caused_by.iter().any(|c| {
                self.seen.get(c).is_some_and(|p| {
                    p.ev.health == Health::Down && self.cfg.policy_for(&p.ev).is_some()
                })
            })
        {
            return Ok(());
        }
        let cfg = self.cfg.clone();
        let nonce = super::token::AckKey::new_nonce();
        let token_hash = cfg.key.token(&nonce).map(|t| super::token::hash(&t));
        let inc = self.store.tx(|tx| {
            let inc = tx.open_incident(&NewIncident {
                target: target.to_string(),
                opened_at_ms: now,
                level: if parent.is_some() { 0 } else { 1 },
                token_hash: token_hash.clone(),
                kind: seen.ev.kind.as_str().to_string(),
                policy: policy.name.clone(),
                message: seen.ev.reason.clone(),
                down_since_ms: Some(since),
                parent_id: parent.as_ref().map(|p| p.1),
                ack_nonce: Some(nonce.clone()),
                suppressed: parent.is_some(),
            })?;
            tx.add_event(inc.id, now, "opened", &seen.ev.reason)?;
            match &parent {
                Some((p, pid)) => tx.add_event(
                    inc.id,
                    now,
                    "suppressed",
                    &format!("{target} is down because {p} is down; linked to incident #{pid}, nobody is notified for it"),
                )?,
                None => start_level(tx, &cfg, &inc, &policy, 1, AlertEvent::Opened, "1", &inc.message, now)?,
            }
            Ok(inc)
        })?;
        match &parent {
            Some((p, pid)) => {
                tracing::info!(target = %target, incident = inc.id, parent = pid, "incident opened, suppressed: {p} is down")
            }
            None => {
                tracing::warn!(target = %target, incident = inc.id, policy = %policy.name, "incident opened: {}", inc.message)
            }
        }
        self.open.insert(target.to_string(), inc);
        self.wake.notify_one();
        Ok(())
    }

    fn maybe_resolve(&mut self, target: &str, now: i64) -> outpost_store::Result<()> {
        let Some(inc) = self.open.get(target).cloned() else {
            return Ok(());
        };
        let Some(seen) = self.seen.get(target) else {
            return Ok(());
        };
        if seen.ev.health != Health::Up || seen.ev.flapping {
            return Ok(());
        }
        let reason = seen.ev.reason.clone();
        let cfg = self.cfg.clone();
        let notify = cfg.policy(&inc.policy).is_none_or(|p| p.notify_on_resolve);
        let mut orphaned = Vec::new();
        let mut resolved_children = Vec::new();
        self.store.tx(|tx| {
            if !tx.resolve(inc.id, now)? {
                return Ok(());
            }
            tx.cancel_timers(inc.id)?;
            let took = now - inc.down_since_ms.unwrap_or(inc.opened_at_ms);
            tx.add_event(
                inc.id,
                now,
                "resolved",
                &format!("{target} is up again after {}s: {reason}", took / 1000),
            )?;
            let inc = tx.incident(inc.id)?.unwrap_or(inc.clone());
            if notify && !inc.suppressed {
                announce_to_told(
                    tx,
                    &cfg.agent,
                    &inc,
                    AlertEvent::Resolved,
                    &format!("{target} is up again: {reason}"),
                    now,
                )?;
            }
            // Children that were down because of this target.
            for child in tx.children(inc.id)? {
                let still_down = self
                    .seen
                    .get(&child.target)
                    .is_some_and(|s| s.ev.health == Health::Down);
                if child.suppressed && still_down {
                    orphaned.push(child.id);
                } else if child.suppressed && tx.resolve(child.id, now)? {
                    tx.add_event(
                        child.id,
                        now,
                        "resolved",
                        &format!("resolved with its cause {target}"),
                    )?;
                    resolved_children.push(child.target.clone());
                }
            }
            Ok(())
        })?;
        tracing::info!(target = %target, incident = inc.id, "incident resolved");
        self.open.remove(target);
        for t in resolved_children {
            self.open.remove(&t);
        }
        for id in orphaned {
            self.orphaned.insert(id, now);
        }
        self.wake.notify_one();
        Ok(())
    }

    /// Resolves the open incident of a target the configuration no longer
    /// has (a sensor removed by a reload, or of an object a provider no
    /// longer lists): "removed", not "recovered".
    pub fn resolve_removed(&mut self, target: &str, now: i64) -> outpost_store::Result<()> {
        let Some(inc) = self.open.get(target).cloned() else {
            return Ok(());
        };
        let cfg = self.cfg.clone();
        let notify = cfg.policy(&inc.policy).is_none_or(|p| p.notify_on_resolve);
        self.store.tx(|tx| {
            if !tx.resolve(inc.id, now)? {
                return Ok(());
            }
            tx.cancel_timers(inc.id)?;
            tx.add_event(
                inc.id,
                now,
                "removed",
                &format!("{target} was removed from the configuration; the incident is closed without recovery"),
            )?;
            let inc = tx.incident(inc.id)?.unwrap_or(inc.clone());
            if notify && !inc.suppressed {
                announce_to_told(
                    tx,
                    &cfg.agent,
                    &inc,
                    AlertEvent::Resolved,
                    &format!("{target} was removed (no longer configured); not recovered"),
                    now,
                )?;
            }
            Ok(())
        })?;
        tracing::info!(target = %target, incident = inc.id, "incident resolved: target removed");
        self.open.remove(target);
        self.seen.remove(target);
        if let Some(b) = &self.board {
            b.set_incident(target, None);
        }
        self.shown.remove(target);
        self.wake.notify_one();
        Ok(())
    }

    /// A suppressed incident whose cause resolved while it stayed down
    /// alerts on its own once it has been down for its alerting window
    /// since.
    fn maybe_unsuppress(&mut self, inc: Incident, now: i64) -> outpost_store::Result<()> {
        let Some(&gone) = self.orphaned.get(&inc.id) else {
            return Ok(());
        };
        if !inc.suppressed {
            self.orphaned.remove(&inc.id);
            return Ok(());
        }
        let cfg = self.cfg.clone();
        let Some(policy) = cfg.policy(&inc.policy).cloned() else {
            return Ok(());
        };
        if now < gone.saturating_add(policy.alert_after.as_millis() as i64) {
            return Ok(());
        }
        let msg = format!(
            "{} is still down after its cause recovered: {}",
            inc.target, inc.message
        );
        let updated = self.store.tx(|tx| {
            if !tx.unsuppress(inc.id, 1, &msg)? {
                return Ok(None);
            }
            tx.add_event(inc.id, now, "unsuppressed", &msg)?;
            let inc = tx.incident(inc.id)?.unwrap_or(inc.clone());
            start_level(
                tx,
                &cfg,
                &inc,
                &policy,
                1,
                AlertEvent::Opened,
                "1",
                &msg,
                now,
            )?;
            Ok(Some(inc))
        })?;
        self.orphaned.remove(&inc.id);
        if let Some(i) = updated {
            tracing::warn!(target = %i.target, incident = i.id, "incident no longer suppressed: {msg}");
            self.open.insert(i.target.clone(), i);
            self.wake.notify_one();
        }
        Ok(())
    }

    fn fire_timers(&mut self, now: i64) -> outpost_store::Result<()> {
        let due = self.store.tx(|t| t.due_timers(now, 64))?;
        if due.is_empty() {
            return Ok(());
        }
        let cfg = self.cfg.clone();
        let mut reposted = 0;
        for timer in due {
            if super::keepalive::notifier_of(&timer.kind).is_some() {
                // Quiet time does not hold a keepalive (see `keepalive`).
                let fired = self.store.tx(|tx| {
                    if !tx.fire_timer(timer.id)? {
                        return Ok(None);
                    }
                    let Some(inc) = tx.incident(timer.incident_id)? else {
                        return Ok(None);
                    };
                    let keepalive_of = |n: &str| cfg.keepalive_of(n);
                    super::keepalive::fire(tx, &cfg.agent, &inc, &timer, &keepalive_of, now)
                        .map(Some)
                })?;
                if fired == Some(super::keepalive::Fired::Posted) {
                    reposted += 1;
                }
                continue;
            }
            let quiet = self
                .open
                .values()
                .find(|i| i.id == timer.incident_id)
                .and_then(|i| self.seen.get(&i.target).map(|s| s.ev.clone()))
                .and_then(|ev| self.quiet_until(&ev, now));
            let changed = self.store.tx(|tx| {
                if !tx.fire_timer(timer.id)? {
                    return Ok(None); // claimed by someone else
                }
                let Some(inc) = tx.incident(timer.incident_id)? else {
                    return Ok(None);
                };
                if inc.state != IncidentState::Open || inc.suppressed {
                    return Ok(None); // acknowledged or resolved: escalation is over
                }
                let Some(policy) = cfg.policy(&inc.policy).cloned() else {
                    tx.add_event(
                        inc.id,
                        now,
                        "escalation_stopped",
                        &format!("policy `{}` is no longer configured", inc.policy),
                    )?;
                    return Ok(None);
                };
                if let Some(until) = quiet {
                    // In maintenance or silenced: the escalation waits.
                    tx.add_timer(inc.id, &timer.kind, until)?;
                    tx.add_event(
                        inc.id,
                        now,
                        "postponed",
                        &format!(
                            "{} postponed: target is silenced, in maintenance, or the agent is offline",
                            timer.kind
                        ),
                    )?;
                    return Ok(None);
                }
                match timer.kind.as_str() {
                    ESCALATE => {
                        let next = inc.level + 1;
                        if next as usize > policy.levels.len() {
                            return Ok(None);
                        }
                        tx.set_level(inc.id, next)?;
                        let waited = policy.levels[inc.level.max(1) as usize - 1].ack_within;
                        let msg = format!(
                            "not acknowledged within {}s: {}",
                            waited.as_secs(),
                            inc.message
                        );
                        tx.add_event(
                            inc.id,
                            now,
                            "escalated",
                            &format!("level {next} notified: {msg}"),
                        )?;
                        let inc = tx.incident(inc.id)?.unwrap_or(inc);
                        start_level(
                            tx,
                            &cfg,
                            &inc,
                            &policy,
                            next,
                            AlertEvent::Escalated,
                            &next.to_string(),
                            &msg,
                            now,
                        )?;
                        Ok(Some(inc))
                    }
                    REMIND => {
                        let Some(every) = policy.repeat_every else {
                            return Ok(None);
                        };
                        let level = &policy.levels
                            [(inc.level.max(1) as usize - 1).min(policy.levels.len() - 1)];
                        let payload = alert_payload(
                            &cfg.agent,
                            &inc,
                            AlertEvent::Reminder,
                            inc.level,
                            &format!("still down, not acknowledged: {}", inc.message),
                            now,
                        );
                        for n in &level.notify {
                            tx.enqueue(&NewOutbox {
                                incident_id: Some(inc.id),
                                notifier: n.clone(),
                                idempotency_key: idempotency_key(
                                    &cfg.agent,
                                    inc.id,
                                    AlertEvent::Reminder,
                                    inc.level,
                                    &timer.id.to_string(),
                                    n,
                                ),
                                payload: payload.clone(),
                                next_attempt_ms: now,
                            })?;
                        }
                        tx.add_event(
                            inc.id,
                            now,
                            "reminded",
                            &format!("level {} reminded", inc.level),
                        )?;
                        tx.add_timer(inc.id, REMIND, now + every.as_millis() as i64)?;
                        Ok(Some(inc))
                    }
                    other => {
                        tx.add_event(inc.id, now, "unknown_timer", other)?;
                        Ok(None)
                    }
                }
            })?;
            if let Some(inc) = changed {
                tracing::warn!(target = %inc.target, incident = inc.id, level = inc.level, "{} due: notifications queued", timer.kind);
                self.open.insert(inc.target.clone(), inc);
                self.wake.notify_one();
            }
        }
        if reposted > 0 {
            tracing::debug!("{reposted} keepalive re-post(s) queued");
            self.wake.notify_one();
        }
        Ok(())
    }
}

/// Notifies `level` and schedules what follows it (the next escalation,
/// reminders), all inside the caller's transaction.
#[allow(clippy::too_many_arguments)]
fn start_level(
    tx: &Tx<'_>,
    cfg: &AlertingConfig,
    inc: &Incident,
    policy: &EscalationPolicy,
    level: u32,
    event: AlertEvent,
    seq: &str,
    message: &str,
    now: i64,
) -> outpost_store::Result<()> {
    let Some(l) = policy.levels.get(level as usize - 1) else {
        return Ok(());
    };
    let payload = alert_payload(&cfg.agent, inc, event, level, message, now);
    for n in &l.notify {
        tx.enqueue(&NewOutbox {
            incident_id: Some(inc.id),
            notifier: n.clone(),
            idempotency_key: idempotency_key(&cfg.agent, inc.id, event, level, seq, n),
            payload: payload.clone(),
            next_attempt_ms: now,
        })?;
    }
    tx.add_event(
        inc.id,
        now,
        "notified",
        &format!("level {level}: {}", l.notify.join(", ")),
    )?;
    if (level as usize) < policy.levels.len() {
        tx.add_timer(inc.id, ESCALATE, now + l.ack_within.as_millis() as i64)?;
    }
    if let Some(every) = policy.repeat_every {
        // One reminder chain per incident: drop the previous level's.
        if !tx.timers(inc.id)?.iter().any(|t| t.kind == REMIND) {
            tx.add_timer(inc.id, REMIND, now + every.as_millis() as i64)?;
        }
    }
    super::keepalive::ensure(tx, inc, &|n| cfg.keepalive_of(n), now)?;
    Ok(())
}
