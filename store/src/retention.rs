//! Retention: deletes raw results (plain rows and, from result blocks, whole
//! blocks or the expired head of the block straddling the cutoff) older
//! than `raw_retention`, rollups,
//! transitions and maintenance windows older than `rollup_retention`, and
//! interned messages no retained result can refer to.
//!
//! A prune run is a [`PruneJob`] executed by the writer thread one step at a
//! time; each step is its own transaction deleting at most
//! `StoreOptions::prune_batch` rows, and the writer commits waiting records
//! between steps. Recording therefore waits at most one step (a few ms),
//! however much there is to delete (e.g. after lowering the retention).

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use crate::blocks::Block;
use crate::calendar::{DAY_MS, HOUR_MS};
use crate::error::Result;
use crate::rows::MESSAGE_TOUCH_SLACK_MS;
use crate::types::PruneStats;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Raw results, sensor by sensor (ids greater than `after`).
    Results {
        after: i64,
    },
    /// Result blocks, sensor by sensor (ids greater than `after`).
    Blocks {
        after: i64,
    },
    Messages,
    Hourly,
    Daily,
    Transitions,
    Maintenance,
    Done,
}

/// What a step changed, so the writer can drop stale cache entries.
#[derive(Debug, Default)]
pub(crate) struct StepOutcome {
    pub done: bool,
    pub touched_messages: bool,
    pub touched_rollups: bool,
    pub touched_blocks: bool,
    pub touched_maintenance: bool,
}

pub(crate) struct PruneJob {
    raw_cutoff: i64,
    rollup_cutoff: i64,
    phase: Phase,
    pub stats: PruneStats,
    pub replies: Vec<oneshot::Sender<Result<PruneStats>>>,
}

impl PruneJob {
    pub(crate) fn new(now_ms: i64, raw_retention_ms: i64, rollup_retention_ms: i64) -> PruneJob {
        PruneJob {
            raw_cutoff: now_ms.saturating_sub(raw_retention_ms),
            rollup_cutoff: now_ms.saturating_sub(rollup_retention_ms),
            phase: Phase::Results { after: i64::MIN },
            stats: PruneStats::default(),
            replies: Vec::new(),
        }
    }

    /// Deletes at most `budget` expired results of sensor `sid` from its
    /// blocks, oldest first: whole blocks, and the expired head of the block
    /// straddling the cutoff (rewritten without it). Returns how many it
    /// deleted and whether expired results remain (budget used up).
    fn prune_blocks(&self, conn: &Connection, sid: i64, mut budget: i64) -> Result<(i64, bool)> {
        let mut deleted = 0;
        while budget > 0 {
            let Some((first_ms, last_ms, n)) = conn
                .prepare_cached(
                    "SELECT first_ms, last_ms, n FROM result_blocks WHERE sensor_id = ?1 AND first_ms < ?2 \
                     ORDER BY first_ms LIMIT 1",
                )?
                .query_row(params![sid, self.raw_cutoff], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
                })
                .optional()?
            else {
                return Ok((deleted, false));
            };
            if last_ms < self.raw_cutoff && n <= budget {
                conn.prepare_cached(
                    "DELETE FROM result_blocks WHERE sensor_id = ?1 AND first_ms = ?2",
                )?
                .execute(params![sid, first_ms])?;
                deleted += n;
                budget -= n;
                continue;
            }
            // Trim the block's head: its expired results, at most `budget`.
            let data: Vec<u8> = conn
                .prepare_cached(
                    "SELECT data FROM result_blocks WHERE sensor_id = ?1 AND first_ms = ?2",
                )?
                .query_row(params![sid, first_ms], |r| r.get(0))?;
            let rows = Block::decode(first_ms, &data)?;
            let expired = rows
                .iter()
                .take_while(|r| r.at_ms < self.raw_cutoff)
                .count() as i64;
            let cut = expired.min(budget);
            conn.prepare_cached(
                "DELETE FROM result_blocks WHERE sensor_id = ?1 AND first_ms = ?2",
            )?
            .execute(params![sid, first_ms])?;
            if let Some(b) = Block::encode_all(&rows[cut as usize..]) {
                conn.prepare_cached(
                    "INSERT INTO result_blocks(sensor_id, first_ms, last_ms, n, data) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![sid, b.first_ms, b.last_ms, b.count, b.data])?;
            }
            deleted += cut;
            budget -= cut;
            if cut < expired {
                return Ok((deleted, true));
            }
            if rows.len() as i64 > cut {
                // Only the straddling block can keep results: done.
                return Ok((deleted, false));
            }
        }
        // Budget used up: more may remain (the next step finds out).
        let more = conn
            .prepare_cached(
                "SELECT 1 FROM result_blocks WHERE sensor_id = ?1 AND first_ms < ?2 LIMIT 1",
            )?
            .query_row(params![sid, self.raw_cutoff], |_| Ok(()))
            .optional()?
            .is_some();
        Ok((deleted, more))
    }

    /// Deletes at most `batch` rows (caller wraps it in a transaction).
    pub(crate) fn step(&mut self, conn: &Connection, batch: usize) -> Result<StepOutcome> {
        let batch = batch.max(1) as i64;
        let mut out = StepOutcome::default();
        self.stats.batches += 1;
        match self.phase {
            Phase::Results { after } => {
                let mut budget = batch;
                let mut after = after;
                loop {
                    let Some(sid) = next_sensor(conn, after)? else {
                        self.phase = Phase::Blocks { after: i64::MIN };
                        break;
                    };
                    // The budget-th oldest expired row, if the sensor has that many.
                    let boundary: Option<i64> = conn
                        .prepare_cached(
                            "SELECT at_ms FROM results WHERE sensor_id = ?1 AND at_ms < ?2 \
                             ORDER BY at_ms LIMIT 1 OFFSET ?3",
                        )?
                        .query_row(params![sid, self.raw_cutoff, budget - 1], |r| r.get(0))
                        .optional()?;
                    let n = match boundary {
                        Some(b) => conn
                            .prepare_cached(
                                "DELETE FROM results WHERE sensor_id = ?1 AND at_ms <= ?2",
                            )?
                            .execute(params![sid, b])?,
                        None => conn
                            .prepare_cached(
                                "DELETE FROM results WHERE sensor_id = ?1 AND at_ms < ?2",
                            )?
                            .execute(params![sid, self.raw_cutoff])?,
                    } as i64;
                    self.stats.results += n as u64;
                    budget -= n;
                    if boundary.is_some() {
                        // Budget used up; this sensor may have more.
                        self.phase = Phase::Results { after };
                        break;
                    }
                    after = sid;
                    self.phase = Phase::Results { after };
                    if budget <= 0 {
                        break;
                    }
                }
            }
            Phase::Blocks { after } => {
                let mut budget = batch;
                let mut after = after;
                loop {
                    let Some(sid) = next_sensor(conn, after)? else {
                        self.phase = Phase::Messages;
                        break;
                    };
                    let (n, more) = self.prune_blocks(conn, sid, budget)?;
                    self.stats.results += n as u64;
                    out.touched_blocks |= n > 0;
                    budget -= n;
                    if more {
                        // Budget used up; this sensor may have more.
                        self.phase = Phase::Blocks { after };
                        break;
                    }
                    after = sid;
                    self.phase = Phase::Blocks { after };
                    if budget <= 0 {
                        break;
                    }
                }
            }
            Phase::Messages => {
                let n = conn
                    .prepare_cached(
                        "DELETE FROM messages WHERE id IN \
                         (SELECT id FROM messages WHERE last_used_ms < ?1 LIMIT ?2)",
                    )?
                    .execute(params![
                        self.raw_cutoff.saturating_sub(MESSAGE_TOUCH_SLACK_MS),
                        batch
                    ])? as i64;
                self.stats.messages += n as u64;
                out.touched_messages = n > 0;
                if n < batch {
                    self.phase = Phase::Hourly;
                }
            }
            Phase::Hourly | Phase::Daily => {
                let (table, size) = if self.phase == Phase::Hourly {
                    ("rollup_hour", HOUR_MS)
                } else {
                    ("rollup_day", DAY_MS)
                };
                // A bucket goes once it lies entirely before the cutoff.
                let sql = format!(
                    "DELETE FROM {table} WHERE (start_ms, sensor_id) IN \
                     (SELECT start_ms, sensor_id FROM {table} WHERE start_ms <= ?1 LIMIT ?2)"
                );
                let n = conn
                    .prepare_cached(&sql)?
                    .execute(params![self.rollup_cutoff.saturating_sub(size), batch])?
                    as i64;
                out.touched_rollups = n > 0;
                if self.phase == Phase::Hourly {
                    self.stats.hourly += n as u64;
                    if n < batch {
                        self.phase = Phase::Daily;
                    }
                } else {
                    self.stats.daily += n as u64;
                    if n < batch {
                        self.phase = Phase::Transitions;
                    }
                }
            }
            Phase::Transitions => {
                let n = conn
                    .prepare_cached(
                        "DELETE FROM transitions WHERE id IN \
                         (SELECT id FROM transitions WHERE at_ms < ?1 LIMIT ?2)",
                    )?
                    .execute(params![self.rollup_cutoff, batch])? as i64;
                self.stats.other += n as u64;
                if n < batch {
                    self.phase = Phase::Maintenance;
                }
            }
            Phase::Maintenance => {
                let n = conn
                    .prepare_cached(
                        "DELETE FROM maintenance WHERE id IN \
                         (SELECT id FROM maintenance WHERE to_ms < ?1 LIMIT ?2)",
                    )?
                    .execute(params![self.rollup_cutoff, batch])? as i64;
                self.stats.other += n as u64;
                out.touched_maintenance = n > 0;
                if n < batch {
                    self.phase = Phase::Done;
                }
            }
            Phase::Done => {}
        }
        out.done = self.phase == Phase::Done;
        Ok(out)
    }
}

/// The next sensor id after `after`.
fn next_sensor(conn: &Connection, after: i64) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT id FROM sensors WHERE id > ?1 ORDER BY id LIMIT 1")?
        .query_row([after], |r| r.get::<_, i64>(0))
        .optional()?)
}
