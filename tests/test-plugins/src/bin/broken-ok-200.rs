//! Breaks the conformance rule `check.ok-200` (see ../conformance/sensor.rs).
#![cfg_attr(not(target_family = "wasm"), allow(dead_code))]
const BROKEN: &str = "check.ok-200";
include!("../conformance/sensor.rs");
