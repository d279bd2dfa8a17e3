//! Breaks the conformance rule `notify.permanent-400` (see ../conformance/notifier.rs).
#![cfg_attr(not(target_family = "wasm"), allow(dead_code))]
const BROKEN: &str = "notify.permanent-400";
include!("../conformance/notifier.rs");
