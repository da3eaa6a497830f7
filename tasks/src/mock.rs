//! Mocked responses in Step Functions Local's MockConfigFile format:
//!
//! ```json
//! {"StateMachines": {"deploy": {"TestCases": {"HappyPath": {"Create stack": "StackCreated"}}}},
//!  "MockedResponses": {"StackCreated": {"0": {"Return": {"StackId": "arn:..."}},
//!                                       "1-2": {"Throw": {"Error": "CloudFormation.LimitExceededException", "Cause": "..."}}}}}
//! ```
//!
//! A test case maps state names to mocked responses; a mocked response maps invocation numbers
//! (`"0"`, or a range `"1-2"`, counted from 0 for each state of each execution, retries and Map
//! iterations included) to a `Return` (the task's result) or a `Throw` (its `Error` and
//! `Cause`). States the test case does not name go to the next dispatcher, as in Step Functions
//! Local. A file with a mistake is refused whole, the mistake named with its location.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use stepstone_engine::asl::errors;
use stepstone_engine::{Failure, TaskDispatcher, TaskFuture, TaskRequest};

/// One answer of a mocked response.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    Return(Value),
    Throw(Failure),
}

/// A mocked response: answers by invocation number (inclusive ranges, in file order).
#[derive(Debug, Clone, PartialEq)]
struct Response {
    answers: Vec<(u64, u64, Answer)>,
}

/// A MockConfigFile's test case for one state machine: the mocked response of each state.
#[derive(Debug, Clone)]
pub struct MockCase {
    states: HashMap<String, (String, Response)>,
}

/// Why a MockConfigFile was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct MockError {
    /// Where, as a JSON Pointer (`/MockedResponses/StackCreated/1-2/Throw`).
    pub location: String,
    /// What is wrong.
    pub message: String,
}

fn error(location: impl Into<String>, message: impl Into<String>) -> MockError {
    MockError {
        location: location.into(),
        message: message.into(),
    }
}

/// A JSON Pointer step (`~` and `/` escaped).
fn step(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

impl MockCase {
    /// The test case `test_case` of state machine `machine` in MockConfigFile text `text`.
    /// Every mocked response in the file is checked, not only the ones the case uses.
    pub fn load(text: &str, machine: &str, test_case: &str) -> Result<MockCase, MockError> {
        let file: Value =
            serde_json::from_str(text).map_err(|e| error("", format!("not JSON: {e}")))?;
        let responses = parse_responses(&file)?;
        let machines = file
            .get("StateMachines")
            .and_then(Value::as_object)
            .ok_or_else(|| error("/StateMachines", "missing, or not an object"))?;
        let known: Vec<&str> = machines.keys().map(String::as_str).collect();
        let cases = machines
            .get(machine)
            .ok_or_else(|| {
                error(
                    "/StateMachines",
                    format!(
                        "no state machine '{machine}' (the file has: {}); name it with --state-machine-name",
                        known.join(", ")
                    ),
                )
            })?
            .get("TestCases")
            .and_then(Value::as_object)
            .ok_or_else(|| {
                error(
                    format!("/StateMachines/{}/TestCases", step(machine)),
                    "missing, or not an object",
                )
            })?;
        let case_location = format!(
            "/StateMachines/{}/TestCases/{}",
            step(machine),
            step(test_case)
        );
        let case = cases
            .get(test_case)
            .and_then(Value::as_object)
            .ok_or_else(|| {
                let known: Vec<&str> = cases.keys().map(String::as_str).collect();
                error(
                    &case_location,
                    format!(
                        "no test case '{test_case}' (the file has: {})",
                        known.join(", ")
                    ),
                )
            })?;
        let mut states = HashMap::new();
        for (state, name) in case {
            let location = format!("{case_location}/{}", step(state));
            let name = name
                .as_str()
                .ok_or_else(|| error(&location, "must name a mocked response (a string)"))?;
            let response = responses.get(name).ok_or_else(|| {
                error(
                    &location,
                    format!("no mocked response '{name}' in /MockedResponses"),
                )
            })?;
            states.insert(state.clone(), (name.to_owned(), response.clone()));
        }
        Ok(MockCase { states })
    }

    /// Whether `state` is mocked in this case.
    pub fn mocks(&self, state: &str) -> bool {
        self.states.contains_key(state)
    }
}

fn parse_responses(file: &Value) -> Result<HashMap<String, Response>, MockError> {
    let Some(all) = file.get("MockedResponses") else {
        return Ok(HashMap::new());
    };
    let all = all
        .as_object()
        .ok_or_else(|| error("/MockedResponses", "must be an object"))?;
    let mut responses = HashMap::new();
    for (name, answers) in all {
        let base = format!("/MockedResponses/{}", step(name));
        let answers = answers
            .as_object()
            .ok_or_else(|| error(&base, "must be an object of invocation numbers"))?;
        let mut parsed: Vec<(u64, u64, Answer)> = Vec::new();
        for (key, answer) in answers {
            let location = format!("{base}/{}", step(key));
            let (from, to) = parse_range(key).ok_or_else(|| {
                error(
                    &location,
                    "an invocation number (\"0\") or range (\"1-2\") is expected",
                )
            })?;
            if let Some((f, t, _)) = parsed.iter().find(|(f, t, _)| from <= *t && *f <= to) {
                return Err(error(&location, format!("overlaps invocations {f}-{t}")));
            }
            parsed.push((from, to, parse_answer(answer, &location)?));
        }
        responses.insert(name.clone(), Response { answers: parsed });
    }
    Ok(responses)
}

fn parse_range(key: &str) -> Option<(u64, u64)> {
    let (from, to) = match key.split_once('-') {
        Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
        None => {
            let n = key.trim().parse().ok()?;
            (n, n)
        }
    };
    (from <= to).then_some((from, to))
}

fn parse_answer(answer: &Value, location: &str) -> Result<Answer, MockError> {
    let object = answer
        .as_object()
        .ok_or_else(|| error(location, "must be {\"Return\": ...} or {\"Throw\": ...}"))?;
    match (object.get("Return"), object.get("Throw"), object.len()) {
        (Some(value), None, 1) => Ok(Answer::Return(value.clone())),
        (None, Some(thrown), 1) => {
            let location = format!("{location}/Throw");
            let text = |field: &str| -> Result<String, MockError> {
                match thrown.get(field) {
                    Some(Value::String(s)) => Ok(s.clone()),
                    None => Ok(String::new()),
                    Some(_) => Err(error(format!("{location}/{field}"), "must be a string")),
                }
            };
            let error_name = text("Error")?;
            if error_name.is_empty() {
                return Err(error(&location, "needs an \"Error\""));
            }
            Ok(Answer::Throw(Failure::new(error_name, text("Cause")?)))
        }
        _ => Err(error(
            location,
            "must be {\"Return\": ...} or {\"Throw\": ...}",
        )),
    }
}

/// Answers the states a [`MockCase`] mocks; sends every other task to `next`.
#[derive(Clone)]
pub struct MockTasks {
    case: Arc<MockCase>,
    next: Arc<dyn TaskDispatcher>,
}

impl MockTasks {
    /// Mocks from `case`, other tasks to `next`.
    pub fn new(case: MockCase, next: impl TaskDispatcher + 'static) -> MockTasks {
        MockTasks {
            case: Arc::new(case),
            next: Arc::new(next),
        }
    }
}

impl TaskDispatcher for MockTasks {
    /// A mocked state's answer is its result, also for a task that waits for its token (as in
    /// Step Functions Local).
    fn answers_callbacks(&self, request: &TaskRequest) -> bool {
        self.case.mocks(&request.state_name) || self.next.answers_callbacks(request)
    }

    /// A mocked state's answer comes from the mock file by the state's invocation count, which
    /// the checkpoint keeps: sent again after a crash, it is the same answer, and nothing
    /// outside the process saw the first.
    fn effect_free(&self, request: &TaskRequest) -> bool {
        self.case.mocks(&request.state_name) || self.next.effect_free(request)
    }

    fn dispatch(&self, request: TaskRequest) -> TaskFuture {
        let Some((name, response)) = self.case.states.get(&request.state_name) else {
            return self.next.dispatch(request);
        };
        // Counted by the execution, and kept in its checkpoint: a task sent again after a
        // crash gets the answer it would have got.
        let invocation = u64::from(request.invocation);
        let answer = response
            .answers
            .iter()
            .find(|(from, to, _)| (*from..=*to).contains(&invocation))
            .map(|(_, _, a)| a.clone());
        let result = match answer {
            Some(Answer::Return(value)) => Ok(value),
            Some(Answer::Throw(failure)) => Err(failure),
            None => Err(Failure::new(
                errors::RUNTIME,
                format!(
                    "The mocked response '{name}' of state '{}' has no answer for invocation {invocation}.",
                    request.state_name
                ),
            )),
        };
        Box::pin(async move { result })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use stepstone_engine::{FnTasks, RunId};

    use super::*;

    const FILE: &str = r#"{
      "StateMachines": {"deploy": {"TestCases": {
        "HappyPath": {"Create": "Created"},
        "Throttled": {"Create": "ThrottledTwice"}}}},
      "MockedResponses": {
        "Created": {"0": {"Return": {"StackId": "arn:stack/1"}}},
        "ThrottledTwice": {
          "0-1": {"Throw": {"Error": "CloudFormation.LimitExceededException", "Cause": "slow down"}},
          "2": {"Return": {"StackId": "arn:stack/2"}}}}}"#;

    fn request(state: &str, invocation: u32) -> TaskRequest {
        TaskRequest {
            run: RunId::detached(),
            execution_arn: "arn:exec".into(),
            state_name: state.into(),
            resource: "arn:aws:states:::aws-sdk:cloudformation:createStack".into(),
            input: json!({}),
            attempt: 0,
            invocation,
            idempotency_token: String::new(),
            region: None,
            timeout_seconds: None,
            task_token: None,
            heartbeat_seconds: None,
        }
    }

    fn unmocked() -> FnTasks<impl Fn(TaskRequest) -> TaskFuture + Send + Sync> {
        FnTasks(|r: TaskRequest| -> TaskFuture {
            Box::pin(async move { Ok(json!({"real": r.state_name})) })
        })
    }

    /// A mocked state's task may be sent before its dispatch is durable; any other waits (a
    /// closure may have effects), also behind a router, unless the router reads a local file.
    #[test]
    fn only_mocked_states_are_effect_free() {
        let tasks = MockTasks::new(
            MockCase::load(FILE, "deploy", "HappyPath").unwrap(),
            unmocked(),
        );
        assert!(tasks.effect_free(&request("Create", 0)));
        assert!(!tasks.effect_free(&request("Other", 0)));
        let router = crate::Router::new().fallback(tasks);
        assert!(router.effect_free(&request("Create", 0)));
        assert!(!router.effect_free(&request("Other", 0)));
        let mut reader = request("Create", 0);
        reader.resource = "file:///tmp/items.jsonl".into();
        assert!(!router.effect_free(&reader));
    }

    #[tokio::test]
    async fn answers_by_invocation_and_passes_unmocked_states_on() {
        let tasks = MockTasks::new(
            MockCase::load(FILE, "deploy", "Throttled").unwrap(),
            unmocked(),
        );
        for invocation in 0..2 {
            let err = tasks
                .dispatch(request("Create", invocation))
                .await
                .unwrap_err();
            assert_eq!(err.error, "CloudFormation.LimitExceededException");
            assert_eq!(err.cause, "slow down");
        }
        assert_eq!(
            tasks.dispatch(request("Create", 2)).await.unwrap(),
            json!({"StackId": "arn:stack/2"})
        );
        // The same invocation again (a task sent again after a crash): the same answer.
        assert_eq!(
            tasks.dispatch(request("Create", 2)).await.unwrap(),
            json!({"StackId": "arn:stack/2"})
        );
        let err = tasks.dispatch(request("Create", 3)).await.unwrap_err();
        assert_eq!(err.error, "States.Runtime");
        assert!(err.cause.contains("no answer for invocation 3"));
        assert_eq!(
            tasks.dispatch(request("Prepare", 0)).await.unwrap(),
            json!({"real": "Prepare"})
        );
    }

    #[test]
    fn mistakes_are_reported_with_their_location() {
        let bad = |text: &str| {
            MockCase::load(text, "deploy", "HappyPath")
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            bad("{"),
            ": not JSON: EOF while parsing an object at line 1 column 1"
        );
        assert_eq!(
            MockCase::load(FILE, "other", "HappyPath")
                .unwrap_err()
                .to_string(),
            "/StateMachines: no state machine 'other' (the file has: deploy); name it with --state-machine-name"
        );
        assert_eq!(
            MockCase::load(FILE, "deploy", "Nope")
                .unwrap_err()
                .to_string(),
            "/StateMachines/deploy/TestCases/Nope: no test case 'Nope' (the file has: HappyPath, Throttled)"
        );
        let text = FILE.replace(r#""0-1""#, r#""1-0""#);
        assert!(
            bad(&text).starts_with("/MockedResponses/ThrottledTwice/1-0: an invocation number")
        );
        let text = FILE.replace(r#""2": {"Return""#, r#""1": {"Return""#);
        assert_eq!(
            bad(&text),
            "/MockedResponses/ThrottledTwice/1: overlaps invocations 0-1"
        );
        let text = FILE.replace(r#""Error": "CloudFormation.LimitExceededException", "#, "");
        assert_eq!(
            bad(&text),
            "/MockedResponses/ThrottledTwice/0-1/Throw: needs an \"Error\""
        );
        let text = FILE.replace(r#""Create": "Created""#, r#""Create": "Missing""#);
        assert_eq!(
            bad(&text),
            "/StateMachines/deploy/TestCases/HappyPath/Create: no mocked response 'Missing' in /MockedResponses"
        );
    }
}
