//! Diagnostics: what validation reports, shaped like AWS's `ValidateStateMachineDefinition`.

use std::fmt;

/// How serious a [`Diagnostic`] is. An `Error` means AWS would refuse the definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    /// The definition cannot be created or run.
    Error,
    /// The definition runs, but something in it is probably a mistake.
    Warning,
}

impl Severity {
    /// AWS's spelling: `ERROR` or `WARNING`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Warning => "WARNING",
        }
    }
}

/// A diagnostic code. The names and meanings are AWS's, from the
/// `ValidateStateMachineDefinitionDiagnostic` reference, plus one of Stepstone's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// The text is not JSON.
    InvalidJsonDescription,
    /// The definition does not have the shape the States Language requires.
    SchemaValidationFailed,
    /// A `Next`, `Default` or `StartAt` names no state, or a state can never be reached.
    MissingTransitionTarget,
    /// A state machine (or a branch, or a Map's processor) has no terminal state.
    MissingEndState,
    /// Two states share a name.
    DuplicateStateName,
    /// A state name breaks the naming rules.
    InvalidStateName,
    /// A field has no `.$` but its value looks like a JSONPath or an intrinsic function.
    NoDollar,
    /// A field's value looks like a path, but its name does not end with `Path`.
    NoPath,
    /// A Pass state's `Result` contains a `.$` field, which is never evaluated.
    PassResultIsStatic,
    /// A Stepstone extension that AWS Step Functions would reject (`Region`, `RegionPath`).
    StepstoneExtension,
    /// A JSONata expression that does not parse.
    InvalidJsonataExpression,
    /// A JSONata expression Step Functions does not run: a field reference at the top level,
    /// where no context item exists.
    UnsupportedJsonataExpression,
}

impl Code {
    /// AWS's spelling, e.g. `SCHEMA_VALIDATION_FAILED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidJsonDescription => "INVALID_JSON_DESCRIPTION",
            Code::SchemaValidationFailed => "SCHEMA_VALIDATION_FAILED",
            Code::MissingTransitionTarget => "MISSING_TRANSITION_TARGET",
            Code::MissingEndState => "MISSING_END_STATE",
            Code::DuplicateStateName => "DUPLICATE_STATE_NAME",
            Code::InvalidStateName => "INVALID_STATE_NAME",
            Code::NoDollar => "NO_DOLLAR",
            Code::NoPath => "NO_PATH",
            Code::PassResultIsStatic => "PASS_RESULT_IS_STATIC",
            Code::StepstoneExtension => "STEPSTONE_EXTENSION",
            Code::InvalidJsonataExpression => "INVALID_JSONATA_EXPRESSION",
            Code::UnsupportedJsonataExpression => "UNSUPPORTED_JSONATA_EXPRESSION",
        }
    }

    /// The severity AWS gives this code.
    pub fn severity(self) -> Severity {
        match self {
            Code::NoDollar | Code::NoPath | Code::PassResultIsStatic | Code::StepstoneExtension => {
                Severity::Warning
            }
            _ => Severity::Error,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem found in a definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning; follows from the code.
    pub severity: Severity,
    /// AWS's code for the problem.
    pub code: Code,
    /// What is wrong, in words.
    pub message: String,
    /// A JSON Pointer into the definition (`/States/Deploy/Retry/0/BackoffRate`), when the
    /// problem has a place.
    pub location: Option<String>,
}

impl Diagnostic {
    /// A diagnostic at a JSON Pointer. The whole document is `/`, as AWS writes it (RFC 6901
    /// would write the empty string).
    pub fn new(code: Code, location: impl Into<String>, message: impl Into<String>) -> Self {
        let mut location = location.into();
        if location.is_empty() {
            location.push('/');
        }
        Diagnostic {
            severity: code.severity(),
            code,
            message: message.into(),
            location: Some(location),
        }
    }

    /// A diagnostic that belongs to no single place (e.g. `MISSING_END_STATE`).
    pub fn unplaced(code: Code, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: code.severity(),
            code,
            message: message.into(),
            location: None,
        }
    }

    /// True for errors, false for warnings.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    /// `error /States/Deploy/Next: MISSING_TRANSITION_TARGET: Missing 'Next' target: Nope`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        match &self.location {
            Some(at) => write!(f, "{severity} {at}: {}: {}", self.code, self.message),
            None => write!(f, "{severity}: {}: {}", self.code, self.message),
        }
    }
}

/// Appends one reference token to a JSON Pointer, escaping `~` and `/` (RFC 6901).
pub(crate) fn child(pointer: &str, token: &str) -> String {
    let mut out = String::with_capacity(pointer.len() + token.len() + 1);
    out.push_str(pointer);
    out.push('/');
    for c in token.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
    out
}

/// Appends an array index to a JSON Pointer.
pub(crate) fn index(pointer: &str, i: usize) -> String {
    format!("{pointer}/{i}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_tokens_are_escaped() {
        assert_eq!(child("/States", "a/b~c"), "/States/a~1b~0c");
        assert_eq!(child("", "States"), "/States");
        assert_eq!(index("/States/X/Retry", 2), "/States/X/Retry/2");
    }

    #[test]
    fn display_matches_the_cli_format() {
        let d = Diagnostic::new(
            Code::MissingTransitionTarget,
            "/States/Deploy/Next",
            "Missing 'Next' target: Nope",
        );
        assert_eq!(
            d.to_string(),
            "error /States/Deploy/Next: MISSING_TRANSITION_TARGET: Missing 'Next' target: Nope"
        );
        assert_eq!(Code::NoDollar.severity(), Severity::Warning);
    }
}
