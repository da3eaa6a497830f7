//! # stepstone-tasks
//!
//! Will hold the Task dispatchers the engine calls: AWS Lambda and CloudFormation through the AWS
//! SDK, Step Functions Local mock files, and local handlers. Nothing is implemented yet; it
//! depends on the engine's `TaskDispatcher` trait, which comes with the interpreter.

#![warn(missing_docs)]

pub use stepstone_engine as engine;
