//! Executions on disk, in sled 0.34: the shared key layout (`keyed.rs`) in one tree. A save
//! writes the checkpoint, the record and the new events in one atomic batch, then flushes.
//! sled's flush uses `sync_file_range` on Linux, not `fsync`: what it wrote survives a killed
//! process, not necessarily a power cut.

use std::path::Path;

use super::keyed::{self, KeyValue, Keyed, Write};
use super::{Error, Result};

/// A sled database in a directory. One process at a time: sled locks the directory.
pub struct SledStore {
    keyed: Keyed<Db>,
}

/// The database under a [`SledStore`].
pub(crate) struct Db {
    db: Option<sled::Db>,
    /// A write or flush failed (a full disk): sled's own drop would then wait forever for a
    /// flush that cannot happen, so it is skipped (see `Drop`).
    failed: std::sync::atomic::AtomicBool,
}

impl Db {
    fn new(db: sled::Db) -> Db {
        Db {
            db: Some(db),
            failed: Default::default(),
        }
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
            keyed: Keyed::open(Db::new(db), existing, true)?,
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
        guarded("reading", || self.sled().get(key)).map(|v| v.map(|v| v.to_vec()))
    }

    /// One atomic batch for all of `writes`, then a flush (`sync_file_range` on Linux: see
    /// the module's comment). In a batch the last operation on a key wins, so the writes keep
    /// their order.
    fn apply(&self, writes: Vec<Write<'_>>) -> Result<()> {
        let mut batch = sled::Batch::default();
        for write in writes {
            for prefix in &write.delete_prefixes {
                for entry in self.sled().scan_prefix(prefix.as_bytes()).keys() {
                    batch.remove(guarded("reading", || entry)?);
                }
            }
            for k in write.deletes {
                batch.remove(k.as_bytes());
            }
            for (k, v) in &write.puts {
                batch.insert(k.as_bytes(), v.as_ref());
            }
        }
        self.writing("writing", || self.sled().apply_batch(batch))?;
        self.writing("flushing", || self.sled().flush())?;
        Ok(())
    }

    fn scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        self.sled()
            .scan_prefix(prefix)
            .map(|entry| {
                let (k, v) = guarded("reading", || entry)?;
                Ok((String::from_utf8_lossy(&k).into_owned(), v.to_vec()))
            })
            .collect()
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
        for entry in self
            .sled()
            .range::<&[u8], _>((start, Bound::Unbounded))
            .take(limit)
        {
            let (k, v) = guarded("reading", || entry)?;
            if !k.starts_with(prefix.as_bytes()) {
                break;
            }
            out.push((String::from_utf8_lossy(&k).into_owned(), v.to_vec()));
        }
        Ok(out)
    }

    fn last_at_or_before(&self, prefix: &str, key: &str) -> Result<Option<(String, Vec<u8>)>> {
        match self
            .sled()
            .range(prefix.as_bytes()..=key.as_bytes())
            .next_back()
        {
            Some(entry) => {
                let (k, v) = guarded("reading", || entry)?;
                Ok(k.starts_with(prefix.as_bytes())
                    .then(|| (String::from_utf8_lossy(&k).into_owned(), v.to_vec())))
            }
            None => Ok(None),
        }
    }
}

keyed::checkpoint_store_over_keys!(SledStore);

#[cfg(test)]
mod tests {
    use super::*;

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
