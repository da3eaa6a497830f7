//! The execution viewer of `stepstone serve`, in a real browser: headless Chromium (Debian's
//! package; `scripts/test` installs it and sets STEPSTONE_TEST_CHROMIUM). Without it the test
//! fails: it never skips.
//!
//! The multi-region example runs on its RollbackPath mocks; the page Chromium renders must show
//! every state of the graph with the status its history gives it, worked out here from the
//! history and the definition alone.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Server {
    child: Child,
    address: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn example(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/multi-region-deploy")
        .join(file)
}

fn start_server(store: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stepstone"))
        .args(["serve", "--port", "0", "--virtual-time", "--store"])
        .arg(store)
        .arg("--mock-config")
        .arg(example("mock-config.json"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("stepstone serve starts");
    let first = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    let address = first
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
        .unwrap_or_else(|| panic!("no address in: {first}"))
        .to_owned();
    Server { child, address }
}

/// One API call, raw HTTP/1.1 as SDKs send it.
fn call(server: &Server, operation: &str, body: &Value) -> Value {
    let mut stream = std::net::TcpStream::connect(&server.address).unwrap();
    let body = body.to_string();
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Amz-Target: AWSStepFunctions.{operation}\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, json) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{operation}: {answer}");
    serde_json::from_str(json).unwrap()
}

fn wait_until_ended(server: &Server, arn: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let described = call(server, "DescribeExecution", &json!({"executionArn": arn}));
        if described["status"] != "RUNNING" {
            return described;
        }
        assert!(Instant::now() < deadline, "{arn} still RUNNING");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn history(server: &Server, arn: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut token = Value::Null;
    loop {
        let mut ask = json!({"executionArn": arn, "maxResults": 1000});
        if token.is_string() {
            ask["nextToken"] = token;
        }
        let page = call(server, "GetExecutionHistory", &ask);
        events.extend(page["events"].as_array().unwrap().iter().cloned());
        token = page["nextToken"].clone();
        if !token.is_string() {
            return events;
        }
    }
}

fn chromium() -> String {
    std::env::var("STEPSTONE_TEST_CHROMIUM").expect(
        "STEPSTONE_TEST_CHROMIUM is not set: run the tests with scripts/test, which installs \
         Debian's chromium package",
    )
}

/// Chromium's flags for a headless run in a test (no sandbox: CI runs as root).
fn headless(profile: &Path) -> Vec<String> {
    vec![
        "--headless".into(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--hide-scrollbars".into(),
        "--no-first-run".into(),
        format!("--user-data-dir={}", profile.display()),
    ]
}

/// The page at `url` as Chromium renders it, scripts run.
fn dom(url: &str, profile: &Path) -> String {
    let out = Command::new(chromium())
        .args(headless(profile))
        .args(["--virtual-time-budget=3000", "--dump-dom", url])
        .stderr(Stdio::null())
        .output()
        .expect("chromium runs");
    assert!(out.status.success(), "chromium failed on {url}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn screenshot(url: &str, profile: &Path, file: &Path, size: &str) {
    let out = Command::new(chromium())
        .args(headless(profile))
        .arg(format!("--window-size={size}"))
        .arg("--virtual-time-budget=3000")
        .arg(format!("--screenshot={}", file.display()))
        .arg(url)
        .stderr(Stdio::null())
        .output()
        .expect("chromium runs");
    assert!(out.status.success(), "chromium failed on {url}");
    let bytes = std::fs::read(file).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 20_000,
        "{} is no screenshot",
        file.display()
    );
}

/// Each state's `data-status` in the rendered page, by its `data-state`.
fn statuses_in(dom: &str) -> HashMap<String, String> {
    let attribute = |tag: &str, name: &str| -> Option<String> {
        let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        let end = tag[at..].find('"')? + at;
        Some(tag[at..end].to_owned())
    };
    let mut found = HashMap::new();
    for piece in dom.split("<g ").skip(1) {
        let tag = &piece[..piece.find('>').unwrap()];
        if !tag.contains("class=\"state") {
            continue;
        }
        let name = attribute(tag, "data-state").expect("a state has its name");
        let status = attribute(tag, "data-status").unwrap_or_default();
        assert!(
            found.insert(name.clone(), status).is_none(),
            "{name} is drawn twice"
        );
    }
    found
}

/// Every state of a definition and the states its Catch rules lead to.
fn states(states: &Value, out: &mut Vec<(String, Vec<String>)>) {
    for (name, state) in states.as_object().unwrap() {
        let catches = state["Catch"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["Next"].as_str().unwrap().to_owned())
            .collect();
        out.push((name.clone(), catches));
        for inner in [&state["ItemProcessor"], &state["Iterator"]] {
            if inner.is_object() {
                self::states(&inner["States"], out);
            }
        }
        for branch in state["Branches"].as_array().into_iter().flatten() {
            self::states(&branch["States"], out);
        }
    }
}

/// What the history says of each state, as the console shows it: never entered, not reached;
/// left as often as entered, succeeded; otherwise caught (a Catch target of it was entered
/// after its last entry), running (the execution runs), or failed.
fn expected(definition: &Value, events: &[Value], running: bool) -> HashMap<String, String> {
    let mut entered: HashMap<&str, (u64, u64)> = HashMap::new(); // (times, last event id)
    let mut exited: HashMap<&str, u64> = HashMap::new();
    for event in events {
        let id = event["id"].as_u64().unwrap();
        if let Some(name) = event["stateEnteredEventDetails"]["name"].as_str() {
            let e = entered.entry(name).or_default();
            e.0 += 1;
            e.1 = id;
        }
        if let Some(name) = event["stateExitedEventDetails"]["name"].as_str() {
            *exited.entry(name).or_default() += 1;
        }
    }
    let mut all = Vec::new();
    states(&definition["States"], &mut all);
    all.iter()
        .map(|(name, catches)| {
            let (times, last) = entered.get(name.as_str()).copied().unwrap_or_default();
            let left = exited.get(name.as_str()).copied().unwrap_or_default();
            let caught = catches.iter().any(|target| {
                entered
                    .get(target.as_str())
                    .is_some_and(|(_, when)| *when > last)
            });
            let status = match () {
                _ if times == 0 => "not-reached",
                _ if left >= times => "succeeded",
                _ if caught => "caught",
                _ if running => "running",
                _ => "failed",
            };
            (name.clone(), status.to_owned())
        })
        .collect()
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn the_viewer_shows_each_state_as_the_history_has_it() {
    let scratch = std::env::temp_dir().join(format!("stepstone-viewer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let profile = scratch.join("chromium");
    let server = start_server(&scratch.join("store"));
    let definition_text = std::fs::read_to_string(example("deploy.asl.json")).unwrap();
    let definition: Value = serde_json::from_str(&definition_text).unwrap();
    let machine = call(
        &server,
        "CreateStateMachine",
        &json!({"name": "deploy", "definition": definition_text,
            "roleArn": "arn:aws:iam::123456789012:role/r"}),
    )["stateMachineArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let input = std::fs::read_to_string(example("input.json")).unwrap();
    let arn = call(
        &server,
        "StartExecution",
        &json!({"stateMachineArn": format!("{machine}#RollbackPath"), "name": "rollback", "input": input}),
    )["executionArn"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(wait_until_ended(&server, &arn)["status"], "SUCCEEDED");
    let events = history(&server, &arn);
    let want = expected(&definition, &events, false);
    // The run is one to learn from: states reached and not, loops, a secondary rolled back.
    assert_eq!(want["RollBack"], "succeeded");
    assert_eq!(want["UpdateStack"], "not-reached");
    assert!(want.values().filter(|s| *s == "succeeded").count() >= 10);

    let url = format!("http://{}/execution?arn={}", server.address, encode(&arn));
    let page = dom(&url, &profile);
    assert_eq!(statuses_in(&page), want, "the graph's statuses");
    assert!(page.contains("data-execution-status=\"SUCCEEDED\""));
    // Every event is a row of the table.
    let rows = page.split("<section class=\"events\"").nth(1).unwrap();
    assert_eq!(
        rows.matches("<tr").count(),
        events.len() + 1,
        "header and events"
    );
    // A task's events name the state they belong to, as the console's table does.
    assert!(
        rows.contains("<td>TaskScheduled</td><td>PrepareRegion</td>"),
        "the step of a task event"
    );
    // The loop was entered three times: the count is on the graph.
    assert!(page.contains(">×3<"), "iteration counts");

    // A distributed Map's children are child executions: the page shows its Map Run's counts.
    let fan = json!({"StartAt": "Fan", "States": {"Fan": {"Type": "Map", "Label": "Waves",
        "ToleratedFailureCount": 1,
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"},
            "StartAt": "Check", "States": {
                "Check": {"Type": "Choice", "Choices": [
                    {"Variable": "$.fail", "IsPresent": true, "Next": "Broken"}], "Default": "Done"},
                "Broken": {"Type": "Fail", "Error": "Item.Broken"},
                "Done": {"Type": "Pass", "End": true}}},
        "End": true}}});
    let fan_machine = call(
        &server,
        "CreateStateMachine",
        &json!({"name": "fan", "definition": fan.to_string(), "roleArn": "arn:aws:iam::123456789012:role/r"}),
    )["stateMachineArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let fanned = call(
        &server,
        "StartExecution",
        &json!({"stateMachineArn": fan_machine, "name": "fanned",
            "input": json!([{"id": 1}, {"id": 2, "fail": true}, {"id": 3}]).to_string()}),
    )["executionArn"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(wait_until_ended(&server, &fanned)["status"], "SUCCEEDED");
    let page = dom(
        &format!(
            "http://{}/execution?arn={}",
            server.address,
            encode(&fanned)
        ),
        &profile,
    );
    let map_runs = page
        .split("<section class=\"map-runs\"")
        .nth(1)
        .expect("a Map Runs section");
    assert!(
        map_runs.contains("data-map-run-status=\"SUCCEEDED\""),
        "{map_runs}"
    );
    assert!(
        map_runs.contains("<td>2</td><td>1</td><td>0</td><td>3</td>"),
        "succeeded, failed, running, children: {map_runs}"
    );

    // The index lists the execution with its status and links to it.
    let index = dom(&format!("http://{}/", server.address), &profile);
    assert!(index.contains(&format!("href=\"/execution?arn={}\"", encode(&arn))));
    assert!(index.contains("<span class=\"status succeeded\">SUCCEEDED</span>"));

    // A running execution (its task waits for an activity worker that never comes): the
    // waiting state shows running and Stop is offered; stopped through the API, the page
    // shows it failed, and Redrive is offered.
    let activity = call(&server, "CreateActivity", &json!({"name": "nobody"}))["activityArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let hold = json!({"StartAt": "Prepare", "States": {
        "Prepare": {"Type": "Pass", "Next": "Hold"},
        "Hold": {"Type": "Task", "Resource": activity, "Next": "After"},
        "After": {"Type": "Pass", "End": true}}});
    let held_machine = call(
        &server,
        "CreateStateMachine",
        &json!({"name": "held", "definition": hold.to_string(), "roleArn": "arn:aws:iam::123456789012:role/r"}),
    )["stateMachineArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let held = call(
        &server,
        "StartExecution",
        &json!({"stateMachineArn": held_machine, "name": "held"}),
    )["executionArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let held_url = format!("http://{}/execution?arn={}", server.address, encode(&held));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !history(&server, &held)
        .iter()
        .any(|e| e["type"] == "ActivityScheduled")
    {
        assert!(
            Instant::now() < deadline,
            "the activity task was not scheduled"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let page = dom(&held_url, &profile);
    let shown = statuses_in(&page);
    assert_eq!(shown["Prepare"], "succeeded");
    assert_eq!(shown["Hold"], "running");
    assert_eq!(shown["After"], "not-reached");
    assert!(page.contains("data-action=\"StopExecution\""));
    call(&server, "StopExecution", &json!({"executionArn": held}));
    let page = dom(&held_url, &profile);
    assert_eq!(statuses_in(&page)["Hold"], "failed");
    assert!(page.contains("data-execution-status=\"ABORTED\""));
    assert!(page.contains("data-action=\"RedriveExecution\""));

    // Screenshots of the graph and the events table, as docs/ keeps them.
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    screenshot(
        &format!("{url}&part=graph"),
        &profile,
        &shots.join("viewer-graph.png"),
        "1000,1500",
    );
    screenshot(
        &format!("{url}&part=events"),
        &profile,
        &shots.join("viewer-events.png"),
        "1000,700",
    );
    let _ = std::fs::remove_dir_all(&scratch);
}
