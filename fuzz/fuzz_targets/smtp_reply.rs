//! Replies of an SMTP server as the `email` notifier reads them: one
//! reply after another from a buffer, and the EHLO capabilities of each.
#![no_main]
use libfuzzer_sys::fuzz_target;
use outpost_plugin_email::smtp::{Capabilities, parse_reply};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((reply, used))) = parse_reply(rest) {
        assert!(used > 0 && used <= rest.len(), "used {used} of {}", rest.len());
        let _ = reply.text();
        let _ = Capabilities::from_ehlo(&reply).choose_auth();
        rest = &rest[used..];
    }
});
