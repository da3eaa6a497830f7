//! Every definition in `../shared/conformance/cases/` ran on AWS, so AWS accepted it: each one
//! must validate here with no error diagnostic.

mod common;

use stepstone_asl::{MachineType, Options, validate};

#[test]
fn every_recorded_case_validates() {
    let cases = common::load_cases("cases");
    let mut failures = Vec::new();
    for (name, case) in &cases {
        let mut options = Options::default();
        if case["state_machine_type"] == "EXPRESS" {
            options.machine_type = MachineType::Express;
        }
        let v = validate(&case["definition"], options);
        let errors: Vec<String> = v
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(ToString::to_string)
            .collect();
        if !errors.is_empty() {
            failures.push(format!("{name}:\n    {}", errors.join("\n    ")));
        }
    }
    eprintln!(
        "{}/{} recorded cases validate",
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} definitions AWS ran are refused:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
