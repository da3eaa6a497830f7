//! Executions on disk, in sled 0.34.
//!
//! Key layout (one tree), per execution ARN: `d/<arn>` the definition text, `l/<arn>` the launch
//! options, `c/<arn>` the latest checkpoint (JSON), `e/<arn>` the record for listing,
//! `h/<arn>/<id>` one history event (id as 20 zero-padded digits, so keys sort in id order);
//! and `meta/format`, the store's format version. A save writes the checkpoint, the record and
//! the new events in one atomic batch, then flushes. sled's flush uses `sync_file_range` on
//! Linux, not `fsync`: what it wrote survives a killed process, not necessarily a power cut.

use std::path::Path;

use serde_json::Value;

use super::{CheckpointStore, Error, ExecutionRecord, Result, Stored, decode, encode};
use crate::checkpoint::{Checkpoint, FORMAT_VERSION};
use crate::history::Event;

/// A sled database in a directory. One process at a time: sled locks the directory.
pub struct SledStore {
    db: sled::Db,
}

fn io(e: sled::Error) -> Error {
    Error::Io(e.to_string())
}

impl SledStore {
    /// Opens (or creates) the store in `dir`. A store locked by another process is an error;
    /// a lock being released (sled lets go of it from a background thread after its last
    /// handle is dropped) is waited for, up to two seconds.
    pub fn open(dir: impl AsRef<Path>) -> Result<SledStore> {
        let dir = dir.as_ref();
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let db = loop {
            match sled::open(dir) {
                Ok(db) => break db,
                Err(sled::Error::Io(ref e))
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.to_string().contains("lock") =>
                {
                    if std::time::Instant::now() >= give_up {
                        return Err(Error::Locked(dir.display().to_string()));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(other) => return Err(io(other)),
            }
        };
        if db.get("meta/format").map_err(io)?.is_none() {
            db.insert("meta/format", FORMAT_VERSION.to_string().as_bytes())
                .map_err(io)?;
            db.flush().map_err(io)?;
        }
        Ok(SledStore { db })
    }

    fn write(
        &self,
        first: Option<(&str, &Value)>,
        checkpoint: &Checkpoint,
        events: &[Event],
    ) -> Result<()> {
        let arn = &checkpoint.info.execution_arn;
        let mut batch = sled::Batch::default();
        if let Some((definition, launch)) = first {
            batch.insert(format!("d/{arn}").as_bytes(), definition.as_bytes());
            batch.insert(format!("l/{arn}").as_bytes(), encode(launch)?);
        }
        batch.insert(format!("c/{arn}").as_bytes(), encode(checkpoint)?);
        batch.insert(
            format!("e/{arn}").as_bytes(),
            encode(&ExecutionRecord::of(checkpoint))?,
        );
        for event in events {
            batch.insert(
                format!("h/{arn}/{:020}", event.id).as_bytes(),
                encode(event)?,
            );
        }
        self.db.apply_batch(batch).map_err(io)?;
        self.db.flush().map_err(io)?;
        Ok(())
    }
}

impl CheckpointStore for SledStore {
    fn create(
        &self,
        definition: &str,
        launch: &Value,
        checkpoint: &Checkpoint,
        events: &[Event],
    ) -> Result<()> {
        self.write(Some((definition, launch)), checkpoint, events)
    }

    fn save(&self, checkpoint: &Checkpoint, events: &[Event]) -> Result<()> {
        self.write(None, checkpoint, events)
    }

    fn load(&self, execution_arn: &str) -> Result<Option<Stored>> {
        let Some(checkpoint) = self.db.get(format!("c/{execution_arn}")).map_err(io)? else {
            return Ok(None);
        };
        let corrupt = |reason: &str| Error::Corrupt {
            key: execution_arn.to_owned(),
            reason: reason.to_owned(),
        };
        let definition = self
            .db
            .get(format!("d/{execution_arn}"))
            .map_err(io)?
            .ok_or_else(|| corrupt("a checkpoint without its definition"))?;
        let definition =
            String::from_utf8(definition.to_vec()).map_err(|e| corrupt(&e.to_string()))?;
        let launch = match self.db.get(format!("l/{execution_arn}")).map_err(io)? {
            Some(bytes) => decode(execution_arn, &bytes)?,
            None => Value::Null,
        };
        Ok(Some(Stored {
            definition,
            launch,
            checkpoint: decode(execution_arn, &checkpoint)?,
        }))
    }

    fn events(&self, execution_arn: &str) -> Result<Vec<Event>> {
        self.db
            .scan_prefix(format!("h/{execution_arn}/"))
            .map(|entry| {
                let (key, value) = entry.map_err(io)?;
                decode(&String::from_utf8_lossy(&key), &value)
            })
            .collect()
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
