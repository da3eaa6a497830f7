//! What can go wrong when the engine runs, resumes or manages an execution: engine faults,
//! never workflow errors (Catch does not see these).

use crate::driver::ResumeError;
use crate::store;

/// Why the engine could not run or resume an execution. Engine faults, not workflow errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// A stored checkpoint does not fit its definition, or cannot be redriven.
    #[error(transparent)]
    Resume(#[from] ResumeError),
    /// A stored checkpoint does not fit its definition.
    #[error(transparent)]
    Restore(#[from] crate::interpreter::RestoreError),
    /// A stored definition no longer validates.
    #[error("the stored definition of {0} is invalid")]
    Definition(String),
    /// A task callback was refused.
    #[error(transparent)]
    Callback(#[from] crate::signal::CallbackError),
    /// No such execution in the store.
    #[error("no execution {0} in the store")]
    NotFound(String),
    /// The execution has already ended (StopExecution on it does nothing).
    #[error("{execution_arn} is already {status}")]
    NotRunning {
        /// The execution.
        execution_arn: String,
        /// Its status.
        status: &'static str,
    },
}

/// An error's message followed by its sources', joined by `: ` (clients' top-level messages
/// are terse: "error connecting to server", the reason being in the source).
pub fn source_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}
