//! The crash suite: `stepstone run` on an orchestration with tasks (local handlers that append
//! to a ledger), Waits, Retry, a Map and a Parallel is killed with SIGKILL at seeded random
//! moments, then `stepstone resume` is started and killed again, until an invocation finishes on
//! its own. Then the execution must look exactly like an uninterrupted one:
//!
//! - the same output;
//! - the same history: the same events in the same order, ids from 1 without gaps (timestamps
//!   aside);
//! - every task attempt carries a stable token: the ledger's tokens are exactly the attempts
//!   the final history scheduled, and a delivery repeated after a crash reuses its token;
//! - no attempt runs again once its completion is durable: after each kill, the tokens of the
//!   successes the store holds (handlers answer with their token) must not appear among the
//!   deliveries that follow.
//!
//! `STEPSTONE_CRASH_SEED` picks the seed (printed on failure), `STEPSTONE_CRASH_KILLS` the
//! number of kills (default 200) and `STEPSTONE_CRASH_BIG_MAP_KILLS` those during the big Map
//! (default 24).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn definition() -> Value {
    let task = |next: Option<&str>| {
        let mut t = json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"step.$": "$$.State.Name", "in.$": "$"}, "ResultSelector": {"ok.$": "$.in.step"}});
        match next {
            Some(n) => t["Next"] = json!(n),
            None => t["End"] = json!(true),
        }
        t
    };
    let mut flaky = task(Some("Regions"));
    flaky["Retry"] = json!([{"ErrorEquals": ["Flaky"], "IntervalSeconds": 5, "MaxAttempts": 3}]);
    flaky["ResultPath"] = json!("$.flaky");
    let mut prepare = task(Some("Settle"));
    prepare["ResultPath"] = json!("$.prepared");
    let mut region_task = task(None);
    region_task["ResultPath"] = json!(null);
    let mut branch_task = task(None);
    branch_task["ResultPath"] = json!("$.branch");
    json!({"StartAt": "Prepare", "States": {
        "Prepare": prepare,
        "Settle": {"Type": "Wait", "Seconds": 600, "Next": "Flaky"},
        "Flaky": flaky,
        "Regions": {"Type": "Map", "ItemsPath": "$.regions", "MaxConcurrency": 1, "ResultPath": "$.deployed",
            "ItemSelector": {"region.$": "$$.Map.Item.Value", "index.$": "$$.Map.Item.Index"},
            "ItemProcessor": {"StartAt": "Deploy", "States": {
                "Deploy": region_task,
            }},
            "Next": "Both"},
        "Both": {"Type": "Parallel", "ResultPath": "$.both", "Next": "Done", "Branches": [
            {"StartAt": "Notify", "States": {"Notify": branch_task}},
            {"StartAt": "Tally", "States": {"Tally": {"Type": "Pass", "Next": "Tallied"}, "Tallied": {"Type": "Wait", "Seconds": 60, "End": true}}}
        ]},
        "Done": {"Type": "Succeed"}
    }})
}

/// The handler: logs `state token attempt`, fails the first attempt of Flaky, answers
/// `{"token": <its token>, "in": <its input>}` (so the history shows which attempts completed).
fn handler(dir: &Path) -> String {
    let script = dir.join("handler.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$STEPSTONE_STATE_NAME $STEPSTONE_IDEMPOTENCY_TOKEN $STEPSTONE_ATTEMPT\" >> {ledger}\n\
             if [ \"$STEPSTONE_STATE_NAME\" = Flaky ] && [ \"$STEPSTONE_ATTEMPT\" = 0 ]; then echo '{{\"Error\": \"Flaky\", \"Cause\": \"first try\"}}'; exit 1; fi\n\
             printf '{{\"token\": \"%s\", \"in\": ' \"$STEPSTONE_IDEMPOTENCY_TOKEN\"; cat; printf '}}\\n'\n",
            ledger = dir.join("ledger").display()
        ),
    )
    .unwrap();
    format!("arn:aws:states:::lambda:invoke=sh {}", script.display())
}

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn stepstone() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stepstone"))
}

/// Where a scenario keeps its executions, as `--store` arguments: a directory in the
/// scenario's own (`sled`, `redb`), or a database of its own on the test PostgreSQL server.
struct Store {
    args: Vec<String>,
    /// The directory, for a store that is one (it does not exist until the first creation).
    dir: Option<PathBuf>,
}

impl Store {
    fn at(scenario: &Path, engine: &str) -> Store {
        if engine == "postgres" {
            return Store {
                args: vec!["--store".into(), common::postgres::fresh_database("crash")],
                dir: None,
            };
        }
        let dir = scenario.join("store");
        Store {
            args: vec![
                "--store".into(),
                dir.display().to_string(),
                "--store-engine".into(),
                engine.into(),
            ],
            dir: Some(dir),
        }
    }

    /// Whether anything can have been stored yet.
    fn may_hold(&self) -> bool {
        self.dir.as_ref().is_none_or(|dir| dir.exists())
    }
}

struct Finished {
    output: Value,
    /// Kills after which the store already held completed attempts (the re-run check bites).
    kills_after_completions: usize,
    history: Vec<Value>,
    ledger: String,
}

/// Runs the scenario in `dir`, killing it after each of `kill_after_ms` (then resuming);
/// returns the end state and how many kills landed on a live process.
fn scenario(dir: &Path, kill_after_ms: &[u64], engine: &str) -> (Finished, usize) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let def = dir.join("deploy.asl.json");
    std::fs::write(&def, definition().to_string()).unwrap();
    let route = handler(dir);
    let store = Store::at(dir, engine);
    let input = json!({"regions": ["us-east-1", "us-west-1", "eu-west-1"]}).to_string();
    let mut kills = 0;
    let mut first = true;
    // Per kill: how many deliveries the ledger had, and the attempts durably completed.
    let mut after_kill: Vec<(usize, BTreeSet<String>)> = Vec::new();
    let mut delays = kill_after_ms.iter();
    let finished_output = loop {
        let mut cmd = stepstone();
        // A PostgreSQL store's engine keeps its local files (control socket) in .stepstone/.
        cmd.current_dir(dir);
        if first {
            cmd.args([
                "run",
                &def.display().to_string(),
                "--name",
                "crash",
                "--virtual-time",
                "--task",
                &route,
                "--input",
                &input,
            ]);
        } else {
            cmd.arg("resume");
        }
        cmd.args(&store.args)
            .args(["--json", "--quiet"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        match delays.next() {
            Some(ms) => {
                let until = Instant::now() + Duration::from_millis(*ms);
                let mut exited = None;
                while Instant::now() < until {
                    if let Some(status) = child.try_wait().unwrap() {
                        exited = Some(status);
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                if exited.is_none() {
                    child.kill().unwrap();
                    child.wait().unwrap();
                    kills += 1;
                    // Killed before the execution was durably created: start it again, as a
                    // user would; otherwise resume it.
                    // What the store holds now is what the crash left: no attempt it records as
                    // completed may run again.
                    let completed = completed_tokens(&store);
                    first = completed.is_none();
                    let delivered = ledger_lines(dir);
                    after_kill.push((delivered, completed.unwrap_or_default()));
                    continue;
                }
                let out = child.wait_with_output().unwrap();
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                assert!(
                    out.status.success() || out.status.code() == Some(1),
                    "{:?} (first: {first})\n{text}\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
                if text.trim().is_empty() {
                    // Resume found nothing to do because the previous one had already finished.
                    break None;
                }
                break Some(text);
            }
            None => {
                let out = child.wait_with_output().unwrap();
                assert!(
                    out.status.success(),
                    "{:?}\n{}\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                // Empty when the previous invocation finished the execution but was killed
                // before it exited: resume then has nothing left to do.
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                break (!text.trim().is_empty()).then_some(text);
            }
        }
    };
    let described = query(&store, "describe");
    if let Some(text) = finished_output {
        let v: Value = serde_json::from_str(text.lines().next().unwrap())
            .unwrap_or_else(|e| panic!("{e}: {text:?}"));
        assert_eq!(v["status"], "SUCCEEDED", "{text}");
    }
    assert_eq!(described["status"], "SUCCEEDED", "{described}");
    let history = query(&store, "history");
    let ledger = std::fs::read_to_string(dir.join("ledger")).unwrap_or_default();
    let tokens: Vec<&str> = ledger.lines().filter_map(|l| l.split(' ').nth(1)).collect();
    for (delivered, completed) in &after_kill {
        for token in &tokens[*delivered..] {
            assert!(
                !completed.contains(*token),
                "{token} ran again after its completion was durable\n{ledger}"
            );
        }
    }
    let finished = Finished {
        kills_after_completions: after_kill.iter().filter(|(_, c)| !c.is_empty()).count(),
        output: described["output"].clone(),
        history: history["events"].as_array().unwrap().clone(),
        ledger,
    };
    (finished, kills)
}

/// `stepstone <command> crash --json` on the store, parsed.
fn query(store: &Store, command: &str) -> Value {
    let out = stepstone()
        .args([command, "crash", "--json"])
        .args(&store.args)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{command}: {e}: {}", String::from_utf8_lossy(&out.stderr)))
}

/// `stepstone <command> crash --json` on what a kill left: its answer, or `None` if the
/// execution was never durably created (any other failure fails the test: what the store holds
/// must read back).
fn stored(store: &Store, command: &str) -> Option<Value> {
    if !store.may_hold() {
        return None;
    }
    let out = stepstone()
        .args([command, "crash", "--json"])
        .args(&store.args)
        .output()
        .unwrap();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("no execution"),
            "stepstone {command}: {stderr}"
        );
        return None;
    }
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

/// The attempts whose success the store holds (their tokens, from the handler's answers), or
/// `None` if the execution was never durably created.
fn completed_tokens(store: &Store) -> Option<BTreeSet<String>> {
    let history = stored(store, "history")?;
    let tokens = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "TaskSucceeded")
        .map(|e| {
            let output = e["taskSucceededEventDetails"]["output"].as_str().unwrap();
            let output: Value = serde_json::from_str(output).unwrap();
            output["token"].as_str().unwrap().to_owned()
        })
        .collect();
    Some(tokens)
}

/// How many deliveries the ledger holds.
fn ledger_lines(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("ledger")).map_or(0, |l| l.lines().count())
}

/// What a history must share with the uninterrupted one: types and ids, in order.
fn shape(history: &[Value]) -> Vec<(u64, String)> {
    history
        .iter()
        .map(|e| {
            (
                e["id"].as_u64().unwrap(),
                e["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Task tokens scheduled in the history, from the ledger's point of view: state -> tokens.
fn ledger_tokens(ledger: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in ledger.lines() {
        let mut parts = line.split(' ');
        let (Some(state), Some(token)) = (parts.next(), parts.next()) else {
            continue;
        };
        out.entry(state.to_owned())
            .or_default()
            .insert(token.to_owned());
    }
    out
}

#[test]
fn killed_at_random_moments_sled() {
    crash_suite("sled");
}

#[test]
fn killed_at_random_moments_redb() {
    crash_suite("redb");
}

#[test]
fn killed_at_random_moments_postgres() {
    crash_suite("postgres");
}

/// A number from the environment (a seed, a number of kills), or `default`.
fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Kills and resumes scenarios on `engine` until enough kills have landed.
fn crash_suite(engine: &str) {
    let seed = setting("STEPSTONE_CRASH_SEED", 20261127);
    let wanted = setting("STEPSTONE_CRASH_KILLS", 200) as usize;
    // One root per engine: the two suites run concurrently in one test process.
    let root: PathBuf =
        std::env::temp_dir().join(format!("stepstone-crash-{engine}-{}", std::process::id()));

    let (reference, _) = scenario(&root.join(format!("{engine}-reference")), &[], engine);
    let reference_shape = shape(&reference.history);
    assert_eq!(
        reference_shape
            .iter()
            .map(|(id, _)| *id)
            .collect::<Vec<_>>(),
        (1..=reference_shape.len() as u64).collect::<Vec<_>>()
    );
    let reference_tokens = ledger_tokens(&reference.ledger);
    // Flaky's first attempt fails, so it has two attempts: two tokens.
    assert_eq!(reference_tokens["Flaky"].len(), 2);
    // How long an uninterrupted run takes bounds the kill delays.
    let started = Instant::now();
    let _ = scenario(&root.join(format!("{engine}-timing")), &[], engine);
    let mut span_ms = (started.elapsed().as_millis() as u64).max(20);

    let mut rng = Rng(seed);
    let mut total_kills = 0;
    let mut kills_after_completions = 0;
    let mut scenarios = 0;
    while total_kills < wanted {
        scenarios += 1;
        // Most of a resumed run is spent starting up, so kills aim at the first half.
        let delays: Vec<u64> = (0..12)
            .map(|_| 3 + rng.next() % (span_ms / 2 + 1))
            .collect();
        let dir = root.join(format!("{engine}-run-{scenarios}"));
        let (end, kills) = scenario(&dir, &delays, engine);
        total_kills += kills;
        // The timing run may have been slowed by other tests (the suites run side by side):
        // runs that end before any kill lands aim the next kills earlier.
        if kills == 0 {
            span_ms = (span_ms * 3 / 4).max(20);
        }
        kills_after_completions += end.kills_after_completions;
        let context =
            format!("{engine}, seed {seed}, scenario {scenarios}, kill delays {delays:?} ms");
        assert_eq!(end.output, reference.output, "output differs ({context})");
        assert_eq!(
            shape(&end.history),
            reference_shape,
            "history differs ({context})"
        );
        let tokens = ledger_tokens(&end.ledger);
        assert_eq!(
            tokens
                .iter()
                .map(|(s, t)| (s.clone(), t.len()))
                .collect::<Vec<_>>(),
            reference_tokens
                .iter()
                .map(|(s, t)| (s.clone(), t.len()))
                .collect::<Vec<_>>(),
            "every attempt has one stable token, none was added by a crash ({context})\n{}",
            end.ledger
        );
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            scenarios < 1000,
            "kills never land: the scenario is too fast to interrupt"
        );
    }
    assert!(
        kills_after_completions > 0,
        "no kill landed after a task completed: the re-run check never applied"
    );
    eprintln!(
        "crash suite ({engine}): {total_kills} kills over {scenarios} scenarios \
         ({kills_after_completions} after completed tasks), seed {seed}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// The big-Map part of the suite: a Map over 3,000 items with a mocked Lambda task in each
/// iteration (a MockConfigFile: no process per task, so a kill lands while many iterations
/// move at once), killed and resumed at seeded random moments. The end must be an
/// uninterrupted run's: the same output, and the same history, whose one TaskScheduled per item
/// says that no iteration ran twice (a finished iteration run again would add its events).
fn big_map_scenario(dir: &Path, kill_after_ms: &[u64], engine: &str) -> (Value, Vec<Value>, usize) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let def = dir.join("bigmap.asl.json");
    std::fs::write(
        &def,
        json!({"StartAt": "Items", "States": {"Items": {"Type": "Map", "ItemsPath": "$.items", "ItemProcessor": {
            "StartAt": "Process", "States": {"Process": {"Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "process", "Payload.$": "$"},
                "ResultSelector": {"item.$": "$.Payload.item", "ok.$": "$.StatusCode"},
                "End": true}}},
            "ResultPath": "$.processed", "Next": "Done"},
            "Done": {"Type": "Succeed"}}})
        .to_string(),
    )
    .unwrap();
    let mocks = dir.join("mocks.json");
    std::fs::write(
        &mocks,
        json!({"StateMachines": {"bigmap": {"TestCases": {"Crash": {"Process": "Ok"}}}},
               "MockedResponses": {"Ok": {"0-1000000": {"Return": {"StatusCode": 200, "Payload": {"item": "done"}}}}}})
        .to_string(),
    )
    .unwrap();
    let input = dir.join("input.json");
    std::fs::write(
        &input,
        json!({"items": (0..3000).collect::<Vec<u32>>()}).to_string(),
    )
    .unwrap();
    let store = Store::at(dir, engine);
    let mut kills = 0;
    let mut created = false;
    let mut delays = kill_after_ms.iter();
    loop {
        let mut cmd = stepstone();
        // A PostgreSQL store's engine keeps its local files (control socket) in .stepstone/.
        cmd.current_dir(dir);
        if created {
            cmd.arg("resume");
        } else {
            cmd.arg("run")
                .arg(&def)
                .args(["--name", "crash", "--virtual-time", "--history-limit", "0"])
                .arg("--input-file")
                .arg(&input)
                .arg("--mock-config")
                .arg(&mocks)
                .args(["--test-case", "Crash"]);
        }
        cmd.args(&store.args)
            .args(["--json", "--quiet"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let Some(ms) = delays.next() else {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{:?}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            break;
        };
        let until = Instant::now() + Duration::from_millis(*ms);
        while Instant::now() < until && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(1));
        }
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            break;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        // What the kill left must read back: the execution, if it was created, with a history.
        created = created_and_readable(&store);
    }
    let described = query(&store, "describe");
    assert_eq!(described["status"], "SUCCEEDED", "{described}");
    let history = query(&store, "history")["events"]
        .as_array()
        .unwrap()
        .clone();
    (described["output"].clone(), history, kills)
}

/// Whether the store holds the execution `crash` (a kill may land before it is created); what a
/// kill left must read back.
fn created_and_readable(store: &Store) -> bool {
    stored(store, "describe").is_some_and(|described| {
        assert!(described["status"].is_string(), "{described}");
        true
    })
}

#[test]
fn killed_during_a_big_map_sled() {
    big_map_suite("sled");
}

#[test]
fn killed_during_a_big_map_redb() {
    big_map_suite("redb");
}

#[test]
fn killed_during_a_big_map_postgres() {
    big_map_suite("postgres");
}

fn big_map_suite(engine: &str) {
    let seed = setting("STEPSTONE_CRASH_SEED", 20261205);
    let wanted = setting("STEPSTONE_CRASH_BIG_MAP_KILLS", 24) as usize;
    let root: PathBuf = std::env::temp_dir().join(format!(
        "stepstone-crash-bigmap-{engine}-{}",
        std::process::id()
    ));
    let started = Instant::now();
    let (output, reference, _) = big_map_scenario(&root.join("reference"), &[], engine);
    let mut span_ms = (started.elapsed().as_millis() as u64).max(20);
    let reference_shape = shape(&reference);
    let scheduled = reference_shape
        .iter()
        .filter(|(_, t)| t == "TaskScheduled")
        .count();
    assert_eq!(scheduled, 3000, "one task per item");
    let mut rng = Rng(seed);
    let (mut kills, mut scenarios) = (0, 0);
    while kills < wanted {
        scenarios += 1;
        let delays: Vec<u64> = (0..4).map(|_| 5 + rng.next() % (span_ms + 1)).collect();
        let dir = root.join(format!("run-{scenarios}"));
        let (end_output, history, landed) = big_map_scenario(&dir, &delays, engine);
        kills += landed;
        // As in `crash_suite`: a reference run slowed by other tests aims the kills too late.
        if landed == 0 {
            span_ms = (span_ms * 3 / 4).max(20);
        }
        let context =
            format!("{engine}, seed {seed}, scenario {scenarios}, kill delays {delays:?} ms");
        assert_eq!(end_output, output, "output differs ({context})");
        assert_eq!(
            shape(&history),
            reference_shape,
            "history differs ({context})"
        );
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            scenarios < 200,
            "kills never land: the scenario is too fast to interrupt"
        );
    }
    eprintln!(
        "crash suite, big Map ({engine}): {kills} kills over {scenarios} scenarios, seed {seed}"
    );
    let _ = std::fs::remove_dir_all(&root);
}
