//! Outpost's local store: check history, rollups, retention, SLA reports,
//! sensor states, maintenance windows and the escalation tables, in one
//! SQLite file (bundled SQLite, WAL).
//!
//! # Using it
//!
//! ```no_run
//! use outpost_store::{CheckRecord, Period, SlaQuery, Status, Store, StoreOptions};
//! # fn main() -> outpost_store::Result<()> {
//! let store = Store::open("/var/lib/outpost/outpost.db", StoreOptions::default())?;
//! store.record(CheckRecord {
//!     sensor: "web".into(),
//!     at_ms: 1_700_000_000_000,
//!     status: Status::Ok,
//!     latency_us: 35_000,
//!     interval_ms: 30_000,
//!     ..Default::default()
//! })?;
//! store.flush()?; // committed
//! let month = store.sla(&SlaQuery {
//!     sensor: Some("web".into()),
//!     period: Period::Month,
//!     from_ms: 1_698_796_800_000,
//!     to_ms: 1_701_388_800_000,
//! })?;
//! # Ok(()) }
//! ```
//!
//! Another process (e.g. `outpost status` while the agent runs) opens the
//! same file with [`Reader::open`] and gets the same read methods.
//!
//! # Modules
//!
//! | module | owns |
//! |---|---|
//! | `schema` | migrations (`PRAGMA user_version`), connection setup, durability choice (WAL + `synchronous=NORMAL` for history, FULL for escalation) |
//! | `writer` | the writer thread: bounded queue, batching, interning (sensors, messages, metric names), appending results to result blocks and rollup maintenance in the batch's transaction, retries |
//! | `blocks` | the result block encoding (per-sensor, delta-encoded raw results) |
//! | `rollup` | the model turning a result stream into hourly/daily aggregates (coverage, outages, latency histogram) and their rows |
//! | `retention` | pruning in small transactions (plain rows, whole blocks, trimmed block heads), run by the writer between batches |
//! | `query` | [`Reader`]: history, transitions, states, rollups, maintenance |
//! | `sla` | SLA per day/ISO week/month from daily rollups |
//! | `calendar` | UTC hour/day/week/month arithmetic |
//! | `codec` | compact blobs: metrics of plain rows, latency histograms |
//! | `escalation` | incidents, timers, outbox: schema-backed typed CRUD |
//!
//! # Writing
//!
//! One writer thread (not on the async runtime) owns the only history-writing
//! connection. [`Store::record`] puts a [`CheckRecord`] on a bounded queue
//! ([`StoreOptions::queue_capacity`]) and returns at once; when the queue is
//! full it returns [`StoreError::QueueFull`] and the record is dropped, so
//! callers that must not lose results use [`Store::record_async`] (awaits
//! room: backpressure on the calling task only) or [`Store::record_blocking`]
//! (plain threads). The writer commits a batch every
//! [`StoreOptions::flush_interval`] or [`StoreOptions::batch_max`] messages,
//! whichever comes first; each batch is one transaction holding the raw rows,
//! the rollup rows they change and the sensors' stream positions, so rollups
//! always match the committed raw rows, also after a crash. [`Store::flush`]
//! returns once everything queued before it is committed.
//!
//! # Data model and definitions
//!
//! Raw results are stored in **result blocks** (schema V3, `blocks.rs`):
//! each sensor's results, in time order, are appended to its newest
//! `result_blocks` row, `(sensor id, first result ms)`-keyed, whose blob
//! holds up to ~800 bytes of results delta-encoded against their
//! predecessor (time as delta-of-delta, status/maintenance and "same as
//! before" flags, message id only when it changes, latency in µs, metrics
//! with names and value kinds only when they change, values as "same as
//! before", "= latency", small integers or scaled decimals when exact). A
//! typical check costs ~4 bytes in its block, ~8.5 bytes of file per result
//! all in (with rollups and b-tree overhead; 43.6 as plain rows in V2). The
//! writer keeps each sensor's open block in memory and rewrites its row
//! once per batch, in the batch's transaction, so a committed result is in
//! a committed block. Results that arrive out of order (not newer than the
//! sensor's latest) and rows of V2 databases are plain `(sensor id, time
//! ms)`-keyed `results` rows; history reads merge the two. Rollups per sensor per hour and per UTC
//! day hold checks, failures, warnings, up/down/maintenance time, outages
//! started, outages ended with their duration, and latency min/max/sum plus
//! a log histogram for p95. Definitions (from `rollup.rs`):
//!
//! * a result's status holds until the sensor's next result, for at most
//!   2 × its interval (longer gaps are unknown time); `Ok`/`Warn` is up,
//!   `Fail`/`Error` is down;
//! * **maintenance** is excluded: results flagged `in_maintenance` (by the
//!   agent, or by the writer when a window from [`Store::add_maintenance`]
//!   covers them) count only as maintenance time and maintenance checks;
//! * **uptime %** = up / (up + down) over observed time outside maintenance;
//!   **downtime** = down time;
//! * an **outage** is a run of consecutive failing results; it starts at the
//!   first failure and ends at the next up result or at maintenance; it
//!   counts in the period where it starts; its duration is the down time it
//!   accumulated; **MTTR** of a period = mean duration of the outages that
//!   ended in the period.
//!
//! SLA rows sum daily rollups, so day/week/month figures are exact and a
//! month costs ≤ 31 primary-key lookups.
//!
//! # Retention
//!
//! Raw results (plain rows, and in blocks whole blocks or the expired head
//! of the block straddling the cutoff, rewritten) older than
//! [`StoreOptions::raw_retention`] (7 days) and
//! rollups, transitions and maintenance windows older than
//! [`StoreOptions::rollup_retention`] (400 days) are deleted by the writer
//! every [`StoreOptions::prune_interval`], at most
//! [`StoreOptions::prune_batch`] rows (results) per transaction, with queued records
//! committed between steps. `sensor_state`, incidents, timers and the outbox
//! are not pruned.
//!
//! # Durability
//!
//! A `kill -9` of the agent loses nothing that was committed (every batch
//! whose `flush()` returned, and in practice everything older than one
//! flush interval), and the file passes `PRAGMA integrity_check` afterwards;
//! see [`schema`]'s `open_writer` for the WAL/`synchronous` choice.

#![warn(missing_docs)]

mod blocks;
mod calendar;
mod codec;
mod error;
pub mod escalation;
mod query;
mod retention;
pub mod rollup;
mod rows;
pub mod schema;
mod sla;
mod types;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

pub use calendar::{
    DAY_MS, HOUR_MS, format_day, format_utc, next_period, parse_day, parse_timestamp, period_start,
    utc_ms,
};
pub use error::{Result, StoreError};
pub use escalation::{
    Attempt, EscalationDb, Incident, IncidentEvent, IncidentState, NewIncident, NewOutbox,
    OutboxEntry, Silence, Timer, Tx,
};
pub use query::Reader;
pub use types::{
    Backlog, CheckRecord, CheckRow, CurrentState, Granularity, IncidentSummary, LatencyStats,
    Maintenance, Period, PruneStats, RollupRow, SensorState, SlaQuery, SlaRow, Status, StoreStats,
    Transition,
};

use writer::{Counters, Msg, Writer, WriterConfig};

pub use outpost_types::time::now_ms;

/// Settings of [`Store::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// How long raw results are kept (default 7 days).
    pub raw_retention: Duration,
    /// How long hourly and daily rollups, transitions and maintenance
    /// windows are kept (default 400 days: a year plus a month, so
    /// year-over-year reports work).
    pub rollup_retention: Duration,
    /// Messages the writer queue holds (default 16,384: 16 s of 1,000
    /// results/s, enough to ride out a slow checkpoint or disk hiccup).
    pub queue_capacity: usize,
    /// Maximum messages per transaction (default 4,096: keeps a commit to a
    /// few ms so readers' snapshots and the escalation connection never
    /// wait long, while amortising the commit over thousands of rows).
    pub batch_max: usize,
    /// Maximum time between the first queued message and its commit
    /// (default 250 ms: at most a quarter second of results at risk on a
    /// crash, and `outpost status` lags by at most that; batching longer buys
    /// little because at ≥ 1 s check intervals each sensor adds ≤ 1 row per
    /// batch anyway).
    pub flush_interval: Duration,
    /// Time between automatic retention runs (default 5 min; `None`
    /// disables them, call [`Store::prune`] instead). At 1,000 results/s a
    /// run deletes ~300,000 rows in ~60 steps.
    pub prune_interval: Option<Duration>,
    /// Rows deleted per retention transaction (default 5,000: ~5-10 ms per
    /// step, so a queued record waits at most that long).
    pub prune_batch: usize,
    /// Coverage cap of a result whose `interval_ms` is 0 (default 2 min).
    pub default_max_gap: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            raw_retention: Duration::from_secs(7 * 86_400),
            rollup_retention: Duration::from_secs(400 * 86_400),
            queue_capacity: 16_384,
            batch_max: 4_096,
            flush_interval: Duration::from_millis(250),
            prune_interval: Some(Duration::from_secs(300)),
            prune_batch: 5_000,
            default_max_gap: Duration::from_secs(120),
        }
    }
}

/// Handle on an open store: writes go to the writer thread, reads use the
/// handle's own connections. Cheap to clone; `Send + Sync`.
///
/// Dropping the last handle closes the queue and waits for the writer to
/// commit what is queued (normally milliseconds). In async code prefer an
/// explicit [`Store::close_async`] at shutdown.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    tx: Option<mpsc::Sender<Msg>>,
    capacity: usize,
    reader: Reader,
    side: Mutex<Option<Connection>>,
    path: PathBuf,
    counters: Arc<Counters>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self
            .thread
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Store {
    /// Opens (creating it and its directory if needed) the store at `path`,
    /// applies pending migrations, and starts the writer thread.
    pub fn open(path: impl AsRef<Path>, opts: StoreOptions) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        if opts.queue_capacity == 0 || opts.batch_max == 0 || opts.prune_batch == 0 {
            return Err(StoreError::Invalid(
                "queue_capacity, batch_max and prune_batch must be > 0".into(),
            ));
        }
        let conn = schema::open_writer(&path)?;
        let cfg = WriterConfig {
            flush_interval: opts.flush_interval,
            batch_max: opts.batch_max,
            prune_interval: opts.prune_interval,
            prune_batch: opts.prune_batch,
            raw_retention_ms: ms(opts.raw_retention),
            rollup_retention_ms: ms(opts.rollup_retention),
            default_gap_ms: ms(opts.default_max_gap),
        };
        let counters = Arc::new(Counters::default());
        let (tx, rx) = mpsc::channel(opts.queue_capacity);
        let writer = Writer::new(conn, cfg, counters.clone(), rx)?;
        let reader = Reader::open(&path)?;
        let side = schema::open_side(&path)?;
        let thread = std::thread::Builder::new()
            .name("outpost-store-writer".into())
            .spawn(move || writer.run())?;
        Ok(Store {
            inner: Arc::new(Inner {
                tx: Some(tx),
                capacity: opts.queue_capacity,
                reader,
                side: Mutex::new(Some(side)),
                path,
                counters,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    fn sender(&self) -> &mpsc::Sender<Msg> {
        self.inner.tx.as_ref().expect("sender lives until drop")
    }

    fn try_send(&self, m: Msg) -> Result<()> {
        match self.sender().try_send(m) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(StoreError::QueueFull {
                capacity: self.inner.capacity,
            }),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(StoreError::Closed),
        }
    }

    fn blocking_send(&self, m: Msg) -> Result<()> {
        self.sender()
            .blocking_send(m)
            .map_err(|_| StoreError::Closed)
    }

    async fn send(&self, m: Msg) -> Result<()> {
        self.sender().send(m).await.map_err(|_| StoreError::Closed)
    }

    fn validate(rec: &CheckRecord) -> Result<()> {
        if rec.sensor.is_empty() {
            return Err(StoreError::Invalid("empty sensor name".into()));
        }
        Ok(())
    }

    /// Queues a result without waiting. When the queue is full the record
    /// is **not** stored and [`StoreError::QueueFull`] is returned (counted
    /// in [`StoreStats::rejected`]); see [`Store::record_async`].
    pub fn record(&self, rec: CheckRecord) -> Result<()> {
        Self::validate(&rec)?;
        match self.try_send(Msg::Record(rec)) {
            Ok(()) => {
                self.inner.counters.queued.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                if matches!(e, StoreError::QueueFull { .. }) {
                    self.inner.counters.rejected.fetch_add(1, Ordering::Relaxed);
                }
                Err(e)
            }
        }
    }

    /// Queues a result, blocking the calling thread while the queue is full.
    /// For non-async threads: panics if called on an async runtime thread.
    pub fn record_blocking(&self, rec: CheckRecord) -> Result<()> {
        Self::validate(&rec)?;
        self.blocking_send(Msg::Record(rec))?;
        self.inner.counters.queued.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Queues a result, waiting (asynchronously) while the queue is full.
    pub async fn record_async(&self, rec: CheckRecord) -> Result<()> {
        Self::validate(&rec)?;
        self.send(Msg::Record(rec)).await?;
        self.inner.counters.queued.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Queues a state transition (written in order with the results).
    /// Fails with `QueueFull` like [`Store::record`].
    pub fn record_transition(&self, t: Transition) -> Result<()> {
        self.try_send(Msg::Transition(t))
    }

    /// Queues an upsert of the sensor's `sensor_state` row (several upserts
    /// of one sensor in a batch cost one write). Fails with `QueueFull` like
    /// [`Store::record`].
    pub fn upsert_sensor_state(&self, s: SensorState) -> Result<()> {
        self.try_send(Msg::State(s))
    }

    /// Queues the removal of a sensor's `sensor_state` row (sensor removed
    /// from the configuration). History stays until retention removes it.
    pub fn delete_sensor_state(&self, sensor: &str) -> Result<()> {
        self.try_send(Msg::DeleteState(sensor.to_owned()))
    }

    /// Adds a maintenance window for `target` (a sensor name, or `*` for
    /// all) and returns its id once committed. Results of the target in
    /// `[from_ms, to_ms)` recorded afterwards are flagged `in_maintenance`.
    /// Blocking (waits for the writer); not for async threads.
    pub fn add_maintenance(
        &self,
        target: &str,
        from_ms: i64,
        to_ms: i64,
        reason: &str,
    ) -> Result<i64> {
        if to_ms <= from_ms || target.is_empty() {
            return Err(StoreError::Invalid(
                "maintenance needs a target and from_ms < to_ms".into(),
            ));
        }
        let (reply, rx) = oneshot::channel();
        self.blocking_send(Msg::AddMaintenance {
            target: target.to_owned(),
            from_ms,
            to_ms,
            reason: reason.to_owned(),
            reply,
        })?;
        rx.blocking_recv().map_err(|_| StoreError::Closed)?
    }

    /// Waits until everything queued before this call is committed. Returns
    /// [`StoreError::Writer`] if a batch was dropped since the previous flush.
    /// Blocking; use [`Store::flush_async`] on async threads.
    pub fn flush(&self) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.blocking_send(Msg::Flush(reply))?;
        rx.blocking_recv().map_err(|_| StoreError::Closed)?
    }

    /// Async [`Store::flush`].
    pub async fn flush_async(&self) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.send(Msg::Flush(reply)).await?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs retention as of `now_ms` now (in small transactions between
    /// batches, like the automatic runs) and returns what it deleted.
    /// Blocking.
    pub fn prune(&self, now_ms: i64) -> Result<PruneStats> {
        let (reply, rx) = oneshot::channel();
        self.blocking_send(Msg::Prune { now_ms, reply })?;
        rx.blocking_recv().map_err(|_| StoreError::Closed)?
    }

    /// Commits everything queued and stops the writer; later writes fail
    /// with [`StoreError::Closed`]. Reads keep working. Blocking.
    pub fn close(&self) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        if self.blocking_send(Msg::Shutdown(reply)).is_err() {
            return Ok(()); // already stopped
        }
        let r = rx.blocking_recv().unwrap_or(Ok(()));
        self.join_writer();
        r
    }

    /// Async [`Store::close`].
    pub async fn close_async(&self) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        if self.send(Msg::Shutdown(reply)).await.is_err() {
            return Ok(());
        }
        rx.await.unwrap_or(Ok(()))
    }

    fn join_writer(&self) {
        if let Some(t) = self
            .inner
            .thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = t.join();
        }
    }

    /// Writer counters.
    pub fn stats(&self) -> StoreStats {
        let c = &self.inner.counters;
        StoreStats {
            queued: c.queued.load(Ordering::Relaxed),
            committed: c.committed.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            lost: c.lost.load(Ordering::Relaxed),
            transactions: c.transactions.load(Ordering::Relaxed),
            queue_len: self.inner.capacity - self.sender().capacity(),
        }
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The read handle (its own connections).
    pub fn reader(&self) -> &Reader {
        &self.inner.reader
    }

    // ---- reads (delegated to the Reader) -------------------------------

    /// See [`Reader::history`].
    pub fn history(&self, sensor: &str, since_ms: i64, limit: usize) -> Result<Vec<CheckRow>> {
        self.inner.reader.history(sensor, since_ms, limit)
    }

    /// See [`Reader::transitions`].
    pub fn transitions(&self, sensor: &str, since_ms: i64) -> Result<Vec<Transition>> {
        self.inner.reader.transitions(sensor, since_ms)
    }

    /// See [`Reader::current_states`].
    pub fn current_states(&self) -> Result<Vec<CurrentState>> {
        self.inner.reader.current_states()
    }

    /// See [`Reader::sensor_states`].
    pub fn sensor_states(&self) -> Result<Vec<SensorState>> {
        self.inner.reader.sensor_states()
    }

    /// See [`Reader::sla`].
    pub fn sla(&self, q: &SlaQuery) -> Result<Vec<SlaRow>> {
        self.inner.reader.sla(q)
    }

    /// See [`Reader::daily_uptime`].
    pub fn daily_uptime(&self, sensor: &str, days: u32) -> Result<Vec<(i64, Option<f64>)>> {
        self.inner.reader.daily_uptime(sensor, days)
    }

    /// See [`Reader::rollups`].
    pub fn rollups(
        &self,
        sensor: &str,
        g: Granularity,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<RollupRow>> {
        self.inner.reader.rollups(sensor, g, from_ms, to_ms)
    }

    // ---- escalation tables (synchronous, own connection) --------------

    fn side<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let guard = self.inner.side.lock().unwrap_or_else(|e| e.into_inner());
        let conn = guard.as_ref().ok_or(StoreError::Closed)?;
        f(conn)
    }

    /// Runs `f` on the escalation tables in one immediate transaction.
    pub fn tx<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.side(|c| escalation::run_tx(c, f))
    }

    /// Opens an incident.
    pub fn open_incident(&self, n: &NewIncident) -> Result<Incident> {
        self.side(|c| escalation::open_incident(c, n))
    }
    /// Incident by id.
    pub fn incident(&self, id: i64) -> Result<Option<Incident>> {
        self.side(|c| escalation::incident(c, id))
    }
    /// Incident by acknowledgement token hash.
    pub fn incident_by_token(&self, token_hash: &str) -> Result<Option<Incident>> {
        self.side(|c| escalation::incident_by_token(c, token_hash))
    }
    /// Incidents not resolved, oldest first.
    pub fn unresolved_incidents(&self) -> Result<Vec<Incident>> {
        self.side(escalation::unresolved_incidents)
    }
    /// Sets the escalation level of an unresolved incident; false if none.
    pub fn set_incident_level(&self, id: i64, level: u32) -> Result<bool> {
        self.side(|c| escalation::set_incident_level(c, id, level))
    }
    /// Acknowledges an open incident; false if it is not open.
    pub fn ack_incident(&self, id: i64, by: &str, at_ms: i64) -> Result<bool> {
        self.side(|c| escalation::ack_incident(c, id, by, at_ms))
    }
    /// Resolves an incident; false if already resolved or missing.
    pub fn resolve_incident(&self, id: i64, at_ms: i64) -> Result<bool> {
        self.side(|c| escalation::resolve_incident(c, id, at_ms))
    }
    /// Adds a timer to an incident; returns its id.
    pub fn add_timer(&self, incident_id: i64, kind: &str, due_ms: i64) -> Result<i64> {
        self.side(|c| escalation::add_timer(c, incident_id, kind, due_ms))
    }
    /// Unfired timers due at `now_ms`, earliest first.
    pub fn due_timers(&self, now_ms: i64, limit: usize) -> Result<Vec<Timer>> {
        self.side(|c| escalation::due_timers(c, now_ms, limit))
    }
    /// Claims a timer; true only for the first caller.
    pub fn fire_timer(&self, id: i64) -> Result<bool> {
        self.side(|c| escalation::fire_timer(c, id))
    }
    /// Deletes the unfired timers of an incident; returns how many.
    pub fn cancel_timers(&self, incident_id: i64) -> Result<u64> {
        self.side(|c| escalation::cancel_timers(c, incident_id))
    }
    /// Enqueues a notification; `None` if its idempotency key exists.
    pub fn enqueue_notification(&self, n: &NewOutbox) -> Result<Option<i64>> {
        self.side(|c| escalation::enqueue(c, n))
    }
    /// Outbox entry by id.
    pub fn outbox_entry(&self, id: i64) -> Result<Option<OutboxEntry>> {
        self.side(|c| escalation::outbox_entry(c, id))
    }
    /// Undelivered notifications due at `now_ms`, earliest first.
    pub fn due_notifications(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxEntry>> {
        self.side(|c| escalation::due_outbox(c, now_ms, limit))
    }
    /// Marks a notification delivered; false if it already was.
    pub fn mark_delivered(&self, id: i64, at_ms: i64) -> Result<bool> {
        self.side(|c| escalation::outbox_delivered(c, id, at_ms))
    }
    /// Records a failed attempt and when to retry; false if delivered.
    pub fn mark_failed(&self, id: i64, error: &str, next_attempt_ms: i64) -> Result<bool> {
        self.side(|c| escalation::outbox_failed(c, id, error, next_attempt_ms))
    }
}

#[cfg(test)]
mod tests;
