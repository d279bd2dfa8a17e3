//! Breaks the conformance rule `validate.rejects-empty` (see ../conformance/sensor.rs).
#![cfg_attr(not(target_family = "wasm"), allow(dead_code))]
const BROKEN: &str = "validate.rejects-empty";
include!("../conformance/sensor.rs");
