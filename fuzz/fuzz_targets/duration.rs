//! Durations as operators write them (config values, `?since=` of the API,
//! `--since` of the CLI): never a panic, never beyond the documented
//! maximum.
#![no_main]
use libfuzzer_sys::fuzz_target;
use outpost_types::duration::{MAX, from_secs_f64, parse};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(d) = parse(text) {
            assert!(d <= MAX, "{text:?} parsed to {d:?}");
        }
    }
    if data.len() >= 8 {
        let secs = f64::from_le_bytes(data[..8].try_into().unwrap());
        if let Ok(d) = from_secs_f64(secs) {
            assert!(d <= MAX);
        }
    }
});
