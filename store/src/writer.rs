//! The writer thread: the only writer of history, rollups, states and
//! maintenance. It owns one connection and in-memory caches (sensor ids and
//! stream positions, interned messages and metric names, each sensor's open
//! result block, the rollup rows being updated), drains the bounded queue
//! into batches and commits each batch — raw results, rollup updates,
//! sensor stream positions — in one transaction, so rollups are always
//! exactly consistent with the committed raw results.
//!
//! A result newer than its sensor's stream position is appended to the
//! sensor's open block (`blocks.rs`), which is rewritten once per batch; any
//! other result (out of order, or a duplicate) is checked against the blocks
//! and the plain `results` rows and stored as a plain row if new. Retention runs here too, one small transaction at a time between
//! batches (see `retention.rs`).
//!
//! Caches are derived from the database: when a transaction fails they are
//! dropped and reloaded, so a rolled-back batch leaves no trace in memory.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use crate::blocks::{Block, Raw};
use crate::calendar::{DAY_MS, HOUR_MS, floor_to};
use crate::codec;
use crate::error::{Result, StoreError};
use crate::retention::PruneJob;
use crate::rollup::{self, Agg, AggSink, Class, Last, OpenOutage, StreamState};
use crate::rows::{MAINT_BIT, MESSAGE_TOUCH_SLACK_MS};
use crate::types::{CheckRecord, Granularity, PruneStats, SensorState, Transition};

/// Messages to the writer thread.
pub(crate) enum Msg {
    Record(CheckRecord),
    Transition(Transition),
    State(SensorState),
    DeleteState(String),
    AddMaintenance {
        target: String,
        from_ms: i64,
        to_ms: i64,
        reason: String,
        reply: oneshot::Sender<Result<i64>>,
    },
    Flush(oneshot::Sender<Result<()>>),
    Prune {
        now_ms: i64,
        reply: oneshot::Sender<Result<PruneStats>>,
    },
    Shutdown(oneshot::Sender<Result<()>>),
}

impl Msg {
    /// Control messages end the batch being collected so their reply is not
    /// delayed by the batching window.
    fn is_control(&self) -> bool {
        matches!(
            self,
            Msg::AddMaintenance { .. } | Msg::Flush(_) | Msg::Prune { .. } | Msg::Shutdown(_)
        )
    }
}

/// Counters shared with the `Store` handles.
#[derive(Default)]
pub(crate) struct Counters {
    pub queued: AtomicU64,
    pub committed: AtomicU64,
    pub duplicates: AtomicU64,
    pub rejected: AtomicU64,
    pub lost: AtomicU64,
    pub transactions: AtomicU64,
}

/// Settings of the writer (from `StoreOptions`).
#[derive(Debug, Clone)]
pub(crate) struct WriterConfig {
    pub flush_interval: Duration,
    pub batch_max: usize,
    pub prune_interval: Option<Duration>,
    pub prune_batch: usize,
    pub raw_retention_ms: i64,
    pub rollup_retention_ms: i64,
    pub default_gap_ms: i64,
}

/// A failed batch is retried this many times in all (with the caches
/// reloaded) before its records are dropped: covers transient errors such as
/// `SQLITE_BUSY` past the timeout or a full disk that gets cleaned up,
/// without stalling the queue forever on a permanent error.
const WRITE_ATTEMPTS: u32 = 3;
/// Pause before the first retry, doubled for each further one.
const RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// Interned messages kept in memory (text → id). Reaching it clears the
/// cache: bounded memory if sensors put unique values in their messages,
/// while the common case (a few fixed messages per sensor) always hits.
const MESSAGE_CACHE_MAX: usize = 8_192;

/// Rollup rows kept in memory after a commit, at most. A stream in order
/// only writes each sensor's current hour and day (and the previous ones
/// around a boundary): when the newest result enters a new hour, the
/// buckets before the previous hour and day are dropped
/// ([`State::evict_rollups`]). This bound is for late results reaching
/// many old buckets within one hour.
const ROLLUP_CACHE_MAX: usize = 50_000;

struct SensorEntry {
    id: i64,
    stream: StreamState,
    dirty: bool,
}

/// A sensor's open block (the newest of its `result_blocks`), `None` if it
/// has none yet.
struct OpenBlock {
    block: Option<Block>,
    dirty: bool,
}

struct CachedAgg {
    agg: Agg,
    dirty: bool,
}

struct Window {
    target: String,
    from_ms: i64,
    to_ms: i64,
}

/// Caches of the writer; all derived from the database.
#[derive(Default)]
struct State {
    sensors: HashMap<String, SensorEntry>,
    messages: HashMap<String, (i64, i64)>,
    metric_names: HashMap<String, i64>,
    rollups: HashMap<(Granularity, i64, i64), CachedAgg>,
    /// Open blocks by sensor id, loaded on a sensor's first in-order result.
    blocks: HashMap<i64, OpenBlock>,
    windows: Vec<Window>,
    /// message id → new last_used_ms, written at the end of the batch.
    message_touches: HashMap<i64, i64>,
    /// Time of the newest result written, and the hour whose start last
    /// evicted the rollup cache.
    newest_ms: i64,
    evicted_hour_ms: i64,
}

const INSERT_RESULT: &str = "INSERT OR IGNORE INTO results(sensor_id, at_ms, status, latency_us, message_id, metrics) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

const SAVE_BLOCK: &str = "INSERT INTO result_blocks(sensor_id, first_ms, last_ms, n, data) \
     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(sensor_id, first_ms) DO UPDATE SET \
     last_ms = excluded.last_ms, n = excluded.n, data = excluded.data";

fn save_block(conn: &Connection, sensor_id: i64, b: &Block) -> Result<()> {
    conn.prepare_cached(SAVE_BLOCK)?
        .execute(params![sensor_id, b.first_ms, b.last_ms, b.count, b.data])?;
    Ok(())
}

impl State {
    fn load(conn: &Connection) -> Result<State> {
        let mut st = State::default();
        let mut q = conn.prepare(
            "SELECT id, name, last_at_ms, last_class, last_cap_ms, outage_start_ms, outage_down_ms FROM sensors",
        )?;
        let rows = q.query_map([], |r| {
            let last = match r.get::<_, Option<i64>>(2)? {
                Some(at_ms) => Some(Last {
                    at_ms,
                    class: Class::from_code(r.get::<_, Option<i64>>(3)?.unwrap_or(0)),
                    cap_ms: r.get::<_, Option<i64>>(4)?.unwrap_or(0),
                }),
                None => None,
            };
            let outage = r
                .get::<_, Option<i64>>(5)?
                .map(|start_ms| r.get(6).map(|down_ms| OpenOutage { start_ms, down_ms }))
                .transpose()?;
            Ok((
                r.get::<_, String>(1)?,
                SensorEntry {
                    id: r.get(0)?,
                    stream: StreamState { last, outage },
                    dirty: false,
                },
            ))
        })?;
        for row in rows {
            let (name, e) = row?;
            st.sensors.insert(name, e);
        }
        let mut q = conn.prepare("SELECT name, id FROM metric_names")?;
        for row in q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))? {
            let (n, id) = row?;
            st.metric_names.insert(n, id);
        }
        st.reload_windows(conn)?;
        Ok(st)
    }

    fn reload_windows(&mut self, conn: &Connection) -> Result<()> {
        let mut q = conn.prepare("SELECT target, from_ms, to_ms FROM maintenance")?;
        self.windows = q
            .query_map([], |r| {
                Ok(Window {
                    target: r.get(0)?,
                    from_ms: r.get(1)?,
                    to_ms: r.get(2)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(())
    }

    fn sensor_id(&mut self, conn: &Connection, name: &str) -> Result<i64> {
        if let Some(e) = self.sensors.get(name) {
            return Ok(e.id);
        }
        let id: i64 = conn.query_row(
            "INSERT INTO sensors(name) VALUES (?1) RETURNING id",
            [name],
            |r| r.get(0),
        )?;
        self.sensors.insert(
            name.to_owned(),
            SensorEntry {
                id,
                stream: StreamState::default(),
                dirty: false,
            },
        );
        Ok(id)
    }

    fn in_window(&self, sensor: &str, at_ms: i64) -> bool {
        self.windows.iter().any(|w| {
            (w.target == sensor || w.target == "*") && w.from_ms <= at_ms && at_ms < w.to_ms
        })
    }

    fn message_id(&mut self, conn: &Connection, text: &str, at_ms: i64) -> Result<i64> {
        if text.is_empty() {
            return Ok(0);
        }
        if let Some((id, last_used)) = self.messages.get_mut(text) {
            if at_ms > *last_used + MESSAGE_TOUCH_SLACK_MS {
                *last_used = at_ms;
                self.message_touches.insert(*id, at_ms);
            }
            return Ok(*id);
        }
        let (id, last_used): (i64, i64) = conn
            .prepare_cached(
                "INSERT INTO messages(text, last_used_ms) VALUES (?1, ?2) \
                 ON CONFLICT(text) DO UPDATE SET last_used_ms = max(last_used_ms, excluded.last_used_ms) \
                 RETURNING id, last_used_ms",
            )?
            .query_row(params![text, at_ms], |r| Ok((r.get(0)?, r.get(1)?)))?;
        if self.messages.len() >= MESSAGE_CACHE_MAX {
            self.messages.clear();
        }
        self.messages.insert(text.to_owned(), (id, last_used));
        Ok(id)
    }

    /// Interns the metric names: `(name id, value)` pairs.
    fn metric_ids(
        &mut self,
        conn: &Connection,
        metrics: &[(String, f64)],
    ) -> Result<Vec<(i64, f64)>> {
        let mut ids = Vec::with_capacity(metrics.len());
        for (name, v) in metrics {
            let id = match self.metric_names.get(name) {
                Some(&id) => id,
                None => {
                    conn.execute(
                        "INSERT OR IGNORE INTO metric_names(name) VALUES (?1)",
                        [name],
                    )?;
                    let id: i64 = conn.query_row(
                        "SELECT id FROM metric_names WHERE name = ?1",
                        [name],
                        |r| r.get(0),
                    )?;
                    self.metric_names.insert(name.clone(), id);
                    id
                }
            };
            ids.push((id, *v));
        }
        Ok(ids)
    }

    /// Appends an in-order result to the sensor's open block (starting a
    /// new block when it is full). Returns false, appending nothing, if the
    /// result is not newer than the block's last one.
    fn append_to_block(&mut self, conn: &Connection, sid: i64, raw: &Raw) -> Result<bool> {
        use std::collections::hash_map::Entry;
        let ob = match self.blocks.entry(sid) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(v) => {
                let newest: Option<(i64, Vec<u8>)> = conn
                    .prepare_cached(
                        "SELECT first_ms, data FROM result_blocks WHERE sensor_id = ?1 \
                         ORDER BY first_ms DESC LIMIT 1",
                    )?
                    .query_row([sid], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                let block = match newest {
                    Some((first_ms, data)) => Some(Block::load(first_ms, data)?.0),
                    None => None,
                };
                v.insert(OpenBlock {
                    block,
                    dirty: false,
                })
            }
        };
        if let Some(b) = ob.block.as_mut() {
            if b.count > 0 && raw.at_ms <= b.last_ms {
                return Ok(false);
            }
            if b.try_push(raw) {
                ob.dirty = true;
                return Ok(true);
            }
            // Full: store it as it is and start the next one.
            if ob.dirty {
                save_block(conn, sid, b)?;
            }
        }
        let mut b = Block::new(raw.at_ms);
        b.push(raw);
        ob.block = Some(b);
        ob.dirty = true;
        Ok(true)
    }

    /// Whether a block of the sensor holds a result at `at_ms`.
    fn in_blocks(&self, conn: &Connection, sid: i64, at_ms: i64) -> Result<bool> {
        if let Some(b) = self.blocks.get(&sid).and_then(|o| o.block.as_ref())
            && b.count > 0
            && at_ms >= b.first_ms
        {
            // The open block may be newer in memory than in the file.
            return Ok(at_ms <= b.last_ms
                && Block::decode(b.first_ms, &b.data)?
                    .iter()
                    .any(|r| r.at_ms == at_ms));
        }
        let found: Option<(i64, i64, Vec<u8>)> = conn
            .prepare_cached(
                "SELECT first_ms, last_ms, data FROM result_blocks WHERE sensor_id = ?1 AND first_ms <= ?2 \
                 ORDER BY first_ms DESC LIMIT 1",
            )?
            .query_row(params![sid, at_ms], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        Ok(match found {
            Some((first_ms, last_ms, data)) if at_ms <= last_ms => Block::decode(first_ms, &data)?
                .iter()
                .any(|r| r.at_ms == at_ms),
            _ => false,
        })
    }

    /// Writes one result and its rollup contributions. Returns false for a
    /// duplicate (a result of that sensor at that ms exists): ignored.
    fn write_record(
        &mut self,
        conn: &Connection,
        cfg: &WriterConfig,
        r: &CheckRecord,
    ) -> Result<bool> {
        let sid = self.sensor_id(conn, &r.sensor)?;
        self.newest_ms = self.newest_ms.max(r.at_ms);
        let maint = r.in_maintenance || self.in_window(&r.sensor, r.at_ms);
        let msg_id = self.message_id(conn, &r.message, r.at_ms)?;
        let metrics = self.metric_ids(conn, &r.metrics)?;
        let status = r.status.code() | if maint { MAINT_BIT } else { 0 };
        let latency = i64::try_from(r.latency_us).unwrap_or(i64::MAX);
        // The stream position is the newest stored result of the sensor: a
        // newer result cannot be a duplicate and goes to the open block.
        let newest = self.sensors[&r.sensor].stream.last.map(|l| l.at_ms);
        let raw = Raw {
            at_ms: r.at_ms,
            status,
            latency_us: latency,
            message_id: msg_id,
            metrics,
        };
        let appended =
            newest.is_none_or(|t| r.at_ms > t) && self.append_to_block(conn, sid, &raw)?;
        if !appended {
            // Out of order: a plain row, unless a block already has it.
            if self.in_blocks(conn, sid, r.at_ms)? {
                return Ok(false);
            }
            let blob = (!raw.metrics.is_empty()).then(|| codec::encode_metrics(&raw.metrics));
            let n = conn
                .prepare_cached(INSERT_RESULT)?
                .execute(params![sid, r.at_ms, status, latency, msg_id, blob])?;
            if n == 0 {
                return Ok(false);
            }
        }
        let cap = rollup::cap_ms(r.interval_ms, cfg.default_gap_ms);
        let entry = self
            .sensors
            .get_mut(&r.sensor)
            .expect("sensor resolved above");
        entry.dirty = true;
        let mut sink = RollupSink {
            conn,
            cache: &mut self.rollups,
            sensor_id: sid,
        };
        entry
            .stream
            .push(r.at_ms, r.status, maint, latency as u64, cap, &mut |e| {
                rollup::apply(e, &mut sink)
            })?;
        Ok(true)
    }

    fn write_transition(&mut self, conn: &Connection, t: &Transition) -> Result<()> {
        let sid = self.sensor_id(conn, &t.sensor)?;
        conn.prepare_cached(
            "INSERT INTO transitions(sensor_id, at_ms, from_state, to_state, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![sid, t.at_ms, t.from, t.to, t.reason])?;
        Ok(())
    }

    fn add_maintenance(
        &mut self,
        conn: &Connection,
        target: &str,
        from_ms: i64,
        to_ms: i64,
        reason: &str,
    ) -> Result<i64> {
        let id = conn.query_row(
            "INSERT INTO maintenance(target, from_ms, to_ms, reason) VALUES (?1, ?2, ?3, ?4) RETURNING id",
            params![target, from_ms, to_ms, reason],
            |r| r.get(0),
        )?;
        self.windows.push(Window {
            target: target.to_owned(),
            from_ms,
            to_ms,
        });
        Ok(id)
    }

    /// Drops cached rollups a stream in order will not write again (all
    /// are clean after a commit): once the newest result is in a new hour,
    /// every bucket before the previous hour (hourly) or the previous day
    /// (daily). A late result reloads what it needs.
    fn evict_rollups(&mut self) {
        let hour = floor_to(self.newest_ms, HOUR_MS);
        if hour != self.evicted_hour_ms {
            self.evicted_hour_ms = hour;
            let day = floor_to(self.newest_ms, DAY_MS);
            self.rollups.retain(|&(g, start, _), _| match g {
                Granularity::Hour => start >= hour - HOUR_MS,
                Granularity::Day => start >= day - DAY_MS,
            });
        }
        if self.rollups.len() > ROLLUP_CACHE_MAX {
            self.rollups.clear();
        }
    }

    /// Writes everything the batch changed in memory, and the batch's
    /// sensor states (`None` deletes one).
    fn write_dirty(
        &mut self,
        conn: &Connection,
        states: HashMap<&str, Option<&SensorState>>,
    ) -> Result<()> {
        let mut up = conn.prepare_cached(
            "UPDATE sensors SET last_at_ms = ?2, last_class = ?3, last_cap_ms = ?4, \
             outage_start_ms = ?5, outage_down_ms = ?6 WHERE id = ?1",
        )?;
        for e in self.sensors.values_mut().filter(|e| e.dirty) {
            let l = e.stream.last;
            up.execute(params![
                e.id,
                l.map(|l| l.at_ms),
                l.map(|l| l.class as i64),
                l.map(|l| l.cap_ms),
                e.stream.outage.map(|o| o.start_ms),
                e.stream.outage.map_or(0, |o| o.down_ms),
            ])?;
            e.dirty = false;
        }
        for (&sid, ob) in self.blocks.iter_mut().filter(|(_, o)| o.dirty) {
            if let Some(b) = &ob.block {
                save_block(conn, sid, b)?;
            }
            ob.dirty = false;
        }
        for (&(g, start, sid), c) in self.rollups.iter_mut().filter(|(_, c)| c.dirty) {
            rollup::save_agg(conn, g, start, sid, &c.agg)?;
            c.dirty = false;
        }
        let mut touch = conn.prepare_cached(
            "UPDATE messages SET last_used_ms = max(last_used_ms, ?2) WHERE id = ?1",
        )?;
        for (id, at) in self.message_touches.drain() {
            touch.execute(params![id, at])?;
        }
        for (sensor, s) in states {
            match s {
                Some(s) => crate::rows::upsert_sensor_state(conn, s)?,
                None => {
                    conn.execute("DELETE FROM sensor_state WHERE sensor = ?1", [sensor])?;
                }
            }
        }
        Ok(())
    }
}

struct RollupSink<'a> {
    conn: &'a Connection,
    cache: &'a mut HashMap<(Granularity, i64, i64), CachedAgg>,
    sensor_id: i64,
}

impl AggSink for RollupSink<'_> {
    fn agg(&mut self, g: Granularity, start_ms: i64) -> Result<&mut Agg> {
        use std::collections::hash_map::Entry;
        let c = match self.cache.entry((g, start_ms, self.sensor_id)) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(v) => {
                let agg =
                    rollup::load_agg(self.conn, g, start_ms, self.sensor_id)?.unwrap_or_default();
                v.insert(CachedAgg { agg, dirty: false })
            }
        };
        c.dirty = true;
        Ok(&mut c.agg)
    }
}

#[derive(Default)]
struct BatchOutcome {
    stored: u64,
    duplicates: u64,
    maintenance_ids: Vec<i64>,
}

pub(crate) struct Writer {
    conn: Connection,
    st: State,
    cfg: WriterConfig,
    counters: Arc<Counters>,
    rx: mpsc::Receiver<Msg>,
    rt: tokio::runtime::Runtime,
    job: Option<PruneJob>,
    queued_prunes: Vec<(i64, oneshot::Sender<Result<PruneStats>>)>,
    next_auto_prune: Option<Instant>,
    error_since_flush: Option<String>,
    shutdown_replies: Vec<oneshot::Sender<Result<()>>>,
}

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        cfg: WriterConfig,
        counters: Arc<Counters>,
        rx: mpsc::Receiver<Msg>,
    ) -> Result<Writer> {
        let st = State::load(&conn)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?;
        let next_auto_prune = cfg.prune_interval.map(|_| Instant::now());
        Ok(Writer {
            conn,
            st,
            cfg,
            counters,
            rx,
            rt,
            job: None,
            queued_prunes: Vec::new(),
            next_auto_prune,
            error_since_flush: None,
            shutdown_replies: Vec::new(),
        })
    }

    /// Runs until every handle is dropped or `Shutdown` is received, then
    /// commits whatever is still queued.
    pub(crate) fn run(mut self) {
        let mut closed = false;
        while !closed {
            let first = if self.job.is_some() {
                // Pruning: do not wait, interleave batches and prune steps.
                match self.rx.try_recv() {
                    Ok(m) => Some(m),
                    Err(mpsc::error::TryRecvError::Empty) => None,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        closed = true;
                        None
                    }
                }
            } else {
                let wait = self.next_auto_prune.map_or(Duration::from_secs(3600), |t| {
                    t.saturating_duration_since(Instant::now())
                });
                match recv_timeout(&self.rt, &mut self.rx, wait) {
                    Ok(Some(m)) => Some(m),
                    Ok(None) => {
                        closed = true;
                        None
                    }
                    Err(_) => None,
                }
            };
            if let Some(first) = first {
                let (batch, end) = self.collect(first);
                closed |= end;
                self.commit_batch(batch);
            }
            self.maybe_auto_prune();
            if self.job.is_some() {
                self.prune_step();
            }
        }
        for r in self.shutdown_replies.drain(..) {
            let _ = r.send(Ok(()));
        }
        tracing::debug!("store writer stopped");
    }

    /// Collects a batch: up to `batch_max` messages or `flush_interval` after
    /// the first, ending early at a control message. Returns true when the
    /// channel is closed and empty.
    fn collect(&mut self, first: Msg) -> (Vec<Msg>, bool) {
        let control = first.is_control();
        let mut batch = vec![first];
        if control {
            return (batch, false);
        }
        let deadline = Instant::now() + self.cfg.flush_interval;
        while batch.len() < self.cfg.batch_max {
            let next = match self.rx.try_recv() {
                Ok(m) => m,
                Err(mpsc::error::TryRecvError::Disconnected) => return (batch, true),
                Err(mpsc::error::TryRecvError::Empty) => {
                    let now = Instant::now();
                    if self.job.is_some() || now >= deadline {
                        break;
                    }
                    match recv_timeout(&self.rt, &mut self.rx, deadline - now) {
                        Ok(Some(m)) => m,
                        Ok(None) => return (batch, true),
                        Err(_) => break,
                    }
                }
            };
            let control = next.is_control();
            batch.push(next);
            if control {
                break;
            }
        }
        (batch, false)
    }

    fn write_batch(&mut self, batch: &[Msg]) -> Result<BatchOutcome> {
        let mut out = BatchOutcome::default();
        if !batch
            .iter()
            .any(|m| !matches!(m, Msg::Flush(_) | Msg::Prune { .. } | Msg::Shutdown(_)))
        {
            return Ok(out);
        }
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        // Sensor states of this batch: the latest of each wins. Borrowed
        // from the batch, dropped with it.
        let mut states: HashMap<&str, Option<&SensorState>> = HashMap::new();
        for m in batch {
            match m {
                Msg::Record(r) => {
                    if self.st.write_record(&self.conn, &self.cfg, r)? {
                        out.stored += 1;
                    } else {
                        out.duplicates += 1;
                    }
                }
                Msg::Transition(t) => self.st.write_transition(&self.conn, t)?,
                Msg::State(s) => {
                    states.insert(&s.sensor, Some(s));
                }
                Msg::DeleteState(name) => {
                    states.insert(name, None);
                }
                Msg::AddMaintenance {
                    target,
                    from_ms,
                    to_ms,
                    reason,
                    ..
                } => {
                    let id = self
                        .st
                        .add_maintenance(&self.conn, target, *from_ms, *to_ms, reason)?;
                    out.maintenance_ids.push(id);
                }
                Msg::Flush(_) | Msg::Prune { .. } | Msg::Shutdown(_) => {}
            }
        }
        self.st.write_dirty(&self.conn, states)?;
        self.conn.execute_batch("COMMIT")?;
        self.counters.transactions.fetch_add(1, Ordering::Relaxed);
        Ok(out)
    }

    /// Drops the caches after a failed transaction (rolling it back first).
    fn recover(&mut self) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        match State::load(&self.conn) {
            Ok(st) => self.st = st,
            Err(e) => {
                tracing::error!(error = %e, "store writer: reloading caches failed");
                self.st = State::default();
            }
        }
    }

    fn commit_batch(&mut self, batch: Vec<Msg>) {
        let records = batch.iter().filter(|m| matches!(m, Msg::Record(_))).count() as u64;
        let mut attempt = 0;
        let outcome = loop {
            match self.write_batch(&batch) {
                Ok(o) => break Ok(o),
                Err(e) => {
                    self.recover();
                    attempt += 1;
                    if attempt >= WRITE_ATTEMPTS {
                        break Err(e);
                    }
                    tracing::warn!(error = %e, attempt, "store writer: batch failed, retrying");
                    std::thread::sleep(RETRY_BACKOFF * 2u32.pow(attempt - 1));
                }
            }
        };
        let mut maintenance_ids = Vec::new();
        match outcome {
            Ok(o) => {
                self.counters
                    .committed
                    .fetch_add(o.stored, Ordering::Relaxed);
                self.counters
                    .duplicates
                    .fetch_add(o.duplicates, Ordering::Relaxed);
                maintenance_ids = o.maintenance_ids;
                self.st.evict_rollups();
            }
            Err(e) => {
                tracing::error!(error = %e, records, "store writer: batch dropped after retries");
                self.counters.lost.fetch_add(records, Ordering::Relaxed);
                self.error_since_flush = Some(e.to_string());
            }
        }
        let failed = self.error_since_flush.clone();
        let mut ids = maintenance_ids.into_iter();
        for m in batch {
            match m {
                Msg::AddMaintenance { reply, .. } => {
                    let _ = reply.send(match (&failed, ids.next()) {
                        (_, Some(id)) => Ok(id),
                        (Some(e), None) => Err(StoreError::Writer(e.clone())),
                        (None, None) => Err(StoreError::Writer("maintenance not stored".into())),
                    });
                }
                Msg::Flush(reply) => {
                    let r = match self.error_since_flush.take() {
                        Some(e) => Err(StoreError::Writer(e)),
                        None => Ok(()),
                    };
                    let _ = reply.send(r);
                }
                Msg::Prune { now_ms, reply } => self.queued_prunes.push((now_ms, reply)),
                Msg::Shutdown(reply) => {
                    // Refuse new messages, drain what is queued, then stop.
                    self.rx.close();
                    self.shutdown_replies.push(reply);
                }
                _ => {}
            }
        }
        if self.job.is_none() && !self.queued_prunes.is_empty() {
            let (now_ms, reply) = self.queued_prunes.remove(0);
            let mut job = PruneJob::new(
                now_ms,
                self.cfg.raw_retention_ms,
                self.cfg.rollup_retention_ms,
            );
            job.replies.push(reply);
            self.job = Some(job);
        }
    }

    fn maybe_auto_prune(&mut self) {
        let (Some(at), Some(every)) = (self.next_auto_prune, self.cfg.prune_interval) else {
            return;
        };
        if self.job.is_some() || Instant::now() < at {
            return;
        }
        self.next_auto_prune = Some(Instant::now() + every);
        self.job = Some(PruneJob::new(
            crate::now_ms(),
            self.cfg.raw_retention_ms,
            self.cfg.rollup_retention_ms,
        ));
    }

    /// Runs one prune transaction; finishes the job when it is done.
    fn prune_step(&mut self) {
        let Some(job) = self.job.as_mut() else { return };
        let res = (|| -> Result<crate::retention::StepOutcome> {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            let o = job.step(&self.conn, self.cfg.prune_batch)?;
            self.conn.execute_batch("COMMIT")?;
            Ok(o)
        })();
        match res {
            Ok(o) => {
                self.counters.transactions.fetch_add(1, Ordering::Relaxed);
                // Deleted rows may be cached: drop what could refer to them.
                if o.touched_messages {
                    self.st.messages.clear();
                }
                if o.touched_rollups {
                    self.st.rollups.clear();
                }
                if o.touched_blocks {
                    self.st.blocks.clear();
                }
                if o.touched_maintenance
                    && let Err(e) = self.st.reload_windows(&self.conn)
                {
                    tracing::error!(error = %e, "store writer: reloading maintenance windows failed");
                }
                if o.done {
                    let job = self.job.take().expect("job");
                    tracing::debug!(stats = ?job.stats, "store retention done");
                    for r in job.replies {
                        let _ = r.send(Ok(job.stats.clone()));
                    }
                    if !self.queued_prunes.is_empty() {
                        let (now_ms, reply) = self.queued_prunes.remove(0);
                        let mut job = PruneJob::new(
                            now_ms,
                            self.cfg.raw_retention_ms,
                            self.cfg.rollup_retention_ms,
                        );
                        job.replies.push(reply);
                        self.job = Some(job);
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "store retention step failed; abandoning this run");
                self.recover();
                if let Some(job) = self.job.take() {
                    for r in job.replies {
                        let _ = r.send(Err(StoreError::Writer(e.to_string())));
                    }
                }
            }
        }
    }
}

/// Waits up to `d` for a message (the timer must be created inside the
/// runtime, hence the async block).
fn recv_timeout(
    rt: &tokio::runtime::Runtime,
    rx: &mut mpsc::Receiver<Msg>,
    d: Duration,
) -> Result<Option<Msg>, tokio::time::error::Elapsed> {
    rt.block_on(async { tokio::time::timeout(d, rx.recv()).await })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_hour_evicts_the_rollups_a_stream_in_order_no_longer_writes() {
        let mut st = State::default();
        let t0 = 10 * DAY_MS;
        let mut cache = |g: Granularity, start: i64| {
            st.rollups.insert(
                (g, start, 1),
                CachedAgg {
                    agg: Agg::default(),
                    dirty: false,
                },
            );
        };
        for h in 0..5 {
            cache(Granularity::Hour, t0 + h * HOUR_MS);
        }
        cache(Granularity::Day, t0 - DAY_MS);
        cache(Granularity::Day, t0 - 2 * DAY_MS);
        cache(Granularity::Day, t0);
        st.newest_ms = t0 + 4 * HOUR_MS + 5;
        st.evict_rollups();
        let mut kept: Vec<_> = st.rollups.keys().map(|&(g, s, _)| (g, s - t0)).collect();
        kept.sort_by_key(|&(g, s)| (g as u8, s));
        assert_eq!(
            kept,
            [
                (Granularity::Hour, 3 * HOUR_MS),
                (Granularity::Hour, 4 * HOUR_MS),
                (Granularity::Day, -DAY_MS),
                (Granularity::Day, 0),
            ]
        );
        // Within the same hour, a late result's reloaded bucket stays.
        st.rollups.insert(
            (Granularity::Hour, t0, 1),
            CachedAgg {
                agg: Agg::default(),
                dirty: false,
            },
        );
        st.evict_rollups();
        assert_eq!(st.rollups.len(), 5);
    }
}
