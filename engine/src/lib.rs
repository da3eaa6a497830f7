//! # stepstone-engine
//!
//! Will run compiled [`stepstone_asl::Machine`]s: the pure interpreter, the tokio driver, the
//! checkpoint store and the clocks. Nothing is implemented yet; the interpreter is the next
//! piece of work (see ARCHITECTURE.md). The crate exists now so that the workspace has its
//! final shape and the dependency direction asl <- engine <- tasks is fixed.

#![warn(missing_docs)]

pub use stepstone_asl as asl;
