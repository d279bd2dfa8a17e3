//! SLA reports from daily rollups.
//!
//! Days, ISO weeks and months are unions of whole UTC days, so summing the
//! `rollup_day` rows of a period gives its exact figures; a month for one
//! sensor reads at most 31 rows by primary key, whatever the check rate.
//! Definitions (coverage, outages, maintenance) are in `rollup.rs`.

use std::collections::BTreeMap;

use rusqlite::Connection;

use crate::calendar::{DAY_MS, next_period, period_start};
use crate::error::Result;
use crate::rollup::{self, Agg, uptime_pct};
use crate::rows::{check_span, find_sensor_id};
use crate::types::{Granularity, SlaQuery, SlaRow};

/// Sums of the daily rollups of one period.
#[derive(Debug, Default, Clone)]
struct Acc {
    checks: u64,
    failures: u64,
    up_ms: i64,
    down_ms: i64,
    maint_ms: i64,
    outages: u64,
    recoveries: u64,
    recovery_ms: i64,
}

impl Acc {
    fn add(&mut self, a: &Agg) {
        self.checks += a.checks;
        self.failures += a.failures;
        self.up_ms += a.up_ms;
        self.down_ms += a.down_ms;
        self.maint_ms += a.maint_ms;
        self.outages += a.outages;
        self.recoveries += a.recoveries;
        self.recovery_ms += a.recovery_ms;
    }

    fn row(&self, sensor: &str, start: i64, end: i64) -> SlaRow {
        SlaRow {
            sensor: sensor.to_owned(),
            period_start_ms: start,
            period_end_ms: end,
            checks: self.checks,
            failures: self.failures,
            uptime_pct: uptime_pct(self.up_ms, self.down_ms),
            observed_ms: self.up_ms + self.down_ms,
            downtime_ms: self.down_ms,
            maintenance_ms: self.maint_ms,
            outages: self.outages,
            recoveries: self.recoveries,
            mttr_ms: (self.recoveries > 0).then(|| self.recovery_ms / self.recoveries as i64),
        }
    }
}

/// Rows for every period of the range: for one sensor (if it exists), or
/// for every sensor with data in the range; sorted by sensor, then period.
pub(crate) fn sla(c: &Connection, q: &SlaQuery) -> Result<Vec<SlaRow>> {
    if q.to_ms <= q.from_ms {
        return Ok(Vec::new());
    }
    let first = period_start(q.period, q.from_ms);
    check_span(first, q.to_ms, DAY_MS)?;
    let mut bounds = vec![first];
    while *bounds.last().expect("non-empty") < q.to_ms {
        let next = next_period(q.period, *bounds.last().expect("non-empty"));
        bounds.push(next);
    }
    let end = *bounds.last().expect("non-empty");
    let periods = bounds.len() - 1;
    let period_of = |day: i64| bounds.partition_point(|&b| b <= day) - 1;

    let mut per_sensor: BTreeMap<String, Vec<Acc>> = BTreeMap::new();
    match &q.sensor {
        Some(name) => {
            let Some(sid) = find_sensor_id(c, name)? else {
                return Ok(Vec::new());
            };
            let accs = per_sensor
                .entry(name.clone())
                .or_insert_with(|| vec![Acc::default(); periods]);
            let mut day = first;
            while day < end {
                if let Some(a) = rollup::load_agg(c, Granularity::Day, day, sid)? {
                    accs[period_of(day)].add(&a);
                }
                day += DAY_MS;
            }
        }
        None => {
            let sql = format!(
                "SELECT s.name, d.start_ms, {} FROM rollup_day d JOIN sensors s ON s.id = d.sensor_id \
                 WHERE d.start_ms >= ?1 AND d.start_ms < ?2",
                rollup::AGG_COLUMNS
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let mut rows = stmt.query([first, end])?;
            while let Some(r) = rows.next()? {
                let name: String = r.get(0)?;
                let day: i64 = r.get(1)?;
                let a = rollup::agg_from_row(r, 2)?;
                per_sensor
                    .entry(name)
                    .or_insert_with(|| vec![Acc::default(); periods])[period_of(day)]
                .add(&a);
            }
        }
    }
    let mut out = Vec::with_capacity(per_sensor.len() * periods);
    for (name, accs) in &per_sensor {
        for (i, acc) in accs.iter().enumerate() {
            out.push(acc.row(name, bounds[i], bounds[i + 1]));
        }
    }
    Ok(out)
}
