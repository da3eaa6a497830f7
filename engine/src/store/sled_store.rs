//! Executions on disk, in sled 0.34: the shared key layout (`keyed.rs`) in the default tree,
//! but for values of 64 KiB or more, in a tree of their own (`BIG_VALUE`). A save writes the
//! checkpoint, the record and the new events in one atomic batch (or, when it touches a big
//! value, one transaction over both trees), then flushes.
//! sled's flush uses `sync_file_range` on Linux, not `fsync`: what it wrote survives a killed
//! process, not necessarily a power cut.

use std::path::Path;

use super::keyed::{self, KeyValue, Keyed, Refused, Write};
use super::{Error, Result};

/// A sled database in a directory. One process at a time: sled locks the directory.
pub struct SledStore {
    keyed: Keyed<Db>,
}

/// The database under a [`SledStore`].
pub(crate) struct Db {
    db: Option<sled::Db>,
    /// Values of [`BIG_VALUE`] bytes or more, kept apart from the others (see there).
    big: sled::Tree,
    /// A write or flush failed (a full disk): sled's own drop would then wait forever for a
    /// flush that cannot happen, so it is skipped (see `Drop`).
    failed: std::sync::atomic::AtomicBool,
}

/// Values at least this long are kept in a tree of their own. sled writes a leaf node whole
/// when it consolidates it, and a leaf holds up to 16 neighbouring keys: an execution's input
/// of a million items (4 MB compressed) shared a leaf with its header, which every save
/// rewrites, so the input was written again at each consolidation (2.5 GB of files for a
/// 1,000,000-item Map). In a tree of their own, big values sit beside other big values,
/// written once.
const BIG_VALUE: usize = 64 << 10;

impl Db {
    fn new(db: sled::Db) -> Result<Db> {
        let big = guarded("opening", || db.open_tree("big"))?;
        Ok(Db {
            db: Some(db),
            big,
            failed: Default::default(),
        })
    }

    fn sled(&self) -> &sled::Db {
        self.db.as_ref().expect("open until dropped")
    }

    /// Runs a writing call; a failure marks the database failed.
    fn writing<T>(&self, what: &str, f: impl FnOnce() -> sled::Result<T>) -> Result<T> {
        let result = guarded(what, f);
        if result.is_err() {
            self.failed.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        result
    }
}

impl Drop for Db {
    /// sled flushes when its last handle goes. After a failed write (ENOSPC) that flush waits
    /// forever on IO that will not complete (reproduced on a full tmpfs): the database is let
    /// go without it. Nothing is lost that a flush would have kept: every save that returned
    /// was flushed, and the failed one never returned.
    fn drop(&mut self) {
        if self.failed.load(std::sync::atomic::Ordering::SeqCst)
            && let Some(db) = self.db.take()
        {
            std::mem::forget(db);
        }
    }
}

/// sled's page cache (its default is 1 GiB, which a big execution would fill): records are
/// written once and read back only on resume, so a small cache costs nothing.
const CACHE_BYTES: u64 = 32 << 20;

fn io(e: sled::Error) -> Error {
    match e {
        sled::Error::Io(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::FileTooLarge
            ) =>
        {
            Error::Io(format!(
                "the store cannot grow ({e}): free space, then `stepstone resume` goes on from the last checkpoint"
            ))
        }
        e => Error::Io(e.to_string()),
    }
}

/// Removes the snapshot files sled was still writing when its process died; true if any.
///
/// sled 0.34.7 writes a snapshot to `snap.<lsn>.generating` and renames it to `snap.<lsn>` once
/// complete, but on open it reads the greatest `snap.*` name, `.generating` included: a process
/// killed while writing one leaves a store that no longer opens ("Read corrupted data"; sled
/// issue #1527; the crash suite found it). An unfinished snapshot was never committed: the log
/// it summarises is intact, so sled rebuilds the same state from the previous snapshot and the
/// log. This only runs when sled reported corruption rather than a lock held by a live process,
/// so no process is writing that file.
fn remove_unfinished_snapshots(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut removed = false;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            removed |= std::fs::remove_file(entry.path()).is_ok();
        }
    }
    removed
}

impl SledStore {
    /// Opens (or creates) the store in `dir`. A store locked by another process is an error;
    /// a lock being released (sled lets go of it from a background thread after its last
    /// handle is dropped) is waited for, up to two seconds.
    pub fn open(dir: impl AsRef<Path>) -> Result<SledStore> {
        Self::open_with(dir, false)
    }

    /// Opens the store in `dir`; with `existing`, it must hold Stepstone's records already:
    /// a store whose files went missing is an error, not a new store.
    pub fn open_with(dir: impl AsRef<Path>, existing: bool) -> Result<SledStore> {
        let dir = dir.as_ref();
        if existing && !dir.join("conf").exists() {
            return Err(Error::Corrupt {
                key: dir.join("conf").display().to_string(),
                reason: "sled's configuration file is missing".into(),
            });
        }
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let mut repaired = false;
        let db = loop {
            match sled::Config::new()
                .path(dir)
                .cache_capacity(CACHE_BYTES)
                .open()
            {
                Ok(db) => break db,
                Err(sled::Error::Corruption { .. })
                    if !repaired && remove_unfinished_snapshots(dir) =>
                {
                    repaired = true;
                }
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
        Ok(SledStore {
            keyed: Keyed::open(Db::new(db)?, existing, true)?,
        })
    }
}

/// Runs a sled call, turning a panic inside sled into an error: sled 0.34 panics on some
/// faults of its own (an IO buffer it cannot allocate) that must end the run with a clear
/// message, not abort it.
fn guarded<T>(what: &str, f: impl FnOnce() -> sled::Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result.map_err(io),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            Err(Error::Io(format!("sled failed while {what}: {message}")))
        }
    }
}

impl KeyValue for Db {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match guarded("reading", || self.sled().get(key))? {
            Some(v) => Ok(Some(v.to_vec())),
            None => guarded("reading", || self.big.get(key)).map(|v| v.map(|v| v.to_vec())),
        }
    }

    /// One atomic batch for all of `writes`, then a flush (`sync_file_range` on Linux: see
    /// the module's comment). In a batch the last operation on a key wins, so the writes keep
    /// their order. A write that puts a big value, or changes a key held in the big values'
    /// tree, is one transaction over both trees instead (atomic as the batch is).
    fn apply(&self, writes: Vec<Write<'_>>) -> Result<Refused> {
        // Each key's operations in order: a value to put, or `None` to remove it.
        let mut ops: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
        for write in writes {
            for prefix in &write.delete_prefixes {
                for tree in [&**self.sled(), &self.big] {
                    for key in tree.scan_prefix(prefix.as_bytes()).keys() {
                        ops.push((guarded("reading", || key)?.to_vec(), None));
                    }
                }
            }
            ops.extend(write.deletes.into_iter().map(|k| (k.into_bytes(), None)));
            ops.extend(
                write
                    .puts
                    .into_iter()
                    .map(|(k, v)| (k.into_bytes(), Some(v.into_owned()))),
            );
        }
        let mut touches_big = false;
        for (key, value) in &ops {
            if value.as_ref().is_some_and(|v| v.len() >= BIG_VALUE)
                || guarded("reading", || self.big.contains_key(key))?
            {
                touches_big = true;
                break;
            }
        }
        if touches_big {
            self.writing("writing", || {
                use sled::Transactional;
                (&**self.sled(), &self.big)
                    .transaction(|(main, big)| {
                        for (key, value) in &ops {
                            match value {
                                Some(v) if v.len() >= BIG_VALUE => {
                                    main.remove(key.as_slice())?;
                                    big.insert(key.as_slice(), v.as_slice())?;
                                }
                                Some(v) => {
                                    big.remove(key.as_slice())?;
                                    main.insert(key.as_slice(), v.as_slice())?;
                                }
                                None => {
                                    main.remove(key.as_slice())?;
                                    big.remove(key.as_slice())?;
                                }
                            }
                        }
                        Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
                    })
                    .map_err(|e| match e {
                        sled::transaction::TransactionError::Storage(e) => e,
                        sled::transaction::TransactionError::Abort(()) => {
                            sled::Error::Unsupported("the transaction was aborted".into())
                        }
                    })
            })?;
        } else {
            let mut batch = sled::Batch::default();
            for (key, value) in ops {
                match value {
                    Some(v) => batch.insert(key, v),
                    None => batch.remove(key),
                }
            }
            self.writing("writing", || self.sled().apply_batch(batch))?;
        }
        self.writing("flushing", || self.sled().flush())?;
        Ok(Refused::new())
    }

    fn scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        for tree in [&**self.sled(), &self.big] {
            for entry in tree.scan_prefix(prefix) {
                let (k, v) = guarded("reading", || entry)?;
                out.push((String::from_utf8_lossy(&k).into_owned(), v.to_vec()));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    fn scan_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        use std::ops::Bound;
        let start = match after {
            Some(after) => Bound::Excluded(after.as_bytes()),
            None => Bound::Included(prefix.as_bytes()),
        };
        let mut out = Vec::new();
        for tree in [&**self.sled(), &self.big] {
            for entry in tree
                .range::<&[u8], _>((start, Bound::Unbounded))
                .take(limit)
            {
                let (k, v) = guarded("reading", || entry)?;
                if !k.starts_with(prefix.as_bytes()) {
                    break;
                }
                out.push((String::from_utf8_lossy(&k).into_owned(), v.to_vec()));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.truncate(limit);
        Ok(out)
    }

    fn last_at_or_before(&self, prefix: &str, key: &str) -> Result<Option<(String, Vec<u8>)>> {
        let mut last: Option<(String, Vec<u8>)> = None;
        for tree in [&**self.sled(), &self.big] {
            if let Some(entry) = tree.range(prefix.as_bytes()..=key.as_bytes()).next_back() {
                let (k, v) = guarded("reading", || entry)?;
                let k = String::from_utf8_lossy(&k).into_owned();
                if k.starts_with(prefix) && last.as_ref().is_none_or(|(l, _)| k > *l) {
                    last = Some((k, v.to_vec()));
                }
            }
        }
        Ok(last)
    }
}

keyed::checkpoint_store_over_keys!(SledStore);

#[cfg(test)]
mod tests {
    use super::*;

    fn put(write: &mut Write<'static>, key: &str, len: usize) {
        write
            .puts
            .push((key.to_owned(), std::borrow::Cow::Owned(vec![b'v'; len])));
    }

    /// Big values live in their own tree, invisibly: reads, scans and pages see one ordered
    /// key space, a key moves between the trees as its value grows or shrinks, and deletions
    /// reach both; all of it read back after reopening.
    #[test]
    fn big_values_are_kept_apart_and_read_as_one_key_space() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            let kv = &*store.keyed.kv;
            let mut write = Write::default();
            put(&mut write, "t/a", 10);
            put(&mut write, "t/b", BIG_VALUE);
            put(&mut write, "t/c", 10);
            put(&mut write, "t/d", BIG_VALUE + 1);
            kv.apply(vec![write]).unwrap();
            assert_eq!(kv.big.len(), 2);
            // b shrinks (back to the main tree), c grows, d goes.
            let mut write = Write::default();
            put(&mut write, "t/b", 5);
            put(&mut write, "t/c", BIG_VALUE);
            write.deletes.push("t/d".into());
            kv.apply(vec![write]).unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();
        let kv = &*store.keyed.kv;
        let sizes = |rows: Vec<(String, Vec<u8>)>| -> Vec<(String, usize)> {
            rows.into_iter().map(|(k, v)| (k, v.len())).collect()
        };
        assert_eq!(
            sizes(kv.scan("t/").unwrap()),
            [
                ("t/a".into(), 10),
                ("t/b".into(), 5),
                ("t/c".into(), BIG_VALUE)
            ]
        );
        assert_eq!(kv.get("t/c").unwrap().map(|v| v.len()), Some(BIG_VALUE));
        assert_eq!(kv.get("t/d").unwrap(), None);
        assert_eq!(
            sizes(kv.scan_page("t/", Some("t/a"), 2).unwrap()),
            [("t/b".into(), 5), ("t/c".into(), BIG_VALUE)]
        );
        assert_eq!(
            kv.last_at_or_before("t/", "t/z").unwrap().map(|(k, _)| k),
            Some("t/c".into())
        );
        assert_eq!(kv.big.len(), 1);
        let mut write = Write::default();
        write.delete_prefixes.push("t/".into());
        kv.apply(vec![write]).unwrap();
        assert!(kv.scan("t/").unwrap().is_empty());
        assert_eq!(kv.big.len(), 0);
    }

    #[test]
    fn a_snapshot_killed_midway_does_not_break_the_store() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            store.keyed.kv.sled().insert("k", "kept").unwrap();
            store.keyed.kv.sled().flush().unwrap();
        }
        // What a process killed inside sled's snapshot writing leaves (sorts last).
        let unfinished = dir.path().join("snap.FFFFFFFFFFFFFFFF.generating");
        std::fs::write(&unfinished, b"").unwrap();
        assert!(
            matches!(sled::open(dir.path()), Err(sled::Error::Corruption { .. })),
            "sled itself no longer opens it (if this fails, sled fixed issue #1527)"
        );
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(
            store.keyed.kv.sled().get("k").unwrap().as_deref(),
            Some(&b"kept"[..])
        );
        assert!(!unfinished.exists());
    }
}
