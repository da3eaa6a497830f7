//! A store written by Stepstone 0.1 (checkpoint format v1), holding an execution killed while
//! its second task was in flight, is checked in under `tests/fixtures/store-v1`. Every later
//! version must still resume it: change the checkpoint format only in ways that keep this test
//! passing (and add a fixture for each new format version).

use std::path::{Path, PathBuf};
use std::process::Command;

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

#[test]
fn a_v1_store_still_resumes() {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1");
    let store = std::env::temp_dir().join(format!("stepstone-fixture-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&store);
    copy_dir(&fixture, &store);
    let stepstone = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_stepstone"))
            .args(args)
            .arg("--store")
            .arg(&store)
            // The fixture's task command sleeps unless this is set (that is how it was killed).
            .env("STEPSTONE_FIXTURE_RESUME", "1")
            .output()
            .unwrap()
    };
    let listed: Value =
        serde_json::from_slice(&stepstone(&["executions", "--json"]).stdout).unwrap();
    assert_eq!(listed["executions"][0]["status"], "RUNNING");
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
