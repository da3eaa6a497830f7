//! What a store can fail with.

/// A store's failure. These are engine faults, never workflow errors: Catch does not see them.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The disk or the database failed.
    #[error("store I/O failed: {0}")]
    Io(String),
    /// `create` was given an execution the store already has (AWS: ExecutionAlreadyExists;
    /// execution names are unique per state machine).
    #[error(
        "ExecutionAlreadyExists: {0} is already in the store (give the execution another name)"
    )]
    AlreadyExists(String),
    /// Another process holds the store.
    #[error("the store at {0} is in use by another Stepstone process")]
    Locked(String),
    /// Engines that share the store (`serve --shared`) hold it: one that would own it alone
    /// cannot open it meanwhile.
    #[error("the store at {0} is shared by `stepstone serve --shared` engines")]
    Shared(String),
    /// What is stored cannot be read back.
    #[error("the store holds a corrupt record for {key}: {reason}")]
    Corrupt {
        /// The record.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The execution's or the state machine's name is not one AWS accepts; nothing was
    /// stored.
    #[error(transparent)]
    InvalidName(#[from] crate::NameError),
    /// The execution's input cannot be kept (it nests deeper than [`crate::MAX_DEPTH`]);
    /// nothing was stored.
    #[error("InvalidExecutionInput: {0}")]
    InvalidInput(String),
    /// Engines share the store and this one does not hold the execution's lease (any more:
    /// another engine took it over, or this one could not renew it in time). Nothing was
    /// written.
    #[error("this engine does not hold the lease of {0} (another engine drives it): not written")]
    NotHeld(String),
    /// `save` was given an execution the store does not have.
    #[error("no execution {0} in the store")]
    NotFound(String),
}

/// A store's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
