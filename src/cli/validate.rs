//! `stepstone validate FILE [--json]`

use std::path::Path;
use std::process::ExitCode;

use serde_json::{Value, json};
use stepstone::asl::{Diagnostic, MachineType, Options, Severity, validate_str};

pub(crate) fn run(
    file: &Path,
    as_json: bool,
    machine_type: MachineType,
) -> Result<ExitCode, String> {
    let text = super::read_definition(file)?;
    let mut options = Options::default();
    options.machine_type = machine_type;
    let validation = validate_str(&text, options);
    if as_json {
        outln!("{}", response(validation.is_ok(), &validation.diagnostics));
    } else {
        for d in &validation.diagnostics {
            outln!("{d}");
        }
        let errors = validation
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .count();
        let warnings = validation.diagnostics.len() - errors;
        let verdict = if validation.is_ok() { "OK" } else { "FAIL" };
        eprintln!(
            "{}: {verdict} ({})",
            file.display(),
            counts(errors, warnings)
        );
    }
    Ok(if validation.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// ValidateStateMachineDefinition's response: `location` only when there is one.
pub(crate) fn response(ok: bool, diagnostics: &[Diagnostic]) -> Value {
    let diagnostics: Vec<Value> = diagnostics
        .iter()
        .map(|d| {
            let mut v = json!({
                "severity": match d.severity { Severity::Error => "ERROR", Severity::Warning => "WARNING" },
                "code": d.code.as_str(),
                "message": d.message,
            });
            if let Some(at) = &d.location {
                v["location"] = json!(at);
            }
            v
        })
        .collect();
    json!({"result": if ok { "OK" } else { "FAIL" }, "diagnostics": diagnostics, "truncated": false})
}

fn counts(errors: usize, warnings: usize) -> String {
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    format!(
        "{}, {}",
        plural(errors, "error"),
        plural(warnings, "warning")
    )
}
