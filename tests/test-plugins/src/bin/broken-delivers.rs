//! Breaks the conformance rule `notify.delivers` (see ../conformance/notifier.rs).
#![cfg_attr(not(target_family = "wasm"), allow(dead_code))]
const BROKEN: &str = "notify.delivers";
include!("../conformance/notifier.rs");
