//! Stores written by earlier versions are checked in under `tests/fixtures/`, and every later
//! version must still finish what they hold: change the checkpoint format only in ways that keep
//! these tests passing, and add a fixture for each new format version.
//!
//! - `store-v1` (checkpoint format v1): an execution killed while its second task was in
//!   flight; it must resume.
//! - `store-v2` (format v2, which keeps failed runs for redrive): an execution whose Map failed
//!   on its second of three items; a redrive must rerun that item and start the third, and
//!   not rerun the first.
//! - `store-v3` (format v3, incremental records): an execution killed in a Map of five regions
//!   after two finished, with the next two in flight; a resume must send those two again, start
//!   the fifth, and not rerun the first two.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A private copy of fixture `name` (a store is written to as it is used).
fn fixture(name: &str) -> PathBuf {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let store = std::env::temp_dir().join(format!("stepstone-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&store);
    copy_dir(&fixture, &store);
    store
}

/// `stepstone ARGS --store STORE` with `env` set, and the listed status of the store's only
/// execution before anything ran.
fn on_fixture<'a>(
    store: &'a Path,
    env: &'a [(&'a str, &'a std::ffi::OsStr)],
) -> (impl Fn(&[&str]) -> Output + 'a, String) {
    let stepstone = move |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_stepstone"))
            .args(args)
            .arg("--store")
            .arg(store)
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    let listed: Value =
        serde_json::from_slice(&stepstone(&["executions", "--json"]).stdout).unwrap();
    let status = listed["executions"][0]["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (stepstone, status)
}

#[test]
fn a_v1_store_still_resumes() {
    let store = fixture("store-v1");
    // The fixture's task command sleeps unless this is set (that is how it was killed).
    let env = [("STEPSTONE_FIXTURE_RESUME", "1".as_ref())];
    let (stepstone, status) = on_fixture(&store, &env);
    assert_eq!(status, "RUNNING");
    let o = stepstone(&["resume", "--json", "--quiet"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let result: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(result["status"], "SUCCEEDED");
    assert_eq!(
        result["output"],
        json!({"stack": "orders", "prepared": {"stack": "orders"}, "deployed": {"stack": "orders", "prepared": {"stack": "orders"}}})
    );
    let history: Value =
        serde_json::from_slice(&stepstone(&["history", "fixture-v1", "--json"]).stdout).unwrap();
    let events = history["events"].as_array().unwrap();
    let ids: Vec<u64> = events.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
    assert_eq!(events.last().unwrap()["type"], "ExecutionSucceeded");
    let _ = std::fs::remove_dir_all(&store);
}

#[test]
fn a_v2_store_still_redrives() {
    let store = fixture("store-v2");
    let ledger = store.join("ledger");
    // The fixture's task command fails eu-west-1 unless this is set, and records the items it
    // deploys in the ledger.
    let env = [
        ("STEPSTONE_FIXTURE_REDRIVE", "1".as_ref()),
        ("STEPSTONE_FIXTURE_LEDGER", ledger.as_os_str()),
    ];
    let (stepstone, status) = on_fixture(&store, &env);
    assert_eq!(status, "FAILED");
    let o = stepstone(&["redrive", "fixture-v2", "--json", "--quiet"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let result: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(result["status"], "SUCCEEDED");
    assert_eq!(
        result["output"]["deployed"],
        json!(["us-east-1", "eu-west-1", "ap-south-1"])
    );
    let deployed = std::fs::read_to_string(&ledger).unwrap();
    assert_eq!(
        deployed, "\"eu-west-1\"\n\"ap-south-1\"\n",
        "us-east-1 is not rerun"
    );
    let described: Value =
        serde_json::from_slice(&stepstone(&["describe", "fixture-v2", "--json"]).stdout).unwrap();
    assert_eq!(described["redriveCount"], 1);
    let _ = std::fs::remove_dir_all(&store);
}

#[test]
fn a_v3_store_resumes_its_map_without_rerunning_finished_items() {
    let store = fixture("store-v3");
    let ledger = store.join("ledger");
    // The fixture's task waits from the third region on unless this is set (that is how it was
    // killed), and records each region it deploys in the ledger.
    let env = [
        ("STEPSTONE_FIXTURE_RESUME", "1".as_ref()),
        ("STEPSTONE_FIXTURE_LEDGER", ledger.as_os_str()),
    ];
    let (stepstone, status) = on_fixture(&store, &env);
    assert_eq!(status, "RUNNING");
    let o = stepstone(&["resume", "--json", "--quiet"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let result: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(result["status"], "SUCCEEDED");
    assert_eq!(
        result["output"]["deployed"],
        json!([
            "us-east-1",
            "eu-west-1",
            "ap-south-1",
            "sa-east-1",
            "ca-central-1"
        ])
    );
    // The regions still to deploy run at once: the ledger holds them in whatever order their
    // commands finished.
    let mut deployed: Vec<String> = std::fs::read_to_string(&ledger)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["region"].to_string())
        .collect();
    deployed.sort();
    assert_eq!(
        deployed,
        [r#""ap-south-1""#, r#""ca-central-1""#, r#""sa-east-1""#],
        "the two finished regions are not deployed again"
    );
    let history: Value =
        serde_json::from_slice(&stepstone(&["history", "fixture-v3", "--json"]).stdout).unwrap();
    let ids: Vec<u64> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
    let _ = std::fs::remove_dir_all(&store);
}
