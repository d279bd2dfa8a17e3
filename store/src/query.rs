//! Read side: [`Reader`] and its queries (history, transitions, states,
//! rollups, maintenance windows; SLA is in `sla.rs`).
//!
//! A `Reader` has its own connections (a small pool), separate from the
//! writer's, so reads never wait for the writer: in WAL mode a reader sees
//! the last committed snapshot while the writer appends. [`Reader::open`]
//! works from any process (e.g. `outpost status` while the agent runs).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

use crate::blocks::{Block, Raw};
use crate::calendar::{DAY_MS, floor_to};
use crate::error::{Result, StoreError};
use crate::rollup::{self, bucket_size};
use crate::rows::{MAINT_BIT, check_span, find_sensor_id};
use crate::types::{
    Backlog, CheckRow, CurrentState, Granularity, IncidentSummary, Maintenance, RollupRow,
    SensorState, SlaQuery, SlaRow, Status, Transition,
};

/// Idle read connections kept for reuse. Opening one costs a file open and a
/// schema parse (~0.1-0.3 ms); a few cover concurrent API requests, more are
/// opened on demand and closed after use.
const READER_POOL_MAX: usize = 4;

/// Read handle on a store file. Cheap to clone; thread-safe.
#[derive(Clone)]
pub struct Reader {
    inner: Arc<ReaderInner>,
}

struct ReaderInner {
    path: PathBuf,
    pool: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Reader {
    /// Opens a store file for reading (it must exist and have been created by
    /// [`crate::Store::open`] of the same schema version). Never writes it.
    pub fn open(path: impl AsRef<Path>) -> Result<Reader> {
        let path = path.as_ref().to_path_buf();
        let conn = crate::schema::open_reader(&path)?;
        Ok(Reader {
            inner: Arc::new(ReaderInner {
                path,
                pool: Mutex::new(vec![conn]),
            }),
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on a pooled connection inside a read transaction (one
    /// consistent snapshot for all its statements).
    pub(crate) fn with_conn<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = self
            .inner
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        let conn = match pooled {
            Some(c) => c,
            None => crate::schema::open_reader(&self.inner.path)?,
        };
        let res = (|| {
            let tx = conn.unchecked_transaction()?;
            let v = f(&tx)?;
            tx.commit()?;
            Ok(v)
        })();
        if conn.is_autocommit() {
            let mut pool = self.inner.pool.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < READER_POOL_MAX {
                pool.push(conn);
            }
        }
        res
    }

    /// The most recent incidents (unresolved first, then newest opened
    /// first), at most `limit`; only unresolved ones if asked.
    pub fn incidents(&self, only_unresolved: bool, limit: usize) -> Result<Vec<IncidentSummary>> {
        let filter = if only_unresolved {
            "WHERE state <> 'resolved'"
        } else {
            ""
        };
        let sql = format!(
            "SELECT id, target, state, opened_at_ms, level, acked_by, acked_at_ms, resolved_at_ms \
             FROM incidents {filter} ORDER BY (state = 'resolved'), opened_at_ms DESC LIMIT ?1"
        );
        self.with_conn(|c| {
            let mut q = c.prepare_cached(&sql)?;
            let rows = q.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                Ok(IncidentSummary {
                    id: r.get(0)?,
                    target: r.get(1)?,
                    state: r.get(2)?,
                    opened_at_ms: r.get(3)?,
                    level: r.get(4)?,
                    acked_by: r.get(5)?,
                    acked_at_ms: r.get(6)?,
                    resolved_at_ms: r.get(7)?,
                })
            })?;
            Ok(rows.collect::<std::result::Result<_, _>>()?)
        })
    }

    /// Unresolved incidents by state and the outbox backlog.
    pub fn backlog(&self) -> Result<Backlog> {
        self.with_conn(|c| {
            let (open, acked) = c.query_row(
                "SELECT count(*) FILTER (WHERE state = 'open'), \
                 count(*) FILTER (WHERE state = 'acked') \
                 FROM incidents WHERE state <> 'resolved'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let (pending, oldest_pending_ms) = c.query_row(
                "SELECT count(*), min(created_ms) FROM outbox \
                 WHERE delivered_at_ms IS NULL AND gave_up_at_ms IS NULL",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok(Backlog {
                open,
                acked,
                pending,
                oldest_pending_ms,
            })
        })
    }

    /// Names of all sensors that ever recorded anything, sorted.
    pub fn sensors(&self) -> Result<Vec<String>> {
        self.with_conn(|c| {
            let mut q = c.prepare_cached("SELECT name FROM sensors ORDER BY name")?;
            Ok(q.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?)
        })
    }

    /// Results of `sensor` at or after `since_ms`, newest first, at most `limit`.
    ///
    /// Merges the sensor's result blocks (read newest first, stopping at the
    /// first block older than `since_ms` or once `limit` results are found:
    /// blocks of a sensor do not overlap) with its plain rows.
    pub fn history(&self, sensor: &str, since_ms: i64, limit: usize) -> Result<Vec<CheckRow>> {
        self.with_conn(|c| {
            let Some(sid) = find_sensor_id(c, sensor)? else {
                return Ok(Vec::new());
            };
            let mut raws: Vec<Raw> = Vec::new();
            {
                let mut q = c.prepare_cached(
                    "SELECT first_ms, last_ms, data FROM result_blocks WHERE sensor_id = ?1 \
                     ORDER BY first_ms DESC",
                )?;
                let mut rows = q.query([sid])?;
                while raws.len() < limit
                    && let Some(r) = rows.next()?
                {
                    if r.get::<_, i64>(1)? < since_ms {
                        break;
                    }
                    let first_ms: i64 = r.get(0)?;
                    let data: Vec<u8> = r.get(2)?;
                    let mut block = Block::decode(first_ms, &data)?;
                    block.retain(|x| x.at_ms >= since_ms);
                    raws.extend(block.into_iter().rev());
                }
            }
            raws.truncate(limit);
            let sql_limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let mut q = c.prepare_cached(
                "SELECT at_ms, status, latency_us, message_id, metrics FROM results \
                 WHERE sensor_id = ?1 AND at_ms >= ?2 ORDER BY at_ms DESC LIMIT ?3",
            )?;
            let mut rows = q.query(params![sid, since_ms, sql_limit])?;
            let mut plain = false;
            while let Some(r) = rows.next()? {
                plain = true;
                raws.push(Raw {
                    at_ms: r.get(0)?,
                    status: r.get(1)?,
                    latency_us: r.get(2)?,
                    message_id: r.get(3)?,
                    metrics: match r.get::<_, Option<Vec<u8>>>(4)? {
                        None => Vec::new(),
                        Some(blob) => crate::codec::decode_metrics(&blob)?,
                    },
                });
            }
            if plain {
                raws.sort_by_key(|r| std::cmp::Reverse(r.at_ms));
                raws.truncate(limit);
            }
            let mut names: Option<HashMap<i64, String>> = None;
            let mut messages: HashMap<i64, String> = HashMap::new();
            let mut out = Vec::with_capacity(raws.len());
            for raw in raws {
                let code = raw.status;
                let status = Status::from_code(code & !MAINT_BIT)
                    .ok_or_else(|| StoreError::Corrupt(format!("status code {code}")))?;
                let metrics = if raw.metrics.is_empty() {
                    Vec::new()
                } else {
                    if names.is_none() {
                        names = Some(metric_names(c)?);
                    }
                    let names = names.as_ref().expect("loaded");
                    raw.metrics
                        .into_iter()
                        .map(|(id, v)| {
                            (
                                names.get(&id).cloned().unwrap_or_else(|| format!("#{id}")),
                                v,
                            )
                        })
                        .collect()
                };
                let message = match raw.message_id {
                    0 => String::new(),
                    id => match messages.get(&id) {
                        Some(m) => m.clone(),
                        None => {
                            let m: String = c
                                .prepare_cached("SELECT text FROM messages WHERE id = ?1")?
                                .query_row([id], |r| r.get(0))
                                .optional()?
                                .unwrap_or_default();
                            messages.insert(id, m.clone());
                            m
                        }
                    },
                };
                out.push(CheckRow {
                    at_ms: raw.at_ms,
                    status,
                    in_maintenance: code & MAINT_BIT != 0,
                    latency_us: raw.latency_us.max(0) as u64,
                    message,
                    metrics,
                });
            }
            Ok(out)
        })
    }

    /// Transitions of `sensor` at or after `since_ms`, newest first.
    pub fn transitions(&self, sensor: &str, since_ms: i64) -> Result<Vec<Transition>> {
        self.with_conn(|c| {
            let Some(sid) = find_sensor_id(c, sensor)? else {
                return Ok(Vec::new());
            };
            let mut q = c.prepare_cached(
                "SELECT at_ms, from_state, to_state, reason FROM transitions \
                 WHERE sensor_id = ?1 AND at_ms >= ?2 ORDER BY at_ms DESC, id DESC",
            )?;
            Ok(q.query_map(params![sid, since_ms], |r| {
                Ok(Transition {
                    sensor: sensor.to_owned(),
                    at_ms: r.get(0)?,
                    from: r.get(1)?,
                    to: r.get(2)?,
                    reason: r.get(3)?,
                })
            })?
            .collect::<Result<_, _>>()?)
        })
    }

    /// Latest transition of every sensor that has one, by sensor name.
    pub fn current_states(&self) -> Result<Vec<CurrentState>> {
        self.with_conn(|c| {
            let mut q = c.prepare_cached(
                "SELECT s.name, t.to_state, t.at_ms, t.reason FROM sensors s \
                 JOIN transitions t ON t.id = (SELECT t2.id FROM transitions t2 WHERE t2.sensor_id = s.id \
                                              ORDER BY t2.at_ms DESC, t2.id DESC LIMIT 1) \
                 ORDER BY s.name",
            )?;
            Ok(q.query_map([], |r| {
                Ok(CurrentState { sensor: r.get(0)?, state: r.get(1)?, since_ms: r.get(2)?, reason: r.get(3)? })
            })?
            .collect::<Result<_, _>>()?)
        })
    }

    /// The agent's `sensor_state` rows, by sensor name.
    pub fn sensor_states(&self) -> Result<Vec<SensorState>> {
        self.with_conn(|c| {
            let mut q = c.prepare_cached(
                "SELECT sensor, state, since_ms, last_check_ms, last_status, last_message, last_latency_us, \
                 consecutive_failures, consecutive_successes, flapping, updated_ms FROM sensor_state ORDER BY sensor",
            )?;
            Ok(q.query_map([], |r| {
                Ok(SensorState {
                    sensor: r.get(0)?,
                    state: r.get(1)?,
                    since_ms: r.get(2)?,
                    last_check_ms: r.get(3)?,
                    last_status: r.get::<_, Option<i64>>(4)?.and_then(Status::from_code),
                    last_message: r.get(5)?,
                    last_latency_us: r.get::<_, Option<i64>>(6)?.map(|v| v.max(0) as u64),
                    consecutive_failures: r.get(7)?,
                    consecutive_successes: r.get(8)?,
                    flapping: r.get(9)?,
                    updated_ms: r.get(10)?,
                })
            })?
            .collect::<Result<_, _>>()?)
        })
    }

    /// Hourly or daily rollups of `sensor` for buckets starting in
    /// `[floor(from_ms), to_ms)`, oldest first; buckets without data are
    /// left out.
    pub fn rollups(
        &self,
        sensor: &str,
        g: Granularity,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<RollupRow>> {
        self.with_conn(|c| {
            let Some(sid) = find_sensor_id(c, sensor)? else {
                return Ok(Vec::new());
            };
            let size = bucket_size(g);
            let first = floor_to(from_ms, size);
            check_span(first, to_ms, size)?;
            let mut out = Vec::new();
            let mut s = first;
            while s < to_ms {
                if let Some(a) = rollup::load_agg(c, g, s, sid)? {
                    out.push(a.to_row(s));
                }
                s += size;
            }
            Ok(out)
        })
    }

    /// Uptime % of each of the last `days` UTC days (oldest first, today
    /// last), `None` for days without observed time: a 90-day uptime bar.
    pub fn daily_uptime(&self, sensor: &str, days: u32) -> Result<Vec<(i64, Option<f64>)>> {
        self.daily_uptime_at(sensor, days, crate::now_ms())
    }

    /// [`Reader::daily_uptime`] with an explicit "now".
    pub fn daily_uptime_at(
        &self,
        sensor: &str,
        days: u32,
        now_ms: i64,
    ) -> Result<Vec<(i64, Option<f64>)>> {
        self.with_conn(|c| {
            let today = floor_to(now_ms, DAY_MS);
            let first = today - i64::from(days.saturating_sub(1)) * DAY_MS;
            check_span(first, today + DAY_MS, DAY_MS)?;
            let sid = find_sensor_id(c, sensor)?;
            let mut out = Vec::with_capacity(days as usize);
            let mut d = first;
            while days > 0 && d <= today {
                let pct = match sid {
                    Some(sid) => {
                        rollup::load_agg(c, Granularity::Day, d, sid)?.and_then(|a| a.uptime_pct())
                    }
                    None => None,
                };
                out.push((d, pct));
                d += DAY_MS;
            }
            Ok(out)
        })
    }

    /// SLA figures per sensor and calendar period, from daily rollups (see
    /// the crate documentation for the definitions).
    pub fn sla(&self, q: &SlaQuery) -> Result<Vec<SlaRow>> {
        self.with_conn(|c| crate::sla::sla(c, q))
    }

    /// Maintenance windows overlapping `[from_ms, to_ms)`, by start.
    pub fn maintenance(&self, from_ms: i64, to_ms: i64) -> Result<Vec<Maintenance>> {
        self.with_conn(|c| {
            let mut q = c.prepare_cached(
                "SELECT id, target, from_ms, to_ms, reason FROM maintenance \
                 WHERE from_ms < ?2 AND to_ms > ?1 ORDER BY from_ms, id",
            )?;
            Ok(q.query_map(params![from_ms, to_ms], |r| {
                Ok(Maintenance {
                    id: r.get(0)?,
                    target: r.get(1)?,
                    from_ms: r.get(2)?,
                    to_ms: r.get(3)?,
                    reason: r.get(4)?,
                })
            })?
            .collect::<Result<_, _>>()?)
        })
    }

    /// Number of raw results stored for `sensor` (all, if `None`).
    pub fn raw_count(&self, sensor: Option<&str>) -> Result<u64> {
        self.with_conn(|c| {
            let n: i64 = match sensor {
                Some(s) => match find_sensor_id(c, s)? {
                    Some(sid) => c.query_row(
                        "SELECT (SELECT count(*) FROM results WHERE sensor_id = ?1) + \
                         (SELECT coalesce(sum(n), 0) FROM result_blocks WHERE sensor_id = ?1)",
                        [sid],
                        |r| r.get(0),
                    )?,
                    None => 0,
                },
                None => c.query_row(
                    "SELECT (SELECT count(*) FROM results) + (SELECT coalesce(sum(n), 0) FROM result_blocks)",
                    [],
                    |r| r.get(0),
                )?,
            };
            Ok(n as u64)
        })
    }

    /// `PRAGMA integrity_check`: `["ok"]` when the file is sound.
    pub fn integrity_check(&self) -> Result<Vec<String>> {
        self.with_conn(|c| {
            let mut q = c.prepare("PRAGMA integrity_check")?;
            Ok(q.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?)
        })
    }
}

fn metric_names(c: &Connection) -> Result<HashMap<i64, String>> {
    let mut q = c.prepare_cached("SELECT id, name FROM metric_names")?;
    Ok(q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?)
}
