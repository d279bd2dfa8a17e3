//! Store-level tests: writer + rollups + SLA + retention + readers.
#![allow(clippy::type_complexity)] // tables of expected rows

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::Connection;

use super::*;
use crate::calendar::floor_to;
use crate::rollup::{Agg, bucket_of};

const MIN: i64 = 60_000;

fn test_opts() -> StoreOptions {
    StoreOptions {
        prune_interval: None,
        flush_interval: Duration::from_millis(20),
        ..Default::default()
    }
}

fn rec(sensor: &str, at_ms: i64, status: Status, latency_us: u64, interval_ms: u64) -> CheckRecord {
    CheckRecord {
        sensor: sensor.into(),
        at_ms,
        status,
        latency_us,
        interval_ms,
        ..Default::default()
    }
}

/// Deterministic PRNG (splitmix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn all_rollups(conn: &Connection, g: Granularity) -> BTreeMap<(String, i64), Agg> {
    let table = match g {
        Granularity::Hour => "rollup_hour",
        Granularity::Day => "rollup_day",
    };
    let sql = format!(
        "SELECT s.name, d.start_ms, {} FROM {table} d JOIN sensors s ON s.id = d.sensor_id",
        rollup::AGG_COLUMNS
    );
    let mut q = conn.prepare(&sql).unwrap();
    q.query_map([], |r| {
        Ok(((r.get(0)?, r.get(1)?), rollup::agg_from_row(r, 2)?))
    })
    .unwrap()
    .map(|r| r.unwrap())
    .collect()
}

/// Every raw result in the file, plain rows and block entries alike, as
/// `(sensor, at_ms, status column, latency_us)` by sensor and time.
fn raw_rows(conn: &Connection) -> Vec<(String, i64, i64, u64)> {
    let mut out: Vec<(String, i64, i64, u64)> = conn
        .prepare(
            "SELECT s.name, r.at_ms, r.status, r.latency_us FROM results r JOIN sensors s ON s.id = r.sensor_id",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? as u64))
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let blocks: Vec<(String, i64, i64, i64, Vec<u8>)> = conn
        .prepare(
            "SELECT s.name, b.first_ms, b.last_ms, b.n, b.data FROM result_blocks b JOIN sensors s ON s.id = b.sensor_id",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    for (name, first, last, n, data) in blocks {
        let rows = crate::blocks::Block::decode(first, &data).unwrap();
        assert_eq!(rows.len() as i64, n, "block count column");
        assert_eq!((rows[0].at_ms, rows.last().unwrap().at_ms), (first, last));
        out.extend(
            rows.into_iter()
                .map(|r| (name.clone(), r.at_ms, r.status, r.latency_us as u64)),
        );
    }
    out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    out
}

/// Brute-force rollups from the raw rows: for every sensor, walk its rows in
/// time order; a row's coverage is `[t_i, min(t_{i+1}, t_i + cap))` and its
/// share of each bucket is the overlap of that interval with the bucket.
fn brute_force(
    conn: &Connection,
    caps: &HashMap<String, i64>,
    g: Granularity,
) -> (
    BTreeMap<(String, i64), Agg>,
    BTreeMap<(String, i64), Vec<u64>>,
) {
    let size = rollup::bucket_size(g);
    let rows = raw_rows(conn);
    let mut out: BTreeMap<(String, i64), Agg> = BTreeMap::new();
    let mut lat: BTreeMap<(String, i64), Vec<u64>> = BTreeMap::new();
    let mut i = 0;
    while i < rows.len() {
        let name = rows[i].0.clone();
        let mut j = i;
        while j < rows.len() && rows[j].0 == name {
            j += 1;
        }
        let s = &rows[i..j];
        let cap = caps[&name];
        let mut in_outage = false;
        let mut outage_down = 0i64;
        for k in 0..s.len() {
            let (_, t, code, latency) = s[k];
            let maint = code & 4 != 0;
            let status = Status::from_code(code & 3).unwrap();
            let down = !maint && status.is_failure();
            let b = floor_to(t, size);
            let a = out.entry((name.clone(), b)).or_default();
            if maint {
                a.maint_checks += 1;
            } else {
                a.checks += 1;
                a.failures += status.is_failure() as u64;
                a.warnings += (status == Status::Warn) as u64;
                a.lat_sum += latency;
                lat.entry((name.clone(), b)).or_default().push(latency);
            }
            // Outage bookkeeping at this row (its own coverage comes later).
            if down && !in_outage {
                in_outage = true;
                outage_down = 0;
                out.get_mut(&(name.clone(), b)).unwrap().outages += 1;
            } else if !down && in_outage {
                in_outage = false;
                let a = out.get_mut(&(name.clone(), b)).unwrap();
                a.recoveries += 1;
                a.recovery_ms += outage_down;
            }
            // Coverage of this row, known from the next row.
            if let Some(next) = s.get(k + 1) {
                let (from, to) = (t, next.1.min(t + cap));
                let mut bs = floor_to(from, size);
                while bs < to {
                    let overlap = to.min(bs + size) - from.max(bs);
                    if overlap > 0 {
                        let a = out.entry((name.clone(), bs)).or_default();
                        if maint {
                            a.maint_ms += overlap;
                        } else if down {
                            a.down_ms += overlap;
                        } else {
                            a.up_ms += overlap;
                        }
                    }
                    bs += size;
                }
                if down {
                    outage_down += to - from;
                }
            }
        }
        i = j;
    }
    for (k, v) in &lat {
        let a = out.get_mut(k).unwrap();
        a.lat_min = *v.iter().min().unwrap();
        a.lat_max = *v.iter().max().unwrap();
        for &l in v {
            a.hist.add(bucket_of(l));
        }
    }
    (out, lat)
}

#[test]
fn rollups_match_brute_force() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.db");
    let opts = StoreOptions {
        batch_max: 37,
        ..test_opts()
    };
    let mut rng = Rng(0x5EED_0001);
    // (name, interval ms; 0 = unknown → default gap)
    let sensors: &[(&str, u64)] = &[
        ("a", 10_000),
        ("b", 30_000),
        ("c", 60_000),
        ("d", 300_000),
        ("e", 0),
        ("f", 45_000),
    ];
    let default_gap = ms(opts.default_max_gap);
    let caps: HashMap<String, i64> = sensors
        .iter()
        .map(|&(n, i)| (n.to_owned(), rollup::cap_ms(i, default_gap)))
        .collect();
    let start = utc_ms(2024, 3, 30).unwrap() + 22 * HOUR_MS + 17 * MIN + 123; // crosses a month boundary
    let end = start + 3 * DAY_MS;
    let mut all = Vec::new();
    for &(name, interval) in sensors {
        let step = if interval == 0 {
            40_000
        } else {
            interval as i64
        };
        let mut t = start + rng.below(step as u64) as i64;
        let mut down = false;
        let mut maint_left = 0;
        while t < end {
            if rng.chance(3) {
                down = !down;
            }
            if maint_left == 0 && rng.chance(1) {
                maint_left = 3 + rng.below(15);
            }
            let status = if down {
                if rng.chance(50) {
                    Status::Fail
                } else {
                    Status::Error
                }
            } else if rng.chance(5) {
                Status::Warn
            } else {
                Status::Ok
            };
            let latency = 10u64.pow(2 + rng.below(5) as u32) + rng.below(1000);
            let mut r = rec(name, t, status, latency, interval);
            r.in_maintenance = maint_left > 0;
            maint_left = maint_left.saturating_sub(1);
            r.message = match rng.below(10) {
                0 => format!("unique {}", rng.next()),
                1..=3 => String::new(),
                n => format!("msg {n}"),
            };
            if rng.chance(20) {
                r.metrics = vec![
                    ("rtt".into(), rng.below(500) as f64),
                    ("ratio".into(), 0.25),
                ];
            }
            all.push(r.clone());
            if rng.chance(1) {
                all.push(r); // duplicate: must be ignored
            }
            // Jittered interval, sometimes a long gap (agent stopped).
            let jitter = rng.below((step / 5) as u64 + 1) as i64 - step / 10;
            t += step + jitter;
            if rng.chance(1) {
                t += step * (3 + rng.below(40) as i64);
            }
        }
    }
    all.sort_by_key(|r| r.at_ms);
    // A maintenance window the writer applies by itself.
    let win = (start + DAY_MS, start + DAY_MS + 2 * HOUR_MS);
    let half = all.len() / 2;
    {
        let store = Store::open(&path, opts.clone()).unwrap();
        store.add_maintenance("c", win.0, win.1, "upgrade").unwrap();
        for (i, r) in all[..half].iter().enumerate() {
            store.record_blocking(r.clone()).unwrap();
            if i % 1000 == 0 {
                store.flush().unwrap();
            }
        }
        store.close().unwrap();
    }
    // Reopen half-way: stream positions and open outages come from the file.
    let store = Store::open(&path, opts).unwrap();
    for r in &all[half..] {
        store.record_blocking(r.clone()).unwrap();
    }
    store.flush().unwrap();
    let st = store.stats();
    assert_eq!(st.committed + st.duplicates, st.queued);
    assert!(st.duplicates > 0);

    let conn = Connection::open(&path).unwrap();
    let flagged = raw_rows(&conn)
        .iter()
        .filter(|(s, t, code, _)| s == "c" && *t >= win.0 && *t < win.1 && code & 4 == 0)
        .count();
    assert_eq!(
        flagged, 0,
        "results in the window are flagged as maintenance"
    );
    for g in [Granularity::Hour, Granularity::Day] {
        let got = all_rollups(&conn, g);
        let (want, lat) = brute_force(&conn, &caps, g);
        assert_eq!(got.len(), want.len(), "{g:?}: bucket sets differ");
        for (k, w) in &want {
            let gv = got.get(k).unwrap_or_else(|| panic!("{g:?} {k:?} missing"));
            assert_eq!(gv, w, "{g:?} {k:?}");
            if let Some(v) = lat.get(k) {
                let mut v = v.clone();
                v.sort();
                let exact = v[(95 * v.len()).div_ceil(100) - 1];
                let l = gv.latency().unwrap();
                assert_eq!(bucket_of(l.p95_us), bucket_of(exact), "{g:?} {k:?} p95");
                assert!(l.min_us <= l.p95_us && l.p95_us <= l.max_us);
            }
        }
        // The figures are not trivial.
        let tot = want.values().fold(Agg::default(), |mut a, w| {
            a.down_ms += w.down_ms;
            a.maint_ms += w.maint_ms;
            a.outages += w.outages;
            a
        });
        assert!(
            tot.down_ms > 0 && tot.maint_ms > 0 && tot.outages > 10,
            "{tot:?}"
        );
    }
    assert_eq!(
        store.reader().integrity_check().unwrap(),
        vec!["ok".to_owned()]
    );
}

/// A hand-made history for sensor `api` (interval 60 s, so a result covers
/// up to 2 min) with results every minute from Mon 2024-01-29 00:00 to Tue
/// 2024-02-06 00:00 UTC, and:
/// * outage A: failing 2024-01-31 23:50 .. 02-01 00:09 (20 results; one
///   `Error`), recovered at 00:10 — crosses a day and month boundary;
/// * outage C: failing 02-02 12:00 .. 12:29, with a maintenance window
///   12:10-12:20 → outage C1 12:00-12:10, maintenance, outage C2 12:20-12:30;
/// * gap: no results between 02-03 05:59 and 08:00 → 05:59 covers 2 min,
///   06:01-08:00 (119 min) is unknown;
/// * outage B: failing 02-04 23:55 .. 02-05 00:04, recovered at 00:05 —
///   crosses the ISO week boundary (Sun → Mon);
/// * one `Warn` on 01-30 10:00 (up).
#[test]
fn sla_fixture_matches_hand_computed_values() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("o.db"), test_opts()).unwrap();
    let d = |m: i8, day: i8| utc_ms(2024, m, day).unwrap();
    let hm = |h: i64, m: i64| h * HOUR_MS + m * MIN;
    let failing = [
        (d(1, 31) + hm(23, 50), d(2, 1) + hm(0, 10)),
        (d(2, 2) + hm(12, 0), d(2, 2) + hm(12, 30)),
        (d(2, 4) + hm(23, 55), d(2, 5) + hm(0, 5)),
    ];
    let gap = (d(2, 3) + hm(5, 59), d(2, 3) + hm(8, 0)); // exclusive on both ends
    store
        .add_maintenance("api", d(2, 2) + hm(12, 10), d(2, 2) + hm(12, 20), "deploy")
        .unwrap();
    let mut t = d(1, 29);
    while t <= d(2, 6) {
        if !(t > gap.0 && t < gap.1) {
            let status = if t == d(2, 1) + hm(0, 5) {
                Status::Error
            } else if failing.iter().any(|&(a, b)| t >= a && t < b) {
                Status::Fail
            } else if t == d(1, 30) + hm(10, 0) {
                Status::Warn
            } else {
                Status::Ok
            };
            store
                .record_blocking(rec("api", t, status, 1000, 60_000))
                .unwrap();
            // A second sensor, always up, every 10 minutes.
            if t % (10 * MIN) == 0 {
                store
                    .record_blocking(rec("db", t, Status::Ok, 500, 600_000))
                    .unwrap();
            }
        }
        t += MIN;
    }
    store.flush().unwrap();

    let q = |period, from, to| {
        store
            .sla(&SlaQuery {
                sensor: Some("api".into()),
                period,
                from_ms: from,
                to_ms: to,
            })
            .unwrap()
    };
    let pct = |up: i64, down: i64| Some(up as f64 * 100.0 / (up + down) as f64);

    // ---- days ----
    let days = q(Period::Day, d(1, 29), d(2, 7));
    assert_eq!(days.len(), 9);
    // (day, checks, failures, up min, down min, maintenance min, outages, recoveries, MTTR min)
    #[rustfmt::skip]
    let want: [(i8, i8, u64, u64, i64, i64, i64, u64, u64, Option<i64>); 9] = [
        (1, 29, 1440, 0, 1440, 0, 0, 0, 0, None),
        (1, 30, 1440, 0, 1440, 0, 0, 0, 0, None),          // the Warn is up
        (1, 31, 1440, 10, 1430, 10, 0, 1, 0, None),        // A starts 23:50
        (2, 1, 1440, 10, 1430, 10, 0, 0, 1, Some(20)),     // A ends 00:10 after 20 min
        (2, 2, 1430, 20, 1410, 20, 10, 2, 2, Some(10)),    // 10 results in maintenance; C1, C2
        (2, 3, 1320, 0, 1440 - 119, 0, 0, 0, 0, None),     // 1440 - 120 results; 119 min unknown
        (2, 4, 1440, 5, 1435, 5, 0, 1, 0, None),           // B starts 23:55
        (2, 5, 1440, 5, 1435, 5, 0, 0, 1, Some(10)),       // B ends 00:05
        (2, 6, 1, 0, 0, 0, 0, 0, 0, None),                 // last result, coverage pending
    ];
    for (row, w) in days.iter().zip(want) {
        let (m, day, checks, failures, up, down, maint, outages, recoveries, mttr) = w;
        assert_eq!(row.sensor, "api");
        assert_eq!(
            (row.period_start_ms, row.period_end_ms),
            (d(m, day), d(m, day) + DAY_MS)
        );
        assert_eq!((row.checks, row.failures), (checks, failures), "{m}-{day}");
        assert_eq!(
            (row.observed_ms, row.downtime_ms),
            ((up + down) * MIN, down * MIN),
            "{m}-{day}"
        );
        assert_eq!(row.maintenance_ms, maint * MIN, "{m}-{day}");
        assert_eq!(
            (row.outages, row.recoveries),
            (outages, recoveries),
            "{m}-{day}"
        );
        assert_eq!(row.mttr_ms, mttr.map(|v| v * MIN), "{m}-{day}");
        assert_eq!(
            row.uptime_pct,
            if up + down == 0 { None } else { pct(up, down) },
            "{m}-{day}"
        );
    }
    assert_eq!(days[2].uptime_pct, Some(1430.0 * 100.0 / 1440.0));

    // ---- ISO weeks: Mon 01-29 .. Sun 02-04, Mon 02-05 .. ----
    let weeks = q(Period::Week, d(2, 1), d(2, 6)); // aligned to whole weeks
    assert_eq!(weeks.len(), 2);
    let (w1, w2) = (&weeks[0], &weeks[1]);
    assert_eq!((w1.period_start_ms, w1.period_end_ms), (d(1, 29), d(2, 5)));
    assert_eq!(w1.checks, 1440 * 4 + 1430 + 1320 + 1440);
    assert_eq!(w1.failures, 10 + 10 + 20 + 5);
    let up1 = 1440 + 1440 + 1430 + 1430 + 1410 + 1321 + 1435;
    let down1 = 10 + 10 + 20 + 5;
    assert_eq!(up1, 9906);
    assert_eq!(
        (w1.observed_ms, w1.downtime_ms),
        ((up1 + down1) * MIN, down1 * MIN)
    );
    assert_eq!(w1.uptime_pct, pct(up1, down1)); // 99.548 %
    assert!((w1.uptime_pct.unwrap() - 99.547_784).abs() < 1e-6);
    assert_eq!(w1.maintenance_ms, 10 * MIN);
    assert_eq!(w1.outages, 4); // A, C1, C2, B started
    assert_eq!(w1.recoveries, 3); // A, C1, C2 ended
    assert_eq!(w1.mttr_ms, Some((20 + 10 + 10) * MIN / 3)); // 13 min 20 s
    assert_eq!(w1.mttr_ms, Some(800_000));
    assert_eq!(
        (w2.period_start_ms, w2.checks, w2.failures, w2.downtime_ms),
        (d(2, 5), 1441, 5, 5 * MIN)
    );
    assert_eq!(w2.uptime_pct, pct(1435, 5));
    assert_eq!(
        (w2.outages, w2.recoveries, w2.mttr_ms),
        (0, 1, Some(10 * MIN))
    );

    // ---- months ----
    let months = q(Period::Month, d(1, 15), d(2, 10));
    assert_eq!(months.len(), 2);
    let (jan, feb) = (&months[0], &months[1]);
    assert_eq!((jan.period_start_ms, jan.period_end_ms), (d(1, 1), d(2, 1)));
    assert_eq!((jan.checks, jan.failures), (3 * 1440, 10));
    assert_eq!(
        (jan.observed_ms, jan.downtime_ms),
        (3 * 1440 * MIN, 10 * MIN)
    );
    assert_eq!(jan.uptime_pct, pct(4310, 10)); // 99.769 %
    assert_eq!((jan.outages, jan.recoveries, jan.mttr_ms), (1, 0, None));
    assert_eq!((feb.period_start_ms, feb.period_end_ms), (d(2, 1), d(3, 1)));
    assert_eq!(feb.checks, 1440 + 1430 + 1320 + 1440 + 1440 + 1);
    assert_eq!(feb.failures, 10 + 20 + 5 + 5);
    let up_feb = 1430 + 1410 + 1321 + 1435 + 1435;
    assert_eq!(
        (feb.observed_ms, feb.downtime_ms),
        ((up_feb + 40) * MIN, 40 * MIN)
    );
    assert_eq!(feb.uptime_pct, pct(up_feb, 40)); // 99.434 %
    assert_eq!(feb.maintenance_ms, 10 * MIN);
    assert_eq!((feb.outages, feb.recoveries), (3, 4)); // C1, C2, B start; A, C1, C2, B end
    assert_eq!(feb.mttr_ms, Some((20 + 10 + 10 + 10) * MIN / 4)); // 12.5 min

    // All sensors: api and db, every month each.
    let both = store
        .sla(&SlaQuery {
            sensor: None,
            period: Period::Month,
            from_ms: d(1, 1),
            to_ms: d(3, 1),
        })
        .unwrap();
    assert_eq!(
        both.iter().map(|r| r.sensor.as_str()).collect::<Vec<_>>(),
        ["api", "api", "db", "db"]
    );
    assert_eq!(&both[..2], &months[..]);
    assert_eq!(both[2].uptime_pct, Some(100.0));
    assert_eq!(both[2].checks, 3 * 144);
    // Unknown sensor, empty range.
    assert!(
        store
            .sla(&SlaQuery {
                sensor: Some("nope".into()),
                period: Period::Day,
                from_ms: 0,
                to_ms: DAY_MS
            })
            .unwrap()
            .is_empty()
    );
    assert!(q(Period::Day, d(2, 1), d(2, 1)).is_empty());

    // 90-day bar: None where there is no data.
    let bar = store
        .reader()
        .daily_uptime_at("api", 90, d(2, 6) + HOUR_MS)
        .unwrap();
    assert_eq!(bar.len(), 90);
    assert_eq!(bar[89].0, d(2, 6));
    assert_eq!(bar[89].1, None);
    assert_eq!(bar[88], (d(2, 5), pct(1435, 5)));
    assert_eq!(bar[80], (d(1, 28), None));
    assert_eq!(bar[81], (d(1, 29), Some(100.0)));

    // Hourly rollups of the maintenance hour.
    let h = store
        .rollups(
            "api",
            Granularity::Hour,
            d(2, 2) + hm(12, 0),
            d(2, 2) + hm(13, 0),
        )
        .unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(
        (h[0].checks, h[0].maintenance_checks, h[0].failures),
        (50, 10, 20)
    );
    assert_eq!(
        (h[0].up_ms, h[0].down_ms, h[0].maintenance_ms),
        (30 * MIN, 20 * MIN, 10 * MIN)
    );
    assert_eq!(h[0].latency.unwrap().p95_us, 1000);
}

#[test]
fn retention_prunes_raw_rows_in_batches_and_keeps_rollups() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        prune_batch: 50,
        ..test_opts()
    };
    let store = Store::open(dir.path().join("o.db"), opts).unwrap();
    let t0 = utc_ms(2024, 5, 1).unwrap();
    let step = 10 * MIN;
    let n_per_sensor = (10 * DAY_MS / step) as usize; // 10 days
    for i in 0..n_per_sensor {
        let t = t0 + i as i64 * step;
        for s in ["a", "b", "c"] {
            let mut r = rec(
                s,
                t,
                if i % 7 == 0 { Status::Fail } else { Status::Ok },
                100,
                step as u64,
            );
            // One message per day: old days' messages must go with their results.
            r.message = format!("day {}", (t - t0) / DAY_MS);
            store.record_blocking(r).unwrap();
        }
    }
    store
        .record_transition(Transition {
            sensor: "a".into(),
            at_ms: t0,
            from: "up".into(),
            to: "down".into(),
            reason: "x".into(),
        })
        .unwrap();
    store.flush().unwrap();
    let now = t0 + 10 * DAY_MS;
    let conn = Connection::open(store.path()).unwrap();
    let hourly_before = all_rollups(&conn, Granularity::Hour);
    let daily_before = all_rollups(&conn, Granularity::Day);
    let total = store.reader().raw_count(None).unwrap();
    assert_eq!(total, 3 * n_per_sensor as u64);

    let tx_before = store.stats().transactions;
    let stats = store.prune(now).unwrap();
    let cutoff = now - 7 * DAY_MS;
    let expired = 3 * ((cutoff - t0) / step) as u64; // 3 days of results
    assert_eq!(stats.results, expired);
    // "day 0" and "day 1" go; "day 2" was last used at 3d - 10 min and is
    // kept by the 1 h touch slack (MESSAGE_TOUCH_SLACK_MS) like any message
    // used within an hour of the cutoff.
    assert_eq!(stats.messages, 2);
    assert_eq!((stats.hourly, stats.daily), (0, 0));
    assert!(stats.batches as u64 >= expired / 50, "{stats:?}");
    assert!(store.stats().transactions - tx_before >= expired / 50);
    assert_eq!(store.reader().raw_count(None).unwrap(), total - expired);
    let oldest = raw_rows(&conn).iter().map(|r| r.1).min().unwrap();
    assert_eq!(oldest, cutoff);
    assert_eq!(all_rollups(&conn, Granularity::Hour), hourly_before);
    assert_eq!(all_rollups(&conn, Granularity::Day), daily_before);
    // History still reads messages of retained rows.
    let h = store.history("a", 0, 1_000_000).unwrap();
    assert_eq!(
        h.len(),
        n_per_sensor - (cutoff - t0) as usize / step as usize
    );
    assert_eq!(h.last().unwrap().message, "day 3");
    // A second run finds nothing.
    assert_eq!(store.prune(now).unwrap().results, 0);
    // Recording continues (message cache was reset, "day 9" is re-interned).
    let mut r = rec("a", now, Status::Ok, 1, 0);
    r.message = "day 9".into();
    store.record_blocking(r).unwrap();
    store.flush().unwrap();
    assert_eq!(store.history("a", now, 1).unwrap()[0].message, "day 9");

    // Rollup retention: 400 days later, everything but the buckets
    // overlapping the last 400 days is gone.
    let later = now + 400 * DAY_MS - 2 * DAY_MS;
    let daily_before = all_rollups(&conn, Granularity::Day);
    let stats = store.prune(later).unwrap();
    assert_eq!(stats.results as usize, 3 * (n_per_sensor - 3 * 144) + 1);
    let rollup_cutoff = later - 400 * DAY_MS;
    let want_days = daily_before
        .keys()
        .filter(|(_, s)| s + DAY_MS > rollup_cutoff)
        .count();
    assert_eq!(all_rollups(&conn, Granularity::Day).len(), want_days);
    assert!(
        stats.daily > 0 && stats.hourly > 0 && stats.other == 1,
        "{stats:?}"
    );
    assert!(
        all_rollups(&conn, Granularity::Hour)
            .keys()
            .all(|(_, s)| s + HOUR_MS > rollup_cutoff)
    );
    assert_eq!(store.reader().integrity_check().unwrap(), ["ok"]);
}

#[test]
fn reader_sees_committed_data_while_writer_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.db");
    let store = Store::open(&path, test_opts()).unwrap();
    let committed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, committed, stop) = (store.clone(), committed.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0i64;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..200 {
                    store
                        .record_blocking(rec("w", 1_000_000 + i, Status::Ok, 5, 1))
                        .unwrap();
                    i += 1;
                }
                store
                    .upsert_sensor_state(SensorState {
                        sensor: "w".into(),
                        state: "up".into(),
                        last_check_ms: Some(1_000_000 + i - 1),
                        ..Default::default()
                    })
                    .unwrap();
                store.flush().unwrap();
                committed.store(i as u64, Ordering::Release);
            }
        })
    };
    // A separate Reader, as another process would open it.
    let reader = Reader::open(&path).unwrap();
    let mut checks = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let mut last_seen = 0;
    while std::time::Instant::now() < deadline {
        let c = committed.load(Ordering::Acquire);
        let n = reader.raw_count(Some("w")).unwrap();
        assert!(n >= c, "reader saw {n} < committed {c}");
        last_seen = last_seen.max(n);
        if c > 0 {
            let h = reader.history("w", 0, 1).unwrap();
            assert!(h[0].at_ms >= 1_000_000 + c as i64 - 1);
            let s = reader.sensor_states().unwrap();
            assert!(s[0].last_check_ms.unwrap() >= 1_000_000 + c as i64 - 1);
            checks += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(
        checks > 10 && last_seen > 1000,
        "checks {checks}, rows {last_seen}"
    );
}

#[test]
fn history_messages_metrics_and_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("o.db"), test_opts()).unwrap();
    let mut a = rec("web", 1000, Status::Warn, 1_500, 0);
    a.message = "slow".into();
    a.metrics = vec![("bytes".into(), 512.0), ("ratio".into(), 0.1)];
    let mut b = rec("web", 2000, Status::Fail, 2_500, 0);
    b.message = "slow".into();
    b.in_maintenance = true;
    store.record(a.clone()).unwrap();
    store.record(b.clone()).unwrap();
    store.record(rec("web", 3000, Status::Ok, 7, 0)).unwrap();
    let mut dup = a.clone();
    dup.status = Status::Error;
    store.record(dup).unwrap(); // same sensor and ms: ignored
    assert!(matches!(
        store.record(rec("", 1, Status::Ok, 0, 0)),
        Err(StoreError::Invalid(_))
    ));
    store.flush().unwrap();
    let h = store.history("web", 0, 10).unwrap();
    assert_eq!(
        h.iter().map(|r| r.at_ms).collect::<Vec<_>>(),
        [3000, 2000, 1000]
    );
    assert_eq!(h[2].status, Status::Warn);
    assert_eq!(h[2].message, "slow");
    assert_eq!(h[2].metrics, a.metrics);
    assert_eq!(
        (h[1].status, h[1].in_maintenance, h[1].latency_us),
        (Status::Fail, true, 2_500)
    );
    assert_eq!((h[0].message.as_str(), h[0].metrics.len()), ("", 0));
    assert_eq!(store.history("web", 2000, 1).unwrap()[0].at_ms, 3000);
    assert_eq!(store.history("web", 2000, 10).unwrap().len(), 2);
    assert!(store.history("nope", 0, 10).unwrap().is_empty());
    let st = store.stats();
    assert_eq!((st.queued, st.committed, st.duplicates), (4, 3, 1));
    let conn = Connection::open(store.path()).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1, "messages are interned");
}

#[test]
fn transitions_and_sensor_states() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("o.db"), test_opts()).unwrap();
    let tr = |s: &str, at, from: &str, to: &str| Transition {
        sensor: s.into(),
        at_ms: at,
        from: from.into(),
        to: to.into(),
        reason: format!("{from}->{to}"),
    };
    store
        .record_transition(tr("web", 100, "unknown", "up"))
        .unwrap();
    store
        .record_transition(tr("web", 200, "up", "down"))
        .unwrap();
    store
        .record_transition(tr("db", 150, "unknown", "up"))
        .unwrap();
    let st = SensorState {
        sensor: "web".into(),
        state: "down".into(),
        since_ms: 200,
        last_check_ms: Some(260),
        last_status: Some(Status::Error),
        last_message: "timeout".into(),
        last_latency_us: Some(5_000_000),
        consecutive_failures: 3,
        consecutive_successes: 0,
        flapping: true,
        updated_ms: 261,
    };
    store
        .upsert_sensor_state(SensorState {
            consecutive_failures: 2,
            ..st.clone()
        })
        .unwrap();
    store.upsert_sensor_state(st.clone()).unwrap(); // latest wins
    store
        .upsert_sensor_state(SensorState {
            sensor: "gone".into(),
            ..Default::default()
        })
        .unwrap();
    store.delete_sensor_state("gone").unwrap();
    store.flush().unwrap();
    assert_eq!(
        store.transitions("web", 0).unwrap(),
        vec![
            tr("web", 200, "up", "down"),
            tr("web", 100, "unknown", "up")
        ]
    );
    assert_eq!(store.transitions("web", 150).unwrap().len(), 1);
    let cur = store.current_states().unwrap();
    assert_eq!(cur.len(), 2);
    assert_eq!(
        (
            cur[0].sensor.as_str(),
            cur[0].state.as_str(),
            cur[0].since_ms
        ),
        ("db", "up", 150)
    );
    assert_eq!(
        (
            cur[1].sensor.as_str(),
            cur[1].state.as_str(),
            cur[1].reason.as_str()
        ),
        ("web", "down", "up->down")
    );
    assert_eq!(store.sensor_states().unwrap(), vec![st]);
    assert_eq!(store.reader().sensors().unwrap(), ["db", "web"]);
}

#[test]
fn maintenance_windows_are_listed_and_validated() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("o.db"), test_opts()).unwrap();
    let id = store.add_maintenance("*", 1000, 2000, "all").unwrap();
    assert!(store.add_maintenance("x", 5, 5, "").is_err());
    let m = store.reader().maintenance(1500, 1600).unwrap();
    assert_eq!(
        m,
        vec![Maintenance {
            id,
            target: "*".into(),
            from_ms: 1000,
            to_ms: 2000,
            reason: "all".into()
        }]
    );
    assert!(store.reader().maintenance(2000, 3000).unwrap().is_empty());
    // '*' applies to every sensor.
    store.record(rec("any", 1500, Status::Fail, 1, 0)).unwrap();
    store.record(rec("any", 2000, Status::Fail, 1, 0)).unwrap();
    store.flush().unwrap();
    let h = store.history("any", 0, 10).unwrap();
    assert_eq!((h[0].in_maintenance, h[1].in_maintenance), (false, true));
}

#[test]
fn queue_full_is_reported_and_nothing_accepted_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.db");
    let opts = StoreOptions {
        queue_capacity: 2,
        batch_max: 1,
        ..test_opts()
    };
    let store = Store::open(&path, opts).unwrap();
    // Hold the write lock so the writer blocks on its first batch.
    let blocker = Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let mut accepted = 0;
    let mut full = 0;
    for i in 0..6 {
        match store.record(rec("s", i, Status::Ok, 1, 0)) {
            Ok(()) => accepted += 1,
            Err(StoreError::QueueFull { capacity: 2 }) => full += 1,
            Err(e) => panic!("{e}"),
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    assert!(
        full >= 1 && accepted >= 2,
        "accepted {accepted}, full {full}"
    );
    assert_eq!(store.stats().rejected, full);
    blocker.execute_batch("COMMIT").unwrap();
    store.flush().unwrap();
    assert_eq!(store.reader().raw_count(None).unwrap(), accepted);
}

#[test]
fn async_record_and_close() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("o.db"), test_opts()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for i in 0..100 {
            store
                .record_async(rec("s", i, Status::Ok, 1, 0))
                .await
                .unwrap();
        }
        store.flush_async().await.unwrap();
    });
    assert_eq!(store.reader().raw_count(Some("s")).unwrap(), 100);
    let other = store.clone();
    store.close().unwrap();
    assert!(matches!(
        other.record(rec("s", 500, Status::Ok, 1, 0)),
        Err(StoreError::Closed)
    ));
    assert!(matches!(other.flush(), Err(StoreError::Closed)));
    // Reads and escalation calls keep working.
    assert_eq!(other.history("s", 0, 1).unwrap()[0].at_ms, 99);
    assert!(other.unresolved_incidents().unwrap().is_empty());
    // Reopen: nothing lost.
    drop(other);
    drop(store);
    let store = Store::open(dir.path().join("o.db"), test_opts()).unwrap();
    assert_eq!(store.reader().raw_count(None).unwrap(), 100);
}

#[test]
fn escalation_through_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("o.db"), test_opts()).unwrap();
    let inc = store
        .open_incident(&NewIncident {
            target: "web".into(),
            opened_at_ms: 10,
            level: 0,
            token_hash: Some("t".into()),
            ..Default::default()
        })
        .unwrap();
    let t = store.add_timer(inc.id, "escalate", 100).unwrap();
    assert!(store.fire_timer(t).unwrap());
    let key = NewOutbox {
        incident_id: Some(inc.id),
        notifier: "email".into(),
        idempotency_key: "k".into(),
        payload: serde_json::json!({"to": "ops"}),
        next_attempt_ms: 0,
    };
    let o = store.enqueue_notification(&key).unwrap().unwrap();
    assert_eq!(store.enqueue_notification(&key).unwrap(), None);
    assert!(store.mark_failed(o, "smtp down", 50).unwrap());
    assert_eq!(store.due_notifications(40, 10).unwrap().len(), 0);
    assert_eq!(store.due_notifications(50, 10).unwrap()[0].attempts, 1);
    assert!(store.mark_delivered(o, 60).unwrap());
    assert!(store.ack_incident(inc.id, "bob", 70).unwrap());
    assert_eq!(
        store.incident_by_token("t").unwrap().unwrap().state,
        IncidentState::Acked
    );
    // Visible to another process' reader too (committed, FULL sync).
    let n: i64 = Connection::open(store.path())
        .unwrap()
        .query_row(
            "SELECT count(*) FROM outbox WHERE delivered_at_ms = 60",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
}

fn plain_and_block_counts(path: &std::path::Path) -> (i64, i64, i64) {
    let c = Connection::open(path).unwrap();
    c.query_row(
        "SELECT (SELECT count(*) FROM results), (SELECT count(*) FROM result_blocks), \
         (SELECT coalesce(sum(n), 0) FROM result_blocks)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .unwrap()
}

#[test]
fn out_of_order_results_and_duplicates_across_blocks_and_plain_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.db");
    let store = Store::open(&path, test_opts()).unwrap();
    let mut want: BTreeMap<i64, (Status, u64)> = BTreeMap::new();
    let mut add = |store: &Store, t: i64, status: Status, lat: u64| {
        let mut r = rec("a", t, status, lat, 1_000);
        r.message = format!("m{}", t % 3);
        r.metrics = vec![
            ("latency_ms".into(), lat as f64 / 1000.0),
            ("code".into(), 200.0),
        ];
        store.record_blocking(r).unwrap();
        want.entry(t).or_insert((status, lat));
    };
    for i in 0..500 {
        add(&store, i * 1_000, Status::Ok, 1_000 + i as u64);
    }
    // Same batch: out of order, new (between two results) and duplicates
    // of results still in the open block.
    add(&store, 250_500, Status::Fail, 7);
    add(&store, 499_000, Status::Error, 8); // duplicate of the newest
    add(&store, 3_000, Status::Error, 9); // duplicate of a closed block's result
    store.flush().unwrap();
    add(&store, 100_001, Status::Warn, 10);
    add(&store, 100_000, Status::Error, 11); // duplicate, in a block on file
    add(&store, 250_500, Status::Ok, 12); // duplicate of a plain row
    store.flush().unwrap();
    let st = store.stats();
    assert_eq!((st.queued, st.committed, st.duplicates), (506, 502, 4));
    store.close().unwrap();
    drop(store);
    let (plain, blocks, in_blocks) = plain_and_block_counts(&path);
    assert_eq!((plain, in_blocks), (2, 500));
    assert!(blocks >= 2, "500 results with metrics span several blocks");

    // Reopened: the open block is loaded from the file and extended.
    let store = Store::open(&path, test_opts()).unwrap();
    add(&store, 2_000, Status::Ok, 13); // duplicate
    for i in 500..520 {
        add(&store, i * 1_000, Status::Ok, 1_000 + i as u64);
    }
    store.flush().unwrap();
    assert_eq!(store.stats().duplicates, 1);
    assert_eq!(
        plain_and_block_counts(&path).1,
        blocks,
        "no new block for 20 results"
    );
    assert_eq!(
        store.reader().raw_count(Some("a")).unwrap(),
        want.len() as u64
    );

    let all = store.history("a", 0, usize::MAX).unwrap();
    let got: Vec<(i64, Status, u64)> = all
        .iter()
        .map(|r| (r.at_ms, r.status, r.latency_us))
        .collect();
    let expect: Vec<(i64, Status, u64)> =
        want.iter().rev().map(|(&t, &(s, l))| (t, s, l)).collect();
    assert_eq!(got, expect);
    for r in &all {
        assert_eq!(r.message, format!("m{}", r.at_ms % 3));
        assert_eq!(
            r.metrics,
            [
                ("latency_ms".to_string(), r.latency_us as f64 / 1000.0),
                ("code".to_string(), 200.0)
            ]
        );
    }
    // Limits and lower bounds across blocks and plain rows.
    for (since, limit) in [
        (0, 1),
        (0, 7),
        (100_000, 3),
        (100_001, 1000),
        (250_000, 2),
        (250_600, 1000),
        (519_000, 5),
        (519_001, 5),
    ] {
        let h: Vec<i64> = store
            .history("a", since, limit)
            .unwrap()
            .iter()
            .map(|r| r.at_ms)
            .collect();
        let e: Vec<i64> = want
            .keys()
            .rev()
            .copied()
            .filter(|&t| t >= since)
            .take(limit)
            .collect();
        assert_eq!(h, e, "since {since} limit {limit}");
    }
    assert_eq!(store.reader().integrity_check().unwrap(), ["ok"]);
}

#[test]
fn blocks_stay_small_and_compact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.db");
    let store = Store::open(&path, test_opts()).unwrap();
    let mut rng = Rng(5);
    let n = 5_000;
    for i in 0..n {
        let lat = 800 + rng.below(4_000);
        let failed = rng.chance(1);
        let mut r = rec(
            "web",
            i * 1_000 + rng.below(5) as i64,
            if failed { Status::Fail } else { Status::Ok },
            lat,
            1_000,
        );
        r.message = if failed {
            "HTTP 503".into()
        } else {
            "HTTP 200".into()
        };
        r.metrics = vec![
            ("latency_ms".into(), lat as f64 / 1000.0),
            ("status_code".into(), if failed { 503.0 } else { 200.0 }),
            ("body_bytes".into(), 2.0),
        ];
        store.record_blocking(r).unwrap();
    }
    store.flush().unwrap();
    let c = Connection::open(&path).unwrap();
    let (blocks, max_len, total): (i64, i64, i64) = c
        .query_row(
            "SELECT count(*), max(length(data)), sum(length(data)) FROM result_blocks",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert!(max_len as usize <= crate::blocks::BLOCK_MAX_BYTES);
    let per = total as f64 / n as f64;
    assert!(per < 6.0, "{per} bytes per result");
    assert!(blocks as f64 <= (total as f64 / (crate::blocks::BLOCK_MAX_BYTES - 20) as f64).ceil());
    let overflow: i64 = c
        .query_row(
            "SELECT count(*) FROM dbstat WHERE name = 'result_blocks' AND pagetype = 'overflow'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(overflow, 0, "blocks fit in b-tree pages");
    let h = store.history("web", 0, 3).unwrap();
    assert_eq!(h.len(), 3);
    assert!(h[0].at_ms >= (n - 1) * 1_000 && h[0].at_ms > h[1].at_ms && h[1].at_ms > h[2].at_ms);
    assert_eq!(
        store.history("web", 0, usize::MAX).unwrap().len(),
        n as usize
    );
}
