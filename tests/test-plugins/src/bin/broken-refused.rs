//! Breaks the conformance rule `check.refused` (see ../conformance/sensor.rs).
#![cfg_attr(not(target_family = "wasm"), allow(dead_code))]
const BROKEN: &str = "check.refused";
include!("../conformance/sensor.rs");
