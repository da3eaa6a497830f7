//! # Stepstone
//!
//! Runs AWS Step Functions state machines (Amazon States Language) in-process. This crate is the
//! command-line tool and a facade over the workspace's crates:
//!
//! - [`asl`]: load, validate and compile definitions into a [`asl::Machine`];
//! - [`engine`]: runs machines (the interpreter, checkpoints, clocks);
//! - [`tasks`]: Task dispatch to AWS Lambda, CloudFormation, mocks and local handlers.
//!
//! ```
//! let v = stepstone::asl::validate_str(
//!     r#"{"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}"#,
//!     stepstone::asl::Options::default(),
//! );
//! assert!(v.is_ok());
//! ```

pub use stepstone_asl as asl;
pub use stepstone_engine as engine;
pub use stepstone_tasks as tasks;
