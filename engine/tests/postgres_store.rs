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
use stepstone_engine::store::{CheckpointStore, Error, Leases, PostgresStore};
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
    assert_eq!(versions, [1, 2, 3], "each migration applied once");
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
    // As version 1 kept them: in the records; and the execution numbers counted in
    // `meta/next`, as before version 3.
    db.batch_execute(
        "INSERT INTO stepstone_records SELECT * FROM stepstone_history;
         DROP TABLE stepstone_history, stepstone_leases, stepstone_signals,
             stepstone_activity_tasks;
         DROP SEQUENCE stepstone_execution_numbers;
         INSERT INTO stepstone_records VALUES ('meta/next', '7')
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;
         DELETE FROM stepstone_schema WHERE version > 1;",
    )
    .unwrap();
    let store = PostgresStore::open(&url).unwrap();
    assert_eq!(store.events(&arn).unwrap(), events);
    let mut db = sql(&url);
    assert_eq!(count(&mut db, "stepstone_history", "/e/"), batches);
    assert_eq!(count(&mut db, "stepstone_records", "/e/"), 0);
    // The numbers go on from where `meta/next` stood.
    let _ = created(&machine, &store, "numbered");
    assert_eq!(
        count(&mut db, "stepstone_records", "^x/0000000000000007/h$"),
        1
    );
}

/// Engines that share a store (`open_shared`), with leases of `ttl`.
fn sharing(url: &str, ttl_ms: u64) -> PostgresStore {
    PostgresStore::open_shared(url, std::time::Duration::from_millis(ttl_ms)).unwrap()
}

fn leases(store: &PostgresStore) -> &dyn Leases {
    store.leases().expect("a shared store has leases")
}

fn arn(name: &str) -> String {
    ExecutionInfo::new("owned", name, json!({}), at(1), false).execution_arn
}

#[test]
fn engines_sharing_a_store_each_drive_the_executions_they_created() {
    let url = fresh_database("sharing");
    let a = sharing(&url, 5_000);
    let b = sharing(&url, 5_000);
    // An engine that would own the store alone is kept out while they share it.
    assert!(
        matches!(PostgresStore::open(&url), Err(Error::Shared(_))),
        "a single owner beside sharing engines"
    );
    let machine = machine();
    let (mut one, run) = created(&machine, &a, "one");
    // The ARN is taken across engines: ExecutionAlreadyExists, as on one engine.
    let info = ExecutionInfo::new("owned", "one", json!({}), at(1), false);
    let mut again = Execution::new(&machine, info, Limits::default(), HistoryMode::Full);
    let _ = again.start(at(1));
    let refused = b
        .create(machine.source(), &json!({}), &again.take_changes().unwrap())
        .unwrap_err();
    assert!(matches!(refused, Error::AlreadyExists(_)), "{refused}");
    let (_two, _) = created(&machine, &b, "two");
    assert_eq!(leases(&a).held(), [arn("one")]);
    assert_eq!(leases(&b).held(), [arn("two")]);
    // Both see every execution, numbered apart (from the database's sequence).
    for store in [&a, &b] {
        let names: Vec<String> = store.list().unwrap().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["one", "two"]);
    }
    // An engine never writes an execution another one drives.
    finish_task(&mut one, run);
    let refused = b.save(&one.take_changes().unwrap()).unwrap_err();
    assert!(matches!(refused, Error::NotHeld(_)), "{refused}");
    assert!(b.describe(&arn("one")).unwrap().unwrap().status == stepstone_engine::Status::Running);
}

#[test]
fn a_lease_taken_over_fences_its_old_engine_and_spares_the_rest_of_its_commit() {
    let url = fresh_database("fencing_leases");
    let a = sharing(&url, 1_500);
    let b = sharing(&url, 1_500);
    let machine = machine();
    let (mut one, run_one) = created(&machine, &a, "one");
    let (mut two, run_two) = created(&machine, &a, "two");
    // Live leases are not claimed.
    assert!(leases(&b).claim_expired(10).unwrap().is_empty());
    // Engine a is cut off from the database long enough for its lease of "one" to run out
    // there (as if its renewals were lost), and b claims it.
    sql(&url)
        .execute(
            "UPDATE stepstone_leases SET expires = '-infinity' WHERE execution = $1",
            &[&arn("one")],
        )
        .unwrap();
    assert_eq!(leases(&b).claim_expired(10).unwrap(), [arn("one")]);
    // Engine a, unaware, saves both executions at once: "one" is refused, "two" commits.
    finish_task(&mut one, run_one);
    finish_task(&mut two, run_two);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (saved_one, saved_two) = runtime.block_on(async {
        let one = a.save_async(one.take_changes().unwrap());
        let two = a.save_async(two.take_changes().unwrap());
        (one.await, two.await)
    });
    assert!(
        matches!(saved_one, Err(Error::NotHeld(_))),
        "{:?}",
        saved_one.map(|_| ())
    );
    saved_two.unwrap();
    assert!(a.describe(&arn("one")).unwrap().unwrap().status == stepstone_engine::Status::Running);
    assert!(a.describe(&arn("two")).unwrap().unwrap().status != stepstone_engine::Status::Running);
    assert_eq!(leases(&a).lost(), [arn("one")]);
    assert!(!leases(&a).holds(&arn("one")));
    assert!(leases(&b).holds(&arn("one")));
    // An engine that dies (here: dropped, its renewals stop) loses its leases once they run
    // out, and another claims them.
    let (_three, _) = created(&machine, &a, "three");
    drop(a);
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // (Each runs out at its own time: "three" was taken after a's last renewal of "two".)
    let mut claimed = Vec::new();
    while claimed.len() < 2 && std::time::Instant::now() < give_up {
        std::thread::sleep(std::time::Duration::from_millis(100));
        claimed.extend(leases(&b).claim_expired(10).unwrap());
    }
    // "two" ended in a, but its lease was never let go (a died first): b claims both.
    claimed.sort();
    assert_eq!(claimed, [arn("three"), arn("two")]);
}

#[test]
fn a_request_for_another_engine_is_answered_through_the_database() {
    let url = fresh_database("requests");
    let a = sharing(&url, 5_000);
    let b = sharing(&url, 5_000);
    let machine = machine();
    let (_one, _) = created(&machine, &a, "one");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let wakeup = leases(&a).wakeup();
    // Whatever woke the engine before (its listener's start) is taken first.
    runtime.block_on(async {
        let _ =
            tokio::time::timeout(std::time::Duration::from_millis(300), wakeup.notified()).await;
    });
    assert!(leases(&b).pending().unwrap().is_empty());
    let id = leases(&b).post(&arn("one"), r#"{"op":"stop"}"#).unwrap();
    // The engine holding the execution is woken (LISTEN/NOTIFY), and finds the request.
    runtime.block_on(async {
        tokio::time::timeout(std::time::Duration::from_secs(5), wakeup.notified())
            .await
            .expect("the engine holding the execution is woken")
    });
    assert!(
        leases(&b).pending().unwrap().is_empty(),
        "not b's to answer"
    );
    let pending = leases(&a).pending().unwrap();
    assert_eq!(pending, [(id, arn("one"), r#"{"op":"stop"}"#.to_owned())]);
    assert_eq!(leases(&b).answer_of(id).unwrap(), None, "not answered yet");
    leases(&a).answer(id, r#"{"ok":{}}"#).unwrap();
    assert!(leases(&a).pending().unwrap().is_empty());
    assert_eq!(
        leases(&b).answer_of(id).unwrap().as_deref(),
        Some(r#"{"ok":{}}"#)
    );
    // Read once, then forgotten.
    assert_eq!(leases(&b).answer_of(id).unwrap(), None);
}

/// A network partition, as the engine sees it: its renewals do not get through (here they wait
/// behind another session's row lock). The engine counts the lease lost, and refuses its own
/// writes, while the database still has it as the engine's: it has stopped before any other
/// engine could claim the execution.
#[test]
fn an_engine_cut_off_from_renewals_stops_before_its_lease_runs_out() {
    let url = fresh_database("partition");
    let a = sharing(&url, 1_500);
    let machine = machine();
    let (mut one, run) = created(&machine, &a, "one");
    let mut blocker = sql(&url);
    let mut partition = blocker.transaction().unwrap();
    partition
        .execute("SELECT * FROM stepstone_leases FOR UPDATE", &[])
        .unwrap();
    let mut db = sql(&url);
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while leases(&a).holds(&arn("one")) {
        assert!(std::time::Instant::now() < give_up, "still held");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let live: bool = db
        .query_one(
            "SELECT expires > now() FROM stepstone_leases WHERE execution = $1",
            &[&arn("one")],
        )
        .unwrap()
        .get(0);
    assert!(live, "the engine stopped only once its lease had run out");
    finish_task(&mut one, run);
    let refused = a.save(&one.take_changes().unwrap()).unwrap_err();
    assert!(matches!(refused, Error::NotHeld(_)), "{refused}");
    partition.rollback().unwrap();
    assert!(a.describe(&arn("one")).unwrap().unwrap().status == stepstone_engine::Status::Running);
}

/// Engines that open a new database at the same moment make one store: one schema, and one
/// key for their task tokens (a token one engine gives out is valid at every other).
#[test]
fn engines_opening_a_new_database_at_once_make_one_store() {
    let url = fresh_database("opened_at_once");
    let keys: Vec<_> = std::thread::scope(|scope| {
        let opening: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| sharing(&url, 5_000).token_key().unwrap()))
            .collect();
        opening.into_iter().map(|o| o.join().unwrap()).collect()
    });
    assert!(keys.windows(2).all(|w| w[0] == w[1]), "{} keys", keys.len());
    assert_eq!(sharing(&url, 5_000).token_key().unwrap(), keys[0]);
}

/// Ends every other session on the test's database (as a server restart would).
fn terminate_sessions(url: &str) -> usize {
    let mut db = sql(url);
    let pids: Vec<i32> = db
        .query(
            "SELECT pid FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    db.execute(
        "SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid",
        &[&pids],
    )
    .unwrap();
    // Until they are gone (a terminated session ends a moment later), and a moment more, as a
    // restart would take.
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while db
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)",
            &[&pids],
        )
        .unwrap()
        .get::<_, i64>(0)
        > 0
    {
        assert!(std::time::Instant::now() < give_up, "sessions still there");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    pids.len()
}

/// A new execution named `name`, as a creation's changes.
fn new_execution(
    machine: &stepstone_engine::asl::Machine,
    name: &str,
) -> stepstone_engine::Changes {
    let info = ExecutionInfo::new("owned", name, json!({}), at(1), false);
    let mut exec = Execution::new(machine, info, Limits::default(), HistoryMode::Full);
    let _ = exec.start(at(1));
    exec.take_changes().unwrap()
}

/// Connections the server closed (a restart, a terminated session) are made again before the
/// next call, which works, and the owner still owns the store (it takes its lock again, and its
/// epoch is unchanged).
#[test]
fn connections_the_server_closed_are_made_again() {
    let url = fresh_database("reconnect");
    let store = PostgresStore::open(&url).unwrap();
    let machine = machine();
    let _ = created(&machine, &store, "before");
    assert!(terminate_sessions(&url) >= 2, "the engine's sessions");
    // A read is made again on a new connection at once.
    assert_eq!(store.list().unwrap().len(), 1);
    let _ = store.create(
        machine.source(),
        &json!({}),
        &new_execution(&machine, "lost"),
    );
    store
        .create(
            machine.source(),
            &json!({}),
            &new_execution(&machine, "after"),
        )
        .unwrap();
    let names: Vec<String> = store.list().unwrap().into_iter().map(|r| r.name).collect();
    assert!(names.contains(&"after".to_owned()), "{names:?}");
    // Still the owner: another engine is refused.
    let second = PostgresStore::open(&url);
    assert!(
        matches!(second, Err(Error::Locked(_))),
        "{:?}",
        second.map(|s| s.epoch())
    );
    // Engines sharing a store connect again too, leases and all.
    let shared_url = fresh_database("reconnect_shared");
    let a = sharing(&shared_url, 5_000);
    let _ = created(&machine, &a, "one");
    terminate_sessions(&shared_url);
    a.create(
        machine.source(),
        &json!({}),
        &new_execution(&machine, "two"),
    )
    .unwrap();
    assert!(leases(&a).held().contains(&arn("two")));
}

/// An execution an engine let go because it could not drive it is left alone for the delay
/// given, then claimed like any other.
#[test]
fn a_postponed_lease_is_claimed_only_after_its_delay() {
    let url = fresh_database("postponed");
    let a = sharing(&url, 5_000);
    let b = sharing(&url, 5_000);
    let machine = machine();
    let _ = created(&machine, &a, "one");
    leases(&a).postpone(&arn("one"), std::time::Duration::from_millis(800));
    assert!(!leases(&a).holds(&arn("one")));
    let postponed = std::time::Instant::now();
    let mut claimed = Vec::new();
    while claimed.is_empty() {
        assert!(
            postponed.elapsed() < std::time::Duration::from_secs(10),
            "never claimed"
        );
        claimed = leases(&b).claim_expired(10).unwrap();
        if claimed.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    assert!(
        postponed.elapsed() >= std::time::Duration::from_millis(700),
        "claimed after {:?}",
        postponed.elapsed()
    );
    assert_eq!(claimed, [arn("one")]);
}

/// The authority the test server's certificate is signed by (`scripts/test` makes both).
fn test_authority() -> std::path::PathBuf {
    std::env::var_os("STEPSTONE_TEST_POSTGRES_CA")
        .map(std::path::PathBuf::from)
        .expect(
            "STEPSTONE_TEST_POSTGRES_CA is not set: run the tests with scripts/test, which starts \
             PostgreSQL with TLS and sets it",
        )
}

/// Whether any session of the database `url` names is encrypted (another session asks).
fn encrypted_sessions(url: &str) -> i64 {
    sql(url)
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid)
             WHERE datname = current_database() AND pid <> pg_backend_pid() AND ssl",
            &[],
        )
        .unwrap()
        .get(0)
}

/// TLS as libpq's `sslmode` says: verify-full checks the authority and the name, verify-ca the
/// authority only, require encrypts without checking, disable does not encrypt; a certificate
/// that does not check out is refused with the reason.
#[test]
fn tls_connections_are_made_and_checked_as_sslmode_says() {
    let url = fresh_database("tls");
    let ca = test_authority();
    let server_certificate = ca.with_file_name("server.crt");
    let on = |host: &str, query: &str| format!("{}?{query}", url.replacen("127.0.0.1", host, 1));
    let root = format!("sslrootcert={}", ca.display());
    // The certificate names `localhost`.
    let store =
        PostgresStore::open(&on("localhost", &format!("sslmode=verify-full&{root}"))).unwrap();
    assert_eq!(store.list().unwrap().len(), 0);
    assert!(
        encrypted_sessions(&url) >= 2,
        "the engine's sessions are encrypted"
    );
    drop(store);
    let refused = PostgresStore::open(&on("127.0.0.1", &format!("sslmode=verify-full&{root}")))
        .err()
        .expect("a certificate for another name");
    assert!(refused.to_string().contains("certificate"), "{refused}");
    drop(PostgresStore::open(&on("127.0.0.1", &format!("sslmode=verify-ca&{root}"))).unwrap());
    // An authority that did not sign it.
    let wrong = format!("sslrootcert={}", server_certificate.display());
    let refused = PostgresStore::open(&on("localhost", &format!("sslmode=verify-full&{wrong}")))
        .err()
        .expect("a certificate from another authority");
    assert!(refused.to_string().contains("certificate"), "{refused}");
    // Encrypted, unchecked; and plain.
    let store = PostgresStore::open(&on("127.0.0.1", "sslmode=require")).unwrap();
    assert!(encrypted_sessions(&url) >= 2);
    drop(store);
    let store = PostgresStore::open(&on("127.0.0.1", "sslmode=disable")).unwrap();
    assert_eq!(encrypted_sessions(&url), 0);
    drop(store);
    let refused = PostgresStore::open(&on("127.0.0.1", "sslmode=sometimes"))
        .err()
        .unwrap();
    assert!(refused.to_string().contains("verify-full"), "{refused}");
}
