//! Helpers shared by the engine's integration tests.

#![allow(dead_code, unreachable_pub)]

use serde_json::Value;
use stepstone_engine::asl::{Machine, Options, validate};

/// The machine of a definition the test knows to be valid (its diagnostics otherwise).
pub fn machine(def: &Value) -> Machine {
    let v = validate(def, Options::default());
    v.machine.unwrap_or_else(|| panic!("{:?}", v.diagnostics))
}

pub mod postgres;
