//! The process's heap policy (glibc only; elsewhere these do nothing).
//!
//! An agent is long-lived, mostly idle and many-threaded (runtime workers,
//! the store writer, blocking tasks). glibc would give each thread its own
//! malloc arena and keep freed memory mapped for good — after compiling a
//! plugin (tens of MiB, freed at once) or a config reload, that is memory
//! the agent never gives back. So: at most two arenas, and freed heap
//! returned to the OS after a config load and once a minute. This module
//! owns no other state and must not allocate on behalf of anyone.

use std::time::Duration;

/// How often [`trim_periodically`] hands freed heap back.
pub const TRIM_EVERY: Duration = Duration::from_secs(60);

/// Caps glibc's malloc arenas at two. Call before any thread starts.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before threads.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
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

/// Calls [`release_freed`] every [`TRIM_EVERY`] (a few hundred µs each).
pub async fn trim_periodically() {
    let mut tick = tokio::time::interval(TRIM_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        release_freed();
    }
}
