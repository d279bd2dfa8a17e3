//! The status document as a peer serves it (federation polls): any bytes
//! give a document or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = outpost_types::status::parse(data);
});
