//! The process's heap policy (glibc only; elsewhere these do nothing).
//!
//! An agent is long-lived, mostly idle and many-threaded (runtime workers,
//! the store writer, blocking tasks). glibc would give each thread its own
//! malloc arena and keep freed memory mapped for good — after compiling a
//! plugin (tens of MiB, freed at once) or a config reload, that is memory
//! the agent never gives back. So: at most two arenas, and freed heap
//! returned to the OS after a config load and every ten seconds.
//!
//! This module owns no other state and must not allocate on behalf of
//! anyone.

use std::time::Duration;

/// How often [`trim_periodically`] hands freed heap back. Each fresh
/// plugin instance allocates and frees host state, so freed chunks pile up
/// between trims; a trim costs well under a millisecond.
pub const TRIM_EVERY: Duration = Duration::from_secs(10);

/// Large blocks (above this) are mapped and unmapped on their own, so
/// their memory goes back to the OS the moment they are freed: a
/// `/metrics` page for a thousand sensors is a 1.2 MiB string built on
/// every scrape. glibc would otherwise raise this threshold after the first
/// such block and serve the next ones from the heap, where they stay.
const MMAP_THRESHOLD: i32 = 256 << 10;

/// Caps glibc's malloc arenas at two and fixes the threshold above which
/// blocks are mapped on their own ([`MMAP_THRESHOLD`]), unless the operator
/// set them (`MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_`). Call before any
/// thread starts.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before threads.
    unsafe {
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        }
    }
}

/// Gives the heap memory freed so far back to the OS.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Hands freed heap back at once (the caller has loaded the config, the
/// plugins and the database) and then every [`TRIM_EVERY`]. Each round
/// costs well under a millisecond.
pub async fn trim_periodically() {
    release_freed();
    let mut tick = tokio::time::interval(TRIM_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        release_freed();
    }
}
