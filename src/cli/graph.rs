//! `stepstone graph FILE [--format mermaid|dot]`

use std::path::Path;
use std::process::ExitCode;

use stepstone::asl::graph::{Format, render};
use stepstone::asl::{Options, validate_str};

pub(crate) fn run(file: &Path, format: Format) -> Result<ExitCode, String> {
    let text = super::read_definition(file)?;
    let validation = validate_str(&text, Options::default());
    let Some(machine) = validation.machine else {
        for d in validation.diagnostics.iter().filter(|d| d.is_error()) {
            eprintln!("{d}");
        }
        eprintln!(
            "{}: not drawn, the definition is invalid (see `stepstone validate`)",
            file.display()
        );
        return Ok(ExitCode::from(1));
    };
    super::write_out(format_args!("{}", render(&machine, format)));
    Ok(ExitCode::SUCCESS)
}
