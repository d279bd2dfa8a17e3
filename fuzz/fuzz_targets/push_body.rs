//! The body of `POST /api/v1/push` (decoded by the same parser as a
//! poll): whatever it accepts, it writes back as a document it accepts
//! again, unchanged — what the agent stores and serves of a pushed
//! document is what it read.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(doc) = outpost_types::status::parse(data) {
        let again = outpost_types::status::parse(&doc.to_json())
            .expect("a document the agent wrote must parse");
        assert_eq!(doc, again);
    }
});
