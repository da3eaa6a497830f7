//! The key layout the stores share (sled, redb and the memory store hold the same keys and
//! values; `docs/design.md` describes it). A database only has to provide [`KeyValue`];
//! everything the layout means lives here once.
//!
//! | key | value |
//! |---|---|
//! | `meta/format` | the format the store was created with |
//! | `meta/next` | the number the next execution's records are kept under |
//! | `e/<ARN>` | the listing record, with the execution's number (v3) |
//! | `d/<ARN>`, `l/<ARN>` | the definition text; the launch options |
//! | `x/<n>/h`, `x/<n>/i` | header; input |
//! | `x/<n>/r/<slot>`, `x/<n>/v/<slot>` | a run's position; its data |
//! | `x/<n>/o/<children>/<batch>` | a batch of children's results |
//! | `x/<n>/e/<first event id>` | a batch of history events |
//! | `c/<ARN>`, `h/<ARN>/<event id>` | a v1 or v2 checkpoint, and its events (read only) |
//!
//! Numbers are fixed-width hexadecimal (`<n>`, `<slot>`...; event ids in `h/` are 20 decimal
//! digits), so keys sort in number order and no execution's prefix is another's.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::chain::Chain;
use super::group_commit::{Committer, Done};
pub(crate) use super::kv::{Fence, KeyValue, Refused, Write, applied};
use super::{Described, Error, ExecutionRecord, Result, Saving, Stored, wait};
use crate::history::{Event, EventKind};
use crate::record::legacy::Document;
use crate::record::{
    self, Changes, Checkpoint, ChildMarkRecord, FORMAT_VERSION, HeaderRecord, ListingRecord,
    RecordKey, Records,
};

/// The layout over a database: where each execution's records are, and the number the next
/// one gets.
pub(crate) struct Keyed<K> {
    pub(crate) kv: Arc<K>,
    /// Execution ARN to the number its records are kept under, as learnt (shared with the
    /// writer thread, which adds an execution once its creation is committed).
    keys: Arc<Mutex<HashMap<String, u64>>>,
    /// The executions being created, from the check that the store has none of that ARN to
    /// the commit: a second creation of one of them is refused as if it were stored already.
    creating: Arc<Mutex<HashSet<String>>>,
    /// The number the next execution gets (the store is one process's: see each store). It
    /// is held while a creation is queued, so numbers reach the writer in order.
    next: Mutex<u64>,
    /// The writer thread, for a database whose commits are worth sharing (`None`: each write is
    /// applied by its caller).
    committer: Option<Committer>,
    /// What task tokens are signed with (`meta/token-key`, made with the store, or at the
    /// first open of a store older than it).
    pub(crate) token_key: crate::TokenKey,
}

fn x(key: u64) -> String {
    format!("x/{key:016x}/")
}

fn record_key(execution: u64, record: RecordKey) -> String {
    let x = x(execution);
    match record {
        RecordKey::Header => format!("{x}h"),
        RecordKey::Input => format!("{x}i"),
        RecordKey::Run(slot) => format!("{x}r/{slot:08x}"),
        RecordKey::RunData(slot) => format!("{x}v/{slot:08x}"),
        RecordKey::Results { children, batch } => format!("{x}o/{children:016x}/{batch:016x}"),
        RecordKey::AllResults { children } => format!("{x}o/{children:016x}/"),
        RecordKey::History { first } => format!("{x}e/{first:016x}"),
    }
}

/// Which part of the layout a key or a prefix belongs to: a database may keep history batches
/// apart from the other records (PostgreSQL keeps them in a table of their own: they are the
/// bulk of a store, written once and read rarely).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Space {
    Records,
    History,
    /// A prefix under which keys of both lie (the empty prefix, `x/`...).
    Both,
}

/// Whether `key` is a history batch: an execution's (`x/<n>/e/...`), a save's child events
/// (`b/...`), or a v1/v2 event (`h/...`). (A child's marks, `k/...`, are an index: records.)
pub(crate) fn is_history(key: &str) -> bool {
    key.starts_with("b/") || key.starts_with("h/") || matches_events(key, true)
}

/// Whether `text` is (`whole`: starts with) `x/<16 hex digits>/e/`, or (not `whole`) could
/// still become it.
fn matches_events(text: &str, whole: bool) -> bool {
    const PATTERN_LEN: usize = "x/0123456789abcdef/e/".len();
    let bytes = text.as_bytes();
    if whole && bytes.len() < PATTERN_LEN {
        return false;
    }
    bytes
        .iter()
        .take(PATTERN_LEN)
        .enumerate()
        .all(|(i, b)| match i {
            0 => *b == b'x',
            1 | 18 | 20 => *b == b'/',
            19 => *b == b'e',
            _ => b.is_ascii_hexdigit(),
        })
}

/// The space whose keys may start with `prefix`.
pub(crate) fn space_of_prefix(prefix: &str) -> Space {
    if is_history(prefix) {
        Space::History
    } else if ["b/", "h/"].iter().any(|h| h.starts_with(prefix)) || matches_events(prefix, false) {
        Space::Both
    } else {
        Space::Records
    }
}

/// The number at the end of `key`, after `prefix`.
fn number_after(key: &str, prefix: &str) -> Result<u64> {
    key.strip_prefix(prefix)
        .and_then(|n| u64::from_str_radix(n.split('/').next()?, 16).ok())
        .ok_or_else(|| Error::Corrupt {
            key: key.to_owned(),
            reason: "a key the layout does not know".into(),
        })
}

impl<K: KeyValue + Send + Sync + 'static> Keyed<K> {
    /// The layout over `kv`, marking a new store with the format it is created with; with
    /// `group_commit`, its executions' saves go through a writer thread (`group_commit.rs`).
    pub(crate) fn open(kv: K, existing: bool, group_commit: bool) -> Result<Keyed<K>> {
        if kv.get("meta/format")?.is_none() {
            if existing {
                // What was a store reads as an empty database: refuse to start over on it.
                return Err(Error::Corrupt {
                    key: "meta/format".into(),
                    reason: "the database holds no Stepstone records (truncated, emptied or \
                             replaced)"
                        .into(),
                });
            }
            let mut write = Write::default();
            write.puts.push((
                "meta/format".into(),
                Cow::Owned(FORMAT_VERSION.to_string().into_bytes()),
            ));
            kv.apply(vec![write])?;
        }
        let next = match kv.get("meta/next")? {
            Some(bytes) => record::decode("meta/next", &bytes)?,
            None => 1,
        };
        let token_key = match kv.get("meta/token-key")? {
            Some(bytes) => record::decode("meta/token-key", &bytes)?,
            None => {
                let key = crate::random_key();
                let mut write = Write::default();
                write
                    .puts
                    .push(("meta/token-key".into(), Cow::Owned(record::encode(&key)?)));
                kv.apply(vec![write])?;
                key
            }
        };
        let kv = Arc::new(kv);
        let committer = match group_commit {
            true => Some(Committer::start(kv.clone())?),
            false => None,
        };
        Ok(Keyed {
            kv,
            keys: Arc::default(),
            creating: Arc::default(),
            next: Mutex::new(next),
            token_key,
            committer,
        })
    }

    fn listing(&self, arn: &str) -> Result<Option<ListingRecord>> {
        let key = format!("e/{arn}");
        match self.kv.get(&key)? {
            Some(bytes) => Ok(Some(record::decode(&key, &bytes)?)),
            None => Ok(None),
        }
    }

    /// The number an execution's records are under: `None` for a v1 or v2 execution (or one
    /// the store does not have).
    fn key_of(&self, arn: &str) -> Result<Option<u64>> {
        if let Some(key) = self.keys.lock().expect("not poisoned").get(arn) {
            return Ok(Some(*key));
        }
        let key = self.listing(arn)?.and_then(|l| l.key);
        if let Some(key) = key {
            self.keys
                .lock()
                .expect("not poisoned")
                .insert(arn.to_owned(), key);
        }
        Ok(key)
    }

    /// The writes of `changes` for execution number `key`, with `puts`, the records of
    /// `changes` (taken from them, or copied).
    fn write_of(
        &self,
        key: u64,
        changes: &Changes,
        puts: Vec<(RecordKey, Vec<u8>)>,
        write: &mut Write<'static>,
    ) -> Result<()> {
        for record in changes.deletes() {
            match record {
                RecordKey::AllResults { .. } => {
                    write.delete_prefixes.push(record_key(key, *record));
                }
                _ => write.deletes.push(record_key(key, *record)),
            }
        }
        for (record, bytes) in puts {
            write
                .puts
                .push((record_key(key, record), Cow::Owned(bytes)));
        }
        // The history batch: encoded by whoever applies the write (the writer thread).
        if let Some(first) = changes.events.first() {
            let events = std::sync::Arc::clone(&changes.events);
            write.encode_later(
                record_key(key, RecordKey::History { first: first.id }),
                Box::new(move || record::encode_events(&events)),
            );
        }
        if let Some(listing) = changes.listing() {
            write.puts.push((
                format!("e/{}", changes.execution_arn()),
                Cow::Owned(record::encode(&ListingRecord::of(listing, Some(key)))?),
            ));
        }
        // The save's child events, every child's in one record (compressed together: children
        // of one Map repeat each other); each child points at it from under its own id.
        let batch = changes.child_events.iter().find_map(|child| {
            let first = child.events.first()?;
            Some(format!("b/{}/{:020}", child_key(&child.arn), first.id))
        });
        if let Some(batch) = &batch {
            write.puts.push((
                batch.clone(),
                Cow::Owned(record::encode_child_batch(
                    &changes.child_events,
                    child_key,
                )?),
            ));
        }
        // Each child of the save gets one mark, under its own id: its start (`s`), its end
        // (`e<first id>`), its redrive (`r<first id>`), or (a save between) a pointer
        // (`p<first id>`), each naming the batch. A child that starts and ends within two
        // saves has two records in all.
        let mut marks: Vec<(&str, ChildMarkRecord)> = Vec::new();
        for child in &changes.child_events {
            let (Some(first), Some(batch)) = (child.events.first(), &batch) else {
                continue;
            };
            let name = child_key(&child.arn);
            let at = marks.iter().rposition(|(n, _)| *n == name);
            let at = at.unwrap_or_else(|| {
                marks.push((name, ChildMarkRecord::pointer(batch.clone(), first.id)));
                marks.len() - 1
            });
            for event in &child.events {
                let status = match &event.kind {
                    EventKind::ExecutionStarted { .. } => {
                        marks[at].1.started = Some(event.timestamp);
                        continue;
                    }
                    EventKind::ExecutionRedriven { .. } => {
                        marks[at].1.redriven = Some(event.timestamp);
                        continue;
                    }
                    EventKind::ExecutionSucceeded { .. } => "SUCCEEDED",
                    EventKind::ExecutionFailed { .. } => "FAILED",
                    EventKind::ExecutionAborted { .. } => "ABORTED",
                    _ => continue,
                };
                marks[at].1.ended = Some((status.to_owned(), event.timestamp));
            }
        }
        for (name, mark) in marks {
            let bytes = record::encode(&mark)?;
            let (started, ended) = (mark.started.is_some(), mark.ended.is_some());
            if started {
                write
                    .puts
                    .push((format!("k/{name}/s"), Cow::Owned(bytes.clone())));
            }
            if ended {
                // Under the first event's id: a redriven child ends again, and each end's
                // batch stays named.
                let key = format!("k/{name}/e{:020}", mark.first);
                write.puts.push((key, Cow::Owned(bytes.clone())));
            }
            if !started && !ended {
                // Redriven (running again), or a save between.
                let kind = if mark.redriven.is_some() { 'r' } else { 'p' };
                let key = format!("k/{name}/{kind}{:020}", mark.first);
                write.puts.push((key, Cow::Owned(bytes)));
            }
        }
        for map_run in &changes.map_runs {
            write.puts.push((
                format!("M/{}", map_run.map_run_arn),
                Cow::Owned(record::encode(map_run)?),
            ));
        }
        Ok(())
    }

    /// Hands `write` (a link of `chain`, if it has one) to the writer thread, or applies it
    /// now when there is none.
    fn submit(&self, mut write: Write<'static>, chain: Option<Chain>, done: Done) {
        match (&self.committer, chain) {
            (Some(committer), chain) => committer.submit(write, chain, done),
            (None, Some(chain)) => done(chain.apply(|| {
                write.encode_now()?;
                applied(self.kv.apply(vec![write]))
            })),
            (None, None) => done(
                write
                    .encode_now()
                    .and_then(|()| applied(self.kv.apply(vec![write]))),
            ),
        }
    }

    /// Takes the next execution number and queues the first write of execution `arn` under
    /// it, as `build` makes it (the counter's update is added); `done` is answered once it is
    /// committed, after which the execution is known under its number.
    fn submit_new(
        &self,
        arn: &str,
        build: impl FnOnce(u64, &mut Write<'static>) -> Result<()>,
        chain: Option<Chain>,
        done: Done,
    ) -> Result<()> {
        let mut next = self.next.lock().expect("not poisoned");
        let mut write = Write {
            fence: self.kv.fence(arn)?,
            ..Write::default()
        };
        // A database shared by several engines hands the numbers out itself.
        let key = match self.kv.next_number()? {
            Some(key) => {
                build(key, &mut write)?;
                key
            }
            None => {
                let key = *next;
                build(key, &mut write)?;
                write
                    .puts
                    .push(("meta/next".into(), Cow::Owned(record::encode(&(key + 1))?)));
                // A number is used once, whatever becomes of its write: a failed creation
                // leaves a gap, never two executions under one number.
                *next = key + 1;
                key
            }
        };
        let keys = self.keys.clone();
        let arn = arn.to_owned();
        self.submit(
            write,
            chain,
            Box::new(move |result| {
                if result.is_ok() {
                    keys.lock().expect("not poisoned").insert(arn, key);
                }
                done(result)
            }),
        );
        // Queued while the counter was held: the writes reach the writer in number order, so
        // the last `meta/next` written is the greatest.
        drop(next);
        Ok(())
    }

    /// Queues the creation of an execution (see [`super::CheckpointStore::create`]); errors
    /// found before anything is queued are returned, `done` answers the commit.
    fn queue_create(
        &self,
        definition: &str,
        launch: &Value,
        changes: &Changes,
        puts: Vec<(RecordKey, Vec<u8>)>,
        done: Done,
    ) -> Result<()> {
        let arn = changes.execution_arn();
        if !changes.is_complete() || changes.listing().is_none() {
            return Err(Error::Io(format!(
                "the creation of {arn} does not hold the whole execution"
            )));
        }
        // Reserved from the check to the commit, so that two creations of one ARN at once
        // cannot both pass the check.
        if !self
            .creating
            .lock()
            .expect("not poisoned")
            .insert(arn.to_owned())
        {
            return Err(Error::AlreadyExists(arn.to_owned()));
        }
        let creating = self.creating.clone();
        let release = move |arn: &str| {
            creating.lock().expect("not poisoned").remove(arn);
        };
        // Engines sharing the database reserve the ARN there first (another engine may be
        // creating it at this moment); the reservation is given back unless the creation
        // commits.
        if let Err(e) = self.kv.reserve(arn) {
            release(arn);
            return Err(e);
        }
        let kv = self.kv.clone();
        let unreserve = move |arn: &str| kv.unreserve(arn);
        let queued = (|| {
            if self.listing(arn)?.is_some() || self.kv.get(&format!("c/{arn}"))?.is_some() {
                return Err(Error::AlreadyExists(arn.to_owned()));
            }
            let owned = arn.to_owned();
            let release = release.clone();
            let unreserve = unreserve.clone();
            self.submit_new(
                arn,
                |key, write| {
                    write.puts.push((
                        format!("d/{arn}"),
                        Cow::Owned(definition.as_bytes().to_vec()),
                    ));
                    write
                        .puts
                        .push((format!("l/{arn}"), Cow::Owned(record::encode(launch)?)));
                    self.write_of(key, changes, puts, write)
                },
                Some(changes.chain.clone()),
                Box::new(move |result| {
                    if result.is_err() {
                        unreserve(&owned);
                    }
                    release(&owned);
                    done(result)
                }),
            )
        })();
        if queued.is_err() {
            unreserve(arn);
            release(arn);
        }
        queued
    }

    /// Queues what changed in an execution (see [`super::CheckpointStore::save`]).
    fn queue_save(
        &self,
        changes: &Changes,
        puts: Vec<(RecordKey, Vec<u8>)>,
        done: Done,
    ) -> Result<()> {
        let arn = changes.execution_arn();
        if let Some(key) = self.key_of(arn)? {
            let mut write = Write {
                fence: self.kv.fence(arn)?,
                ..Write::default()
            };
            self.write_of(key, changes, puts, &mut write)?;
            self.submit(write, Some(changes.chain.clone()), done);
            return Ok(());
        }
        // A v1 or v2 execution's first save in v3: written whole, under a number of its own,
        // and its old document goes. (Its events stay where they are: `events` reads both.)
        let Some(listing) = self.listing(arn)? else {
            return Err(Error::NotFound(arn.to_owned()));
        };
        if !changes.is_complete() {
            return Err(Error::Io(format!(
                "{arn} is stored in format v1 or v2 and its first save is not whole"
            )));
        }
        self.submit_new(
            arn,
            |key, write| {
                write.deletes.push(format!("c/{arn}"));
                self.write_of(key, changes, puts, write)?;
                if changes.listing().is_none() {
                    let listing = ListingRecord {
                        key: Some(key),
                        ..listing
                    };
                    write
                        .puts
                        .push((format!("e/{arn}"), Cow::Owned(record::encode(&listing)?)));
                }
                Ok(())
            },
            Some(changes.chain.clone()),
            done,
        )
    }

    pub(crate) fn create(&self, definition: &str, launch: &Value, changes: &Changes) -> Result<()> {
        wait(|done| self.queue_create(definition, launch, changes, changes.puts().to_vec(), done))
    }

    pub(crate) fn save(&self, changes: &Changes) -> Result<()> {
        wait(|done| self.queue_save(changes, changes.puts().to_vec(), done))
    }

    pub(crate) fn create_async(
        &self,
        definition: &str,
        launch: &Value,
        mut changes: Changes,
    ) -> Saving {
        let puts = std::mem::take(&mut changes.puts);
        Saving::queue(changes, |changes, done| {
            self.queue_create(definition, launch, changes, puts, done)
        })
    }

    pub(crate) fn save_async(&self, mut changes: Changes) -> Saving {
        let puts = std::mem::take(&mut changes.puts);
        Saving::queue(changes, |changes, done| {
            self.queue_save(changes, puts, done)
        })
    }

    /// An execution's checkpoint: its v3 records, or its v1 or v2 document.
    fn checkpoint(&self, arn: &str) -> Result<Option<Checkpoint>> {
        let corrupt = |reason: String| Error::Corrupt {
            key: arn.to_owned(),
            reason,
        };
        let Some(key) = self.key_of(arn)? else {
            let legacy_key = format!("c/{arn}");
            let Some(bytes) = self.kv.get(&legacy_key)? else {
                return Ok(None);
            };
            let document: Document = record::decode(&legacy_key, &bytes)?;
            if document.version() > FORMAT_VERSION {
                return Err(corrupt(format!(
                    "checkpoint format v{} is newer than this Stepstone understands (v{FORMAT_VERSION})",
                    document.version()
                )));
            }
            return document.into_checkpoint().map(Some).map_err(corrupt);
        };
        let x = x(key);
        let header_key = format!("{x}h");
        let header_bytes = self
            .kv
            .get(&header_key)?
            .ok_or_else(|| corrupt("a listed execution without its header record".into()))?;
        let header: HeaderRecord<'static> = record::decode(&header_key, &header_bytes)?;
        if header.version > FORMAT_VERSION {
            return Err(corrupt(format!(
                "checkpoint format v{} is newer than this Stepstone understands (v{FORMAT_VERSION})",
                header.version
            )));
        }
        let input_key = format!("{x}i");
        let input = match self.kv.get(&input_key)? {
            Some(bytes) => record::decode(&input_key, &bytes)?,
            None => return Err(corrupt("an execution without its input record".into())),
        };
        let mut runs = BTreeMap::new();
        for (k, v) in self.kv.scan(&format!("{x}r/"))? {
            let slot = number_after(&k, &format!("{x}r/"))? as u32;
            runs.insert(slot, record::decode(&k, &v)?);
        }
        let mut data = BTreeMap::new();
        for (k, v) in self.kv.scan(&format!("{x}v/"))? {
            let slot = number_after(&k, &format!("{x}v/"))? as u32;
            data.insert(slot, record::decode(&k, &v)?);
        }
        let mut results: BTreeMap<u64, Vec<_>> = BTreeMap::new();
        for (k, v) in self.kv.scan(&format!("{x}o/"))? {
            let children = number_after(&k, &format!("{x}o/"))?;
            let batch: Vec<(u64, Box<serde_json::value::RawValue>)> = record::decode(&k, &v)?;
            results.entry(children).or_default().extend(batch);
        }
        Checkpoint::from_records(Records {
            header,
            input,
            runs,
            data,
            results,
        })
        .map(Some)
        .map_err(corrupt)
    }

    pub(crate) fn load(&self, arn: &str) -> Result<Option<Stored>> {
        let Some(checkpoint) = self.checkpoint(arn)? else {
            return Ok(None);
        };
        let corrupt = |reason: &str| Error::Corrupt {
            key: arn.to_owned(),
            reason: reason.to_owned(),
        };
        let definition = self
            .kv
            .get(&format!("d/{arn}"))?
            .ok_or_else(|| corrupt("an execution without its definition"))?;
        let definition = String::from_utf8(definition).map_err(|e| corrupt(&e.to_string()))?;
        let launch = match self.kv.get(&format!("l/{arn}"))? {
            Some(bytes) => record::decode(arn, &bytes)?,
            None => Value::Null,
        };
        Ok(Some(Stored {
            definition,
            launch,
            checkpoint,
        }))
    }

    pub(crate) fn definition(&self, arn: &str) -> Result<Option<String>> {
        let key = format!("d/{arn}");
        match self.kv.get(&key)? {
            Some(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|e| Error::Corrupt {
                    key,
                    reason: e.to_string(),
                }),
            None => Ok(None),
        }
    }

    pub(crate) fn launch(&self, arn: &str) -> Result<Option<Value>> {
        match self.kv.get(&format!("l/{arn}"))? {
            Some(bytes) => Ok(Some(record::decode(arn, &bytes)?)),
            // Stores of format v1 and v2 kept no launch apart: as `load` reads it.
            None => Ok(self.checkpoint(arn)?.map(|_| Value::Null)),
        }
    }

    pub(crate) fn describe(&self, arn: &str) -> Result<Option<Described>> {
        let Some(key) = self.key_of(arn)? else {
            // v1 or v2: the document holds everything.
            return Ok(self.checkpoint(arn)?.map(|c| Described {
                info: c.info,
                status: c.status,
                now: c.now,
            }));
        };
        let x = x(key);
        let header_key = format!("{x}h");
        let Some(bytes) = self.kv.get(&header_key)? else {
            return Err(Error::Corrupt {
                key: arn.to_owned(),
                reason: "a listed execution without its header record".into(),
            });
        };
        let header: HeaderRecord<'static> = record::decode(&header_key, &bytes)?;
        let input_key = format!("{x}i");
        let Some(input) = self.kv.get(&input_key)? else {
            return Err(Error::Corrupt {
                key: arn.to_owned(),
                reason: "an execution without its input record".into(),
            });
        };
        let input: record::InputRecord<'static> = record::decode(&input_key, &input)?;
        Ok(Some(Described {
            info: input.into_info(&header),
            status: header.status.into_status(),
            now: record::at(header.now),
        }))
    }

    pub(crate) fn events(&self, arn: &str) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        // A v1 or v2 execution's events, one per record (kept where they were after the
        // execution moved to v3).
        for (k, v) in self.kv.scan(&format!("h/{arn}/"))? {
            events.extend(record::decode_events(&k, &v)?);
        }
        match self.key_of(arn)? {
            Some(key) => {
                for (k, v) in self.kv.scan(&format!("{}e/", x(key)))? {
                    events.extend(record::decode_events(&k, &v)?);
                }
            }
            // A distributed Map's child execution.
            None => events.extend(self.child_events(arn)?),
        }
        Ok(events)
    }

    /// The events of child execution `arn`, from the batches its marks name.
    fn child_events(&self, arn: &str) -> Result<Vec<Event>> {
        let name = child_key(arn);
        let mut batches = HashSet::new();
        let mut events = Vec::new();
        for (k, v) in self.kv.scan(&format!("k/{name}/"))? {
            if is_child_events_record(&k) {
                events.extend(record::decode_events(&k, &v)?);
                continue;
            }
            let mark: ChildMarkRecord = record::decode(&k, &v)?;
            // A batch holds all of the child's events of its save: read once.
            if !batches.insert(mark.batch.clone()) {
                continue;
            }
            let bytes = self.kv.get(&mark.batch)?.ok_or_else(|| Error::Corrupt {
                key: k.clone(),
                reason: format!("it names batch {}, which is not in the store", mark.batch),
            })?;
            events.extend(record::decode_child_batch(&mark.batch, &bytes, name)?);
        }
        // The marks sort by kind, not by save.
        events.sort_by_key(|e| e.id);
        Ok(events)
    }

    /// Hands each event after id `after` to `f`, in order, reading the history a page of
    /// batches at a time from the batch that holds the first one wanted; stops when `f`
    /// answers false.
    pub(crate) fn each_event_after(
        &self,
        arn: &str,
        after: u64,
        f: &mut dyn FnMut(Event) -> bool,
    ) -> Result<()> {
        const PAGE: usize = 64;
        // A v1 or v2 execution's events, one per key, then its v3 batches.
        let legacy = format!("h/{arn}/");
        let mut sources = vec![(legacy.clone(), Some(format!("{legacy}{after:020}")))];
        if let Some(key) = self.key_of(arn)? {
            let prefix = format!("{}e/", x(key));
            // The batch holding event `after + 1` starts at or before its id.
            let first = record_key(key, RecordKey::History { first: after + 1 });
            let start = self.kv.last_at_or_before(&prefix, &first)?.map(|(k, _)| k);
            // Scanning resumes after a key: just before the batch found, or from the start.
            let before = start.map(|k| {
                let mut before = k;
                before.pop();
                before
            });
            sources.push((prefix, before));
        } else {
            // A distributed Map's child execution: a few events, read at once.
            for event in self.child_events(arn)? {
                if event.id > after && !f(event) {
                    return Ok(());
                }
            }
        }
        for (prefix, mut from) in sources {
            loop {
                let page = self.kv.scan_page(&prefix, from.as_deref(), PAGE)?;
                for (k, v) in &page {
                    for event in record::decode_events(k, v)? {
                        if event.id > after && !f(event) {
                            return Ok(());
                        }
                    }
                }
                if page.len() < PAGE {
                    break;
                }
                from = page.last().map(|(k, _)| k.clone());
            }
        }
        Ok(())
    }

    pub(crate) fn each_event(&self, arn: &str, f: &mut dyn FnMut(Event) -> bool) -> Result<()> {
        self.each_event_after(arn, 0, f)
    }

    pub(crate) fn event(&self, arn: &str, id: u64) -> Result<Option<Event>> {
        if let Some(key) = self.key_of(arn)? {
            let prefix = format!("{}e/", x(key));
            let at = record_key(key, RecordKey::History { first: id });
            if let Some((k, v)) = self.kv.last_at_or_before(&prefix, &at)? {
                let found = record::decode_events(&k, &v)?
                    .into_iter()
                    .find(|e| e.id == id);
                if found.is_some() {
                    return Ok(found);
                }
            }
        }
        let legacy = format!("h/{arn}/{id:020}");
        match self.kv.get(&legacy)? {
            Some(v) => Ok(record::decode_events(&legacy, &v)?
                .into_iter()
                .find(|e| e.id == id)),
            None => Ok(None),
        }
    }

    pub(crate) fn put_state_machine(&self, machine: &super::StateMachineRecord) -> Result<()> {
        let mut write = Write::default();
        write.puts.push((
            format!("m/{}", machine.arn),
            Cow::Owned(record::encode(machine)?),
        ));
        applied(self.kv.apply(vec![write]))
    }

    pub(crate) fn state_machine(&self, arn: &str) -> Result<Option<super::StateMachineRecord>> {
        let key = format!("m/{arn}");
        match self.kv.get(&key)? {
            Some(bytes) => Ok(Some(record::decode(&key, &bytes)?)),
            None => Ok(None),
        }
    }

    pub(crate) fn state_machines(&self) -> Result<Vec<super::StateMachineRecord>> {
        self.kv
            .scan("m/")?
            .iter()
            .map(|(k, v)| record::decode(k, v))
            .collect()
    }

    pub(crate) fn map_run(&self, arn: &str) -> Result<Option<super::MapRunRecord>> {
        let key = format!("M/{arn}");
        match self.kv.get(&key)? {
            Some(bytes) => Ok(Some(record::decode(&key, &bytes)?)),
            None => Ok(None),
        }
    }

    /// The children of Map Run `map_run_arn`, in index order: their names begin with the
    /// same hash of the Map Run's ARN, so their marks are side by side.
    pub(crate) fn child_executions(&self, map_run_arn: &str) -> Result<Vec<ExecutionRecord>> {
        let (machine_arn, execution_prefix) = crate::names::child_arns(map_run_arn);
        let machine = machine_arn
            .split_once(":stateMachine:")
            .map_or("", |(_, m)| m);
        let prefix = format!("k/{}", crate::names::child_name_prefix(map_run_arn));
        let mut children: Vec<ExecutionRecord> = Vec::new();
        // The first event id of the mark that gave the last child its status: its latest end
        // or redrive (marks sort by kind, not by save).
        let mut status_from = 0;
        for (key, bytes) in self.kv.scan(&prefix)? {
            let Some((name, kind)) = key["k/".len()..].split_once('/') else {
                continue;
            };
            // Pointers say nothing of the status; nor do the event records of a store written
            // before marks (their children are listed no more: their listings were `K/`).
            if kind.starts_with('p') || is_child_events_record(&key) {
                continue;
            }
            let mark: ChildMarkRecord = record::decode(&key, &bytes)?;
            if children.last().is_none_or(|last| last.name != name) {
                // `e...` sorts before `s`: the end's date stands in until the start is read.
                let date = mark.started.or(mark.ended.as_ref().map(|(_, at)| *at));
                let date = date.or(mark.redriven).ok_or_else(|| Error::Corrupt {
                    key: key.clone(),
                    reason: "a child's mark without a date".into(),
                })?;
                children.push(ExecutionRecord {
                    execution_arn: format!("{execution_prefix}{name}"),
                    name: name.to_owned(),
                    state_machine_name: machine.to_owned(),
                    status: "RUNNING".into(),
                    start_date: date,
                    stop_date: None,
                });
                status_from = 0;
            }
            let child = children.last_mut().expect("pushed");
            if let Some(started) = mark.started {
                child.start_date = started;
            }
            if mark.first < status_from {
                continue;
            }
            if let Some((status, stopped)) = mark.ended {
                child.status = status;
                child.stop_date = Some(stopped);
                status_from = mark.first;
            } else if mark.redriven.is_some() {
                child.status = "RUNNING".into();
                child.stop_date = None;
                status_from = mark.first;
            }
        }
        Ok(children)
    }

    /// The Map Run whose children's names begin as `child_arn`'s does, and whose children's
    /// ARNs it would make.
    pub(crate) fn map_run_of_child(&self, child_arn: &str) -> Result<Option<super::MapRunRecord>> {
        let name = child_key(child_arn);
        for (key, bytes) in self.kv.scan("M/")? {
            let run: super::MapRunRecord = record::decode(&key, &bytes)?;
            let prefix = crate::names::child_name_prefix(&run.map_run_arn);
            let (_, execution_prefix) = crate::names::child_arns(&run.map_run_arn);
            if name.starts_with(&prefix) && child_arn.starts_with(&execution_prefix) {
                return Ok(Some(run));
            }
        }
        Ok(None)
    }

    pub(crate) fn map_runs(&self, execution_arn: &str) -> Result<Vec<super::MapRunRecord>> {
        let mut runs = Vec::new();
        for (key, bytes) in self.kv.scan("M/")? {
            let run: super::MapRunRecord = record::decode(&key, &bytes)?;
            if run.execution_arn == execution_arn {
                runs.push(run);
            }
        }
        Ok(runs)
    }

    pub(crate) fn delete_state_machine(&self, arn: &str) -> Result<bool> {
        let key = format!("m/{arn}");
        if self.kv.get(&key)?.is_none() {
            return Ok(false);
        }
        let mut write = Write::default();
        write.deletes.push(key);
        self.kv.apply(vec![write])?;
        Ok(true)
    }

    pub(crate) fn list(&self) -> Result<Vec<ExecutionRecord>> {
        self.kv
            .scan("e/")?
            .iter()
            .map(|(k, v)| record::decode::<ListingRecord>(k, v).map(|l| l.to_record()))
            .collect()
    }
}

/// Implements `CheckpointStore` for a store holding a [`Keyed`] layout in field `keyed`.
macro_rules! checkpoint_store_over_keys {
    ($store:ty) => {
        impl $crate::store::CheckpointStore for $store {
            fn create(
                &self,
                definition: &str,
                launch: &serde_json::Value,
                changes: &$crate::record::Changes,
            ) -> $crate::store::Result<()> {
                self.keyed.create(definition, launch, changes)
            }

            fn save(&self, changes: &$crate::record::Changes) -> $crate::store::Result<()> {
                self.keyed.save(changes)
            }

            fn create_async(
                &self,
                definition: &str,
                launch: &serde_json::Value,
                changes: $crate::record::Changes,
            ) -> $crate::store::Saving {
                self.keyed.create_async(definition, launch, changes)
            }

            fn save_async(&self, changes: $crate::record::Changes) -> $crate::store::Saving {
                self.keyed.save_async(changes)
            }

            fn load(
                &self,
                execution_arn: &str,
            ) -> $crate::store::Result<Option<$crate::store::Stored>> {
                self.keyed.load(execution_arn)
            }

            fn describe(
                &self,
                execution_arn: &str,
            ) -> $crate::store::Result<Option<$crate::store::Described>> {
                self.keyed.describe(execution_arn)
            }

            fn events(
                &self,
                execution_arn: &str,
            ) -> $crate::store::Result<Vec<$crate::history::Event>> {
                self.keyed.events(execution_arn)
            }

            fn event(
                &self,
                execution_arn: &str,
                id: u64,
            ) -> $crate::store::Result<Option<$crate::history::Event>> {
                self.keyed.event(execution_arn, id)
            }

            fn each_event(
                &self,
                execution_arn: &str,
                f: &mut dyn FnMut($crate::history::Event) -> bool,
            ) -> $crate::store::Result<()> {
                self.keyed.each_event(execution_arn, f)
            }

            fn each_event_after(
                &self,
                execution_arn: &str,
                after: u64,
                f: &mut dyn FnMut($crate::history::Event) -> bool,
            ) -> $crate::store::Result<()> {
                self.keyed.each_event_after(execution_arn, after, f)
            }

            fn list(&self) -> $crate::store::Result<Vec<$crate::store::ExecutionRecord>> {
                self.keyed.list()
            }

            fn launch(
                &self,
                execution_arn: &str,
            ) -> $crate::store::Result<Option<serde_json::Value>> {
                self.keyed.launch(execution_arn)
            }

            fn definition(&self, execution_arn: &str) -> $crate::store::Result<Option<String>> {
                self.keyed.definition(execution_arn)
            }

            fn token_key(&self) -> $crate::store::Result<$crate::TokenKey> {
                Ok(self.keyed.token_key)
            }

            fn child_executions(
                &self,
                map_run_arn: &str,
            ) -> $crate::store::Result<Vec<$crate::store::ExecutionRecord>> {
                self.keyed.child_executions(map_run_arn)
            }

            fn map_run(
                &self,
                arn: &str,
            ) -> $crate::store::Result<Option<$crate::store::MapRunRecord>> {
                self.keyed.map_run(arn)
            }

            fn map_runs(
                &self,
                execution_arn: &str,
            ) -> $crate::store::Result<Vec<$crate::store::MapRunRecord>> {
                self.keyed.map_runs(execution_arn)
            }

            fn map_run_of_child(
                &self,
                child_arn: &str,
            ) -> $crate::store::Result<Option<$crate::store::MapRunRecord>> {
                self.keyed.map_run_of_child(child_arn)
            }

            fn leases(&self) -> Option<&dyn $crate::store::Leases> {
                $crate::store::keyed::KeyValue::leases(&*self.keyed.kv)
            }

            fn put_state_machine(
                &self,
                machine: &$crate::store::StateMachineRecord,
            ) -> $crate::store::Result<()> {
                self.keyed.put_state_machine(machine)
            }

            fn state_machine(
                &self,
                arn: &str,
            ) -> $crate::store::Result<Option<$crate::store::StateMachineRecord>> {
                self.keyed.state_machine(arn)
            }

            fn state_machines(
                &self,
            ) -> $crate::store::Result<Vec<$crate::store::StateMachineRecord>> {
                self.keyed.state_machines()
            }

            fn delete_state_machine(&self, arn: &str) -> $crate::store::Result<bool> {
                self.keyed.delete_state_machine(arn)
            }
        }
    };
}
pub(crate) use checkpoint_store_over_keys;

/// What names a child execution (or a Map Run) in the store's keys: the id its ARN ends with
/// (unique: a child's holds its Map Run's and its index). Short keys, and a Map Run's children
/// side by side in index order.
/// Whether `key` (`k/<child id>/...`) holds a child's events themselves, as stores written
/// before batches and marks did (`k/<child id>/<first id>`, all digits).
fn is_child_events_record(key: &str) -> bool {
    key.rsplit('/')
        .next()
        .is_some_and(|last| !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()))
}

fn child_key(arn: &str) -> &str {
    arn.rsplit(':').next().unwrap_or(arn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::EventKind;
    use crate::record::TimestampField;
    use crate::store::memory::Map;

    #[test]
    fn history_batches_and_the_prefixes_that_reach_them_are_told_apart() {
        let events = record_key(1, RecordKey::History { first: 7 });
        assert!(is_history(&events));
        assert!(is_history("b/0123abcd/00000000000000000001"));
        for record in [
            RecordKey::Header,
            RecordKey::Run(0),
            RecordKey::Results {
                children: 1,
                batch: 2,
            },
        ] {
            assert!(!is_history(&record_key(1, record)), "{record:?}");
        }
        assert!(!is_history("k/0123abcd/s"));
        assert!(!is_history("e/arn:aws:states:us-east-1:1:execution:m:e"));
        assert_eq!(space_of_prefix(&x(1)), Space::Both);
        assert_eq!(space_of_prefix(&format!("{}e/", x(1))), Space::History);
        assert_eq!(space_of_prefix(&format!("{}r/", x(1))), Space::Records);
        assert_eq!(space_of_prefix(""), Space::Both);
        assert_eq!(space_of_prefix("x/"), Space::Both);
        assert_eq!(space_of_prefix("k/"), Space::Records);
        assert_eq!(space_of_prefix("e/"), Space::Records);
        assert_eq!(space_of_prefix("b/"), Space::History);
    }

    /// A history of more batches than one page holds is read whole, in order, and a reader
    /// that stops is not handed more.
    #[test]
    fn a_long_history_is_read_a_page_at_a_time() {
        let keyed = Keyed::open(Map::default(), false, false).unwrap();
        let arn = "arn:aws:states:us-east-1:123456789012:execution:m:e";
        let listing = ListingRecord {
            execution_arn: arn.into(),
            name: "e".into(),
            state_machine_name: "m".into(),
            status: "RUNNING".into(),
            start_date: TimestampField { unix_nanos: 0 },
            stop_date: None,
            key: Some(7),
        };
        let mut write = Write::default();
        write.puts.push((
            format!("e/{arn}"),
            Cow::Owned(record::encode(&listing).unwrap()),
        ));
        for batch in 0..150u64 {
            let events: Vec<Event> = (0..3)
                .map(|i| Event {
                    id: batch * 3 + i + 1,
                    previous_event_id: batch * 3 + i,
                    timestamp: record::at(0),
                    kind: EventKind::MapStateSucceeded,
                })
                .collect();
            let key = record_key(
                7,
                RecordKey::History {
                    first: batch * 3 + 1,
                },
            );
            write
                .puts
                .push((key, Cow::Owned(record::encode_events(&events).unwrap())));
        }
        keyed.kv.apply(vec![write]).unwrap();
        let mut ids = Vec::new();
        keyed
            .each_event(arn, &mut |e| {
                ids.push(e.id);
                true
            })
            .unwrap();
        assert_eq!(ids, (1..=450).collect::<Vec<u64>>());
        let mut seen = 0;
        keyed
            .each_event(arn, &mut |_| {
                seen += 1;
                seen < 10
            })
            .unwrap();
        assert_eq!(seen, 10);
        // From any event on: at a batch's first, inside one, at the end.
        for after in [0, 1, 2, 3, 4, 191, 192, 193, 449, 450, 451] {
            let mut ids = Vec::new();
            keyed
                .each_event_after(arn, after, &mut |e| {
                    ids.push(e.id);
                    true
                })
                .unwrap();
            assert_eq!(
                ids,
                (after + 1..=450).collect::<Vec<u64>>(),
                "after {after}"
            );
        }
    }

    /// A Map Run's children, written over several saves (a child's events split within one
    /// save, a save in which it neither starts nor ends, a redriven child that ends twice, one
    /// redriven and running again):
    /// each child's history reads back whole and in order, and the listing shows each child
    /// once, with its latest end.
    #[test]
    fn child_histories_are_batched_per_save_and_listed_by_their_marks() {
        let keyed = Keyed::open(Map::default(), false, false).unwrap();
        let map_run = "arn:aws:states:us-east-1:123456789012:mapRun:m/Fan:run-1";
        let (_, prefix) = crate::names::child_arns(map_run);
        let child =
            |i: usize| format!("{prefix}{}", crate::names::child_execution_name(map_run, i));
        let event = |id: u64, kind: EventKind| Event {
            id,
            previous_event_id: id - 1,
            timestamp: record::at(id as i128 * 1_000_000),
            kind,
        };
        let started = |id| {
            event(
                id,
                EventKind::ExecutionStarted {
                    input: crate::history::EventData::of(&Value::Null),
                    role_arn: String::new(),
                },
            )
        };
        let failed = |id| {
            event(
                id,
                EventKind::ExecutionFailed {
                    error: "E".into(),
                    cause: String::new(),
                },
            )
        };
        let succeeded = |id| {
            event(
                id,
                EventKind::ExecutionSucceeded {
                    output: crate::history::EventData::of(&Value::Null),
                },
            )
        };
        let save = |children: Vec<(usize, Vec<Event>)>| {
            let changes = Changes {
                execution_arn: "arn:aws:states:us-east-1:123456789012:execution:m:e".into(),
                complete: false,
                listing: None,
                puts: Vec::new(),
                deletes: Vec::new(),
                events: Default::default(),
                chain: Chain::default(),
                map_runs: Vec::new(),
                child_events: children
                    .into_iter()
                    .map(|(i, events)| record::ChildEvents {
                        arn: child(i),
                        events,
                    })
                    .collect(),
            };
            let mut write = Write::default();
            keyed.write_of(1, &changes, Vec::new(), &mut write).unwrap();
            keyed.kv.apply(vec![write]).unwrap();
        };
        let pass = |id| event(id, EventKind::MapStateSucceeded);
        let redriven = |id| event(id, EventKind::ExecutionRedriven { redrive_count: 1 });
        // Save 1: all start; child 0's events are split around child 1's.
        save(vec![
            (0, vec![started(1), pass(2)]),
            (1, vec![started(1)]),
            (0, vec![pass(3)]),
            (2, vec![started(1)]),
        ]);
        // Save 2: child 0 goes on (neither starts nor ends), children 1 and 2 fail.
        save(vec![
            (0, vec![pass(4)]),
            (1, vec![pass(2), failed(3)]),
            (2, vec![failed(2)]),
        ]);
        // Save 3: child 0 succeeds; child 1, redriven, succeeds; child 2 is redriven.
        save(vec![
            (0, vec![succeeded(5)]),
            (1, vec![redriven(4), pass(5), succeeded(6)]),
            (2, vec![redriven(3)]),
        ]);
        for (i, last) in [(0, 5), (1, 6), (2, 3)] {
            let ids: Vec<u64> = keyed
                .events(&child(i))
                .unwrap()
                .iter()
                .map(|e| e.id)
                .collect();
            assert_eq!(ids, (1..=last).collect::<Vec<u64>>(), "child {i}");
        }
        let kinds: Vec<String> = keyed
            .events(&child(1))
            .unwrap()
            .iter()
            .map(|e| e.kind.type_name())
            .collect();
        assert_eq!(kinds[2], "ExecutionFailed");
        let listed = keyed.child_executions(map_run).unwrap();
        let listed: Vec<(&str, &str, bool)> = listed
            .iter()
            .map(|c| {
                (
                    c.execution_arn.as_str(),
                    c.status.as_str(),
                    c.stop_date.is_some(),
                )
            })
            .collect();
        let (c0, c1, c2) = (child(0), child(1), child(2));
        assert_eq!(
            listed,
            [
                (c0.as_str(), "SUCCEEDED", true),
                (c1.as_str(), "SUCCEEDED", true),
                // Failed, then redriven: running again.
                (c2.as_str(), "RUNNING", false)
            ]
        );
        // A store written before batches kept a child's events in records of its own: read.
        let old = child(3);
        let mut write = Write::default();
        write.puts.push((
            format!("k/{}/{:020}", child_key(&old), 1),
            Cow::Owned(record::encode_events(&[started(1), succeeded(2)]).unwrap()),
        ));
        keyed.kv.apply(vec![write]).unwrap();
        let ids: Vec<u64> = keyed.events(&old).unwrap().iter().map(|e| e.id).collect();
        assert_eq!(ids, [1, 2]);
        assert_eq!(keyed.child_executions(map_run).unwrap().len(), 3);
        // Another Map Run's children are not listed with these.
        assert!(
            keyed
                .child_executions(&map_run.replace("run-1", "run-2"))
                .unwrap()
                .is_empty()
        );
    }
}
