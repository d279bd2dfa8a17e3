//! Breaks the conformance rule `check.deadline` (see ../conformance/sensor.rs).
#![cfg_attr(not(target_family = "wasm"), allow(dead_code))]
const BROKEN: &str = "check.deadline";
include!("../conformance/sensor.rs");
