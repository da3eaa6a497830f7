//! The subcommands. Each returns the process exit code, or an error that means exit 2.

use std::io::Read;
use std::path::{Path, PathBuf};

use stepstone::engine::store::{
    CheckpointStore, PostgresStore, REDB_FILE, RedbStore, SledStore, redacted_url,
};

/// `println!` for the commands' results: a reader that went away (`stepstone executions | head
/// -1`) ends the command quietly, as Unix tools do, instead of a panic. Every result is written
/// once its work is done and durable, so nothing is lost by stopping there.
macro_rules! outln {
    () => {
        $crate::cli::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Writes to standard output; exits quietly (status 0) when the reader is gone.
pub(crate) fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if out.write_fmt(args).and_then(|()| out.flush()).is_err() {
        std::process::exit(0);
    }
}

pub(crate) mod answers;
pub(crate) mod control;
pub(crate) mod detach;
pub(crate) mod executions;
pub(crate) mod graph;
pub(crate) mod guests;
pub(crate) mod launch;
pub(crate) mod progress;
pub(crate) mod report;
pub(crate) mod run;
pub(crate) mod serve;
pub(crate) mod test_state;
pub(crate) mod validate;

/// Reads a definition file, or standard input for `-`.
pub(crate) fn read_definition(file: &Path) -> Result<String, String> {
    if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        return Ok(text);
    }
    std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))
}

impl StoreSpec {
    /// Why the store cannot be opened while another engine owns it, naming what that engine runs.
    fn in_use(&self) -> String {
        let running = control::request(&self.dir, &serde_json::json!({"op": "ping"}))
            .and_then(Result::ok)
            .map(|pong| {
                let arns: Vec<&str> = pong["running"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a.as_str())
                    .collect();
                format!(" (pid {}, running {})", pong["pid"], arns.join(", "))
            })
            .unwrap_or_default();
        format!(
            "the store {} is in use by another Stepstone engine{running}. `stepstone describe`, \
             `history`, `executions` and `stop` reach it, and a `run` hands its execution to a \
             `run` or `serve` that owns a store; `resume` and `redrive` need the store to \
             themselves: wait for it to finish, or use another --store",
            self.display()
        )
    }
}

/// The database a store directory holds.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum StoreEngine {
    /// sled 0.34: flushed writes (survive a killed process, not necessarily a power cut).
    Sled,
    /// redb 4 (the default for a new store): fsynced commits (survive a power cut too).
    Redb,
}

/// Where executions are kept: a directory, and its engine when given; or a PostgreSQL
/// database.
pub(crate) struct StoreSpec {
    /// The store's directory; for a database, the local directory of the engine that owns it
    /// (its control socket, `--detach`'s logs).
    pub(crate) dir: PathBuf,
    pub(crate) engine: Option<StoreEngine>,
    /// `postgres://...`: the store is that database.
    pub(crate) database: Option<String>,
}

impl StoreSpec {
    /// The store `--store` names: a directory, or a PostgreSQL URL (`postgres://` or
    /// `postgresql://`), whose engine keeps its local files in `.stepstone/postgres/<digest of
    /// the URL>` (one directory per database, so two databases' engines never share a socket).
    pub(crate) fn of(store: &Path, engine: Option<StoreEngine>) -> StoreSpec {
        let text = store.to_string_lossy();
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(redacted_url(&text).as_bytes());
            let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
            return StoreSpec {
                dir: Path::new(".stepstone").join("postgres").join(name),
                engine,
                database: Some(text.into_owned()),
            };
        }
        StoreSpec {
            dir: store.to_owned(),
            engine,
            database: None,
        }
    }

    /// The store, as messages name it (a database's URL without its password).
    pub(crate) fn display(&self) -> String {
        match &self.database {
            Some(url) => redacted_url(url),
            None => self.dir.display().to_string(),
        }
    }

    /// Whether the directory (or database) holds a store: `Ok(false)` when nothing was ever
    /// stored there, an error when it cannot be told (permission denied, no server) or what is
    /// there is damaged.
    pub(crate) fn exists(&self) -> Result<bool, String> {
        if let Some(url) = &self.database {
            return PostgresStore::exists(url)
                .map_err(|e| format!("cannot open the store {}: {e}", self.display()));
        }
        Ok(self.found()?.is_some())
    }

    /// The engine of the store in the directory, `None` when there is none. A store that is
    /// there but cannot be read is an error, never "no store": an empty answer would make
    /// `executions` print nothing and `run` start a new store over the old one.
    fn found(&self) -> Result<Option<StoreEngine>, String> {
        Ok(self.survey()?.map(|(engine, _)| engine))
    }

    /// The engine of the store in the directory (`None`: no store), and whether the store is
    /// known complete: its marker was written after the store was made, so a database that
    /// went missing or reads empty is damage. A store without its marker (made by an older
    /// version, or killed while being made) is opened as it is found.
    fn survey(&self) -> Result<Option<(StoreEngine, bool)>, String> {
        let dir = &self.dir;
        let unreadable =
            |e: std::io::Error| format!("cannot read the store {}: {e}", dir.display());
        match std::fs::metadata(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(unreadable(e)),
            Ok(m) if !m.is_dir() => {
                return Err(format!("{} is not a directory", dir.display()));
            }
            Ok(_) => {}
        }
        let has = |name: &str| -> Result<bool, String> {
            dir.join(name).try_exists().map_err(unreadable)
        };
        // Listing the directory tells a readable store from one we may not enter.
        std::fs::read_dir(dir).map_err(unreadable)?;
        let marked = match std::fs::read_to_string(dir.join(STORE_MARKER)) {
            Ok(text) => match text.trim() {
                "redb" => Some(StoreEngine::Redb),
                "sled" => Some(StoreEngine::Sled),
                // Left by a version that wrote the marker in place and was killed before
                // writing it: as if there were none.
                "" => None,
                other => {
                    return Err(format!(
                        "{}: unknown store engine '{other}'",
                        dir.join(STORE_MARKER).display()
                    ));
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(unreadable(e)),
        };
        let (redb, sled_conf, sled_db) = (has(REDB_FILE)?, has("conf")?, has("db")?);
        let damaged = |missing: &str| {
            Err(format!(
                "the store {} is damaged: {missing} is missing. Restore it from a backup, or \
                 move the directory away to start a new store",
                dir.display()
            ))
        };
        match marked {
            Some(StoreEngine::Redb) if !redb => damaged(REDB_FILE),
            Some(StoreEngine::Sled) if !sled_conf => damaged("sled's conf"),
            Some(StoreEngine::Sled) if !sled_db => damaged("sled's db"),
            Some(engine) => Ok(Some((engine, true))),
            // No marker: told by the files.
            None if redb => Ok(Some((StoreEngine::Redb, false))),
            None if sled_conf || sled_db => Ok(Some((StoreEngine::Sled, false))),
            None => Ok(None),
        }
    }

    /// Creates the store's directory unless it exists, and makes it owner-only whatever it
    /// was: executions' inputs and outputs may hold secrets.
    pub(crate) fn ensure_dir(&self) -> Result<(), String> {
        let dir = &self.dir;
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the store {}: {e}", dir.display()))?;
        restrict(dir, true).map_err(|e| format!("cannot restrict {}: {e}", dir.display()))
    }

    /// Opens a store that must already exist: reading commands never create one (an empty
    /// store made by `executions` would fix the engine before `run --store-engine` chooses one).
    pub(crate) fn open_existing(&self) -> Result<Box<dyn CheckpointStore>, String> {
        if let Some(url) = &self.database {
            return self.open_database(url, true);
        }
        if self.found()?.is_none() {
            return Err(format!(
                "no execution store in {} (executions are stored there by `stepstone run`)",
                self.dir.display()
            ));
        }
        self.open()
    }

    /// Opens the store (creating the directory, owner-only, when needed). Without an explicit
    /// engine, an existing store's own engine is used, redb for a new one (the README's
    /// "Durability" says why).
    pub(crate) fn open(&self) -> Result<Box<dyn CheckpointStore>, String> {
        if let Some(url) = &self.database {
            return self.open_database(url, false);
        }
        let dir = &self.dir;
        let surveyed = self.survey()?;
        let found = surveyed.map(|(engine, _)| engine);
        self.ensure_dir()?;
        let engine = match (self.engine, found) {
            (Some(StoreEngine::Sled), Some(StoreEngine::Redb)) => {
                return Err(format!(
                    "{} holds a redb store (--store-engine redb)",
                    dir.display()
                ));
            }
            (Some(StoreEngine::Redb), Some(StoreEngine::Sled)) => {
                return Err(format!(
                    "{} holds a sled store (--store-engine sled)",
                    dir.display()
                ));
            }
            (_, Some(e)) | (Some(e), None) => e,
            (None, None) => StoreEngine::Redb,
        };
        // A store known complete must hold Stepstone's records: one that was emptied (a
        // truncated file) is an error, not a new store.
        let existing = surveyed.is_some_and(|(_, complete)| complete);
        let opened: Result<Box<dyn CheckpointStore>, _> =
            match engine {
                StoreEngine::Sled => SledStore::open_with(dir, existing)
                    .map(|s| Box::new(s) as Box<dyn CheckpointStore>),
                StoreEngine::Redb => RedbStore::open_with(dir, existing)
                    .map(|s| Box::new(s) as Box<dyn CheckpointStore>),
            };
        let opened = opened.map_err(|e| match e {
            stepstone::engine::store::Error::Locked(_) => self.in_use(),
            e => format!("cannot open the store {}: {e}", dir.display()),
        })?;
        let marked = std::fs::read_to_string(dir.join(STORE_MARKER))
            .is_ok_and(|text| !text.trim().is_empty());
        if !marked {
            let name = match engine {
                StoreEngine::Sled => "sled\n",
                StoreEngine::Redb => "redb\n",
            };
            // Written whole or not at all: a kill between creating the file and writing it
            // would leave an empty marker, naming no engine.
            let marker = dir.join(STORE_MARKER);
            let partial = dir.join(format!("{STORE_MARKER}.partial"));
            let written = std::fs::File::create(&partial).and_then(|mut f| {
                std::io::Write::write_all(&mut f, name.as_bytes())?;
                f.sync_all()
            });
            written
                .and_then(|()| std::fs::rename(&partial, &marker))
                .map_err(|e| format!("cannot write {}: {e}", marker.display()))?;
        }
        // The database files too, should the directory ever be opened up again.
        restrict_files(dir);
        Ok(opened)
    }
}

impl StoreSpec {
    /// Opens the store as one of the engines that share it (`serve --shared`): a PostgreSQL
    /// database only, with leases of `ttl`.
    pub(crate) fn open_shared(
        &self,
        ttl: std::time::Duration,
    ) -> Result<Box<dyn CheckpointStore>, String> {
        let Some(url) = &self.database else {
            return Err(format!(
                "--shared needs a PostgreSQL store (--store postgres://...); {} is a \
                 directory, which one process owns",
                self.display()
            ));
        };
        if self.engine.is_some() {
            return Err(format!(
                "--store-engine is for a store directory; {} is a PostgreSQL database",
                self.display()
            ));
        }
        let opened = PostgresStore::open_shared(url, ttl).map_err(|e| match e {
            stepstone::engine::store::Error::Locked(_) => format!(
                "the store {} is owned by an engine that does not share it (a `run` or a \
                 `serve` without --shared): stop it first",
                self.display()
            ),
            e => format!("cannot open the store {}: {e}", self.display()),
        })?;
        Ok(Box::new(opened))
    }

    /// Opens the PostgreSQL store at `url` (`existing`: it must hold one already, for a
    /// reading command), and (not `existing`) makes the engine's local directory (owner-only).
    fn open_database(&self, url: &str, existing: bool) -> Result<Box<dyn CheckpointStore>, String> {
        if self.engine.is_some() {
            return Err(format!(
                "--store-engine is for a store directory; {} is a PostgreSQL database",
                self.display()
            ));
        }
        if !existing {
            // The owning engine's control socket and logs; reading commands need none.
            self.ensure_dir()?;
        }
        let opened = PostgresStore::open_with(url, existing).map_err(|e| match e {
            stepstone::engine::store::Error::Locked(_) => self.in_use(),
            stepstone::engine::store::Error::Shared(_) => format!(
                "the store {} is shared by `stepstone serve --shared` nodes: reach its executions \
                 through their API (`aws stepfunctions --endpoint-url http://NODE:PORT \
                 list-executions ...`, or any Step Functions SDK); commands that open the store \
                 themselves wait for the nodes to stop",
                self.display()
            ),
            stepstone::engine::store::Error::Corrupt { reason, .. } if existing => {
                format!("no execution store in {}: {reason}", self.display())
            }
            e => format!("cannot open the store {}: {e}", self.display()),
        })?;
        Ok(Box::new(opened))
    }
}

/// The file naming a store's engine, written when the store is made: with it, a database file
/// that went missing is seen as damage, not as an empty store.
const STORE_MARKER: &str = "STORE";

/// Makes `path` owner-only: 0700 for a directory, 0600 for a file. Paths of other owners are
/// left alone (changing them would fail anyway, unless root).
#[cfg(unix)]
fn restrict(path: &Path, is_dir: bool) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mode = if is_dir { 0o700 } else { 0o600 };
    if meta.mode() & 0o777 != mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict(_path: &Path, _is_dir: bool) -> std::io::Result<()> {
    Ok(())
}

/// Makes the store's files owner-only (best effort: the directory's own mode is what keeps
/// others out).
fn restrict_files(dir: &Path) {
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                let _ = restrict(&entry.path(), true);
                dirs.push(entry.path());
            } else if kind.is_file() {
                let _ = restrict(&entry.path(), false);
            }
        }
    }
}
