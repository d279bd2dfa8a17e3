//! Breaks the conformance rule `notify.retryable-500` (see ../conformance/notifier.rs).
#![cfg_attr(not(target_family = "wasm"), allow(dead_code))]
const BROKEN: &str = "notify.retryable-500";
include!("../conformance/notifier.rs");
