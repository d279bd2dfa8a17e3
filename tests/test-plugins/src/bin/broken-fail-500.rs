//! Breaks the conformance rule `check.fail-500` (see ../conformance/sensor.rs).
#![cfg_attr(not(target_family = "wasm"), allow(dead_code))]
const BROKEN: &str = "check.fail-500";
include!("../conformance/sensor.rs");
