//! Breaks the conformance rule `check.denied` (see ../conformance/sensor.rs).
#![cfg_attr(not(target_family = "wasm"), allow(dead_code))]
const BROKEN: &str = "check.denied";
include!("../conformance/sensor.rs");
