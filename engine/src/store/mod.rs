//! Where checkpoints live: a small trait, an in-memory store for tests, and sled and redb on
//! disk (one key layout, `keyed.rs`, over both).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use stepstone_asl::timestamp::Timestamp;

use crate::checkpoint::Checkpoint;
use crate::history::Event;
use crate::interpreter::Status;

mod keyed;
mod memory;
mod redb_store;
mod sled_store;

pub use memory::MemStore;
pub use redb_store::{REDB_FILE, RedbStore};
pub use sled_store::SledStore;

/// A store's failure. These are engine faults, never workflow errors: Catch does not see them.
#[derive(Debug, thiserror::Error)]
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
    /// What is stored cannot be read back.
    #[error("the store holds a corrupt record for {key}: {reason}")]
    Corrupt {
        /// The record.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A store's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An execution as ListExecutions shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionRecord {
    /// The execution's ARN.
    pub execution_arn: String,
    /// Its name.
    pub name: String,
    /// The state machine's name.
    pub state_machine_name: String,
    /// RUNNING, SUCCEEDED, FAILED, TIMED_OUT.
    pub status: String,
    /// When it started.
    pub start_date: Timestamp,
    /// When it ended (the checkpoint's clock), unless it is running.
    pub stop_date: Option<Timestamp>,
}

impl ExecutionRecord {
    pub(crate) fn of(checkpoint: &Checkpoint) -> ExecutionRecord {
        ExecutionRecord {
            execution_arn: checkpoint.info.execution_arn.clone(),
            name: checkpoint.info.name.clone(),
            state_machine_name: checkpoint.info.state_machine_name.clone(),
            status: checkpoint.status.as_str().to_owned(),
            start_date: checkpoint.info.start_time,
            stop_date: (checkpoint.status != Status::Running).then_some(checkpoint.now),
        }
    }
}

/// What a store keeps of one execution, besides its events.
pub struct Stored {
    /// The definition text it runs.
    pub definition: String,
    /// What its caller needs to resume it, kept verbatim (the CLI keeps its task routes and
    /// clock there).
    pub launch: Value,
    /// Its latest checkpoint.
    pub checkpoint: Checkpoint,
}

/// Stores executions: checkpoints, and history events appended as they happen. Each method is
/// durable when it returns: a crash after it returns finds what it wrote.
pub trait CheckpointStore: Send + Sync {
    /// Records a new execution: its definition text, launch options, first checkpoint and
    /// first events. Fails with [`Error::AlreadyExists`], writing nothing, when the store has
    /// an execution with that ARN.
    fn create(
        &self,
        definition: &str,
        launch: &Value,
        checkpoint: &Checkpoint,
        events: &[Event],
    ) -> Result<()>;

    /// Replaces the execution's checkpoint (and its listed status) and appends `events` (the
    /// ones since the last save), in one atomic write.
    fn save(&self, checkpoint: &Checkpoint, events: &[Event]) -> Result<()>;

    /// What the store has of an execution.
    fn load(&self, execution_arn: &str) -> Result<Option<Stored>>;

    /// An execution's history events, in order.
    fn events(&self, execution_arn: &str) -> Result<Vec<Event>>;

    /// Every execution, in ARN order.
    fn list(&self) -> Result<Vec<ExecutionRecord>>;
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::Io(format!("cannot encode a record: {e}")))
}

pub(crate) fn decode<T: for<'de> Deserialize<'de>>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}
