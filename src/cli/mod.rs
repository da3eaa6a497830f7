//! The subcommands. Each returns the process exit code, or an error that means exit 2.

use std::io::Read;
use std::path::Path;

pub(crate) mod executions;
pub(crate) mod graph;
pub(crate) mod run;
pub(crate) mod validate;

/// Reads a definition file, or standard input for `-`.
pub(crate) fn read_definition(file: &Path) -> Result<String, String> {
    if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        return Ok(text);
    }
    std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))
}
