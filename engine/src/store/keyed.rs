//! The key layout the on-disk stores share (sled and redb hold the same keys and values; the
//! layout is in `docs/design.md`). Per execution ARN: `d/<arn>` the definition text, `l/<arn>`
//! the launch options, `c/<arn>` the latest checkpoint (JSON), `e/<arn>` the record for listing,
//! `h/<arn>/<id>` one history event (id as 20 zero-padded digits, so keys sort in id order); and
//! `meta/format`, the store's format version.
//!
//! A database only has to provide [`KeyValue`]; everything the layout means lives here once.

use serde_json::Value;

use super::{Error, ExecutionRecord, Result, Stored, decode, encode};
use crate::checkpoint::{Checkpoint, FORMAT_VERSION};
use crate::history::Event;

/// What a database gives the layout: string keys, byte values.
pub(crate) trait KeyValue {
    /// The value under `key`.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// Writes every pair in one atomic write, durable when it returns (as durable as the
    /// database makes it: see each store).
    fn put(&self, pairs: Vec<(String, Vec<u8>)>) -> Result<()>;

    /// Every pair whose key starts with `prefix`, in key order.
    fn scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>>;
}

/// Writes the format marker unless the store has one (a new store's first write).
pub(crate) fn mark_format(kv: &impl KeyValue) -> Result<()> {
    if kv.get("meta/format")?.is_none() {
        kv.put(vec![(
            "meta/format".into(),
            FORMAT_VERSION.to_string().into_bytes(),
        )])?;
    }
    Ok(())
}

/// One save: the checkpoint, the listing record and the new events, plus the definition and
/// launch options when the execution is created (`first`), in one atomic write.
pub(crate) fn write(
    kv: &impl KeyValue,
    first: Option<(&str, &Value)>,
    checkpoint: &Checkpoint,
    events: &[Event],
) -> Result<()> {
    let arn = &checkpoint.info.execution_arn;
    let mut pairs = Vec::with_capacity(events.len() + 4);
    if let Some((definition, launch)) = first {
        if kv.get(&format!("c/{arn}"))?.is_some() {
            return Err(Error::AlreadyExists(arn.clone()));
        }
        pairs.push((format!("d/{arn}"), definition.as_bytes().to_vec()));
        pairs.push((format!("l/{arn}"), encode(launch)?));
    }
    pairs.push((format!("c/{arn}"), encode(checkpoint)?));
    pairs.push((
        format!("e/{arn}"),
        encode(&ExecutionRecord::of(checkpoint))?,
    ));
    for event in events {
        pairs.push((format!("h/{arn}/{:020}", event.id), encode(event)?));
    }
    kv.put(pairs)
}

/// What the store has of an execution: `None` if it has no checkpoint.
pub(crate) fn load(kv: &impl KeyValue, execution_arn: &str) -> Result<Option<Stored>> {
    let Some(checkpoint) = kv.get(&format!("c/{execution_arn}"))? else {
        return Ok(None);
    };
    let corrupt = |reason: &str| Error::Corrupt {
        key: execution_arn.to_owned(),
        reason: reason.to_owned(),
    };
    let definition = kv
        .get(&format!("d/{execution_arn}"))?
        .ok_or_else(|| corrupt("a checkpoint without its definition"))?;
    let definition = String::from_utf8(definition).map_err(|e| corrupt(&e.to_string()))?;
    let launch = match kv.get(&format!("l/{execution_arn}"))? {
        Some(bytes) => decode(execution_arn, &bytes)?,
        None => Value::Null,
    };
    Ok(Some(Stored {
        definition,
        launch,
        checkpoint: decode(execution_arn, &checkpoint)?,
    }))
}

/// An execution's history events, in id order.
pub(crate) fn events(kv: &impl KeyValue, execution_arn: &str) -> Result<Vec<Event>> {
    kv.scan(&format!("h/{execution_arn}/"))?
        .iter()
        .map(|(k, v)| decode(k, v))
        .collect()
}

/// Every execution's listing record, in ARN order.
pub(crate) fn list(kv: &impl KeyValue) -> Result<Vec<ExecutionRecord>> {
    kv.scan("e/")?.iter().map(|(k, v)| decode(k, v)).collect()
}

/// Implements `CheckpointStore` for a [`KeyValue`] database through this layout.
macro_rules! checkpoint_store_over_keys {
    ($store:ty) => {
        impl $crate::store::CheckpointStore for $store {
            fn create(
                &self,
                definition: &str,
                launch: &serde_json::Value,
                checkpoint: &$crate::checkpoint::Checkpoint,
                events: &[$crate::history::Event],
            ) -> $crate::store::Result<()> {
                $crate::store::keyed::write(self, Some((definition, launch)), checkpoint, events)
            }

            fn save(
                &self,
                checkpoint: &$crate::checkpoint::Checkpoint,
                events: &[$crate::history::Event],
            ) -> $crate::store::Result<()> {
                $crate::store::keyed::write(self, None, checkpoint, events)
            }

            fn load(
                &self,
                execution_arn: &str,
            ) -> $crate::store::Result<Option<$crate::store::Stored>> {
                $crate::store::keyed::load(self, execution_arn)
            }

            fn events(
                &self,
                execution_arn: &str,
            ) -> $crate::store::Result<Vec<$crate::history::Event>> {
                $crate::store::keyed::events(self, execution_arn)
            }

            fn list(&self) -> $crate::store::Result<Vec<$crate::store::ExecutionRecord>> {
                $crate::store::keyed::list(self)
            }
        }
    };
}
pub(crate) use checkpoint_store_over_keys;
