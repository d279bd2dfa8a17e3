//! Breaks the conformance rule `validate.accepts` (see ../conformance/sensor.rs).
#![cfg_attr(not(target_family = "wasm"), allow(dead_code))]
const BROKEN: &str = "validate.accepts";
include!("../conformance/sensor.rs");
