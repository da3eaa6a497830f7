//! An in-memory store: for tests, and for runs that need not survive the process.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::Value;

use super::{CheckpointStore, Error, ExecutionRecord, Result, Stored, decode, encode};
use crate::checkpoint::Checkpoint;
use crate::history::Event;

/// One execution: definition, launch options, encoded checkpoint, listing record, events.
struct Entry {
    definition: String,
    launch: Value,
    checkpoint: Vec<u8>,
    record: ExecutionRecord,
    events: Vec<Event>,
}

/// Keeps executions in memory, checkpoints encoded as a disk store would, so encoding bugs show
/// in tests.
#[derive(Default)]
pub struct MemStore {
    executions: Mutex<BTreeMap<String, Entry>>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        MemStore::default()
    }
}

impl CheckpointStore for MemStore {
    fn create(
        &self,
        definition: &str,
        launch: &Value,
        checkpoint: &Checkpoint,
        events: &[Event],
    ) -> Result<()> {
        let arn = &checkpoint.info.execution_arn;
        let mut executions = self.executions.lock().expect("not poisoned");
        if executions.contains_key(arn) {
            return Err(Error::AlreadyExists(arn.clone()));
        }
        let entry = Entry {
            definition: definition.to_owned(),
            launch: launch.clone(),
            checkpoint: encode(checkpoint)?,
            record: ExecutionRecord::of(checkpoint),
            events: events.to_vec(),
        };
        executions.insert(arn.clone(), entry);
        Ok(())
    }

    fn save(&self, checkpoint: &Checkpoint, events: &[Event]) -> Result<()> {
        let bytes = encode(checkpoint)?;
        let mut executions = self.executions.lock().expect("not poisoned");
        if let Some(entry) = executions.get_mut(&checkpoint.info.execution_arn) {
            entry.checkpoint = bytes;
            entry.record = ExecutionRecord::of(checkpoint);
            entry.events.extend_from_slice(events);
        }
        Ok(())
    }

    fn load(&self, execution_arn: &str) -> Result<Option<Stored>> {
        let executions = self.executions.lock().expect("not poisoned");
        let Some(entry) = executions.get(execution_arn) else {
            return Ok(None);
        };
        Ok(Some(Stored {
            definition: entry.definition.clone(),
            launch: entry.launch.clone(),
            checkpoint: decode(execution_arn, &entry.checkpoint)?,
        }))
    }

    fn events(&self, execution_arn: &str) -> Result<Vec<Event>> {
        Ok(self
            .executions
            .lock()
            .expect("not poisoned")
            .get(execution_arn)
            .map(|e| e.events.clone())
            .unwrap_or_default())
    }

    fn list(&self) -> Result<Vec<ExecutionRecord>> {
        Ok(self
            .executions
            .lock()
            .expect("not poisoned")
            .values()
            .map(|e| e.record.clone())
            .collect())
    }
}
