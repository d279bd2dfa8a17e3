//! Rollup model: how a sensor's result stream becomes hourly and daily
//! aggregates, and how an aggregate is stored in `rollup_hour`/`rollup_day`.
//! The writer feeds results through [`StreamState::push`] and [`apply`] and
//! writes the changed [`Agg`]s in the same transaction as the raw rows.
//!
//! # Definitions
//!
//! * **Class** of a result: *maintenance* if recorded in maintenance, else
//!   *down* for `Fail`/`Error`, else *up* (`Ok`/`Warn`).
//! * **Coverage**: a result's class holds from its time until the next
//!   result of the sensor, but for at most its *cap* =
//!   [`COVERAGE_GAP_FACTOR`] × its interval (or the store's default gap when
//!   the interval is unknown). Time beyond the cap is unknown (agent not
//!   running) and counts nowhere. Coverage is split exactly at hour/day
//!   boundaries into `up_ms`, `down_ms`, `maint_ms`. The latest result's
//!   coverage is counted when the next result arrives.
//! * **Checks** (`checks`, `failures`, `warnings`, latency) count results
//!   outside maintenance in the bucket of their own time; results in
//!   maintenance only count in `maint_checks`.
//! * **Outage**: a maximal run of consecutive *down* results. It starts at
//!   its first down result (`outages` += 1 in that bucket) and ends at the
//!   first following *up* or *maintenance* result (`recoveries` += 1 and
//!   `recovery_ms` += its duration, in the bucket of the ending result). A
//!   maintenance result ends an outage because maintenance time is excluded;
//!   if the sensor still fails after the window, that is a new outage. An
//!   outage's **duration** is the down time it accumulated (the coverage of
//!   its results), which equals end − start when there was no gap.
//! * **Uptime** = `up_ms / (up_ms + down_ms)`; **MTTR** over a period =
//!   `recovery_ms / recoveries` of the outages that ended in it.
//! * A result older than the sensor's latest result (out of order) is
//!   counted as a check but does not change coverage or outages: the writer
//!   cannot rewrite the past intervals it already split.

use crate::calendar::{DAY_MS, HOUR_MS, floor_to};
use crate::codec::{get_varint, put_varint};
use crate::error::{Result, StoreError};
use crate::types::{Granularity, LatencyStats, RollupRow, Status};

/// A result counts for at most this many of its sensor's intervals: one
/// late or skipped run (a slow check overrunning its slot, a restart) does
/// not open a gap, while an agent that is stopped for longer stops
/// producing up or down time.
pub const COVERAGE_GAP_FACTOR: u64 = 2;

/// Hard upper bound of one result's coverage, whatever its interval: keeps a
/// bogus interval from spreading one result over months of buckets.
pub const MAX_COVERAGE_MS: i64 = 7 * DAY_MS;

/// Class of a result for time accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Up = 0,
    Down = 1,
    Maint = 2,
}

impl Class {
    pub(crate) fn of(status: Status, in_maintenance: bool) -> Class {
        if in_maintenance {
            Class::Maint
        } else if status.is_failure() {
            Class::Down
        } else {
            Class::Up
        }
    }

    pub(crate) fn from_code(c: i64) -> Class {
        match c {
            1 => Class::Down,
            2 => Class::Maint,
            _ => Class::Up,
        }
    }
}

/// Coverage cap of a result with interval `interval_ms` (0 = unknown).
pub(crate) fn cap_ms(interval_ms: u64, default_gap_ms: i64) -> i64 {
    let cap = if interval_ms == 0 {
        default_gap_ms
    } else {
        i64::try_from(interval_ms.saturating_mul(COVERAGE_GAP_FACTOR)).unwrap_or(i64::MAX)
    };
    cap.clamp(0, MAX_COVERAGE_MS)
}

/// The latest in-order result of a sensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Last {
    pub at_ms: i64,
    pub class: Class,
    pub cap_ms: i64,
}

/// An outage that has not ended yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpenOutage {
    pub start_ms: i64,
    pub down_ms: i64,
}

/// Per-sensor stream position, persisted in the `sensors` row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StreamState {
    pub last: Option<Last>,
    pub outage: Option<OpenOutage>,
}

/// A contribution of one result to the rollups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    Check {
        at_ms: i64,
        status: Status,
        latency_us: u64,
    },
    MaintCheck {
        at_ms: i64,
    },
    Cover {
        class: Class,
        from_ms: i64,
        to_ms: i64,
    },
    OutageStart {
        at_ms: i64,
    },
    Recovery {
        at_ms: i64,
        duration_ms: i64,
    },
}

impl StreamState {
    /// Feeds one stored (non-duplicate) result; `emit` receives its rollup
    /// contributions in order.
    pub(crate) fn push(
        &mut self,
        at_ms: i64,
        status: Status,
        in_maintenance: bool,
        latency_us: u64,
        cap_ms: i64,
        emit: &mut impl FnMut(Event) -> Result<()>,
    ) -> Result<()> {
        let class = Class::of(status, in_maintenance);
        if in_maintenance {
            emit(Event::MaintCheck { at_ms })?;
        } else {
            emit(Event::Check {
                at_ms,
                status,
                latency_us,
            })?;
        }
        if let Some(prev) = self.last {
            if at_ms <= prev.at_ms {
                // Out of order: counted above, the past intervals stay as they are.
                return Ok(());
            }
            let end = at_ms.min(prev.at_ms.saturating_add(prev.cap_ms));
            if end > prev.at_ms {
                emit(Event::Cover {
                    class: prev.class,
                    from_ms: prev.at_ms,
                    to_ms: end,
                })?;
                if prev.class == Class::Down
                    && let Some(o) = self.outage.as_mut()
                {
                    o.down_ms += end - prev.at_ms;
                }
            }
        }
        match (class, self.outage) {
            (Class::Down, None) => {
                self.outage = Some(OpenOutage {
                    start_ms: at_ms,
                    down_ms: 0,
                });
                emit(Event::OutageStart { at_ms })?;
            }
            (Class::Up | Class::Maint, Some(o)) => {
                self.outage = None;
                emit(Event::Recovery {
                    at_ms,
                    duration_ms: o.down_ms,
                })?;
            }
            _ => {}
        }
        self.last = Some(Last {
            at_ms,
            class,
            cap_ms,
        });
        Ok(())
    }
}

/// Where [`apply`] finds the aggregate of a bucket.
pub(crate) trait AggSink {
    fn agg(&mut self, g: Granularity, start_ms: i64) -> Result<&mut Agg>;
}

pub(crate) fn bucket_size(g: Granularity) -> i64 {
    match g {
        Granularity::Hour => HOUR_MS,
        Granularity::Day => DAY_MS,
    }
}

/// Adds one event to the hourly and daily aggregates it falls in.
pub(crate) fn apply(ev: Event, sink: &mut impl AggSink) -> Result<()> {
    for g in [Granularity::Hour, Granularity::Day] {
        let size = bucket_size(g);
        match ev {
            Event::Check {
                at_ms,
                status,
                latency_us,
            } => sink
                .agg(g, floor_to(at_ms, size))?
                .add_check(status, latency_us),
            Event::MaintCheck { at_ms } => sink.agg(g, floor_to(at_ms, size))?.maint_checks += 1,
            Event::OutageStart { at_ms } => sink.agg(g, floor_to(at_ms, size))?.outages += 1,
            Event::Recovery { at_ms, duration_ms } => {
                let a = sink.agg(g, floor_to(at_ms, size))?;
                a.recoveries += 1;
                a.recovery_ms += duration_ms;
            }
            Event::Cover {
                class,
                from_ms,
                to_ms,
            } => {
                let mut t = from_ms;
                while t < to_ms {
                    let start = floor_to(t, size);
                    let end = to_ms.min(start + size);
                    let a = sink.agg(g, start)?;
                    let ms = end - t;
                    match class {
                        Class::Up => a.up_ms += ms,
                        Class::Down => a.down_ms += ms,
                        Class::Maint => a.maint_ms += ms,
                    }
                    t = end;
                }
            }
        }
    }
    Ok(())
}

/// Aggregate of one (sensor, bucket). Mirrors a `rollup_hour`/`rollup_day` row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Agg {
    pub checks: u64,
    pub failures: u64,
    pub warnings: u64,
    pub maint_checks: u64,
    pub up_ms: i64,
    pub down_ms: i64,
    pub maint_ms: i64,
    pub outages: u64,
    pub recoveries: u64,
    pub recovery_ms: i64,
    pub lat_min: u64,
    pub lat_max: u64,
    pub lat_sum: u64,
    pub hist: LatencyHist,
}

impl Agg {
    pub(crate) fn add_check(&mut self, status: Status, latency_us: u64) {
        if self.checks == 0 {
            self.lat_min = latency_us;
            self.lat_max = latency_us;
        } else {
            self.lat_min = self.lat_min.min(latency_us);
            self.lat_max = self.lat_max.max(latency_us);
        }
        self.checks += 1;
        self.failures += u64::from(status.is_failure());
        self.warnings += u64::from(status == Status::Warn);
        self.lat_sum = self.lat_sum.saturating_add(latency_us);
        self.hist.add(bucket_of(latency_us));
    }

    pub(crate) fn uptime_pct(&self) -> Option<f64> {
        uptime_pct(self.up_ms, self.down_ms)
    }

    pub(crate) fn latency(&self) -> Option<LatencyStats> {
        if self.checks == 0 {
            return None;
        }
        Some(LatencyStats {
            min_us: self.lat_min,
            avg_us: ((u128::from(self.lat_sum) + u128::from(self.checks) / 2)
                / u128::from(self.checks)) as u64,
            p95_us: percentile(&self.hist, 95).clamp(self.lat_min, self.lat_max),
            max_us: self.lat_max,
        })
    }

    pub(crate) fn to_row(&self, start_ms: i64) -> RollupRow {
        RollupRow {
            start_ms,
            checks: self.checks,
            failures: self.failures,
            warnings: self.warnings,
            maintenance_checks: self.maint_checks,
            up_ms: self.up_ms,
            down_ms: self.down_ms,
            maintenance_ms: self.maint_ms,
            outages: self.outages,
            recoveries: self.recoveries,
            recovery_ms: self.recovery_ms,
            uptime_pct: self.uptime_pct(),
            latency: self.latency(),
        }
    }
}

/// `up / (up + down)` in %, `None` when nothing was observed.
pub(crate) fn uptime_pct(up_ms: i64, down_ms: i64) -> Option<f64> {
    let total = up_ms + down_ms;
    (total > 0).then(|| up_ms as f64 * 100.0 / total as f64)
}

// Latency histogram: log-linear buckets. Values below 2^(SUB_BITS+1) have
// their own bucket; above, each power of two is split into 2^SUB_BITS
// buckets, so a bucket spans at most 1/16 = 6.25% of its lower bound and its
// midpoint is within 3.2% of any value in it. At most 976 buckets for the
// whole u64 range; an hour of a stable sensor fills 10-30 of them.

/// Mantissa bits kept per power of two (16 buckets per octave).
const SUB_BITS: u32 = 4;
const EXACT_BELOW: u64 = 1 << (SUB_BITS + 1);

/// Histogram bucket of a latency in µs.
pub(crate) fn bucket_of(v: u64) -> u16 {
    if v < EXACT_BELOW {
        return v as u16;
    }
    let e = 63 - v.leading_zeros(); // >= SUB_BITS + 1
    let mantissa = (v >> (e - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    (EXACT_BELOW + u64::from(e - SUB_BITS - 1) * (1 << SUB_BITS) + mantissa) as u16
}

/// Inclusive value range of a histogram bucket.
pub(crate) fn bucket_range(idx: u16) -> (u64, u64) {
    let idx = u64::from(idx);
    if idx < EXACT_BELOW {
        return (idx, idx);
    }
    let k = idx - EXACT_BELOW;
    let e = (k >> SUB_BITS) as u32 + SUB_BITS + 1;
    let mantissa = k & ((1 << SUB_BITS) - 1);
    let width = 1u64 << (e - SUB_BITS);
    let low = ((1u64 << SUB_BITS) + mantissa) << (e - SUB_BITS);
    (low, low + (width - 1))
}

/// A sparse latency histogram: (bucket, count) pairs in ascending bucket
/// order. A bucket's count is at most `u32::MAX` (a day of checks every
/// 20 µs). Kept for every cached rollup, so it is a flat vector: 8 bytes
/// per filled bucket, where a map took several times that.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LatencyHist(Vec<(u16, u32)>);

impl LatencyHist {
    /// The count of bucket `idx`, inserted as 0 if the bucket is empty.
    fn count_mut(&mut self, idx: u16) -> &mut u32 {
        let at = match self.0.binary_search_by_key(&idx, |&(i, _)| i) {
            Ok(at) => at,
            Err(at) => {
                self.0.insert(at, (idx, 0));
                at
            }
        };
        &mut self.0[at].1
    }

    /// Counts one value in bucket `idx`.
    pub(crate) fn add(&mut self, idx: u16) {
        let c = self.count_mut(idx);
        *c = c.saturating_add(1);
    }

    /// Sets bucket `idx` to `count` (saturating at `u32::MAX`).
    pub(crate) fn set(&mut self, idx: u16, count: u64) {
        *self.count_mut(idx) = u32::try_from(count).unwrap_or(u32::MAX);
    }

    /// (bucket, count) in ascending bucket order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.0.iter().map(|&(i, c)| (i, u64::from(c)))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(u16, u64)> for LatencyHist {
    fn from_iter<I: IntoIterator<Item = (u16, u64)>>(it: I) -> Self {
        let mut h = LatencyHist::default();
        for (i, c) in it {
            h.set(i, c);
        }
        h
    }
}

/// Nearest-rank percentile `p` (1-100) from a histogram, as the midpoint of
/// the bucket holding it.
pub(crate) fn percentile(hist: &LatencyHist, p: u64) -> u64 {
    let n: u64 = hist.iter().map(|(_, c)| c).sum();
    if n == 0 {
        return 0;
    }
    let rank = (p * n).div_ceil(100).max(1);
    let mut seen = 0;
    for (idx, c) in hist.iter() {
        seen += c;
        if seen >= rank {
            let (lo, hi) = bucket_range(idx);
            return lo + (hi - lo) / 2;
        }
    }
    unreachable!("rank <= n")
}

// ---- persistence -------------------------------------------------------

/// Columns of a rollup row after `start_ms, sensor_id`, in [`agg_from_row`] order.
pub(crate) const AGG_COLUMNS: &str = "checks, failures, warnings, maint_checks, up_ms, down_ms, maint_ms, \
     outages, recoveries, recovery_ms, lat_min, lat_max, lat_sum, lat_hist";

/// Reads an [`Agg`] from columns `first..first+14` (see [`AGG_COLUMNS`]).
pub(crate) fn agg_from_row(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Agg> {
    let g = |i: usize| r.get::<_, i64>(first + i);
    let hist: Option<Vec<u8>> = r.get(first + 13)?;
    let hist = match hist {
        Some(b) => LatencyHist::decode(&b).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(
                first + 13,
                rusqlite::types::Type::Blob,
                Box::new(e),
            )
        })?,
        None => LatencyHist::default(),
    };
    Ok(Agg {
        checks: g(0)? as u64,
        failures: g(1)? as u64,
        warnings: g(2)? as u64,
        maint_checks: g(3)? as u64,
        up_ms: g(4)?,
        down_ms: g(5)?,
        maint_ms: g(6)?,
        outages: g(7)? as u64,
        recoveries: g(8)? as u64,
        recovery_ms: g(9)?,
        lat_min: g(10)? as u64,
        lat_max: g(11)? as u64,
        lat_sum: g(12)? as u64,
        hist,
    })
}

pub(crate) fn load_agg(
    conn: &rusqlite::Connection,
    g: Granularity,
    start_ms: i64,
    sensor_id: i64,
) -> Result<Option<Agg>> {
    use rusqlite::OptionalExtension;
    let sql = match g {
        Granularity::Hour => concat!(
            "SELECT checks, failures, warnings, maint_checks, up_ms, down_ms, maint_ms, outages, recoveries, ",
            "recovery_ms, lat_min, lat_max, lat_sum, lat_hist FROM rollup_hour WHERE start_ms = ?1 AND sensor_id = ?2"
        ),
        Granularity::Day => concat!(
            "SELECT checks, failures, warnings, maint_checks, up_ms, down_ms, maint_ms, outages, recoveries, ",
            "recovery_ms, lat_min, lat_max, lat_sum, lat_hist FROM rollup_day WHERE start_ms = ?1 AND sensor_id = ?2"
        ),
    };
    Ok(conn
        .prepare_cached(sql)?
        .query_row([start_ms, sensor_id], |r| agg_from_row(r, 0))
        .optional()?)
}

pub(crate) fn save_agg(
    conn: &rusqlite::Connection,
    g: Granularity,
    start_ms: i64,
    sensor_id: i64,
    a: &Agg,
) -> Result<()> {
    let sql = match g {
        Granularity::Hour => concat!(
            "INSERT OR REPLACE INTO rollup_hour(start_ms, sensor_id, checks, failures, warnings, maint_checks, ",
            "up_ms, down_ms, maint_ms, outages, recoveries, recovery_ms, lat_min, lat_max, lat_sum, lat_hist) ",
            "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
        ),
        Granularity::Day => concat!(
            "INSERT OR REPLACE INTO rollup_day(start_ms, sensor_id, checks, failures, warnings, maint_checks, ",
            "up_ms, down_ms, maint_ms, outages, recoveries, recovery_ms, lat_min, lat_max, lat_sum, lat_hist) ",
            "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
        ),
    };
    let hist = (!a.hist.is_empty()).then(|| a.hist.encode());
    conn.prepare_cached(sql)?.execute(rusqlite::params![
        start_ms,
        sensor_id,
        a.checks as i64,
        a.failures as i64,
        a.warnings as i64,
        a.maint_checks as i64,
        a.up_ms,
        a.down_ms,
        a.maint_ms,
        a.outages as i64,
        a.recoveries as i64,
        a.recovery_ms,
        a.lat_min as i64,
        a.lat_max as i64,
        a.lat_sum as i64,
        hist,
    ])?;
    Ok(())
}

impl LatencyHist {
    /// Encodes the histogram (ascending bucket index, count) as
    /// `varint(index delta), varint(count)` pairs (`rollups.lat_hist`).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut prev = 0u64;
        for (idx, count) in self.iter() {
            put_varint(&mut out, u64::from(idx) - prev);
            put_varint(&mut out, count);
            prev = u64::from(idx);
        }
        out
    }

    /// Inverse of [`LatencyHist::encode`].
    pub(crate) fn decode(buf: &[u8]) -> Result<LatencyHist> {
        let mut pos = 0;
        let mut idx = 0u64;
        let mut out = LatencyHist::default();
        while pos < buf.len() {
            idx += get_varint(buf, &mut pos)?;
            let count = get_varint(buf, &mut pos)?;
            let i =
                u16::try_from(idx).map_err(|_| StoreError::Corrupt("histogram index".into()))?;
            out.set(i, count);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hist_roundtrip() {
        let h: LatencyHist = [(975u16, 123_456u64), (3, 10), (40, 1)]
            .into_iter()
            .collect();
        assert_eq!(
            h.iter().collect::<Vec<_>>(),
            [(3, 10), (40, 1), (975, 123_456)],
            "kept in bucket order"
        );
        assert_eq!(LatencyHist::decode(&h.encode()).unwrap(), h);
    }
    use std::collections::HashMap;

    #[test]
    fn agg_roundtrips_through_both_tables() {
        let c = crate::schema::memory();
        let mut a = Agg::default();
        a.add_check(Status::Fail, 1234);
        a.add_check(Status::Warn, 99_999);
        a.up_ms = 5;
        a.down_ms = 7;
        a.maint_ms = 9;
        a.outages = 1;
        a.recoveries = 2;
        a.recovery_ms = 3;
        a.maint_checks = 4;
        for g in [Granularity::Hour, Granularity::Day] {
            assert_eq!(load_agg(&c, g, 0, 1).unwrap(), None);
            save_agg(&c, g, 0, 1, &a).unwrap();
            assert_eq!(load_agg(&c, g, 0, 1).unwrap(), Some(a.clone()));
            save_agg(&c, g, 0, 1, &Agg::default()).unwrap();
            assert_eq!(load_agg(&c, g, 0, 1).unwrap(), Some(Agg::default()));
        }
        let row = a.to_row(0);
        assert_eq!(row.uptime_pct, Some(5.0 * 100.0 / 12.0));
        let l = row.latency.unwrap();
        assert_eq!((l.min_us, l.max_us, l.avg_us), (1234, 99_999, 50_617));
        assert_eq!(bucket_of(l.p95_us), bucket_of(99_999));
    }

    #[test]
    fn histogram_buckets_cover_u64_and_are_tight() {
        let mut prev_hi = None;
        for idx in 0..=bucket_of(u64::MAX) {
            let (lo, hi) = bucket_range(idx);
            assert_eq!(bucket_of(lo), idx);
            assert_eq!(bucket_of(hi), idx);
            if let Some(p) = prev_hi {
                assert_eq!(lo, p + 1, "contiguous at {idx}");
            }
            prev_hi = Some(hi);
            assert!((hi - lo) as f64 <= lo as f64 / 16.0 + 1.0);
        }
        assert_eq!(prev_hi, Some(u64::MAX));
        assert!(bucket_of(u64::MAX) < 976);
    }

    #[test]
    fn percentile_is_in_the_exact_values_bucket() {
        let vals: Vec<u64> = (1..=1000u64).map(|i| i * i * 37 % 900_001).collect();
        let mut h = LatencyHist::default();
        for &v in &vals {
            h.add(bucket_of(v));
        }
        let mut s = vals.clone();
        s.sort();
        let exact = s[(95 * s.len()).div_ceil(100) - 1];
        assert_eq!(bucket_of(percentile(&h, 95)), bucket_of(exact));
        let one: LatencyHist = [(bucket_of(7), 1)].into_iter().collect();
        assert_eq!(percentile(&one, 95), 7);
    }

    #[derive(Default)]
    struct Map(HashMap<(Granularity, i64), Agg>);
    impl AggSink for Map {
        fn agg(&mut self, g: Granularity, s: i64) -> Result<&mut Agg> {
            Ok(self.0.entry((g, s)).or_default())
        }
    }

    fn feed(st: &mut StreamState, m: &mut Map, at: i64, status: Status, maint: bool, cap: i64) {
        st.push(at, status, maint, 1000, cap, &mut |e| apply(e, m))
            .unwrap();
    }

    #[test]
    fn coverage_outages_and_maintenance() {
        let mut st = StreamState::default();
        let mut m = Map::default();
        let min = 60_000;
        let h = HOUR_MS;
        // 00:59 ok, 01:00 fail, 01:01 fail, 01:02 ok (outage of 2 min across the 01:00 hour)
        feed(&mut st, &mut m, h - min, Status::Ok, false, 2 * min);
        feed(&mut st, &mut m, h, Status::Fail, false, 2 * min);
        feed(&mut st, &mut m, h + min, Status::Error, false, 2 * min);
        feed(&mut st, &mut m, h + 2 * min, Status::Warn, false, 2 * min);
        // then a gap of 10 min: only 2 min (the cap) count as up.
        feed(&mut st, &mut m, h + 12 * min, Status::Fail, false, 2 * min);
        // maintenance ends the outage after 1 min of down time.
        feed(&mut st, &mut m, h + 13 * min, Status::Fail, true, 2 * min);
        feed(&mut st, &mut m, h + 14 * min, Status::Ok, false, 2 * min);
        // out of order: counted only.
        feed(&mut st, &mut m, h + 5 * min, Status::Fail, false, 2 * min);
        let h0 = &m.0[&(Granularity::Hour, 0)];
        assert_eq!((h0.checks, h0.up_ms, h0.down_ms), (1, min, 0));
        let h1 = &m.0[&(Granularity::Hour, h)];
        assert_eq!(h1.checks, 6);
        assert_eq!(h1.failures, 4);
        assert_eq!(h1.warnings, 1);
        assert_eq!(h1.maint_checks, 1);
        assert_eq!(h1.up_ms, 2 * min); // 01:02-01:04, capped
        assert_eq!(h1.down_ms, 3 * min);
        assert_eq!(h1.maint_ms, min);
        assert_eq!((h1.outages, h1.recoveries, h1.recovery_ms), (2, 2, 3 * min));
        let d = &m.0[&(Granularity::Day, 0)];
        assert_eq!(d.up_ms, 3 * min);
        assert_eq!(st.last.unwrap().at_ms, h + 14 * min);
        assert!(st.outage.is_none());
    }
}
