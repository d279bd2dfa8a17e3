//! Breaks the conformance rule `validate.rejects-wrong-type` (see ../conformance/sensor.rs).
#![cfg_attr(not(target_family = "wasm"), allow(dead_code))]
const BROKEN: &str = "validate.rejects-wrong-type";
include!("../conformance/sensor.rs");
