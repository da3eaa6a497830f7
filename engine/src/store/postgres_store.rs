//! A store in PostgreSQL (`PostgresStore`, `--store postgres://...`): the same key layout as
//! the disk stores (`keyed.rs`), in a table of the database, so that a store outlives the
//! machine an engine runs on.
//!
//! - **Schema:** created and migrated by Stepstone, in versions (`MIGRATIONS`), each applied once
//!   in its own transaction under a transaction-scoped advisory lock (engines starting together
//!   migrate one after the other); a database migrated by a newer Stepstone is refused.
//! - **Records:** `stepstone_records(key text COLLATE "C" PRIMARY KEY, value bytea)`, and the
//!   history batches in `stepstone_history`, of the same shape (`keyed::is_history` tells
//!   which): keys compare byte by byte, as in redb and sled, so a prefix is a key range.
//! - **One owner, fenced:** an engine owns the store while it holds a session advisory lock (a
//!   killed engine's connection closes and the lock goes with it, so `resume` elsewhere takes
//!   over at once), and each taking-over raises the ownership epoch (`stepstone_owner`). Every
//!   write transaction first reads the epoch, locking it against a takeover, and commits only
//!   if it is still the one this engine got: an engine that lost the store (its connection
//!   dropped, another engine took over) can never write into it again.
//! - **Commits:** writes go through the group-commit thread like the disk stores' (one
//!   transaction for every save waiting); PostgreSQL's `synchronous_commit` (on by default)
//!   makes a commit durable before it returns, the durability contract's "durable".
//!
//! The `postgres` client blocks on its own runtime, which must not run inside another one (the
//! engine's): each connection therefore lives on a thread of its own, and the store's calls are
//! messages to it. Reads and writes have a connection each, so a long scan never holds a commit
//! back. TLS as the URL's `sslmode` and `sslrootcert` say, as libpq reads them (`tls.rs`).

use std::sync::{PoisonError, mpsc};
use std::thread::JoinHandle;

use postgres::Client;

use super::keyed::{self, Fence, KeyValue, Keyed, Refused, Space, Write};
use super::{Error, Result};

mod leases;
mod tls;

/// The schema, one version after another. Never edit one that was released: add the next.
const MIGRATIONS: &[&str] = &[
    // 1: the records and the store's owner.
    r#"CREATE TABLE stepstone_records (
           key text COLLATE "C" PRIMARY KEY,
           value bytea NOT NULL
       );
       CREATE TABLE stepstone_owner (
           id int PRIMARY KEY CHECK (id = 1),
           epoch bigint NOT NULL,
           owner text NOT NULL,
           since timestamptz NOT NULL
       );
       INSERT INTO stepstone_owner VALUES (1, 0, '', now());"#,
    // 2: history batches in a table of their own (`keyed::is_history`), moved out of the
    // records.
    r#"CREATE TABLE stepstone_history (
           key text COLLATE "C" PRIMARY KEY,
           value bytea NOT NULL
       );
       INSERT INTO stepstone_history
           SELECT key, value FROM stepstone_records
           WHERE key LIKE 'b/%' OR key LIKE 'h/%' OR key ~ '^x/[0-9a-fA-F]{16}/e/';
       DELETE FROM stepstone_records
           WHERE key LIKE 'b/%' OR key LIKE 'h/%' OR key ~ '^x/[0-9a-fA-F]{16}/e/';"#,
    // 3: leases, requests between engines, execution numbers from a sequence (`leases.rs`).
    leases::MIGRATION,
];

/// The advisory lock ids Stepstone takes (two 32-bit keys: "STEP", then what for).
const LOCK_SPACE: i32 = 0x5354_4550;
const MIGRATING: i32 = 1;
const OWNING: i32 = 2;

/// How many execution numbers one `nextval` gives (the sequence's increment).
const NUMBER_BLOCK: u64 = 64;

/// A connection unused this long is checked before its next call (see `Session::lost`).
const IDLE_CHECK: std::time::Duration = std::time::Duration::from_millis(200);

/// How long `open` waits for another engine to let go of the store.
const OWNER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Executions kept in a PostgreSQL database.
pub struct PostgresStore {
    keyed: Keyed<Pg>,
}

impl PostgresStore {
    /// Connects to the database `url` names (`postgres://user:password@host:port/database`),
    /// creates or migrates Stepstone's tables, and takes the store: [`Error::Locked`] when
    /// another engine holds it.
    pub fn open(url: &str) -> Result<PostgresStore> {
        Self::open_with(url, false)
    }

    /// [`PostgresStore::open`]; `existing`: the database must already hold a store (reading
    /// commands never make one).
    pub fn open_with(url: &str, existing: bool) -> Result<PostgresStore> {
        Self::open_as(url, existing, None)
    }

    /// Joins the engines that share the database `url` (creating or migrating the schema):
    /// each execution is driven by the engine holding its lease, which lasts `ttl` unless
    /// renewed (see [`super::Leases`]). Engines that share a database exclude one that would
    /// own it alone ([`PostgresStore::open`]), and the other way round.
    pub fn open_shared(url: &str, ttl: std::time::Duration) -> Result<PostgresStore> {
        Self::open_as(url, false, Some(ttl))
    }

    /// Opens the store, as its only engine (`ttl` `None`) or as one of several.
    fn open_as(
        url: &str,
        existing: bool,
        ttl: Option<std::time::Duration>,
    ) -> Result<PostgresStore> {
        let shown = redacted(url);
        let writer = Connection::open(url, &shown)?;
        let migrated = writer.call(move |session| migrate(&mut session.client, existing))?;
        if !migrated {
            return Err(Error::Corrupt {
                key: shown,
                reason: "the database holds no Stepstone store".into(),
            });
        }
        let me = format!(
            "pid {} on {}",
            std::process::id(),
            hostname().unwrap_or_else(|| "an unknown host".into())
        );
        let sharing = ttl.is_some();
        let owner = me.clone();
        let epoch =
            writer.call(move |session| take_ownership(&mut session.client, &owner, sharing))?;
        let Some(epoch) = epoch else {
            let shared = !sharing && writer.call(|session| held_shared(&mut session.client))?;
            return Err(match shared {
                true => Error::Shared(shown),
                false => Error::Locked(shown),
            });
        };
        writer.call(move |session| {
            session.reconnected = Some(relock(sharing, epoch));
            Ok(())
        })?;
        let reader = Connection::open(url, &shown)?;
        let shared = match ttl {
            Some(ttl) => {
                // Unique among the engines, even two of one process.
                let me = format!("{me} #{}", hex(&crate::random_key()[..6]));
                Some(std::sync::Arc::new(leases::Shared::start(
                    url, &shown, me, ttl,
                )?))
            }
            None => None,
        };
        let pg = Pg {
            writer,
            reader,
            epoch,
            shared,
            numbers: std::sync::Mutex::new(0..0),
        };
        Ok(PostgresStore {
            keyed: Keyed::open(pg, existing, true)?,
        })
    }

    /// Whether the database `url` names holds a store (without taking it, or making one).
    pub fn exists(url: &str) -> Result<bool> {
        let connection = Connection::open(url, &redacted(url))?;
        connection.call(|session| {
            Ok(session
                .client
                .query_one("SELECT to_regclass('stepstone_schema') IS NOT NULL", &[])
                .map_err(pg_error)?
                .get(0))
        })
    }

    /// The ownership epoch this engine writes under (raised by every engine that takes the
    /// store).
    pub fn epoch(&self) -> i64 {
        self.keyed.kv.epoch
    }
}

/// `url` without its password, to show in messages.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split(':').next().unwrap_or("");
            format!("{scheme}://{user}@{host}{path}")
        }
        None => url.to_owned(),
    }
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
}

fn pg_error(e: postgres::Error) -> Error {
    // The server's own message (with its code) says more than the client's summary.
    match e.as_db_error() {
        Some(db) => Error::Io(format!(
            "PostgreSQL: {} ({})",
            db.message(),
            db.code().code()
        )),
        None => Error::Io(format!("PostgreSQL: {}", crate::source_chain(&e))),
    }
}

/// Creates or brings the schema up to date; false when the database has no store and
/// `existing` forbids making one.
fn migrate(client: &mut Client, existing: bool) -> Result<bool> {
    let mut txn = client.transaction().map_err(pg_error)?;
    txn.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&LOCK_SPACE, &MIGRATING],
    )
    .map_err(pg_error)?;
    let has_schema: bool = txn
        .query_one("SELECT to_regclass('stepstone_schema') IS NOT NULL", &[])
        .map_err(pg_error)?
        .get(0);
    if !has_schema {
        if existing {
            return Ok(false);
        }
        txn.batch_execute(
            "CREATE TABLE stepstone_schema (
                 version int PRIMARY KEY,
                 applied timestamptz NOT NULL DEFAULT now()
             )",
        )
        .map_err(pg_error)?;
    }
    let version: i32 = txn
        .query_one(
            "SELECT coalesce(max(version), 0) FROM stepstone_schema",
            &[],
        )
        .map_err(pg_error)?
        .get(0);
    let known = MIGRATIONS.len() as i32;
    if version > known {
        return Err(Error::Corrupt {
            key: "stepstone_schema".into(),
            reason: format!(
                "the database's schema is version {version}, newer than this Stepstone knows \
                 ({known}): upgrade Stepstone"
            ),
        });
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let number = index as i32 + 1;
        txn.batch_execute(migration)
            .map_err(|e| match pg_error(e) {
                Error::Io(text) => Error::Io(format!("schema migration {number}: {text}")),
                other => other,
            })?;
        txn.execute(
            "INSERT INTO stepstone_schema (version) VALUES ($1)",
            &[&number],
        )
        .map_err(pg_error)?;
    }
    // The key task tokens are signed with, made here, under the lock, unless there is one:
    // engines opening a new store at once must not each make their own (the layout would
    // make it on first open, and the last one written would win over keys already in use).
    let token_key = crate::record::encode(&crate::random_key())?;
    txn.execute(
        "INSERT INTO stepstone_records (key, value) VALUES ('meta/token-key', $1)
         ON CONFLICT (key) DO NOTHING",
        &[&token_key],
    )
    .map_err(pg_error)?;
    txn.commit().map_err(pg_error)?;
    Ok(true)
}

/// Whether engines that share the store hold it (the owner's lock, taken shared).
fn held_shared(client: &mut Client) -> Result<bool> {
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
                 AND mode = 'ShareLock' AND classid::int8 = $1 AND objid::int8 = $2
                 AND objsubid = 2
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))",
            &[&i64::from(LOCK_SPACE), &i64::from(OWNING)],
        )
        .map_err(pg_error)?
        .get(0))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Takes the store for this connection's session: its new ownership epoch, or `None` when
/// another engine holds it still after [`OWNER_WAIT`]. Engines that share the store
/// (`sharing`) hold the lock shared, and write under the epoch as they find it.
fn take_ownership(client: &mut Client, me: &str, sharing: bool) -> Result<Option<i64>> {
    if !lock_owner(client, sharing)? {
        return Ok(None);
    }
    if sharing {
        let epoch: i64 = client
            .query_one("SELECT epoch FROM stepstone_owner WHERE id = 1", &[])
            .map_err(pg_error)?
            .get(0);
        return Ok(Some(epoch));
    }
    let epoch: i64 = client
        .query_one(
            "UPDATE stepstone_owner SET epoch = epoch + 1, owner = $1, since = now()
             WHERE id = 1 RETURNING epoch",
            &[&me],
        )
        .map_err(pg_error)?
        .get(0);
    Ok(Some(epoch))
}

/// Takes the owner's lock for this session (shared, for engines that share the store), waiting
/// [`OWNER_WAIT`] at most: whether it was taken.
fn lock_owner(client: &mut Client, sharing: bool) -> Result<bool> {
    let give_up = std::time::Instant::now() + OWNER_WAIT;
    let lock = match sharing {
        true => "SELECT pg_try_advisory_lock_shared($1, $2)",
        false => "SELECT pg_try_advisory_lock($1, $2)",
    };
    loop {
        let taken: bool = client
            .query_one(lock, &[&LOCK_SPACE, &OWNING])
            .map_err(pg_error)?
            .get(0);
        if taken {
            return Ok(true);
        }
        if std::time::Instant::now() >= give_up {
            return Ok(false);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// What the writing connection does when it connects again (the server restarted, or closed
/// it): takes the owner's lock again, and goes on only if no other engine took the store
/// meanwhile (the epoch is still `epoch`). Otherwise its writes stay refused.
fn relock(sharing: bool, epoch: i64) -> Reconnected {
    Box::new(move |client| {
        if !lock_owner(client, sharing)? {
            return Err(Error::Io(
                "another Stepstone engine holds this store since the connection was lost".into(),
            ));
        }
        let current: i64 = client
            .query_one("SELECT epoch FROM stepstone_owner WHERE id = 1", &[])
            .map_err(pg_error)?
            .get(0);
        if current != epoch {
            return Err(Error::Io(format!(
                "another Stepstone engine took this store over while the connection was lost \
                 (ownership epoch {current}, this engine's {epoch})"
            )));
        }
        Ok(())
    })
}

/// The database, as the key layout sees it.
pub(crate) struct Pg {
    writer: Connection,
    reader: Connection,
    epoch: i64,
    /// This engine's leases, when it shares the store with others.
    shared: Option<std::sync::Arc<leases::Shared>>,
    /// The execution numbers of the block this engine took and has not used yet.
    numbers: std::sync::Mutex<std::ops::Range<u64>>,
}

/// The least string greater than every string that starts with `prefix` (`None`: there is
/// none, every string is). Keys compare byte by byte (`COLLATE "C"`), and UTF-8's byte order
/// is code point order, so the prefix with its last character raised is that bound.
fn past(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (last as u32 + 1..=char::MAX as u32).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Stepstone's two tables of keys and values: the history batches, and every other record
/// (`keyed::Space`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Records,
    History,
}

/// `$before TABLE $after` for `table`, as a `&'static str` (statements are prepared once per
/// text).
macro_rules! in_table {
    ($table:expr, $before:literal, $after:literal) => {
        match $table {
            Table::Records => concat!($before, "stepstone_records", $after),
            Table::History => concat!($before, "stepstone_history", $after),
        }
    };
}

fn table_of(key: &str) -> Table {
    if keyed::is_history(key) {
        Table::History
    } else {
        Table::Records
    }
}

/// The tables whose keys may start with `prefix`.
fn tables_of(prefix: &str) -> &'static [Table] {
    match keyed::space_of_prefix(prefix) {
        Space::Records => &[Table::Records],
        Space::History => &[Table::History],
        Space::Both => &[Table::Records, Table::History],
    }
}

/// The rows of `prefix` in `table`, from `start` (inclusive or not), in key order, at most
/// `limit`.
fn range(
    session: &mut Session,
    table: Table,
    prefix: &str,
    start: &str,
    inclusive: bool,
    limit: Option<i64>,
) -> Result<Vec<(String, Vec<u8>)>> {
    let rows = match (past(prefix), inclusive) {
        (Some(end), true) => {
            let sql = session.statement(in_table!(
                table,
                "SELECT key, value FROM ",
                " WHERE key >= $1 AND key < $2 ORDER BY key LIMIT $3"
            ))?;
            session.client.query(&sql, &[&start, &end, &limit])
        }
        (Some(end), false) => {
            let sql = session.statement(in_table!(
                table,
                "SELECT key, value FROM ",
                " WHERE key > $1 AND key < $2 ORDER BY key LIMIT $3"
            ))?;
            session.client.query(&sql, &[&start, &end, &limit])
        }
        (None, true) => {
            let sql = session.statement(in_table!(
                table,
                "SELECT key, value FROM ",
                " WHERE key >= $1 ORDER BY key LIMIT $2"
            ))?;
            session.client.query(&sql, &[&start, &limit])
        }
        (None, false) => {
            let sql = session.statement(in_table!(
                table,
                "SELECT key, value FROM ",
                " WHERE key > $1 ORDER BY key LIMIT $2"
            ))?;
            session.client.query(&sql, &[&start, &limit])
        }
    }
    .map_err(pg_error)?;
    Ok(rows
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

/// The rows of `prefix` from `start` in every table that may hold them, merged in key order,
/// at most `limit`.
fn range_all(
    session: &mut Session,
    prefix: &str,
    start: &str,
    inclusive: bool,
    limit: Option<i64>,
) -> Result<Vec<(String, Vec<u8>)>> {
    let mut rows = Vec::new();
    for table in tables_of(prefix) {
        rows.extend(range(session, *table, prefix, start, inclusive, limit)?);
    }
    if tables_of(prefix).len() > 1 {
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(limit) = limit {
            rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        }
    }
    Ok(rows)
}

impl KeyValue for Pg {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let key = key.to_owned();
        self.reader.read(move |session| {
            let sql = session.statement(in_table!(
                table_of(&key),
                "SELECT value FROM ",
                " WHERE key = $1"
            ))?;
            let row = session.client.query_opt(&sql, &[&key]).map_err(pg_error)?;
            Ok(row.map(|row| row.get(0)))
        })
    }

    /// One transaction for all of `writes`, fenced by the ownership epoch (and, engines
    /// sharing the store, each write by its execution's lease), committed as the database
    /// commits (durable with `synchronous_commit` on, its default).
    fn apply(&self, writes: Vec<Write<'_>>) -> Result<Refused> {
        let writes: Vec<Write<'static>> = writes.into_iter().map(Write::into_owned).collect();
        let epoch = self.epoch;
        let shared = self.shared.clone();
        self.writer.call(move |session| {
            let fence =
                session.statement("SELECT epoch FROM stepstone_owner WHERE id = 1 FOR SHARE")?;
            let check = session.statement(leases::Shared::CHECK)?;
            let mut prepared = Vec::new();
            for table in [Table::Records, Table::History] {
                prepared.push((
                    session.statement(in_table!(
                        table,
                        "DELETE FROM ",
                        " WHERE key >= $1 AND key < $2"
                    ))?,
                    session.statement(in_table!(table, "DELETE FROM ", " WHERE key = ANY($1)"))?,
                    session.statement(in_table!(
                        table,
                        "INSERT INTO ",
                        " (key, value) SELECT * FROM unnest($1::text[], $2::bytea[])
                         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
                    ))?,
                ));
            }
            let statements = |table: Table| &prepared[table as usize];
            let mut txn = session.client.transaction().map_err(pg_error)?;
            // Locks the row against a takeover until this transaction ends.
            let current: i64 = txn.query_one(&fence, &[]).map_err(pg_error)?.get(0);
            if current != epoch {
                return Err(Error::Io(format!(
                    "another Stepstone engine took this store over (ownership epoch \
                     {current}, this engine's {epoch}): this engine writes no more into it"
                )));
            }
            // Each execution's writes only under its lease; the others go on without them.
            let fences: Vec<(usize, Fence)> = writes
                .iter()
                .enumerate()
                .filter_map(|(index, write)| Some((index, write.fence.clone()?)))
                .collect();
            let refused = match (&shared, fences.is_empty()) {
                (Some(shared), false) => shared.refused(&mut txn, &check, &fences)?,
                _ => Vec::new(),
            };
            let writes = writes
                .into_iter()
                .enumerate()
                .filter(|(index, _)| !refused.iter().any(|(r, _)| r == index))
                .map(|(_, write)| write)
                .collect();
            for write in Owned::merged(writes) {
                for prefix in &write.delete_prefixes {
                    for table in tables_of(prefix) {
                        match past(prefix) {
                            Some(end) => txn.execute(&statements(*table).0, &[prefix, &end]),
                            None => txn.execute(in_table!(*table, "DELETE FROM ", ""), &[]),
                        }
                        .map_err(pg_error)?;
                    }
                }
                for (table, part) in write.split() {
                    if !part.deletes.is_empty() {
                        txn.execute(&statements(table).1, &[&part.deletes])
                            .map_err(pg_error)?;
                    }
                    if !part.keys.is_empty() {
                        txn.execute(&statements(table).2, &[&part.keys, &part.values])
                            .map_err(pg_error)?;
                    }
                }
            }
            txn.commit().map_err(pg_error)?;
            Ok(refused)
        })
    }

    /// From a sequence, a block of [`NUMBER_BLOCK`] at a time: engines that share the store
    /// create executions at once, each from blocks of its own (numbers need not be dense).
    fn next_number(&self) -> Result<Option<u64>> {
        let mut numbers = self.numbers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(number) = numbers.next() {
            return Ok(Some(number));
        }
        let number: i64 = self.reader.read(|session| {
            let sql = session.statement("SELECT nextval('stepstone_execution_numbers')")?;
            Ok(session
                .client
                .query_one(&sql, &[])
                .map_err(pg_error)?
                .get(0))
        })?;
        let first = u64::try_from(number).map_err(|_| Error::Corrupt {
            key: "stepstone_execution_numbers".into(),
            reason: format!("a negative execution number ({number})"),
        })?;
        *numbers = first + 1..first + NUMBER_BLOCK;
        Ok(Some(first))
    }

    fn reserve(&self, execution_arn: &str) -> Result<()> {
        match &self.shared {
            Some(shared) => shared.reserve(execution_arn),
            None => Ok(()),
        }
    }

    fn unreserve(&self, execution_arn: &str) {
        if let Some(shared) = &self.shared {
            super::Leases::abandon(&**shared, execution_arn);
        }
    }

    fn fence(&self, execution_arn: &str) -> Result<Option<Fence>> {
        match &self.shared {
            Some(shared) => shared.fence(execution_arn),
            None => Ok(None),
        }
    }

    fn leases(&self) -> Option<&dyn super::Leases> {
        self.shared
            .as_deref()
            .map(|shared| shared as &dyn super::Leases)
    }

    fn scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let prefix = prefix.to_owned();
        self.reader
            .read(move |session| range_all(session, &prefix, &prefix, true, None))
    }

    fn scan_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let prefix = prefix.to_owned();
        let after = after.map(str::to_owned);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.reader.read(move |session| match &after {
            // Keys after `after` that still start with the prefix: `after` may sort before it.
            Some(after) if after.as_str() >= prefix.as_str() => {
                range_all(session, &prefix, after, false, Some(limit))
            }
            _ => range_all(session, &prefix, &prefix, true, Some(limit)),
        })
    }

    fn last_at_or_before(&self, prefix: &str, key: &str) -> Result<Option<(String, Vec<u8>)>> {
        let (prefix, key) = (prefix.to_owned(), key.to_owned());
        self.reader.read(move |session| {
            let mut last: Option<(String, Vec<u8>)> = None;
            for table in tables_of(&prefix) {
                let sql = session.statement(in_table!(
                    *table,
                    "SELECT key, value FROM ",
                    " WHERE key >= $1 AND key <= $2 ORDER BY key DESC LIMIT 1"
                ))?;
                let row = session
                    .client
                    .query_opt(&sql, &[&prefix, &key])
                    .map_err(pg_error)?
                    .map(|row| (row.get::<_, String>(0), row.get::<_, Vec<u8>>(1)))
                    .filter(|(k, _)| k.starts_with(prefix.as_str()));
                if row.as_ref().map(|r| &r.0) > last.as_ref().map(|l| &l.0) {
                    last = row;
                }
            }
            Ok(last)
        })
    }
}

/// Writes with their values owned, to hand to a connection's thread, merged (`Owned::merged`):
/// a key is put or deleted once (one `INSERT ... ON CONFLICT` cannot touch a row twice).
struct Owned {
    keys: Vec<String>,
    values: Vec<Vec<u8>>,
    deletes: Vec<String>,
    delete_prefixes: Vec<String>,
}

/// What a write puts and deletes in one table.
#[derive(Default)]
struct Part {
    keys: Vec<String>,
    values: Vec<Vec<u8>>,
    deletes: Vec<String>,
}

impl Owned {
    /// `writes`, in order, as few as they can be: a run of writes without prefix deletions is
    /// one (each key's last put or deletion wins, as applying them one after another would
    /// leave it), so a transaction of several saves is a few statements, not a few per save.
    fn merged(writes: Vec<Write<'_>>) -> Vec<Owned> {
        let mut out: Vec<Owned> = Vec::new();
        // Each key's fate in the write being built: its value, or deleted (`None`).
        let mut fate: std::collections::BTreeMap<String, Option<Vec<u8>>> = Default::default();
        let mut prefixes: Vec<String> = Vec::new();
        let finish = |fate: &mut std::collections::BTreeMap<String, Option<Vec<u8>>>,
                      prefixes: &mut Vec<String>,
                      out: &mut Vec<Owned>| {
            if fate.is_empty() && prefixes.is_empty() {
                return;
            }
            let mut owned = Owned {
                keys: Vec::new(),
                values: Vec::new(),
                deletes: Vec::new(),
                delete_prefixes: std::mem::take(prefixes),
            };
            for (key, value) in std::mem::take(fate) {
                match value {
                    Some(value) => {
                        owned.keys.push(key);
                        owned.values.push(value);
                    }
                    None => owned.deletes.push(key),
                }
            }
            out.push(owned);
        };
        for write in writes {
            // A prefix deletion applies before this write's own deletions and puts, and
            // after what came before it: it starts a write of its own.
            if !write.delete_prefixes.is_empty() {
                finish(&mut fate, &mut prefixes, &mut out);
                prefixes = write.delete_prefixes;
            }
            for key in write.deletes {
                fate.insert(key, None);
            }
            for (key, value) in write.puts {
                fate.insert(key, Some(value.into_owned()));
            }
        }
        finish(&mut fate, &mut prefixes, &mut out);
        out
    }

    /// Its puts and deletions by table.
    fn split(self) -> [(Table, Part); 2] {
        let mut records = Part::default();
        let mut history = Part::default();
        for (key, value) in self.keys.into_iter().zip(self.values) {
            let part = match table_of(&key) {
                Table::Records => &mut records,
                Table::History => &mut history,
            };
            part.keys.push(key);
            part.values.push(value);
        }
        for key in self.deletes {
            match table_of(&key) {
                Table::Records => records.deletes.push(key),
                Table::History => history.deletes.push(key),
            }
        }
        [(Table::Records, records), (Table::History, history)]
    }
}

/// Connects as `url` says, with a bound on the connection's setup (10 s, unless the URL sets
/// `connect_timeout`), TCP keepalives (a server that went away is noticed, not waited for) and
/// TLS as its `sslmode` says (`tls.rs`). Without a password in the URL, `PGPASSWORD` gives it.
/// The error is the reason, as the server or the client library gives it.
fn connect(url: &str) -> std::result::Result<Client, String> {
    let (url, tls) = tls::split(url)?;
    let mut config: postgres::Config = url.parse().map_err(|e: postgres::Error| e.to_string())?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    config.keepalives(true);
    // A password kept out of the URL (and so out of process listings), as libpq reads it.
    if config.get_password().is_none()
        && let Some(password) = std::env::var_os("PGPASSWORD")
    {
        config.password(password.as_encoded_bytes());
    }
    tls::connect(&config, &tls)
}

type Job = Box<dyn FnOnce(&mut Session) + Send>;

/// A connection's client and the statements prepared on it (each SQL text is parsed by the
/// server once per connection, not once per call: a statement is then one round trip).
struct Session {
    client: Client,
    prepared: std::collections::HashMap<&'static str, postgres::Statement>,
    /// Where it connects.
    url: String,
    /// Its last call failed: the connection may be gone.
    suspect: bool,
    /// When it was last used.
    last_used: std::time::Instant,
    /// What a new session runs first, when the connection is made again (the writer takes
    /// the owner's lock again).
    reconnected: Option<Reconnected>,
    /// Why the session's last reconnection was refused: its calls fail with it until a
    /// reconnection succeeds.
    refused: Option<Error>,
}

impl Session {
    /// Whether the server ended the session (a restart, a terminated backend). The client sees
    /// that only when it next reads, so after a failed call, or a pause (when a restart is
    /// likeliest to have happened unseen), the server is asked: one round trip, on a
    /// connection that was idle anyway.
    fn lost(&mut self) -> bool {
        let suspect = std::mem::take(&mut self.suspect);
        let idle = self.last_used.elapsed() > IDLE_CHECK;
        self.last_used = std::time::Instant::now();
        self.client.is_closed()
            || ((suspect || idle)
                && self
                    .client
                    .is_valid(std::time::Duration::from_secs(2))
                    .is_err())
    }

    /// Connects again (statements are prepared anew) and runs `reconnected` on the new
    /// session; a refusal is kept in `refused`.
    fn reconnect(&mut self) {
        let Ok(client) = connect(&self.url) else {
            // Still unreachable: the call fails on the closed client, the next one tries again.
            return;
        };
        self.client = client;
        self.prepared.clear();
        self.refused = match self.reconnected.as_mut().map(|f| f(&mut self.client)) {
            Some(Err(e)) => Some(e),
            _ => None,
        };
    }

    /// `sql`, prepared on this connection (the first time it is asked for).
    fn statement(&mut self, sql: &'static str) -> Result<postgres::Statement> {
        if let Some(refused) = &self.refused {
            return Err(refused.clone());
        }
        if let Some(statement) = self.prepared.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).map_err(pg_error)?;
        self.prepared.insert(sql, statement.clone());
        Ok(statement)
    }
}

/// One connection, on a thread of its own; dropping it closes the connection (and with the
/// writer's, the session's ownership lock) once the calls queued are answered.
struct Connection {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

/// What a connection runs on its new session when it connects again.
type Reconnected = Box<dyn FnMut(&mut Client) -> Result<()> + Send>;

impl Connection {
    /// A connection that, when the server closed it (a restart, a terminated backend),
    /// connects again before its next call (see [`Session::reconnect`]).
    fn open(url: &str, shown: &str) -> Result<Connection> {
        let (ready, is_ready) = mpsc::channel();
        let (jobs, queue) = mpsc::channel::<Job>();
        let url = url.to_owned();
        let shown_there = shown.to_owned();
        let thread = std::thread::Builder::new()
            .name("stepstone-postgres".into())
            .spawn(move || {
                let client = match connect(&url) {
                    Ok(client) => {
                        let _ = ready.send(Ok(()));
                        client
                    }
                    Err(reason) => {
                        let _ = ready.send(Err(Error::Io(format!(
                            "cannot connect to PostgreSQL at {shown_there}: {reason}"
                        ))));
                        return;
                    }
                };
                let mut session = Session {
                    client,
                    prepared: std::collections::HashMap::new(),
                    url: url.clone(),
                    suspect: false,
                    last_used: std::time::Instant::now(),
                    reconnected: None,
                    refused: None,
                };
                while let Ok(job) = queue.recv() {
                    if session.refused.is_some() || session.lost() {
                        session.reconnect();
                    }
                    job(&mut session);
                }
            })
            .map_err(|e| Error::Io(format!("cannot start a PostgreSQL connection thread: {e}")))?;
        is_ready.recv().unwrap_or_else(|_| {
            Err(Error::Io(format!(
                "cannot connect to PostgreSQL at {shown}"
            )))
        })?;
        Ok(Connection {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Runs `f` on the connection's thread and waits for its answer.
    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Session) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (answer, answered) = mpsc::channel();
        let job: Job = Box::new(move |session| {
            let result = f(session);
            session.suspect = result.is_err();
            let _ = answer.send(result);
        });
        let gone = || Error::Io("the PostgreSQL connection's thread stopped".into());
        self.jobs
            .as_ref()
            .ok_or_else(gone)?
            .send(job)
            .map_err(|_| gone())?;
        answered.recv().unwrap_or_else(|_| Err(gone()))
    }

    /// Queues `f` on the connection's thread without waiting for it (its failure is not seen).
    fn send<T: Send + 'static>(&self, f: impl FnOnce(&mut Session) -> Result<T> + Send + 'static) {
        let job: Job = Box::new(move |session| {
            session.suspect = f(session).is_err();
        });
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(job);
        }
    }

    /// [`Connection::call`] for a call that changes nothing (a read): when it fails because
    /// the server closed the connection, it is made again once, on a new connection.
    fn read<T: Send + 'static>(
        &self,
        f: impl Fn(&mut Session) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.call(move |session| match f(session) {
            Err(_)
                if {
                    session.suspect = true;
                    session.lost()
                } =>
            {
                session.reconnect();
                f(session)
            }
            result => result,
        })
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

keyed::checkpoint_store_over_keys!(PostgresStore);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_is_a_key_range() {
        assert_eq!(past("x/0001/").as_deref(), Some("x/00010"));
        assert_eq!(past("e/arn:é").as_deref(), Some("e/arn:ê"));
        assert_eq!(past("a\u{d7ff}").as_deref(), Some("a\u{e000}"));
        assert_eq!(past(&format!("b{}", char::MAX)).as_deref(), Some("c"));
        assert_eq!(past(""), None);
    }

    fn write(puts: &[(&str, &str)], deletes: &[&str], prefixes: &[&str]) -> Write<'static> {
        let mut write = Write::default();
        for (k, v) in puts {
            write.puts.push((
                (*k).to_owned(),
                std::borrow::Cow::Owned(v.as_bytes().to_vec()),
            ));
        }
        write.deletes = deletes.iter().map(|k| (*k).to_owned()).collect();
        write.delete_prefixes = prefixes.iter().map(|k| (*k).to_owned()).collect();
        write
    }

    /// Saves that share a transaction become one write, each key's last operation winning;
    /// a prefix deletion keeps its place between the writes before and after it.
    #[test]
    fn writes_merge_as_applying_them_in_order_would() {
        let merged = Owned::merged(vec![
            write(&[("h", "1"), ("r/1", "a")], &[], &[]),
            write(&[("h", "2")], &["r/1", "r/0"], &[]),
            write(&[("r/0", "b")], &[], &[]),
            write(&[("o/2", "c")], &["h"], &["o/"]),
            write(&[("h", "3")], &[], &[]),
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].keys, ["h", "r/0"]);
        assert_eq!(merged[0].values, [b"2".to_vec(), b"b".to_vec()]);
        assert_eq!(merged[0].deletes, ["r/1"]);
        assert!(merged[0].delete_prefixes.is_empty());
        assert_eq!(merged[1].delete_prefixes, ["o/"]);
        assert_eq!(merged[1].keys, ["h", "o/2"]);
        assert_eq!(merged[1].values, [b"3".to_vec(), b"c".to_vec()]);
        assert!(merged[1].deletes.is_empty());
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redacted("postgres://me:secret@db.example:5432/steps"),
            "postgres://me@db.example:5432/steps"
        );
        assert_eq!(
            redacted("postgresql://db.example/steps"),
            "postgresql://db.example/steps"
        );
    }
}
