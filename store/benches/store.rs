//! Store benchmark (`cargo bench -p outpost-store --bench store`): the
//! store figures of issue 3's "Performance" section, each next to its target
//! and a baseline measured in the same run.
//!
//! 1. Raw insert rate of 200,000 HTTP-like results through `outpost_store`
//!    (writer thread, rollups maintained), and database bytes per stored
//!    result (database file + WAL after `close()`); baseline: a plain
//!    batched SQLite insert loop of the same rows into one table. Also the
//!    time of a history query (newest 100 results of one sensor) against
//!    the same query on that plain table.
//! 2. A month's SLA for one sensor from rollups (median of repeated
//!    queries); baseline: reading that month's raw results (plain rows and
//!    blocks, through `Reader::history`) and counting checks and failures.

use outpost_store::{CheckRecord, Period, SlaQuery, Status, Store, StoreOptions, utc_ms};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Results inserted for the store figures (the brief's 200k).
const STORE_RECORDS: usize = 200_000;
/// Sensors those results are spread over (1,000 sensors × 200 s at 1 s).
const STORE_SENSORS: usize = 1_000;
/// The write rate the store must sustain: 1,000 sensors at 1 s.
const SENSORS: usize = 1_000;
/// Rows per transaction of the plain SQLite baseline: the store's own
/// `batch_max` default, so both amortise commits alike.
const BASELINE_BATCH: usize = 4_096;
/// Repetitions of the SLA query (median taken).
const SLA_RUNS: usize = 200;
/// Results per history query (the newest of one sensor).
const HISTORY_LIMIT: usize = 100;

fn main() {
    let work = std::env::temp_dir().join("outpost-bench-store");
    std::fs::create_dir_all(&work).unwrap();

    println!(
        "== 1. store: {STORE_RECORDS} results of {STORE_SENSORS} sensors (HTTP-like: 4 metrics, interned messages)"
    );
    let (rate, bytes_per) = store_inserts(&work);
    let (base_rate, base_bytes) = plain_sqlite_inserts(&work);
    println!("outpost_store (with rollups): {rate:>9.0} results/s   {bytes_per:>5.1} bytes/result");
    println!(
        "plain SQLite insert loop    : {base_rate:>9.0} results/s   {base_bytes:>5.1} bytes/result (one table, no rollups)"
    );
    println!("insert-rate ratio store/plain: {:.2}", rate / base_rate);
    println!("bytes ratio store/plain: {:.2}", bytes_per / base_bytes);
    println!("target ≤ 32 bytes/result: {}", verdict(bytes_per <= 32.0));
    println!(
        "target: sustain the write rate of {SENSORS} sensors at 1 s (1,000 results/s): {}  ({:.0}x headroom)",
        verdict(rate >= 1_000.0),
        rate / 1_000.0
    );

    let (hist_ms, plain_hist_ms) = history_query(&work);
    println!(
        "history of one sensor, newest {HISTORY_LIMIT} results: median {hist_ms:.3} ms (plain SQLite table: {plain_hist_ms:.3} ms, ratio {:.2})",
        hist_ms / plain_hist_ms
    );

    println!(
        "\n== 2. a month's SLA for one sensor (1 result/min over October 2026, {SLA_RUNS} queries)"
    );
    let (sla_ms, raw_ms) = sla_query(&work);
    println!("from rollups (Store::sla)   : median {sla_ms:.3} ms");
    println!(
        "counting the month's raw results (Reader::history): median {raw_ms:.3} ms (baseline)"
    );
    println!("ratio rollups/raw: {:.3}", sla_ms / raw_ms);
    println!("target ≤ 10 ms: {}", verdict(sla_ms <= 10.0));
}

fn verdict(ok: bool) -> &'static str {
    if ok { "MET" } else { "MISSED" }
}

/// A small deterministic generator (no dependency, same rows every run).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// The results of [`STORE_SENSORS`] HTTP sensors at 1 s: mostly ok with
/// varying latency, 1 % failures.
fn http_like_records() -> Vec<CheckRecord> {
    let base = utc_ms(2026, 11, 30).unwrap();
    let mut rng = Lcg(42);
    let per_sensor = STORE_RECORDS / STORE_SENSORS;
    let mut out = Vec::with_capacity(STORE_RECORDS);
    for tick in 0..per_sensor as i64 {
        for s in 0..STORE_SENSORS {
            let latency_us = 800 + rng.next() % 4_000;
            let failed = rng.next().is_multiple_of(100);
            out.push(CheckRecord {
                sensor: format!("s{s:05}"),
                at_ms: base + tick * 1_000 + (s as i64 * 997) % 1_000,
                status: if failed { Status::Fail } else { Status::Ok },
                latency_us,
                message: if failed {
                    "HTTP 503, expected 2xx".into()
                } else {
                    "HTTP 200".into()
                },
                metrics: vec![
                    ("latency_ms".into(), latency_us as f64 / 1000.0),
                    ("status_code".into(), if failed { 503.0 } else { 200.0 }),
                    ("body_bytes".into(), 2.0),
                    ("redirects".into(), 0.0),
                ],
                in_maintenance: false,
                interval_ms: 1_000,
            });
        }
    }
    out
}

fn file_bytes(db: &Path) -> u64 {
    ["", "-wal"]
        .iter()
        .map(|s| std::fs::metadata(format!("{}{s}", db.display())).map_or(0, |m| m.len()))
        .sum()
}

fn fresh(path: PathBuf) -> PathBuf {
    for s in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{s}", path.display()));
    }
    path
}

fn store_options() -> StoreOptions {
    StoreOptions {
        // The rows are in the past; retention would delete them mid-run.
        prune_interval: None,
        ..StoreOptions::default()
    }
}

/// Insert rate through the store and bytes per result once closed.
fn store_inserts(work: &Path) -> (f64, f64) {
    let db = fresh(work.join("store.db"));
    let records = http_like_records();
    let store = Store::open(&db, store_options()).unwrap();
    let t = Instant::now();
    for r in records {
        store.record_blocking(r).unwrap();
    }
    store.flush().unwrap();
    let rate = STORE_RECORDS as f64 / t.elapsed().as_secs_f64();
    store.close().unwrap();
    drop(store);
    (rate, file_bytes(&db) as f64 / STORE_RECORDS as f64)
}

/// Median time of `Reader::history` for the newest [`HISTORY_LIMIT`]
/// results of one sensor in the store written by [`store_inserts`], and of
/// the same query on the plain SQLite table of [`plain_sqlite_inserts`] (ms).
fn history_query(work: &Path) -> (f64, f64) {
    let reader = outpost_store::Reader::open(work.join("store.db")).unwrap();
    let mut times = Vec::with_capacity(SLA_RUNS);
    for i in 0..SLA_RUNS {
        let sensor = format!("s{:05}", i * 7 % STORE_SENSORS);
        let t = Instant::now();
        let h = reader.history(&sensor, 0, HISTORY_LIMIT).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(h.len(), HISTORY_LIMIT);
    }
    let c = rusqlite::Connection::open(work.join("plain.db")).unwrap();
    let mut plain = Vec::with_capacity(SLA_RUNS);
    for i in 0..SLA_RUNS {
        let sensor = format!("s{:05}", i * 7 % STORE_SENSORS);
        let t = Instant::now();
        let mut q = c
            .prepare_cached(
                "SELECT at_ms, status, latency_us, message, metrics FROM results \
                 WHERE sensor = ?1 AND at_ms >= 0 ORDER BY at_ms DESC LIMIT ?2",
            )
            .unwrap();
        let rows: Vec<(i64, i64, i64, String, String)> = q
            .query_map(rusqlite::params![sensor, HISTORY_LIMIT as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        plain.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(rows.len(), HISTORY_LIMIT);
    }
    (median(&mut times), median(&mut plain))
}

/// The same rows with a plain prepared INSERT in batched transactions.
fn plain_sqlite_inserts(work: &Path) -> (f64, f64) {
    let db = fresh(work.join("plain.db"));
    let records = http_like_records();
    let mut c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
         CREATE TABLE results(sensor TEXT NOT NULL, at_ms INTEGER NOT NULL, status INTEGER NOT NULL,
                              latency_us INTEGER NOT NULL, message TEXT NOT NULL, metrics TEXT NOT NULL,
                              PRIMARY KEY(sensor, at_ms)) WITHOUT ROWID;",
    )
    .unwrap();
    let t = Instant::now();
    for chunk in records.chunks(BASELINE_BATCH) {
        let tx = c.transaction().unwrap();
        {
            let mut st = tx
                .prepare_cached("INSERT INTO results VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
                .unwrap();
            for r in chunk {
                let metrics: String = r.metrics.iter().map(|(k, v)| format!("{k}={v};")).collect();
                st.execute(rusqlite::params![
                    r.sensor,
                    r.at_ms,
                    r.status as i64,
                    r.latency_us as i64,
                    r.message,
                    metrics
                ])
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let rate = STORE_RECORDS as f64 / t.elapsed().as_secs_f64();
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
    drop(c);
    (rate, file_bytes(&db) as f64 / STORE_RECORDS as f64)
}

/// Median time of a month's SLA for one sensor, and of counting the raw
/// rows of that month (ms).
fn sla_query(work: &Path) -> (f64, f64) {
    let db = fresh(work.join("sla.db"));
    let store = Store::open(&db, store_options()).unwrap();
    let (from, to) = (utc_ms(2026, 10, 1).unwrap(), utc_ms(2026, 11, 1).unwrap());
    let mut rng = Lcg(7);
    let mut at = from;
    while at < to {
        // Two short outages a day on average.
        let failed = rng.next().is_multiple_of(720);
        store
            .record_blocking(CheckRecord {
                sensor: "web".into(),
                at_ms: at,
                status: if failed { Status::Fail } else { Status::Ok },
                latency_us: 1_000 + rng.next() % 5_000,
                message: String::new(),
                metrics: vec![],
                in_maintenance: false,
                interval_ms: 60_000,
            })
            .unwrap();
        at += 60_000;
    }
    store.flush().unwrap();
    let q = SlaQuery {
        sensor: Some("web".into()),
        period: Period::Month,
        from_ms: from,
        to_ms: to,
    };
    let rows = store.sla(&q).unwrap();
    assert_eq!(rows.len(), 1, "one month");
    let mut times = Vec::with_capacity(SLA_RUNS);
    for _ in 0..SLA_RUNS {
        let t = Instant::now();
        std::hint::black_box(store.sla(&q).unwrap());
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    // Baseline: read the month's raw results (plain rows and blocks, as
    // `Reader::history` returns them) and count checks and failures.
    let mut raw = Vec::with_capacity(SLA_RUNS);
    for _ in 0..SLA_RUNS {
        let t = Instant::now();
        let rows = store.history("web", from, usize::MAX).unwrap();
        let n = rows.iter().filter(|r| r.at_ms < to).count()
            + rows
                .iter()
                .filter(|r| r.at_ms < to && r.status.is_failure())
                .count();
        std::hint::black_box(n);
        raw.push(t.elapsed().as_secs_f64() * 1e3);
    }
    store.close().unwrap();
    drop(store);
    (median(&mut times), median(&mut raw))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
