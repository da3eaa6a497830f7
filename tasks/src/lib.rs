//! # stepstone-tasks
//!
//! Where Task states go. [`Router`] sends each task to the handler registered for its exact
//! resource, else to a fallback (by default, a clear failure naming the resource). Handlers so
//! far: [`CommandTask`], a local command (the CLI's `--task RESOURCE=COMMAND`), and any
//! [`stepstone_engine::TaskDispatcher`], such as a Rust closure in [`stepstone_engine::FnTasks`].
//! [`AwsTasks`] sends Lambda and CloudFormation tasks to AWS (or an emulator) through the AWS
//! SDK. [`MockTasks`] answers the states a Step Functions Local MockConfigFile test case
//! mocks.

#![warn(missing_docs)]

mod aws;
mod command;
pub mod item_reader;
mod mock;
pub mod result_writer;
mod router;

pub use aws::{AwsOptions, AwsTasks, client_request_token};
pub use command::CommandTask;
pub use mock::{MockCase, MockError, MockTasks};
pub use router::Router;
pub use stepstone_engine as engine;
