//! An in-memory store: for tests, and for runs that need not survive the process.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{CheckpointStore, ExecutionRecord, Result, decode, encode};
use crate::checkpoint::Checkpoint;

/// One stored execution: definition text, encoded checkpoint, listing record.
type Stored = (String, Vec<u8>, ExecutionRecord);

/// Keeps checkpoints in memory, encoded as a disk store would, so encoding bugs show in tests.
#[derive(Default)]
pub struct MemStore {
    executions: Mutex<BTreeMap<String, Stored>>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        MemStore::default()
    }
}

impl CheckpointStore for MemStore {
    fn create(&self, definition: &str, checkpoint: &Checkpoint) -> Result<()> {
        let arn = checkpoint.info.execution_arn.clone();
        let entry = (
            definition.to_owned(),
            encode(checkpoint)?,
            ExecutionRecord::of(checkpoint),
        );
        self.executions
            .lock()
            .expect("not poisoned")
            .insert(arn, entry);
        Ok(())
    }

    fn save(&self, checkpoint: &Checkpoint) -> Result<()> {
        let bytes = encode(checkpoint)?;
        let mut executions = self.executions.lock().expect("not poisoned");
        if let Some(entry) = executions.get_mut(&checkpoint.info.execution_arn) {
            entry.1 = bytes;
            entry.2 = ExecutionRecord::of(checkpoint);
        }
        Ok(())
    }

    fn load(&self, execution_arn: &str) -> Result<Option<(String, Checkpoint)>> {
        let executions = self.executions.lock().expect("not poisoned");
        match executions.get(execution_arn) {
            Some((definition, bytes, _)) => {
                Ok(Some((definition.clone(), decode(execution_arn, bytes)?)))
            }
            None => Ok(None),
        }
    }

    fn list(&self) -> Result<Vec<ExecutionRecord>> {
        Ok(self
            .executions
            .lock()
            .expect("not poisoned")
            .values()
            .map(|(_, _, r)| r.clone())
            .collect())
    }
}
