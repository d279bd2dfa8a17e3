//! Schema migrations (`PRAGMA user_version`) and connection setup.
//!
//! Migration `N` (1-based) is `MIGRATIONS[N - 1]`; a database at version `v`
//! gets migrations `v+1..=SCHEMA_VERSION` applied in one `BEGIN IMMEDIATE`
//! transaction, so two processes opening a fresh file cannot both migrate it
//! and a crash mid-migration leaves the old version intact. Migrations are
//! append-only: never edit a released one, add the next.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::{Result, StoreError};

/// Version this build writes and reads.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// All migrations, oldest first.
const MIGRATIONS: &[&str] = &[V1, V2, V3];

/// Version 1: history, rollups, states, maintenance, escalation tables.
///
/// Size notes (the raw `results` row was the dominant cost, ~35-45 bytes
/// with b-tree overhead; V3 moves in-order results into blocks):
/// * integer sensor ids (`sensors`), integer ms timestamps, status and the
///   maintenance flag in one small integer (0 and 1 cost zero bytes in
///   SQLite's record format), latency as integer µs;
/// * messages interned in `messages` (0 = empty, costs nothing), metrics as a
///   compact blob (see `codec.rs`) or NULL;
/// * `WITHOUT ROWID` with the natural key, so there is no separate rowid
///   b-tree and no index: the key order (sensor, time) serves history reads
///   and per-sensor pruning.
/// * Rollups are keyed (bucket start, sensor): the rows updated by each batch
///   (the current hour/day of every sensor) are adjacent, so a commit touches
///   a few pages, and pruning deletes a prefix of the b-tree.
/// * No `REFERENCES` on the hot tables: foreign-key checks would cost a
///   lookup per insert, and only the writer writes them.
const V1: &str = r#"
CREATE TABLE sensors(
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    -- The writer's position in the sensor's result stream (rollup.rs):
    last_at_ms      INTEGER,             -- latest in-order result
    last_class      INTEGER,             -- its class: 0 up, 1 down, 2 maintenance
    last_cap_ms     INTEGER,             -- how long after last_at_ms it may count
    outage_start_ms INTEGER,             -- open outage: time of its first failure
    outage_down_ms  INTEGER NOT NULL DEFAULT 0  -- down time of the open outage so far
);

CREATE TABLE messages(
    id           INTEGER PRIMARY KEY,
    text         TEXT NOT NULL UNIQUE,
    last_used_ms INTEGER NOT NULL        -- >= at_ms of every result using it, minus MESSAGE_TOUCH_SLACK
);
CREATE INDEX messages_last_used ON messages(last_used_ms);

CREATE TABLE metric_names(
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE results(
    sensor_id  INTEGER NOT NULL,
    at_ms      INTEGER NOT NULL,
    status     INTEGER NOT NULL,         -- Status::code() | 4 when in maintenance
    latency_us INTEGER NOT NULL,
    message_id INTEGER NOT NULL,         -- messages.id, 0 = empty message
    metrics    BLOB,                     -- codec::encode_metrics, NULL = none
    PRIMARY KEY(sensor_id, at_ms)
) WITHOUT ROWID;

CREATE TABLE rollup_hour(
    start_ms     INTEGER NOT NULL,
    sensor_id    INTEGER NOT NULL,
    checks       INTEGER NOT NULL,
    failures     INTEGER NOT NULL,
    warnings     INTEGER NOT NULL,
    maint_checks INTEGER NOT NULL,
    up_ms        INTEGER NOT NULL,
    down_ms      INTEGER NOT NULL,
    maint_ms     INTEGER NOT NULL,
    outages      INTEGER NOT NULL,       -- outages that started in the bucket
    recoveries   INTEGER NOT NULL,       -- outages that ended in the bucket
    recovery_ms  INTEGER NOT NULL,       -- their total down time
    lat_min      INTEGER NOT NULL,
    lat_max      INTEGER NOT NULL,
    lat_sum      INTEGER NOT NULL,
    lat_hist     BLOB,                   -- rollup::LatencyHist::encode of rollup::bucket_of
    PRIMARY KEY(start_ms, sensor_id)
) WITHOUT ROWID;

CREATE TABLE rollup_day(
    start_ms     INTEGER NOT NULL,
    sensor_id    INTEGER NOT NULL,
    checks       INTEGER NOT NULL,
    failures     INTEGER NOT NULL,
    warnings     INTEGER NOT NULL,
    maint_checks INTEGER NOT NULL,
    up_ms        INTEGER NOT NULL,
    down_ms      INTEGER NOT NULL,
    maint_ms     INTEGER NOT NULL,
    outages      INTEGER NOT NULL,
    recoveries   INTEGER NOT NULL,
    recovery_ms  INTEGER NOT NULL,
    lat_min      INTEGER NOT NULL,
    lat_max      INTEGER NOT NULL,
    lat_sum      INTEGER NOT NULL,
    lat_hist     BLOB,
    PRIMARY KEY(start_ms, sensor_id)
) WITHOUT ROWID;

CREATE TABLE transitions(
    id         INTEGER PRIMARY KEY,
    sensor_id  INTEGER NOT NULL,
    at_ms      INTEGER NOT NULL,
    from_state TEXT NOT NULL,
    to_state   TEXT NOT NULL,
    reason     TEXT NOT NULL
);
CREATE INDEX transitions_sensor ON transitions(sensor_id, at_ms);

CREATE TABLE sensor_state(
    sensor                TEXT PRIMARY KEY,
    state                 TEXT NOT NULL,
    since_ms              INTEGER NOT NULL,
    last_check_ms         INTEGER,
    last_status           INTEGER,
    last_message          TEXT NOT NULL,
    last_latency_us       INTEGER,
    consecutive_failures  INTEGER NOT NULL,
    consecutive_successes INTEGER NOT NULL,
    flapping              INTEGER NOT NULL,
    updated_ms            INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE maintenance(
    id      INTEGER PRIMARY KEY,
    target  TEXT NOT NULL,               -- sensor name or '*'
    from_ms INTEGER NOT NULL,
    to_ms   INTEGER NOT NULL,
    reason  TEXT NOT NULL,
    CHECK (to_ms > from_ms)
);

CREATE TABLE incidents(
    id             INTEGER PRIMARY KEY,
    target         TEXT NOT NULL,
    opened_at_ms   INTEGER NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('open', 'acked', 'resolved')),
    level          INTEGER NOT NULL DEFAULT 0,
    acked_by       TEXT,
    acked_at_ms    INTEGER,
    resolved_at_ms INTEGER,
    token_hash     TEXT
);
CREATE INDEX incidents_unresolved ON incidents(target) WHERE state <> 'resolved';
CREATE UNIQUE INDEX incidents_token ON incidents(token_hash) WHERE token_hash IS NOT NULL;

CREATE TABLE timers(
    id          INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    due_ms      INTEGER NOT NULL,
    fired       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX timers_pending ON timers(due_ms) WHERE fired = 0;
CREATE INDEX timers_incident ON timers(incident_id);

CREATE TABLE outbox(
    id              INTEGER PRIMARY KEY,
    incident_id     INTEGER REFERENCES incidents(id) ON DELETE CASCADE,
    notifier        TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    payload         TEXT NOT NULL CHECK (json_valid(payload)),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    delivered_at_ms INTEGER,
    last_error      TEXT
);
CREATE INDEX outbox_pending ON outbox(next_attempt_ms) WHERE delivered_at_ms IS NULL;
CREATE INDEX outbox_incident ON outbox(incident_id);
"#;

/// Version 2: what the escalation engine needs to explain and replay an
/// incident: its kind, policy, message, down-since time, parent (an
/// incident suppressed because a dependency is down links to the parent's),
/// the nonce its acknowledgement token is derived from; an event log per
/// incident; delivery attempts; notifications given up on; silences.
const V2: &str = r#"
ALTER TABLE incidents ADD COLUMN kind          TEXT NOT NULL DEFAULT 'sensor';
ALTER TABLE incidents ADD COLUMN policy        TEXT NOT NULL DEFAULT '';
ALTER TABLE incidents ADD COLUMN message       TEXT NOT NULL DEFAULT '';
ALTER TABLE incidents ADD COLUMN down_since_ms INTEGER;
ALTER TABLE incidents ADD COLUMN parent_id     INTEGER REFERENCES incidents(id);
ALTER TABLE incidents ADD COLUMN ack_nonce     TEXT;
ALTER TABLE incidents ADD COLUMN suppressed    INTEGER NOT NULL DEFAULT 0;

CREATE TABLE incident_events(
    id          INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    at_ms       INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    detail      TEXT NOT NULL
);
CREATE INDEX incident_events_incident ON incident_events(incident_id);

ALTER TABLE outbox ADD COLUMN gave_up_at_ms INTEGER;
ALTER TABLE outbox ADD COLUMN created_ms    INTEGER NOT NULL DEFAULT 0;
DROP INDEX outbox_pending;
CREATE INDEX outbox_pending ON outbox(next_attempt_ms) WHERE delivered_at_ms IS NULL AND gave_up_at_ms IS NULL;

CREATE TABLE delivery_attempts(
    id        INTEGER PRIMARY KEY,
    outbox_id INTEGER NOT NULL REFERENCES outbox(id) ON DELETE CASCADE,
    at_ms     INTEGER NOT NULL,
    ok        INTEGER NOT NULL,
    error     TEXT
);
CREATE INDEX delivery_attempts_outbox ON delivery_attempts(outbox_id);

CREATE TABLE silences(
    id         INTEGER PRIMARY KEY,
    target     TEXT NOT NULL,             -- a selector: name, category:x, label:k=v or *
    from_ms    INTEGER NOT NULL,
    until_ms   INTEGER NOT NULL,
    reason     TEXT NOT NULL,
    created_by TEXT NOT NULL,
    CHECK (until_ms > from_ms)
);
CREATE INDEX silences_until ON silences(until_ms);
"#;

/// Version 3: raw results as time-series blocks (see `blocks.rs`), ~4-6
/// bytes per result instead of ~35-45 as plain rows.
///
/// A sensor's in-order results are appended to its newest block; each row
/// is `(sensor_id, first_ms)`-keyed, holds the time of its last result and
/// its result count (for history reads that stop early, retention and
/// counts) and the delta-encoded results. The writer rewrites a sensor's
/// open block once per batch, in the batch's transaction. `results` stays:
/// it holds the rows of V2 databases (kept as they are, so the migration is
/// instant; retention removes them in time) and results that arrive out of
/// order. Readers merge both.
const V3: &str = r#"
CREATE TABLE result_blocks(
    sensor_id INTEGER NOT NULL,
    first_ms  INTEGER NOT NULL,          -- at_ms of its first (oldest) result
    last_ms   INTEGER NOT NULL,          -- at_ms of its last (newest) result
    n         INTEGER NOT NULL,          -- results in the block
    data      BLOB NOT NULL,             -- blocks::Block encoding
    PRIMARY KEY(sensor_id, first_ms)
) WITHOUT ROWID;
"#;

/// How long a connection waits for SQLite's write lock (held by another
/// writer: the history writer, the escalation connection, or a checkpoint)
/// before failing with `SQLITE_BUSY`. Batches are bounded to milliseconds,
/// so waiting 5 s only happens when something is badly wrong.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Page cache of the history writer, in KiB (negative `cache_size`). At
/// 1,000 sensors each batch touches every sensor's open block and its
/// hour and day rollup rows: about 250 leaf pages (blocks of several
/// sensors share a page) plus the interior pages above them, ~1.1 MiB. A
/// miss is a read from the OS page cache, not the disk; a larger cache only
/// grows the agent's memory with the database (the cache fills to its
/// limit within minutes).
const WRITER_CACHE_KIB: i64 = 1280;

/// Page cache of readers and the escalation connection, in KiB. SLA and
/// history queries read a few hundred pages at most.
const READER_CACHE_KIB: i64 = 1024;

/// After a checkpoint, truncate the WAL file back to this size so one burst
/// (or a reader holding a snapshot while the WAL grew) does not leave a huge
/// file behind.
const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

fn common_pragmas(conn: &Connection, cache_kib: i64) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "cache_size", -cache_kib)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(())
}

/// Opens (creating if needed) the history writer's connection and migrates.
///
/// Durability: `journal_mode=WAL` with `synchronous=NORMAL`. In WAL mode a
/// commit appends the transaction's pages to the WAL with `write()` before
/// `COMMIT` returns, so once it returns the transaction is in the OS page
/// cache and survives a `kill -9` (or panic, or OOM kill) of the agent; the
/// WAL's checksummed frames make recovery after any crash consistent
/// (`integrity_check` clean). NORMAL skips the fsync per commit; only an OS
/// crash or power loss can roll back the last commits before the next
/// checkpoint, and never corrupts. For check history that trade is right: we
/// commit every 250 ms and on slow storage (SD cards, network disks) an fsync
/// each time would cost more than the writes. The escalation connection, whose
/// rows drive notifications, uses FULL instead (see [`open_side`]).
pub(crate) fn open_writer(path: &Path) -> Result<Connection> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    common_pragmas(&conn, WRITER_CACHE_KIB)?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Invalid(format!(
            "cannot enable WAL (journal_mode={mode})"
        )));
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)?;
    conn.set_prepared_statement_cache_capacity(64);
    migrate(&mut conn)?;
    Ok(conn)
}

/// Opens the escalation (incidents/timers/outbox) connection of a `Store`:
/// `synchronous=FULL`, so an incident, an acknowledgement or an outbox
/// delivery mark that was committed survives power loss too; these commits
/// are rare, so the fsync each costs nothing noticeable.
pub(crate) fn open_side(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    common_pragmas(&conn, READER_CACHE_KIB)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    check_version(&conn)?;
    Ok(conn)
}

/// Opens a read connection. It is opened read-write (so it can create the
/// WAL index `-shm` file if it is the first connection) but with
/// `query_only`, so it never writes the database.
pub(crate) fn open_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    common_pragmas(&conn, READER_CACHE_KIB)?;
    conn.pragma_update(None, "query_only", true)?;
    check_version(&conn)?;
    Ok(conn)
}

fn user_version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

fn check_version(conn: &Connection) -> Result<()> {
    let found = user_version(conn)?;
    if found != SCHEMA_VERSION {
        return Err(StoreError::SchemaVersion {
            found,
            expected: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// Applies the missing migrations in one immediate transaction.
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let found = user_version(&tx)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaVersion {
            found,
            expected: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tracing::info!(version = i + 1, "applied store schema migration");
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
pub(crate) fn memory() -> Connection {
    let mut c = Connection::open_in_memory().unwrap();
    migrate(&mut c).unwrap();
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_refuses_newer() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/dir/o.db");
        let c = open_writer(&p).unwrap();
        assert_eq!(user_version(&c).unwrap(), SCHEMA_VERSION);
        drop(c);
        // Reopening is a no-op.
        let c = open_writer(&p).unwrap();
        let mode: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        open_reader(&p).unwrap();
        c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(c);
        assert!(matches!(
            open_writer(&p),
            Err(StoreError::SchemaVersion { .. })
        ));
        assert!(matches!(
            open_reader(&p),
            Err(StoreError::SchemaVersion { .. })
        ));
    }

    #[test]
    fn reader_refuses_missing_or_foreign_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(open_reader(&dir.path().join("none.db")).is_err());
        let p = dir.path().join("other.db");
        Connection::open(&p)
            .unwrap()
            .execute_batch("CREATE TABLE t(x)")
            .unwrap();
        assert!(matches!(
            open_reader(&p),
            Err(StoreError::SchemaVersion { found: 0, .. })
        ));
    }

    /// A V2 file as the V2 writer left it (schema V1 + V2, plain result
    /// rows with codec metrics, interned names, the sensor's stream
    /// position) opens under V3 with its history intact; new results go to
    /// blocks; duplicates of old rows are still refused; retention still
    /// removes the old rows.
    #[test]
    fn v2_database_keeps_its_history_after_migrating_to_v3() {
        use crate::{CheckRecord, Status, Store, StoreOptions};
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v2.db");
        let t0 = 1_700_000_000_000i64;
        {
            let c = Connection::open(&p).unwrap();
            let _: String = c
                .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
                .unwrap();
            c.execute_batch(V1).unwrap();
            c.execute_batch(V2).unwrap();
            c.pragma_update(None, "user_version", 2).unwrap();
            c.execute(
                "INSERT INTO sensors(id, name, last_at_ms, last_class, last_cap_ms) VALUES (1, 'web', ?1, 0, 20000)",
                [t0 + 90_000],
            )
            .unwrap();
            c.execute_batch(
                "INSERT INTO messages(id, text, last_used_ms) VALUES (1, 'HTTP 200', 0), (2, 'HTTP 503', 0);
                 INSERT INTO metric_names(id, name) VALUES (1, 'latency_ms'), (2, 'status_code');",
            )
            .unwrap();
            for i in 0..10i64 {
                let failed = i == 4;
                let blob = crate::codec::encode_metrics(&[
                    (1, 1.5 + i as f64),
                    (2, if failed { 503.0 } else { 200.0 }),
                ]);
                c.execute(
                    "INSERT OR IGNORE INTO results(sensor_id, at_ms, status, latency_us, message_id, metrics) \
                     VALUES (1, ?1, ?2, ?3, ?4, ?5)",
                    rusqlite::params![
                        t0 + i * 10_000,
                        if failed { 2 } else { 0 },
                        1_500 + i * 1_000,
                        if failed { 2 } else { 1 },
                        blob
                    ],
                )
                .unwrap();
            }
        }
        let opts = StoreOptions {
            prune_interval: None,
            flush_interval: Duration::from_millis(20),
            ..StoreOptions::default()
        };
        let store = Store::open(&p, opts).unwrap();
        assert_eq!(
            user_version(&Connection::open(&p).unwrap()).unwrap(),
            SCHEMA_VERSION
        );
        let check_old = |h: &[crate::CheckRow]| {
            for (k, r) in h.iter().enumerate() {
                let i = 9 - k as i64;
                let failed = i == 4;
                assert_eq!(r.at_ms, t0 + i * 10_000);
                assert_eq!(r.status, if failed { Status::Fail } else { Status::Ok });
                assert_eq!(r.latency_us as i64, 1_500 + i * 1_000);
                assert_eq!(r.message, if failed { "HTTP 503" } else { "HTTP 200" });
                assert_eq!(
                    r.metrics,
                    [
                        ("latency_ms".to_string(), 1.5 + i as f64),
                        (
                            "status_code".to_string(),
                            if failed { 503.0 } else { 200.0 }
                        )
                    ]
                );
            }
        };
        let h = store.history("web", 0, 100).unwrap();
        assert_eq!(h.len(), 10);
        check_old(&h);

        let rec = |at_ms| CheckRecord {
            sensor: "web".into(),
            at_ms,
            status: Status::Ok,
            latency_us: 2_000,
            message: "HTTP 200".into(),
            interval_ms: 10_000,
            ..Default::default()
        };
        store.record_blocking(rec(t0 + 50_000)).unwrap(); // duplicate of a V2 row
        for i in 10..15 {
            store.record_blocking(rec(t0 + i * 10_000)).unwrap();
        }
        store.flush().unwrap();
        assert_eq!(store.stats().duplicates, 1);
        let h = store.history("web", 0, 100).unwrap();
        assert_eq!(h.len(), 15);
        assert_eq!(h[0].at_ms, t0 + 140_000);
        check_old(&h[5..]);
        assert_eq!(store.reader().raw_count(None).unwrap(), 15);
        let c = Connection::open(&p).unwrap();
        let (plain, in_blocks): (i64, i64) = c
            .query_row(
                "SELECT (SELECT count(*) FROM results), (SELECT sum(n) FROM result_blocks)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((plain, in_blocks), (10, 5));
        // Retention removes the V2 rows once they expire.
        let stats = store.prune(t0 + 100_000 + 7 * 86_400_000).unwrap();
        assert_eq!(stats.results, 10);
        assert_eq!(store.history("web", 0, 100).unwrap().len(), 5);
        assert_eq!(store.reader().integrity_check().unwrap(), ["ok"]);
    }

    #[test]
    fn reader_is_query_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("o.db");
        open_writer(&p).unwrap();
        let r = open_reader(&p).unwrap();
        assert!(r.execute("DELETE FROM results", []).is_err());
    }
}
