//! Executions on disk, in redb 4: the shared key layout (`keyed.rs`) in one table of a single
//! file, `<dir>/executions.redb`.
//!
//! A save is one write transaction, committed with redb's default durability: the commit is
//! fsynced, so it survives a power cut, not only a killed process. That costs more per save
//! than sled's flush.

use std::path::{Path, PathBuf};

use super::keyed::{self, KeyValue, Keyed, Refused, Write};
use super::{Error, Result};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("stepstone");

/// redb's cache of pages (its default is 1 GiB, which a big execution would fill): records are
/// written once and read back only on resume, so a small cache costs nothing.
const CACHE_BYTES: usize = 32 << 20;

/// Opens (or creates) the database file with the store's settings.
fn open_file(path: &Path) -> std::result::Result<Database, redb::DatabaseError> {
    Database::builder().set_cache_size(CACHE_BYTES).create(path)
}

/// The file a redb store keeps in its directory.
pub const REDB_FILE: &str = "executions.redb";

/// A redb database in a directory. One process at a time: redb locks the file.
pub struct RedbStore {
    keyed: Keyed<Db>,
}

/// The database under a [`RedbStore`].
pub(crate) struct Db(Database);

fn io(e: impl std::fmt::Display) -> Error {
    let text = e.to_string();
    // ENOSPC, EFBIG: the disk is full, or the process may not write larger files.
    if text.contains("os error 28") || text.contains("os error 27") {
        return Error::Io(format!(
            "the store cannot grow ({text}): free space, then `stepstone resume` goes on from the last checkpoint"
        ));
    }
    Error::Io(text)
}

/// Creates the database file whole or not at all. redb writes a new file's header in several
/// steps, so a process killed while creating `executions.redb` in place would leave a file no
/// later open accepts ("magic number mismatch"; the crash suite found it). The database is made
/// under a name of this process's own, then linked to its real name, which fails rather than
/// replace a store another process created meanwhile.
fn create_whole(dir: &Path, file: &Path) -> Result<()> {
    let partial = dir.join(format!("{REDB_FILE}.{}.partial", std::process::id()));
    let _ = std::fs::remove_file(&partial);
    Keyed::open(Db(open_file(&partial).map_err(io)?), false, false)?;
    let linked = std::fs::hard_link(&partial, file);
    let _ = std::fs::remove_file(&partial);
    match linked {
        Ok(()) => {
            // The new name must itself survive a power cut.
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io)
        }
        // Another process created the store first: use theirs.
        Err(_) if file.exists() => Ok(()),
        Err(e) => Err(io(e)),
    }
}

/// Removes what processes killed in `create_whole` left. The store exists now, so any
/// partial file is garbage.
fn remove_partials(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(REDB_FILE) && name.ends_with(".partial") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

impl RedbStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<RedbStore> {
        Self::open_with(dir, false)
    }

    /// Opens the store in `dir`; with `existing`, the store must be there already (its file,
    /// and Stepstone's records in it): one that went missing or was emptied is an error, not a
    /// new store.
    pub fn open_with(dir: impl AsRef<Path>, existing: bool) -> Result<RedbStore> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(io)?;
        let file: PathBuf = dir.join(REDB_FILE);
        match file.try_exists().map_err(io)? {
            true => {}
            false if existing => {
                return Err(Error::Corrupt {
                    key: file.display().to_string(),
                    reason: "the database file is missing".into(),
                });
            }
            false => create_whole(dir, &file)?,
        }
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let db = loop {
            match open_file(&file) {
                Ok(db) => break db,
                Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                    if std::time::Instant::now() >= give_up {
                        return Err(Error::Locked(dir.display().to_string()));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => return Err(io(e)),
            }
        };
        let keyed = Keyed::open(Db(db), existing, true)?;
        remove_partials(dir);
        Ok(RedbStore { keyed })
    }
}

impl KeyValue for Db {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let txn = self.0.begin_read().map_err(io)?;
        let table = match txn.open_table(TABLE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        Ok(table.get(key).map_err(io)?.map(|v| v.value().to_vec()))
    }

    /// One write transaction for all of `writes`, committed with redb's default durability
    /// (fsynced).
    fn apply(&self, writes: Vec<Write<'_>>) -> Result<Refused> {
        let txn = self.0.begin_write().map_err(io)?;
        {
            let mut table = txn.open_table(TABLE).map_err(io)?;
            for write in &writes {
                for prefix in &write.delete_prefixes {
                    let doomed: Vec<String> = table
                        .range(prefix.as_str()..)
                        .map_err(io)?
                        .map_while(|entry| {
                            let (k, _) = entry.ok()?;
                            let k = k.value();
                            k.starts_with(prefix.as_str()).then(|| k.to_owned())
                        })
                        .collect();
                    for k in doomed {
                        table.remove(k.as_str()).map_err(io)?;
                    }
                }
                for k in &write.deletes {
                    table.remove(k.as_str()).map_err(io)?;
                }
                for (k, v) in &write.puts {
                    table.insert(k.as_str(), v.as_ref()).map_err(io)?;
                }
            }
        }
        txn.commit().map_err(io)?;
        Ok(Refused::new())
    }

    fn scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let txn = self.0.begin_read().map_err(io)?;
        let table = match txn.open_table(TABLE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(io(e)),
        };
        let mut out = Vec::new();
        for entry in table.range(prefix..).map_err(io)? {
            let (k, v) = entry.map_err(io)?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((k.value().to_owned(), v.value().to_vec()));
        }
        Ok(out)
    }

    fn scan_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        use std::ops::Bound;
        let txn = self.0.begin_read().map_err(io)?;
        let table = match txn.open_table(TABLE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(io(e)),
        };
        let start = match after {
            Some(after) => Bound::Excluded(after),
            None => Bound::Included(prefix),
        };
        let mut out = Vec::new();
        for entry in table
            .range::<&str>((start, Bound::Unbounded))
            .map_err(io)?
            .take(limit)
        {
            let (k, v) = entry.map_err(io)?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((k.value().to_owned(), v.value().to_vec()));
        }
        Ok(out)
    }

    fn last_at_or_before(&self, prefix: &str, key: &str) -> Result<Option<(String, Vec<u8>)>> {
        let txn = self.0.begin_read().map_err(io)?;
        let table = match txn.open_table(TABLE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let last = table.range(prefix..=key).map_err(io)?.next_back();
        match last {
            Some(entry) => {
                let (k, v) = entry.map_err(io)?;
                Ok(k.value()
                    .starts_with(prefix)
                    .then(|| (k.value().to_owned(), v.value().to_vec())))
            }
            None => Ok(None),
        }
    }
}

keyed::checkpoint_store_over_keys!(RedbStore);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CheckpointStore;

    #[test]
    fn a_creation_killed_midway_leaves_no_broken_store() {
        let dir = tempfile::tempdir().unwrap();
        // What a process killed inside `create_whole` leaves: a partial file, never the store.
        let stale = dir.path().join(format!("{REDB_FILE}.4242.partial"));
        std::fs::write(&stale, b"half a header").unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        assert!(store.list().unwrap().is_empty());
        assert!(!stale.exists(), "stale partial files are removed");
        drop(store);
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [REDB_FILE]);
        // Reopening finds the format marker written at creation.
        let store = RedbStore::open(dir.path()).unwrap();
        assert_eq!(
            KeyValue::get(&*store.keyed.kv, "meta/format").unwrap(),
            Some(crate::record::FORMAT_VERSION.to_string().into_bytes())
        );
    }
}
