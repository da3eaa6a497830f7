//! # stepstone-engine
//!
//! Runs compiled [`stepstone_asl::Machine`]s. The [`Execution`] is a pure interpreter: it
//! advances every run it can and returns [`Command`]s (dispatch a task, set a timer) for a
//! driver to perform; the driver performs them (coming next).

#![warn(missing_docs)]

mod children;
mod dispatch;
mod driver;
mod failure;
pub mod history;
mod interpreter;
mod limits;
mod states;
mod vars;

pub use dispatch::{FnTasks, NoTasks, TaskDispatcher, TaskFuture};
pub use driver::{Outcome, RunOptions, run};
pub use failure::Failure;
pub use interpreter::{Command, Execution, ExecutionInfo, Input, RunId, Status, TaskRequest};
pub use limits::Limits;
pub use stepstone_asl as asl;
