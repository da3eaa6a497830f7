//! # stepstone-asl
//!
//! The Amazon States Language, as AWS Step Functions accepts it: load a definition, validate it
//! the way `ValidateStateMachineDefinition` does (every problem, each with AWS's code and a JSON
//! Pointer), and compile it into a [`Machine`] whose paths, payload templates and intrinsic
//! calls are parsed once. Pure and synchronous: no I/O, no async runtime, no AWS.
//!
//! ```
//! use stepstone_asl::{validate_str, Options, StateKind};
//!
//! let v = validate_str(
//!     r#"{"StartAt": "Hello", "States": {"Hello": {"Type": "Pass", "Next": "Nowhere"}}}"#,
//!     Options::default(),
//! );
//! assert!(!v.is_ok());
//! assert_eq!(v.diagnostics[0].code.as_str(), "MISSING_TRANSITION_TARGET");
//! assert_eq!(v.diagnostics[0].location.as_deref(), Some("/States/Hello/Next"));
//!
//! let v = validate_str(
//!     r#"{"StartAt": "Hello", "States": {"Hello": {"Type": "Pass", "End": true}}}"#,
//!     Options::default(),
//! );
//! let machine = v.machine.expect("valid");
//! let (name, state, _) = machine.root().state(machine.root().start());
//! assert_eq!(name, "Hello");
//! assert!(matches!(state.kind, StateKind::Pass(_)));
//! ```
#![warn(missing_docs)]

mod bounds;
mod definition;
mod diagnostic;
pub mod errors;
pub mod eval;
pub mod graph;
pub mod growth;
pub mod intrinsics;
pub mod jsonata;
mod language;
mod machine;
mod parse;
pub mod path;
pub mod states;
mod template;
pub mod timestamp;

pub use definition::{Definition, Loaded, MAX_STATE_NAME_CHARS, Scope};
pub use diagnostic::{Code, Diagnostic, Severity};
pub use machine::{
    Graph, Machine, Node, Options, SINGLE_STATE_NAME, ScopeRef, StateId, Validation, validate,
    validate_state, validate_str,
};
pub use parse::{Dynamic, MachineType, type_name as json_type_name};
pub use path::Path;
pub use states::{QueryLanguage, State, StateKind, Transition};
pub use template::Template;
