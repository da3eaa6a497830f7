//! One file per state type: what entering it does, and how it resumes after a task, a timer or
//! its child runs. Each adds methods to [`crate::interpreter::Execution`].

mod choice;
mod fail;
mod map;
mod parallel;
mod pass;
mod succeed;
mod task;
mod wait;
