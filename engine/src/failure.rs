//! Workflow errors: what Retry and Catch match, and what a failed execution reports.

use std::fmt;

use serde_json::{Value, json};
use stepstone_asl::errors;

/// A workflow error: an error name (`States.Timeout`, `CloudFormation.AlreadyExistsException`,
/// a Lambda function's `errorType`...) and a cause. Unlike engine faults, these are data: Retry
/// and Catch match them, and a Catch hands them on as `{"Error", "Cause"}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Failure {
    /// The error name.
    pub error: String,
    /// The cause, free text.
    pub cause: String,
}

impl Failure {
    /// A failure with this error name and cause.
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Failure {
        Failure {
            error: error.into(),
            cause: cause.into(),
        }
    }

    /// The error output a Catch writes at its ResultPath.
    pub fn to_output(&self) -> Value {
        json!({"Error": self.error, "Cause": self.cause})
    }

    /// Errors that no Retry or Catch handles: AWS documents `States.Runtime` and
    /// `States.DataLimitExceeded` as terminal, whatever the ErrorEquals.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self.error.as_str(),
            errors::RUNTIME | errors::DATA_LIMIT_EXCEEDED
        )
    }

    /// Whether `names` (an `ErrorEquals`) matches this error. `States.ALL` matches any error
    /// that is not terminal; in a Task state, `States.TaskFailed` matches any error except
    /// `States.Timeout` (and the terminal ones).
    pub fn matches(&self, names: &[String], in_task: bool) -> bool {
        if self.is_terminal() {
            return false;
        }
        names.iter().any(|n| {
            n == &self.error
                || n == errors::ALL
                || (in_task && n == errors::TASK_FAILED && self.error != errors::TIMEOUT)
        })
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error, self.cause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn matching_rules() {
        let custom = Failure::new("CloudFormation.AlreadyExistsException", "x");
        assert!(custom.matches(&names(&["CloudFormation.AlreadyExistsException"]), true));
        assert!(custom.matches(&names(&["States.ALL"]), false));
        assert!(custom.matches(&names(&["States.TaskFailed"]), true));
        assert!(!custom.matches(&names(&["States.TaskFailed"]), false));
        let timeout = Failure::new("States.Timeout", "x");
        assert!(!timeout.matches(&names(&["States.TaskFailed"]), true));
        assert!(timeout.matches(&names(&["States.ALL"]), true));
        let runtime = Failure::new("States.Runtime", "x");
        assert!(!runtime.matches(&names(&["States.ALL", "States.Runtime"]), true));
        assert_eq!(
            custom.to_output(),
            json!({"Error": "CloudFormation.AlreadyExistsException", "Cause": "x"})
        );
    }
}
