//! Breaks the conformance rule `info.well-formed` (see ../conformance/sensor.rs).
#![cfg_attr(not(target_family = "wasm"), allow(dead_code))]
const BROKEN: &str = "info.well-formed";
include!("../conformance/sensor.rs");
