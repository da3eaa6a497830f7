//! The `stepstone` binary against hostile names, damaged stores, other users, runaway
//! expressions and task commands, and abusive clients of the control socket (issue 12). Each
//! test reproduces an abuse as a user would commit it and checks that the answer is a clear
//! error, never a hang, a panic, a lost record or a write outside the store.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn stepstone(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stepstone"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("stepstone-hard-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_json(dir: &Path, name: &str, value: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, value.to_string()).unwrap();
    path.display().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn assert_ok(o: &Output) {
    assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
}

/// Exit 2 with `says` in the message.
fn assert_refused(o: &Output, says: &str) {
    assert_eq!(
        o.status.code(),
        Some(2),
        "stdout {} stderr {}",
        stdout(o),
        stderr(o)
    );
    assert!(
        stderr(o).contains(says),
        "expected '{says}' in: {}",
        stderr(o)
    );
}

fn pass_machine(dir: &Path) -> String {
    write_json(
        dir,
        "pass.asl.json",
        &json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}),
    )
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn names_are_checked_as_aws_checks_them_and_never_reach_outside_the_store() {
    let dir = scratch("names");
    let def = pass_machine(&dir);
    let store = dir.join("store").display().to_string();
    let victim = dir.join("victim.log");
    std::fs::write(&victim, "precious").unwrap();
    let traversal = format!("{}/victim", dir.display());
    for (name, says) in [
        (traversal.as_str(), "contains '/'"),
        ("../../v", "contains '/'"),
        ("a\nb", "contains whitespace"),
        ("a\tb", "contains whitespace"),
        ("", "is empty"),
        (&"n".repeat(200) as &str, "has 200 characters"),
        ("x;rm", "contains ';'"),
    ] {
        for detach in [false, true] {
            let mut args = vec!["run", &def, "--store", &store, "--name", name];
            if detach {
                args.push("--detach");
            }
            let o = stepstone(&args);
            assert_refused(&o, "InvalidName: execution name");
            assert!(stderr(&o).contains(says), "{name:?}: {}", stderr(&o));
        }
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    let o = stepstone(&[
        "run",
        &def,
        "--store",
        &store,
        "--state-machine-name",
        "a b",
    ]);
    assert_refused(&o, "InvalidName: state machine name");

    // A symbolic link planted where the log goes is not followed.
    let logs = dir.join("store/logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::os::unix::fs::symlink(&victim, logs.join("planted.log")).unwrap();
    let o = stepstone(&[
        "run", &def, "--store", &store, "--name", "planted", "--detach",
    ]);
    assert_refused(&o, "planted.log");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");

    // AWS's longest name runs, and its log is owner-only.
    let longest = "n".repeat(80);
    let o = stepstone(&[
        "run", &def, "--store", &store, "--name", &longest, "--detach",
    ]);
    assert_ok(&o);
    assert_eq!(mode(&logs.join(format!("{longest}.log"))), 0o600);
}

#[test]
fn a_store_that_cannot_be_read_is_an_error_never_an_empty_store() {
    let dir = scratch("damaged");
    let def = pass_machine(&dir);
    for engine in ["redb", "sled"] {
        let store = dir.join(engine);
        let s = store.display().to_string();
        assert_ok(&stepstone(&[
            "run",
            &def,
            "--store",
            &s,
            "--store-engine",
            engine,
            "-q",
        ]));
        let missing = if engine == "redb" {
            "executions.redb"
        } else {
            "conf"
        };
        let saved = std::fs::read(store.join(missing)).unwrap();

        // The database file deleted: every command says the store is damaged, and `run` does
        // not start a new store over it.
        std::fs::remove_file(store.join(missing)).unwrap();
        for args in [
            vec!["executions", "--store", &s],
            vec!["resume", "--store", &s],
            vec!["run", &def, "--store", &s, "-q"],
        ] {
            assert_refused(&stepstone(&args), "is damaged");
        }
        assert!(
            !store.join(missing).exists(),
            "{engine}: nothing re-created"
        );

        // Put back, the store reads again: nothing was lost meanwhile.
        std::fs::write(store.join(missing), saved).unwrap();
        let o = stepstone(&["executions", "--store", &s]);
        assert_ok(&o);
        assert!(stdout(&o).contains("SUCCEEDED"), "{}", stdout(&o));
    }

    // A truncated or emptied redb file.
    let store = dir.join("redb");
    let s = store.display().to_string();
    let file = store.join("executions.redb");
    let len = std::fs::metadata(&file).unwrap().len();
    for size in [len / 2, 100, 0] {
        let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        f.set_len(size).unwrap();
        for args in [
            vec!["executions", "--store", &s],
            vec!["resume", "--store", &s],
            vec!["run", &def, "--store", &s, "-q"],
        ] {
            let o = stepstone(&args);
            assert_refused(&o, "cannot open the store");
            assert!(!stdout(&o).contains("SUCCEEDED"));
        }
    }
}

#[test]
fn the_store_is_owner_only_whatever_existed_before() {
    let dir = scratch("modes");
    let def = pass_machine(&dir);
    let store = dir.join("store");
    std::fs::create_dir_all(&store).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let s = store.display().to_string();
    assert_ok(&stepstone(&[
        "run",
        &def,
        "--store",
        &s,
        "-q",
        "--input",
        r#"{"secret": "hunter2"}"#,
    ]));
    assert_eq!(mode(&store), 0o700);
    for entry in std::fs::read_dir(&store).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }

    // Another local user: permission denied, not an empty list. As root, the command runs
    // as `nobody` (root itself reads anything); otherwise the store is closed to its owner.
    let binary = dir.join("stepstone");
    std::fs::copy(env!("CARGO_BIN_EXE_stepstone"), &binary).unwrap();
    let root = std::process::Command::new("id").arg("-u").output().unwrap();
    let o = if stdout(&root).trim() == "0" {
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&binary)
            .args(["executions", "--store", &s])
            .output()
            .expect("setpriv runs")
    } else {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o000)).unwrap();
        let o = Command::new(&binary)
            .args(["executions", "--store", &s])
            .output()
            .unwrap();
        std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o700)).unwrap();
        o
    };
    assert_refused(&o, "Permission denied");
    assert!(!stdout(&o).contains("hunter2"));
}

/// A loop that wraps its input once per pass: the state that would nest the value deeper than
/// the store keeps fails with States.DataLimitExceeded, and everything stored reads back.
#[test]
fn a_value_that_keeps_growing_deeper_fails_its_state_and_the_store_stays_readable() {
    let dir = scratch("deep");
    let def = write_json(
        &dir,
        "wrap.asl.json",
        &json!({
            "QueryLanguage": "JSONata",
            "StartAt": "Init",
            "States": {
                "Init": {"Type": "Pass", "Assign": {"i": 0}, "Next": "Wrap"},
                "Wrap": {
                    "Type": "Pass",
                    "Output": "{% {'w': $states.input} %}",
                    "Assign": {"i": "{% $i + 1 %}"},
                    "Next": "Again"
                },
                "Again": {
                    "Type": "Choice",
                    "Choices": [{"Condition": "{% $i < 200 %}", "Next": "Wrap"}],
                    "Default": "Done"
                },
                "Done": {"Type": "Succeed"}
            }
        }),
    );
    for engine in ["redb", "sled"] {
        let store = dir.join(engine).display().to_string();
        let o = stepstone(&[
            "run",
            &def,
            "--store",
            &store,
            "--store-engine",
            engine,
            "--name",
            "deep",
            "--json",
        ]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let result: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        assert_eq!(result["status"], "FAILED");
        assert_eq!(result["error"], "States.DataLimitExceeded");
        assert!(
            result["cause"].as_str().unwrap().contains("'Wrap'"),
            "{result}"
        );
        for command in ["describe", "history"] {
            let o = stepstone(&[command, "deep", "--store", &store, "--json"]);
            assert_ok(&o);
        }
        let o = stepstone(&["redrive", "deep", "--store", &store, "-q"]);
        assert_eq!(
            o.status.code(),
            Some(1),
            "redriven, it fails again: {}",
            stderr(&o)
        );
    }
}

/// `resume` with no argument restarts every RUNNING execution: one that cannot be restarted
/// (its mock file is gone) is reported, and the others still finish.
#[test]
fn one_execution_that_cannot_resume_does_not_hold_back_the_others() {
    let dir = scratch("resume-goes-on");
    let store = dir.join("store").display().to_string();
    let def = write_json(
        &dir,
        "wait.asl.json",
        &json!({"StartAt": "W", "States": {
            "W": {"Type": "Wait", "Seconds": 2, "Next": "T"},
            "T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f", "End": true}
        }}),
    );
    let mocks = write_json(
        &dir,
        "mocks.json",
        &json!({
            "StateMachines": {"wait": {"TestCases": {"Ok": {"T": "R"}}}},
            "MockedResponses": {"R": {"0": {"Return": {"done": true}}}}
        }),
    );
    // Two executions killed while they wait: each is started in the background, and its
    // engine killed once it is stored.
    for name in ["mocked", "plain"] {
        let mut args = vec!["run", &def, "--store", &store, "--name", name, "--detach"];
        if name == "mocked" {
            args.extend(["--mock-config", &mocks, "--test-case", "Ok"]);
        } else {
            args.extend([
                "--task",
                "arn:aws:lambda:us-east-1:123456789012:function:f=echo '{}'",
            ]);
        }
        let o = stepstone(&args);
        assert_ok(&o);
        let pid = detached_pid(&o);
        Command::new("kill").args(["-9", &pid]).status().unwrap();
        wait_until_gone(&pid);
    }
    std::fs::remove_file(&mocks).unwrap();
    let o = stepstone(&["resume", "--store", &store, "--json"]);
    assert_refused(&o, "1 of 2 executions could not be restarted");
    assert!(stderr(&o).contains("cannot resume"), "{}", stderr(&o));
    assert!(stderr(&o).contains("mocks.json"), "{}", stderr(&o));
    let finished: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(finished["name"], "plain");
    assert_eq!(finished["status"], "SUCCEEDED");
}

/// The process id `run --detach` reports: "started in the background (pid N)".
fn detached_pid(o: &Output) -> String {
    stderr(o)
        .split("pid ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .expect("run --detach names its process")
        .to_owned()
}

/// Waits until process `pid` has exited (its store lock released).
fn wait_until_gone(pid: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists() {
        // A zombie is gone as far as the store is concerned.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.contains(") Z ") {
            return;
        }
        assert!(Instant::now() < deadline, "process {pid} did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A JSONata expression that recurses forever.
const ENDLESS: &str = "{% ($f := function($x){ $f($x+1) }; $f(0)) %}";

fn jsonata_pass(dir: &Path, name: &str, output: &str, timeout: Option<u64>) -> String {
    let mut def = json!({
        "QueryLanguage": "JSONata",
        "StartAt": "L",
        "States": {"L": {"Type": "Pass", "Output": output, "End": true}}
    });
    if let Some(seconds) = timeout {
        def["TimeoutSeconds"] = json!(seconds);
    }
    write_json(dir, name, &def)
}

#[test]
fn an_endless_expression_ends_with_the_execution_timeout() {
    let dir = scratch("endless-timeout");
    let def = jsonata_pass(&dir, "loop.asl.json", ENDLESS, Some(2));
    let started = Instant::now();
    let o = stepstone(&["run", &def, "--ephemeral", "--json", "-q"]);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    let result: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(result["status"], "TIMED_OUT", "{result}");
    assert_eq!(result["error"], "States.Timeout");
}

#[test]
fn an_endless_expression_can_be_stopped_and_does_not_freeze_the_engine() {
    let dir = scratch("endless-stop");
    let def = jsonata_pass(&dir, "loop.asl.json", ENDLESS, None);
    let store = dir.join("store").display().to_string();
    let o = stepstone(&["run", &def, "--store", &store, "--name", "spin", "--detach"]);
    assert_ok(&o);
    std::thread::sleep(Duration::from_millis(300));
    // The engine is busy evaluating, yet answers.
    let asked = Instant::now();
    let o = stepstone(&["executions", "--store", &store]);
    assert_ok(&o);
    assert!(stdout(&o).contains("RUNNING"), "{}", stdout(&o));
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
    let o = stepstone(&["stop", "spin", "--store", &store]);
    assert_ok(&o);
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    let o = stepstone(&["describe", "spin", "--store", &store, "--json"]);
    let described: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(described["status"], "ABORTED", "{described}");
    // Stopped mid-state: no EvaluationFailed, and the state is where a redrive goes on.
    let o = stepstone(&["history", "spin", "--store", &store]);
    assert!(!stdout(&o).contains("EvaluationFailed"), "{}", stdout(&o));
    assert!(stdout(&o).contains("ExecutionAborted"), "{}", stdout(&o));
}

#[test]
fn expressions_that_would_take_gigabytes_fail_their_state_instead() {
    let dir = scratch("huge-expressions");
    for (output, says) in [
        ("{% $count([1..10000].([1..10000])) %}", "MiB of memory"),
        ("{% $pad('', 1e9, 'x') %}", "over the limit"),
        ("{% $string([1..2000000]) %}", "D2015"),
    ] {
        let def = jsonata_pass(&dir, "huge.asl.json", output, None);
        let started = Instant::now();
        let o = stepstone(&["run", &def, "--ephemeral", "--json", "-q"]);
        assert!(
            started.elapsed() < Duration::from_secs(9),
            "{output}: {:?}",
            started.elapsed()
        );
        let result: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        assert_eq!(result["error"], "States.QueryEvaluationError", "{result}");
        assert!(result["cause"].as_str().unwrap().contains(says), "{result}");
    }
}

#[test]
fn test_state_ends_an_endless_expression() {
    let dir = scratch("test-state-endless");
    let state = write_json(
        &dir,
        "state.json",
        &json!({
            "Type": "Pass", "QueryLanguage": "JSONata", "Output": ENDLESS, "End": true
        }),
    );
    let started = Instant::now();
    let o = stepstone(&["test-state", &state, "--json"]);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert!(
        stdout(&o).contains("D1012"),
        "{} {}",
        stdout(&o),
        stderr(&o)
    );
}

/// Thousands of connections to the control socket that never say anything: the engine takes
/// only a few at a time and closes idle ones, so its file descriptors stay free for its tasks
/// (here the engine may open 128).
#[test]
fn a_flood_of_idle_connections_does_not_starve_the_engine() {
    use std::io::Read;
    use std::os::unix::net::UnixStream;
    let dir = scratch("flood");
    let store = dir.join("store");
    let s = store.display().to_string();
    let def = write_json(
        &dir,
        "wait-task.asl.json",
        &json!({"StartAt": "W", "States": {
            "W": {"Type": "Wait", "Seconds": 3, "Next": "T"},
            "T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:ok", "End": true}
        }}),
    );
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 128 && exec '{}' run '{def}' --store '{s}' --name flooded --detach --task 'arn:aws:lambda:us-east-1:123456789012:function:ok=cat' --input '{{\"ok\": true}}'",
            env!("CARGO_BIN_EXE_stepstone")
        ))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_ok(&o);
    let pid = detached_pid(&o);
    let socket = store.join("control.sock");
    let mut held = Vec::new();
    for _ in 0..1000 {
        // Past the backlog the kernel refuses: that costs the engine nothing.
        if let Ok(stream) = UnixStream::connect(&socket) {
            held.push(stream);
        }
    }
    assert!(
        held.len() > 128,
        "only {} connections were made",
        held.len()
    );
    // An idle connection the engine took is closed by it, well within 10 s.
    let first = &mut held[0];
    first
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buffer = [0u8; 16];
    let read = first.read(&mut buffer);
    assert!(matches!(read, Ok(0)), "closed by the engine: {read:?}");
    wait_until_gone(&pid);
    drop(held);
    let o = stepstone(&["describe", "flooded", "--store", &s, "--json"]);
    let described: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(described["status"], "SUCCEEDED", "{described}");
    assert_eq!(described["output"], json!({"ok": true}));
}

/// A task token cannot be forged from what can be guessed (the execution's ARN, the state, the
/// event and attempt numbers): only the token the task was given completes it, whether the
/// engine runs or the store takes the answer.
#[test]
fn task_tokens_cannot_be_forged() {
    let dir = scratch("forged-tokens");
    let store = dir.join("store").display().to_string();
    let token_file = dir.join("token");
    let def = write_json(
        &dir,
        "approve.asl.json",
        &json!({"StartAt": "Approve", "States": {
            "Approve": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"FunctionName": "approver", "Payload": {"token.$": "$$.Task.Token"}},
                "End": true}}}),
    );
    let route = format!(
        "arn:aws:states:::lambda:invoke.waitForTaskToken=echo \"$STEPSTONE_TASK_TOKEN\" > {}; cat",
        token_file.display()
    );
    let o = stepstone(&[
        "run", &def, "--store", &store, "--name", "gate", "--detach", "--task", &route,
    ]);
    assert_ok(&o);
    let deadline = Instant::now() + Duration::from_secs(20);
    let token = loop {
        let t = std::fs::read_to_string(&token_file).unwrap_or_default();
        if !t.trim().is_empty() {
            break t.trim().to_owned();
        }
        assert!(Instant::now() < deadline, "no token delivered");
        std::thread::sleep(Duration::from_millis(20));
    };
    let (names, tag) = token.split_once('.').expect("a signed token");
    let arn = stdout(&o).trim().to_owned();
    // Everything before the tag is guessable: it is the attempt's name, hex-encoded.
    let guessed: String = format!("{arn}/Approve/2/0")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(names, guessed);
    let flipped = format!("{names}.{}", tag.chars().rev().collect::<String>());
    for forged in [guessed, flipped] {
        let o = stepstone(&["send-task-success", &forged, "{}", "--store", &store]);
        assert_refused(&o, "TaskDoesNotExist");
    }
    let o = stepstone(&[
        "send-task-success",
        &token,
        r#"{"ok": 1}"#,
        "--store",
        &store,
    ]);
    assert_ok(&o);
}

/// The same in JSONPath, where the engine bounds a value's depth from the state's fields
/// instead of measuring it at each state: the state fails exactly where the value would pass
/// 128 levels, inside a Parallel as at the top.
#[test]
fn a_jsonpath_loop_that_wraps_its_input_fails_at_the_exact_depth() {
    let dir = scratch("deep-jsonpath");
    let wrap = |next: &str| {
        json!({"Type": "Pass", "Parameters": {"w.$": "$", "n.$": "States.MathAdd($.n, 1)"},
            "Next": next})
    };
    let looped = |end: Value| {
        json!({
            "StartAt": "Wrap",
            "States": {
                "Wrap": wrap("Again"),
                "Again": {"Type": "Choice",
                    "Choices": [{"Variable": "$.n", "NumericLessThan": 500, "Next": "Wrap"}],
                    "Default": "Done"},
                "Done": end
            }
        })
    };
    let top = write_json(&dir, "top.asl.json", &looped(json!({"Type": "Succeed"})));
    let o = stepstone(&[
        "run",
        &top,
        "--ephemeral",
        "--json",
        "--history",
        "-q",
        "--input",
        r#"{"n": 0}"#,
    ]);
    let lines: Vec<&str> = std::str::from_utf8(&o.stdout).unwrap().lines().collect();
    let result: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(result["error"], "States.DataLimitExceeded", "{result}");
    let history: Value = serde_json::from_str(lines[1]).unwrap();
    let wraps = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["type"] == "PassStateEntered" && e["stateEnteredEventDetails"]["name"] == "Wrap"
        })
        .count();
    // {"n": 0} is one level; the 128th wrap would make 129.
    assert_eq!(wraps, 128);

    // Inside a Parallel branch: the branch fails, then the Parallel.
    let parallel = write_json(
        &dir,
        "parallel.asl.json",
        &json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true,
            "Branches": [looped(json!({"Type": "Succeed"}))]}}}),
    );
    let o = stepstone(&[
        "run",
        &parallel,
        "--ephemeral",
        "--json",
        "-q",
        "--input",
        r#"{"n": 0}"#,
    ]);
    let result: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(result["error"], "States.DataLimitExceeded", "{result}");
}

/// A loop that doubles its document (`{"a": $, "b": $}`) once grew without bound until the
/// process was killed; it now fails with States.DataLimitExceeded where the output passes
/// 256 KiB, as AWS fails it. A Map whose results together pass the limit fails the same way,
/// unless `--payload-limit 0` lifts it (for a large Map run locally).
#[test]
fn outputs_over_the_payload_limit_fail_their_state_unless_the_limit_is_lifted() {
    let dir = scratch("payload-limit");
    let doubling = write_json(
        &dir,
        "double.asl.json",
        &json!({"StartAt": "Double", "States": {
            "Double": {"Type": "Pass", "Parameters": {"a.$": "$", "b.$": "$"}, "Next": "Again"},
            "Again": {"Type": "Choice",
                "Choices": [{"Variable": "$.a", "IsPresent": true, "Next": "Double"}],
                "Default": "Done"},
            "Done": {"Type": "Succeed"}}}),
    );
    let o = stepstone(&[
        "run",
        &doubling,
        "--ephemeral",
        "--json",
        "-q",
        "--input",
        r#""x""#,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let result: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(result["error"], "States.DataLimitExceeded", "{result}");
    assert!(
        result["cause"]
            .as_str()
            .unwrap()
            .contains("the limit is 262144"),
        "{result}"
    );

    let map = write_json(
        &dir,
        "map.asl.json",
        &json!({"StartAt": "Each", "States": {"Each": {"Type": "Map", "End": true,
            "ItemSelector": {"item.$": "$$.Map.Item.Value", "pad.$": "$$.Execution.Input.pad"},
            "ItemProcessor": {"StartAt": "Keep", "States": {"Keep": {"Type": "Pass", "End": true}}},
            "ItemsPath": "$.items"}}}),
    );
    let input =
        json!({"items": (0..100).collect::<Vec<u32>>(), "pad": "p".repeat(3000)}).to_string();
    let o = stepstone(&[
        "run",
        &map,
        "--ephemeral",
        "--json",
        "-q",
        "--input",
        &input,
    ]);
    let result: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(result["error"], "States.DataLimitExceeded", "{result}");
    let o = stepstone(&[
        "run",
        &map,
        "--ephemeral",
        "--json",
        "-q",
        "--payload-limit",
        "0",
        "--input",
        &input,
    ]);
    assert_ok(&o);
    let result: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(result["output"].as_array().map(Vec::len), Some(100));
}

/// An input over the payload limit is refused before the execution starts, as StartExecution
/// refuses it (exit 2, nothing stored); `--payload-limit 0` takes it.
#[test]
fn an_input_over_the_payload_limit_is_refused_before_anything_starts() {
    let dir = scratch("big-input");
    let machine = pass_machine(&dir);
    let input = write_json(&dir, "big.json", &json!({"pad": "p".repeat(300 * 1024)}));
    let store = dir.join("store");
    let store = store.to_str().unwrap();
    let o = stepstone(&[
        "run",
        &machine,
        "--input-file",
        &input,
        "--store",
        store,
        "-q",
    ]);
    assert_refused(&o, "may be at most 262144 bytes");
    assert!(
        !dir.join("store").exists(),
        "nothing is stored for a refused input"
    );
    let o = stepstone(&[
        "run",
        &machine,
        "--input-file",
        &input,
        "--ephemeral",
        "-q",
        "--payload-limit",
        "0",
    ]);
    assert_ok(&o);
}

/// What a run was started with holds after a kill: a run whose output is 400 KB under
/// `--payload-limit 0`, killed while it waits, resumes with the limit still lifted, and from
/// another directory its command still runs where it was started.
#[test]
fn a_resumed_run_keeps_its_payload_limit_and_its_commands_directory() {
    let dir = scratch("launch-kept");
    let store = dir.join("store").display().to_string();
    std::fs::write(
        dir.join("big.sh"),
        "#!/bin/sh\ncat > /dev/null\nprintf '{\"big\": \"%0200000d\"}' 0\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("big.sh"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
    }
    let def = write_json(
        &dir,
        "big.asl.json",
        &json!({"StartAt": "W", "States": {
            "W": {"Type": "Wait", "Seconds": 2, "Next": "T"},
            "T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Next": "Twice"},
            "Twice": {"Type": "Pass", "Parameters": {"a.$": "$.big", "b.$": "$.big"}, "End": true}
        }}),
    );
    let o = Command::new(env!("CARGO_BIN_EXE_stepstone"))
        .current_dir(&dir)
        .args(["run", &def, "--store", &store, "--name", "big", "--detach"])
        .args(["--payload-limit", "0"])
        .args(["--task", "arn:aws:states:::lambda:invoke=./big.sh"])
        .output()
        .unwrap();
    assert_ok(&o);
    let pid = detached_pid(&o);
    Command::new("kill").args(["-9", &pid]).status().unwrap();
    wait_until_gone(&pid);
    // Resumed from elsewhere (this test's directory, not the one holding big.sh).
    let o = stepstone(&["resume", "--store", &store, "--json", "--quiet"]);
    assert_ok(&o);
    let finished: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(finished["status"], "SUCCEEDED", "{finished}");
    assert_eq!(
        finished["output"]["b"].as_str().map(str::len),
        Some(200_000)
    );
}
