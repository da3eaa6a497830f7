//! Checkpoints on disk, in sled 0.34.
//!
//! Key layout (one tree): `d/<arn>` the definition text, `c/<arn>` the latest checkpoint (JSON),
//! `e/<arn>` the execution's record for listing, `meta/format` the store's format version.
//! A save writes `c/` and `e/` in one atomic batch, then flushes. sled's flush uses
//! `sync_file_range` on Linux, not `fsync`: what it wrote survives a killed process, not
//! necessarily a power cut.

use std::path::Path;

use super::{CheckpointStore, Error, ExecutionRecord, Result, decode, encode};
use crate::checkpoint::{Checkpoint, FORMAT_VERSION};

/// A sled database in a directory.
pub struct SledStore {
    db: sled::Db,
}

fn io(e: sled::Error) -> Error {
    Error::Io(e.to_string())
}

impl SledStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<SledStore> {
        let db = sled::open(dir.as_ref()).map_err(io)?;
        if db.get("meta/format").map_err(io)?.is_none() {
            db.insert("meta/format", FORMAT_VERSION.to_string().as_bytes())
                .map_err(io)?;
            db.flush().map_err(io)?;
        }
        Ok(SledStore { db })
    }

    fn write(&self, definition: Option<&str>, checkpoint: &Checkpoint) -> Result<()> {
        let arn = &checkpoint.info.execution_arn;
        let mut batch = sled::Batch::default();
        if let Some(definition) = definition {
            batch.insert(format!("d/{arn}").as_bytes(), definition.as_bytes());
        }
        batch.insert(format!("c/{arn}").as_bytes(), encode(checkpoint)?);
        let record = serde_json::to_vec(&ExecutionRecord::of(checkpoint))
            .map_err(|e| Error::Io(e.to_string()))?;
        batch.insert(format!("e/{arn}").as_bytes(), record);
        self.db.apply_batch(batch).map_err(io)?;
        self.db.flush().map_err(io)?;
        Ok(())
    }
}

impl CheckpointStore for SledStore {
    fn create(&self, definition: &str, checkpoint: &Checkpoint) -> Result<()> {
        self.write(Some(definition), checkpoint)
    }

    fn save(&self, checkpoint: &Checkpoint) -> Result<()> {
        self.write(None, checkpoint)
    }

    fn load(&self, execution_arn: &str) -> Result<Option<(String, Checkpoint)>> {
        let Some(checkpoint) = self.db.get(format!("c/{execution_arn}")).map_err(io)? else {
            return Ok(None);
        };
        let definition = self
            .db
            .get(format!("d/{execution_arn}"))
            .map_err(io)?
            .ok_or_else(|| Error::Corrupt {
                key: execution_arn.to_owned(),
                reason: "a checkpoint without its definition".into(),
            })?;
        let definition = String::from_utf8(definition.to_vec()).map_err(|e| Error::Corrupt {
            key: execution_arn.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Some((definition, decode(execution_arn, &checkpoint)?)))
    }

    fn list(&self) -> Result<Vec<ExecutionRecord>> {
        self.db
            .scan_prefix("e/")
            .map(|entry| {
                let (key, value) = entry.map_err(io)?;
                decode(&String::from_utf8_lossy(&key), &value)
            })
            .collect()
    }
}
