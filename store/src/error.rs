//! The crate's error type.

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An SQLite call failed (I/O, corruption, busy past the timeout, ...).
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Creating the database's directory failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// [`crate::Store::record`] found the writer queue full. The record was
    /// **not** stored; use `record_blocking`/`record_async` to wait instead.
    #[error("the write queue is full ({capacity} pending); the record was dropped")]
    QueueFull {
        /// Capacity of the queue ([`crate::StoreOptions::queue_capacity`]).
        capacity: usize,
    },
    /// The writer thread has stopped (after `close()`, or it panicked).
    #[error("the store's writer has stopped")]
    Closed,
    /// The writer could not commit a batch (after retries) since the previous
    /// `flush()`; the records of that batch are lost. Carries SQLite's message.
    #[error("writer: {0}")]
    Writer(String),
    /// The file's schema is not the one this build reads.
    #[error("database schema version {found}, this build expects {expected}")]
    SchemaVersion {
        /// `PRAGMA user_version` of the file.
        found: i64,
        /// [`crate::schema::SCHEMA_VERSION`].
        expected: i64,
    },
    /// A caller-supplied value is out of range.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// A stored value could not be decoded.
    #[error("corrupt data: {0}")]
    Corrupt(String),
}

/// Result type of the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
