//! The save chain: the saves of one run of an execution, applied in order or not at all after
//! one fails. Its own file, used by the records (`Changes` carries one) and by the writer
//! (`group_commit.rs`), so that neither imports the other's module.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::error::{Error, Result};

/// The saves of one run of an execution, queued one after another without waiting for each
/// other's commit: each is applied only if every one before it was. A save holds only what
/// changed since the one before it, so applied without it, it would leave records that
/// contradict each other; a failed save therefore breaks its chain, and the saves queued after
/// it fail unapplied. (A resumed execution starts a new chain from what the store holds.)
#[derive(Clone, Debug, Default)]
pub(crate) struct Chain(Arc<AtomicBool>);

impl Chain {
    pub(crate) fn is_broken(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    pub(crate) fn break_off(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Applies `write` through `apply` unless the chain is broken, and breaks it if the write
    /// fails.
    pub(crate) fn apply(&self, apply: impl FnOnce() -> Result<()>) -> Result<()> {
        if self.is_broken() {
            return Err(broken());
        }
        let result = apply();
        if result.is_err() {
            self.break_off();
        }
        result
    }
}

/// What a save fails with when one queued before it failed.
pub(crate) fn broken() -> Error {
    Error::Io("an earlier save of this execution failed, so this one was not applied".into())
}
