//! The subcommands. Each returns the process exit code, or an error that means exit 2.

use std::io::Read;
use std::path::{Path, PathBuf};

use stepstone::engine::store::{CheckpointStore, REDB_FILE, RedbStore, SledStore};

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

pub(crate) mod control;
pub(crate) mod detach;
pub(crate) mod executions;
pub(crate) mod graph;
pub(crate) mod run;
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
             `history`, `executions` and `stop` reach it; `run`, `resume` and `redrive` need the \
             store to themselves: wait for it to finish, or use another --store",
            self.dir.display()
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

/// Where executions are kept: a directory, and its engine when given.
pub(crate) struct StoreSpec {
    pub(crate) dir: PathBuf,
    pub(crate) engine: Option<StoreEngine>,
}

impl StoreSpec {
    pub(crate) fn display(&self) -> std::path::Display<'_> {
        self.dir.display()
    }

    /// Whether the directory holds a store of either engine.
    pub(crate) fn exists(&self) -> bool {
        self.dir.join(REDB_FILE).exists() || self.dir.join("conf").exists()
    }

    /// Creates the store's directory, owner-only, unless it exists.
    pub(crate) fn ensure_dir(&self) -> Result<(), String> {
        let dir = &self.dir;
        if !dir.exists() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create the store {}: {e}", dir.display()))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
            }
        }
        Ok(())
    }

    /// Opens a store that must already exist: reading commands never create one (an empty
    /// store made by `executions` would fix the engine before `run --store-engine` chooses one).
    pub(crate) fn open_existing(&self) -> Result<Box<dyn CheckpointStore>, String> {
        if !self.exists() {
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
        let dir = &self.dir;
        self.ensure_dir()?;
        let is_redb = dir.join(REDB_FILE).exists();
        let is_sled = dir.join("conf").exists();
        let engine = match (self.engine, is_redb, is_sled) {
            (Some(StoreEngine::Sled), true, _) => {
                return Err(format!(
                    "{} holds a redb store (--store-engine redb)",
                    dir.display()
                ));
            }
            (Some(StoreEngine::Redb), _, true) => {
                return Err(format!(
                    "{} holds a sled store (--store-engine sled)",
                    dir.display()
                ));
            }
            (Some(e), _, _) => e,
            (None, _, true) => StoreEngine::Sled,
            (None, _, _) => StoreEngine::Redb,
        };
        let opened: Result<Box<dyn CheckpointStore>, _> = match engine {
            StoreEngine::Sled => {
                SledStore::open(dir).map(|s| Box::new(s) as Box<dyn CheckpointStore>)
            }
            StoreEngine::Redb => {
                RedbStore::open(dir).map(|s| Box::new(s) as Box<dyn CheckpointStore>)
            }
        };
        opened.map_err(|e| match e {
            stepstone::engine::store::Error::Locked(_) => self.in_use(),
            e => format!("cannot open the store {}: {e}", dir.display()),
        })
    }
}
