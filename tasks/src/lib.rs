//! # stepstone-tasks
//!
//! Where Task states go. [`Router`] sends each task to the handler registered for its exact
//! resource, else to a fallback (by default, a clear failure naming the resource). Handlers so
//! far: [`CommandTask`], a local command (the CLI's `--task RESOURCE=COMMAND`), and any
//! [`stepstone_engine::TaskDispatcher`], such as a Rust closure in [`stepstone_engine::FnTasks`].
//! AWS Lambda and CloudFormation through the AWS SDK, and Step Functions Local mock files, come
//! with the AWS issue.

#![warn(missing_docs)]

mod command;
mod router;

pub use command::CommandTask;
pub use router::Router;
pub use stepstone_engine as engine;
