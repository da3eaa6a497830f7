//! The PostgreSQL store's own guarantees, on a real server (`scripts/test` starts one): its
//! schema is made and versioned by Stepstone, one engine owns a store at a time, an engine
//! that lost the store never writes into it again (fencing by ownership epoch), and a killed
//! engine's store is taken over at once. What it stores is checked with the other stores in
//! `store_model.rs`.

mod common;

use common::postgres::fresh_database;
use serde_json::json;
use stepstone_engine::asl::timestamp::Timestamp;
use stepstone_engine::history::HistoryMode;
use stepstone_engine::store::{CheckpointStore, Error, PostgresStore};
use stepstone_engine::{Execution, ExecutionInfo, Input, Limits};

fn sql(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap()
}

fn machine() -> stepstone_engine::asl::Machine {
    common::machine(&json!({"StartAt": "Work", "States": {
        "Work": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": true}}}))
}

fn at(nanos: i128) -> Timestamp {
    Timestamp { unix_nanos: nanos }
}

/// An execution of `machine` named `name`, created in `store`: it waits for its task.
fn created<'m>(
    machine: &'m stepstone_engine::asl::Machine,
    store: &dyn CheckpointStore,
    name: &str,
) -> (Execution<'m>, stepstone_engine::RunId) {
    let info = ExecutionInfo::new("owned", name, json!({}), at(1), false);
    let mut exec = Execution::new(machine, info, Limits::default(), HistoryMode::Full);
    let commands = exec.start(at(1));
    let mut commands = commands.into_iter().chain(exec.resume(at(1)));
    let run = match commands.next() {
        Some(stepstone_engine::Command::Dispatch(request)) => request.run,
        other => panic!("expected the task, got {other:?}"),
    };
    store
        .create(machine.source(), &json!({}), &exec.take_changes().unwrap())
        .unwrap();
    (exec, run)
}

/// Answers the execution's task (its next save ends it).
fn finish_task(exec: &mut Execution<'_>, run: stepstone_engine::RunId) {
    exec.on_input(
        Input::TaskDone {
            run,
            result: Ok(json!({"done": true})),
        },
        at(2),
    );
}

#[test]
fn the_schema_is_made_once_and_versioned() {
    let url = fresh_database("schema");
    // Reading commands never make a store.
    let refused = PostgresStore::open_with(&url, true).err().unwrap();
    assert!(
        matches!(&refused, Error::Corrupt { reason, .. } if reason.contains("no Stepstone store")),
        "{refused}"
    );
    drop(PostgresStore::open(&url).unwrap());
    drop(PostgresStore::open_with(&url, true).unwrap());
    let mut db = sql(&url);
    let versions: Vec<i32> = db
        .query("SELECT version FROM stepstone_schema ORDER BY version", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [1, 2], "each migration applied once");
    // A schema from a newer Stepstone is refused, not written over.
    db.execute("INSERT INTO stepstone_schema (version) VALUES (999)", &[])
        .unwrap();
    let newer = PostgresStore::open(&url).err().unwrap();
    assert!(newer.to_string().contains("version 999"), "{newer}");
}

#[test]
fn one_engine_owns_a_store_and_a_killed_one_lets_go_at_once() {
    let url = fresh_database("owner");
    let first = PostgresStore::open(&url).unwrap();
    assert!(matches!(
        PostgresStore::open(&url).err(),
        Some(Error::Locked(shown)) if shown == url
    ));
    let epoch = first.epoch();
    // The owner's session ends (its process killed: the server closes the connection).
    let ended: i64 = sql(&url)
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_locks
             WHERE locktype = 'advisory' AND objid = 2 AND granted",
            &[],
        )
        .unwrap()
        .len() as i64;
    assert_eq!(ended, 1);
    let second = PostgresStore::open(&url).unwrap();
    assert_eq!(second.epoch(), epoch + 1);
    // The old owner cannot write any more (its connection is gone).
    let machine = machine();
    let info = ExecutionInfo::new("owned", "late", json!({}), at(1), false);
    let mut exec = Execution::new(&machine, info, Limits::default(), HistoryMode::Full);
    exec.start(at(1));
    assert!(
        first
            .create(machine.source(), &json!({}), &exec.take_changes().unwrap())
            .is_err()
    );
    assert!(second.list().unwrap().is_empty());
}

#[test]
fn an_engine_that_lost_the_store_is_fenced_out() {
    let url = fresh_database("fenced");
    let store = PostgresStore::open(&url).unwrap();
    let machine = machine();
    let (mut exec, run) = created(&machine, &store, "fenced");
    // Another engine took the store over (here by hand: the epoch moves on).
    sql(&url)
        .execute("UPDATE stepstone_owner SET epoch = epoch + 1", &[])
        .unwrap();
    finish_task(&mut exec, run);
    let refused = store.save(&exec.take_changes().unwrap()).unwrap_err();
    assert!(
        refused.to_string().contains("took this store over"),
        "{refused}"
    );
    // Nothing of the refused save is there: the execution is still waiting for its task.
    let listed = store.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, "RUNNING");
}

/// History batches live in a table of their own; a store made before that table existed
/// (schema version 1) has its batches moved there when it is opened.
#[test]
fn history_batches_are_kept_in_their_own_table() {
    let url = fresh_database("history");
    let store = PostgresStore::open(&url).unwrap();
    let machine = machine();
    let (mut exec, run) = created(&machine, &store, "kept");
    finish_task(&mut exec, run);
    store.save(&exec.take_changes().unwrap()).unwrap();
    let arn = exec.info().execution_arn.clone();
    let events = store.events(&arn).unwrap();
    assert_eq!(events.last().unwrap().id as usize, events.len());
    drop(store);
    let mut db = sql(&url);
    let count = |db: &mut postgres::Client, table: &str, filter: &str| -> i64 {
        db.query_one(
            &format!("SELECT count(*) FROM {table} WHERE key ~ '{filter}'"),
            &[],
        )
        .unwrap()
        .get(0)
    };
    let batches = count(&mut db, "stepstone_history", "^x/[0-9a-f]{16}/e/");
    assert!(batches >= 2, "{batches} batches");
    assert_eq!(count(&mut db, "stepstone_records", "/e/"), 0);
    assert_eq!(count(&mut db, "stepstone_history", "^[^xbh]"), 0);
    // As version 1 kept them: in the records.
    db.batch_execute(
        "INSERT INTO stepstone_records SELECT * FROM stepstone_history;
         DROP TABLE stepstone_history;
         DELETE FROM stepstone_schema WHERE version > 1;",
    )
    .unwrap();
    let store = PostgresStore::open(&url).unwrap();
    assert_eq!(store.events(&arn).unwrap(), events);
    let mut db = sql(&url);
    assert_eq!(count(&mut db, "stepstone_history", "/e/"), batches);
    assert_eq!(count(&mut db, "stepstone_records", "/e/"), 0);
}
