//! The process's heap policy (glibc only; elsewhere these do nothing).
//!
//! An agent is long-lived, mostly idle and many-threaded (runtime workers,
//! the store writer, blocking tasks). glibc would give each thread its own
//! malloc arena and keep freed memory mapped for good — after compiling a
//! plugin (tens of MiB, freed at once) or a config reload, that is memory
//! the agent never gives back. So: at most two arenas, and freed heap
//! returned to the OS after a config load and every ten seconds.
//!
//! Startup (config parsing, plugin loading, migrations) runs code that the
//! steady state never touches again, and its pages stay mapped: megabytes
//! of the binary counted in the agent's RSS. Once the agent is up, after a
//! reload and with every heap trim, [`release_code_pages`] unmaps the
//! binary's read-only pages; the kernel maps back, from the page cache,
//! only what the checks keep running (the build packs that code together:
//! `hot-symbols.txt`).
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

/// Unmaps the resident pages of the executable's read-only segments (code,
/// constants); later accesses map them back from the page cache. Only
/// segments that were never writable are touched, so no relocated data is
/// lost: their pages always equal the file's. Returns the bytes advised.
pub fn release_code_pages() -> usize {
    #[cfg(target_os = "linux")]
    {
        let mut advised = 0usize;
        // SAFETY: the callback only reads the program headers it is given
        // and advises whole pages inside non-writable PT_LOAD segments of
        // the main executable (the first object listed).
        unsafe {
            libc::dl_iterate_phdr(
                Some(advise_main_object),
                (&mut advised as *mut usize).cast(),
            );
        }
        advised
    }
    #[cfg(not(target_os = "linux"))]
    0
}

#[cfg(target_os = "linux")]
unsafe extern "C" fn advise_main_object(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: dl_iterate_phdr passes a valid info and our `data`.
    let (info, advised) = unsafe { (&*info, &mut *data.cast::<usize>()) };
    let page = 4096usize;
    // SAFETY: dlpi_phdr points at dlpi_phnum headers.
    let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
    for h in headers {
        if h.p_type != libc::PT_LOAD || h.p_flags & libc::PF_W != 0 {
            continue;
        }
        let start = (info.dlpi_addr as usize + h.p_vaddr as usize).next_multiple_of(page);
        let end = (info.dlpi_addr as usize + (h.p_vaddr + h.p_memsz) as usize) / page * page;
        if end > start {
            // SAFETY: whole pages of a read-only, file-backed private
            // mapping; MADV_DONTNEED there only drops page-table entries.
            if unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED)
            } == 0
            {
                *advised += end - start;
            }
        }
    }
    // Stop after the first object: the executable itself.
    1
}

/// Gives the heap memory freed so far back to the OS.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// How long after start the startup code is released: long enough for
/// every part of the agent to be up.
pub const STARTUP_SETTLES: Duration = Duration::from_secs(5);

/// Releases the startup code once the agent has settled, then, every
/// [`TRIM_EVERY`], hands freed heap back and releases the code pages again,
/// so that code run once in a while (a reload, an API request, a burst of
/// failures) does not stay mapped for good. Each round costs well under a
/// millisecond, plus the minor faults that map the checks' code back.
pub async fn trim_periodically() {
    tokio::time::sleep(STARTUP_SETTLES).await;
    let mut tick = tokio::time::interval(TRIM_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        release_freed();
        let code = release_code_pages();
        tracing::trace!(bytes = code, "released heap and code pages");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A constant the test reads back after its page was released.
    static TEXT: &str = "outpost: read-only data survives release_code_pages";

    #[test]
    #[cfg(target_os = "linux")]
    fn released_code_and_constants_map_back_unchanged() {
        let before: String = TEXT.to_string();
        let advised = release_code_pages();
        // The test binary's code and constants are megabytes.
        assert!(advised > 1 << 20, "advised only {advised} bytes");
        // Code runs and constants read the same after the release.
        assert_eq!(TEXT, before);
        assert_eq!(format!("{}", 6 * 7), "42");
        assert!(release_code_pages() > 0);
    }
}
