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
//! read-only pages of the binary and of its shared libraries; the kernel
//! maps back, from the page cache,
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

/// Unmaps the resident pages of the read-only segments (code, constants)
/// of the executable and of every shared library it loaded (libc, libm,
/// the dynamic loader...); later accesses map them back from the page
/// cache. Only segments that were never writable are touched, so no
/// relocated data is lost: their pages always equal the file's. Objects
/// with text relocations (code patched at load time) and the kernel's vDSO
/// are skipped. Returns the bytes advised.
pub fn release_code_pages() -> usize {
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    {
        let mut advised = 0usize;
        // SAFETY: the callback only reads the program headers and dynamic
        // sections it is given, and advises whole pages inside
        // non-writable PT_LOAD segments of those objects.
        unsafe {
            libc::dl_iterate_phdr(Some(advise_object), (&mut advised as *mut usize).cast());
        }
        advised
    }
    #[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
    0
}

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
unsafe extern "C" fn advise_object(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: dl_iterate_phdr passes a valid info and our `data`.
    let (info, advised) = unsafe { (&*info, &mut *data.cast::<usize>()) };
    if info.dlpi_phdr.is_null() || info.dlpi_phnum == 0 {
        return 0;
    }
    // SAFETY: a non-null dlpi_name is a C string (empty for the executable).
    let name: &[u8] = if info.dlpi_name.is_null() {
        b""
    } else {
        unsafe { std::ffi::CStr::from_ptr(info.dlpi_name) }.to_bytes()
    };
    if name.starts_with(b"linux-vdso") || name.starts_with(b"linux-gate") {
        return 0;
    }
    // SAFETY: dlpi_phdr points at dlpi_phnum headers.
    let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
    // SAFETY: the PT_DYNAMIC segment of a loaded object is mapped.
    if unsafe { has_text_relocations(info.dlpi_addr as usize, headers) } {
        return 0;
    }
    let page = 4096usize;
    for h in headers {
        if h.p_type != libc::PT_LOAD || h.p_flags & libc::PF_W != 0 {
            continue;
        }
        let start = (info.dlpi_addr as usize + h.p_vaddr as usize).next_multiple_of(page);
        let end = (info.dlpi_addr as usize + (h.p_vaddr + h.p_memsz) as usize) / page * page;
        if end > start {
            // SAFETY: whole pages of a read-only, file-backed private
            // mapping that was never written; MADV_DONTNEED there only
            // drops page-table entries.
            if unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED)
            } == 0
            {
                *advised += end - start;
            }
        }
    }
    0
}

/// Whether an object's dynamic section asks for text relocations (its
/// read-only segments were made writable and patched while loading).
///
/// # Safety
/// `headers` are the program headers of an object loaded at `base`.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
unsafe fn has_text_relocations(base: usize, headers: &[libc::Elf64_Phdr]) -> bool {
    const DT_NULL: i64 = 0;
    const DT_TEXTREL: i64 = 22;
    const DT_FLAGS: i64 = 30;
    const DF_TEXTREL: u64 = 0x4;
    let Some(dynamic) = headers.iter().find(|h| h.p_type == libc::PT_DYNAMIC) else {
        return false;
    };
    let mut entry = (base + dynamic.p_vaddr as usize) as *const [u64; 2];
    let count = dynamic.p_memsz as usize / std::mem::size_of::<[u64; 2]>();
    for _ in 0..count {
        // SAFETY: inside the mapped PT_DYNAMIC segment.
        let [tag, value] = unsafe { entry.read() };
        match tag as i64 {
            DT_NULL => break,
            DT_TEXTREL => return true,
            DT_FLAGS if value & DF_TEXTREL != 0 => return true,
            _ => {}
        }
        // SAFETY: still inside the segment (bounded by `count`).
        entry = unsafe { entry.add(1) };
    }
    false
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

/// Releases the startup code at once (the caller has loaded the config,
/// the plugins and the database) and again once the agent has settled,
/// then, every [`TRIM_EVERY`], hands freed heap back and releases the code
/// pages again, so that code run once in a while (a reload, an API request,
/// a burst of failures) does not stay mapped for good. The first release
/// keeps the startup code from adding to the pages the first round of
/// checks maps in (a peak of 28 MiB at 1,000 sensors without it). Each
/// round costs well under a millisecond, plus the minor faults that map
/// the checks' code back.
pub async fn trim_periodically() {
    release_freed();
    release_code_pages();
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
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    fn released_code_and_constants_map_back_unchanged() {
        let before: String = TEXT.to_string();
        let advised = release_code_pages();
        // The test binary's code and constants are megabytes.
        assert!(advised > 1 << 20, "advised only {advised} bytes");
        // Code runs and constants read the same after the release.
        assert_eq!(TEXT, before);
        assert_eq!(format!("{}", 6 * 7), "42");
        // Shared libraries' code runs the same too (libc, libm).
        // SAFETY: getpid has no preconditions.
        assert_eq!(unsafe { libc::getpid() } as u32, std::process::id());
        assert!((std::hint::black_box(0.5f64).sin() - 0.479_425_538_604_203).abs() < 1e-12);
        assert!(release_code_pages() > 0);
    }
}
