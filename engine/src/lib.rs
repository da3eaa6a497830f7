//! # stepstone-engine
//!
//! Runs compiled [`stepstone_asl::Machine`]s.
//!
//! - [`Execution`] is the interpreter: pure, it advances every run it can and returns
//!   [`Command`]s (dispatch a task, set a timer) for a driver to perform.
//! - [`run`] is that driver, on tokio, on a real or virtual clock.
//! - [`Engine`] is the embedding API: configure once (task routes, clock, limits), then run or
//!   start executions and stream their events.

#![warn(missing_docs)]

mod clock;
mod dispatch;
mod driver;
mod engine;
mod error;
mod failure;
pub mod history;
mod interpreter;
mod item_list;
mod limits;
mod manage;
mod model;
mod names;
mod record;
mod signal;
pub mod store;
mod test_state;
mod tokens;
mod vars;

pub use dispatch::{FnTasks, NoTasks, TaskDispatcher, TaskFuture};
pub use driver::{
    Notice, Outcome, Persistence, ResumeError, RunOptions, redrive, resume, run, run_durable,
    run_observed,
};
pub use engine::{Engine, EngineBuilder, ExecutionHandle};
pub use error::{Error, source_chain};
pub use failure::Failure;
pub use interpreter::RedriveError;
pub use interpreter::RestoreError;
pub use interpreter::{
    Command, Execution, ExecutionInfo, Input, RunId, STATES_PER_CALL, Status, TaskRequest,
    TimerReason,
};
pub use limits::{Limits, MAX_DEPTH};
pub use manage::{callback_stored, load_stored, stop_stored};
pub use names::{MAX_NAME_CHARS, NameError, check_name};
pub use record::{Changes, Checkpoint, FORMAT_VERSION, RecordKey};
pub use signal::{Callback, CallbackError, Signal, Signals, token_names, token_of};
pub use stepstone_asl as asl;
pub use test_state::{
    InspectionLevel, Mock, StateConfiguration, TestState, TestStateError, TestStateResponse,
    TestStatus, UNSUPPORTED_WITHOUT_MOCK, test_state,
};
pub use tokens::{TokenKey, random_key};
