//! The execution history: AWS-shaped events, numbered as Step Functions numbers them.
//!
//! Event ids matter even when nobody reads the history: causes quote them ("entered at the
//! event id #4") and the 25,000-event limit counts them. So ids are always assigned, but the
//! events themselves are kept only when [`History::recording`] is on: an execution nobody
//! inspects pays for a counter, not for copies of every state's input and output.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use stepstone_asl::timestamp::Timestamp;

/// An event's data (an input, an output, a task's parameters), kept as the JSON text it is
/// read back as (GetExecutionHistory gives it as text): written once as the event is built,
/// and stored as it is. A copy of the value itself would cost an allocation per node, and
/// again to encode it; a large document passed from state to state made a durable execution's
/// history its main cost.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventData(Box<serde_json::value::RawValue>);

impl EventData {
    /// `value` as the event keeps it.
    pub fn of(value: &Value) -> EventData {
        // A `Value` always serializes (its keys are strings).
        EventData(serde_json::value::to_raw_value(value).unwrap_or_else(|_| Self::null().0))
    }

    /// `null`: the data of an event built for an observer, which reads no data.
    pub fn null() -> EventData {
        EventData(
            serde_json::value::RawValue::from_string("null".to_owned()).expect("null is JSON"),
        )
    }

    /// The JSON text.
    pub fn text(&self) -> &str {
        self.0.get()
    }

    /// The value, parsed again (a redrive reads a state's input back). As deep as the engine
    /// let it be (its depth bound, not serde_json's 128: an input 200 levels deep is read back
    /// whole, never as something else).
    pub fn value(&self) -> Result<Value, serde_json::Error> {
        let mut parser = serde_json::Deserializer::from_str(self.0.get());
        parser.disable_recursion_limit();
        let value = Value::deserialize(&mut parser)?;
        parser.end()?;
        Ok(value)
    }
}

impl PartialEq for EventData {
    fn eq(&self, other: &Self) -> bool {
        self.text() == other.text()
    }
}

impl From<Value> for EventData {
    fn from(value: Value) -> EventData {
        EventData::of(&value)
    }
}

/// What happened, with the details GetExecutionHistory gives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum EventKind {
    /// The execution started with this input.
    ExecutionStarted {
        /// The execution's input.
        input: EventData,
        /// The role the execution runs as.
        role_arn: String,
    },
    /// The execution succeeded.
    ExecutionSucceeded {
        /// Its output.
        output: EventData,
    },
    /// The execution failed.
    ExecutionFailed {
        /// Error name.
        error: String,
        /// Cause.
        cause: String,
    },
    /// The execution was stopped from outside.
    ExecutionAborted {
        /// Error name.
        error: String,
        /// Cause.
        cause: String,
    },
    /// The execution was redriven (RedriveExecution): it goes on from where it failed.
    ExecutionRedriven {
        /// How many times it has been redriven, this time included.
        redrive_count: u32,
    },
    /// The execution ran past its `TimeoutSeconds`.
    ExecutionTimedOut {
        /// Error name.
        error: String,
        /// Cause.
        cause: String,
    },
    /// A state was entered (`PassStateEntered`, `TaskStateEntered`, ...).
    StateEntered {
        /// `Pass`, `Task`, ...
        state_type: Cow<'static, str>,
        /// The state's name.
        name: String,
        /// Its input.
        input: EventData,
    },
    /// A state was left (`PassStateExited`, ...).
    StateExited {
        /// `Pass`, `Task`, ...
        state_type: Cow<'static, str>,
        /// The state's name.
        name: String,
        /// Its output.
        output: EventData,
        /// The variables the state assigned, when it assigned some (`assignedVariables`).
        /// Since checkpoint v2's JSONata support; older histories have none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assigned: Option<Map<String, Value>>,
    },
    /// A task was scheduled.
    TaskScheduled {
        /// `lambda`, `aws-sdk:cloudformation`, ...
        resource_type: String,
        /// The action or function.
        resource: String,
        /// The region the call goes to.
        region: String,
        /// The task's input.
        parameters: EventData,
        /// The task's timeout, when it has one.
        timeout_in_seconds: Option<u64>,
    },
    /// The task was started.
    TaskStarted {
        /// See [`EventKind::TaskScheduled`].
        resource_type: String,
        /// See [`EventKind::TaskScheduled`].
        resource: String,
    },
    /// The task succeeded.
    TaskSucceeded {
        /// See [`EventKind::TaskScheduled`].
        resource_type: String,
        /// See [`EventKind::TaskScheduled`].
        resource: String,
        /// Its result.
        output: EventData,
    },
    /// The task failed.
    TaskFailed {
        /// See [`EventKind::TaskScheduled`].
        resource_type: String,
        /// See [`EventKind::TaskScheduled`].
        resource: String,
        /// Error name.
        error: String,
        /// Cause.
        cause: String,
    },
    /// The task ran past its timeout.
    TaskTimedOut {
        /// See [`EventKind::TaskScheduled`].
        resource_type: String,
        /// See [`EventKind::TaskScheduled`].
        resource: String,
        /// Error name.
        error: String,
        /// Cause.
        cause: String,
    },
    /// An activity task was queued for a worker (a Task whose Resource is an activity ARN).
    ActivityScheduled {
        /// The activity's ARN.
        resource: String,
        /// The task's input.
        input: EventData,
        /// The task's timeout, when it has one.
        timeout_in_seconds: Option<u64>,
        /// Its heartbeat timeout, when it has one.
        heartbeat_in_seconds: Option<u64>,
    },
    /// A worker took the activity task (GetActivityTask).
    ActivityStarted {
        /// The `workerName` it gave.
        worker_name: String,
    },
    /// The worker sent the activity's result (SendTaskSuccess).
    ActivitySucceeded {
        /// Its result.
        output: EventData,
    },
    /// The worker failed the activity (SendTaskFailure).
    ActivityFailed {
        /// Error name.
        error: String,
        /// Cause.
        cause: String,
    },
    /// The activity ran past its TimeoutSeconds or HeartbeatSeconds.
    ActivityTimedOut {
        /// Error name.
        error: String,
        /// Cause.
        cause: String,
    },
    /// A JSONata expression of a state failed (States.QueryEvaluationError), before the state
    /// failed with it. Since checkpoint v2 (older stores have none).
    EvaluationFailed {
        /// The state's name.
        state: String,
        /// The field whose expression failed (`Items`, `Assign/result`...), when known.
        location: Option<String>,
        /// Error name.
        error: String,
        /// Cause.
        cause: String,
    },
    /// A Parallel state started its branches.
    ParallelStateStarted,
    /// Every branch succeeded.
    ParallelStateSucceeded,
    /// A branch failed.
    ParallelStateFailed,
    /// A Map state started, over `length` items.
    MapStateStarted {
        /// How many items.
        length: usize,
    },
    /// Every iteration succeeded (or failures were tolerated).
    MapStateSucceeded,
    /// The Map failed.
    MapStateFailed,
    /// An iteration started.
    MapIterationStarted {
        /// The Map state's name.
        name: String,
        /// The item's index.
        index: usize,
    },
    /// An iteration succeeded.
    MapIterationSucceeded {
        /// The Map state's name.
        name: String,
        /// The item's index.
        index: usize,
    },
    /// An iteration failed.
    MapIterationFailed {
        /// The Map state's name.
        name: String,
        /// The item's index.
        index: usize,
    },
    /// A distributed Map started its Map Run: its iterations run as child executions, whose
    /// events are theirs, not the parent's.
    MapRunStarted {
        /// The Map Run's ARN.
        map_run_arn: String,
    },
    /// A redrive took up the Map Run that failed: its children that failed or were stopped run
    /// again (the same Map Run ARN).
    MapRunRedriven {
        /// The Map Run's ARN.
        map_run_arn: String,
        /// How many times the Map Run has been redriven, this time included.
        redrive_count: u32,
    },
    /// Every child execution of the Map Run succeeded (or their failures were tolerated).
    MapRunSucceeded,
    /// The Map Run failed.
    MapRunFailed {
        /// The error name.
        error: String,
        /// Why.
        cause: String,
    },
}

impl EventKind {
    /// The event's type as GetExecutionHistory spells it.
    pub fn type_name(&self) -> String {
        match self {
            EventKind::ExecutionStarted { .. } => "ExecutionStarted".into(),
            EventKind::ExecutionSucceeded { .. } => "ExecutionSucceeded".into(),
            EventKind::ExecutionFailed { .. } => "ExecutionFailed".into(),
            EventKind::ExecutionTimedOut { .. } => "ExecutionTimedOut".into(),
            EventKind::ExecutionAborted { .. } => "ExecutionAborted".into(),
            EventKind::ExecutionRedriven { .. } => "ExecutionRedriven".into(),
            EventKind::StateEntered { state_type, .. } => format!("{state_type}StateEntered"),
            EventKind::StateExited { state_type, .. } => format!("{state_type}StateExited"),
            EventKind::TaskScheduled { .. } => "TaskScheduled".into(),
            EventKind::TaskStarted { .. } => "TaskStarted".into(),
            EventKind::TaskSucceeded { .. } => "TaskSucceeded".into(),
            EventKind::TaskFailed { .. } => "TaskFailed".into(),
            EventKind::TaskTimedOut { .. } => "TaskTimedOut".into(),
            EventKind::ActivityScheduled { .. } => "ActivityScheduled".into(),
            EventKind::ActivityStarted { .. } => "ActivityStarted".into(),
            EventKind::ActivitySucceeded { .. } => "ActivitySucceeded".into(),
            EventKind::ActivityFailed { .. } => "ActivityFailed".into(),
            EventKind::ActivityTimedOut { .. } => "ActivityTimedOut".into(),
            EventKind::EvaluationFailed { .. } => "EvaluationFailed".into(),
            EventKind::ParallelStateStarted => "ParallelStateStarted".into(),
            EventKind::ParallelStateSucceeded => "ParallelStateSucceeded".into(),
            EventKind::ParallelStateFailed => "ParallelStateFailed".into(),
            EventKind::MapStateStarted { .. } => "MapStateStarted".into(),
            EventKind::MapStateSucceeded => "MapStateSucceeded".into(),
            EventKind::MapStateFailed => "MapStateFailed".into(),
            EventKind::MapIterationStarted { .. } => "MapIterationStarted".into(),
            EventKind::MapIterationSucceeded { .. } => "MapIterationSucceeded".into(),
            EventKind::MapIterationFailed { .. } => "MapIterationFailed".into(),
            EventKind::MapRunStarted { .. } => "MapRunStarted".into(),
            EventKind::MapRunRedriven { .. } => "MapRunRedriven".into(),
            EventKind::MapRunSucceeded => "MapRunSucceeded".into(),
            EventKind::MapRunFailed { .. } => "MapRunFailed".into(),
        }
    }
}

/// One history event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// 1 for ExecutionStarted, then one more per event.
    pub id: u64,
    /// The event this one follows from (0 for none).
    pub previous_event_id: u64,
    /// When it happened (on the execution's clock, real or virtual).
    pub timestamp: Timestamp,
    /// What happened.
    pub kind: EventKind,
}

impl Event {
    /// The event as GetExecutionHistory returns it: inputs and outputs as JSON strings inside
    /// `*EventDetails`.
    pub fn to_json(&self) -> Value {
        let text = |v: &Value| Value::String(v.to_string());
        let data = |d: &EventData| Value::String(d.text().to_owned());
        let not_truncated = || json!({"truncated": false});
        let (key, details) = match &self.kind {
            EventKind::ExecutionStarted { input, role_arn } => (
                "executionStartedEventDetails",
                json!({"input": data(input), "inputDetails": not_truncated(), "roleArn": role_arn}),
            ),
            EventKind::ExecutionSucceeded { output } => (
                "executionSucceededEventDetails",
                json!({"output": data(output), "outputDetails": not_truncated()}),
            ),
            EventKind::ExecutionFailed { error, cause } => (
                "executionFailedEventDetails",
                json!({"error": error, "cause": cause}),
            ),
            EventKind::ExecutionTimedOut { error, cause } => (
                "executionTimedOutEventDetails",
                json!({"error": error, "cause": cause}),
            ),
            EventKind::ExecutionAborted { error, cause } => (
                "executionAbortedEventDetails",
                json!({"error": error, "cause": cause}),
            ),
            EventKind::ExecutionRedriven { redrive_count } => (
                "executionRedrivenEventDetails",
                json!({"redriveCount": redrive_count}),
            ),
            EventKind::StateEntered { name, input, .. } => (
                "stateEnteredEventDetails",
                json!({"name": name, "input": data(input), "inputDetails": not_truncated()}),
            ),
            EventKind::StateExited {
                name,
                output,
                assigned,
                ..
            } => {
                let mut d =
                    json!({"name": name, "output": data(output), "outputDetails": not_truncated()});
                if let Some(values) = assigned {
                    // Each value as JSON text, as AWS gives it.
                    let texts: Map<String, Value> =
                        values.iter().map(|(k, v)| (k.clone(), text(v))).collect();
                    d["assignedVariables"] = Value::Object(texts);
                    d["assignedVariablesDetails"] = not_truncated();
                }
                ("stateExitedEventDetails", d)
            }
            EventKind::TaskScheduled {
                resource_type,
                resource,
                region,
                parameters,
                timeout_in_seconds,
            } => {
                let mut d = json!({"resourceType": resource_type, "resource": resource, "region": region, "parameters": data(parameters)});
                if let Some(t) = timeout_in_seconds {
                    d["timeoutInSeconds"] = json!(t);
                }
                ("taskScheduledEventDetails", d)
            }
            EventKind::TaskStarted {
                resource_type,
                resource,
            } => (
                "taskStartedEventDetails",
                json!({"resourceType": resource_type, "resource": resource}),
            ),
            EventKind::TaskSucceeded {
                resource_type,
                resource,
                output,
            } => (
                "taskSucceededEventDetails",
                json!({"resourceType": resource_type, "resource": resource, "output": data(output), "outputDetails": not_truncated()}),
            ),
            EventKind::TaskFailed {
                resource_type,
                resource,
                error,
                cause,
            } => (
                "taskFailedEventDetails",
                json!({"resourceType": resource_type, "resource": resource, "error": error, "cause": cause}),
            ),
            EventKind::TaskTimedOut {
                resource_type,
                resource,
                error,
                cause,
            } => (
                "taskTimedOutEventDetails",
                json!({"resourceType": resource_type, "resource": resource, "error": error, "cause": cause}),
            ),
            EventKind::ActivityScheduled {
                resource,
                input,
                timeout_in_seconds,
                heartbeat_in_seconds,
            } => {
                let mut d = json!({"resource": resource, "input": data(input), "inputDetails": not_truncated()});
                if let Some(t) = timeout_in_seconds {
                    d["timeoutInSeconds"] = json!(t);
                }
                if let Some(h) = heartbeat_in_seconds {
                    d["heartbeatInSeconds"] = json!(h);
                }
                ("activityScheduledEventDetails", d)
            }
            EventKind::ActivityStarted { worker_name } => (
                "activityStartedEventDetails",
                json!({"workerName": worker_name}),
            ),
            EventKind::ActivitySucceeded { output } => (
                "activitySucceededEventDetails",
                json!({"output": data(output), "outputDetails": not_truncated()}),
            ),
            EventKind::ActivityFailed { error, cause } => (
                "activityFailedEventDetails",
                json!({"error": error, "cause": cause}),
            ),
            EventKind::ActivityTimedOut { error, cause } => (
                "activityTimedOutEventDetails",
                json!({"error": error, "cause": cause}),
            ),
            EventKind::EvaluationFailed {
                state,
                location,
                error,
                cause,
            } => {
                let mut d = json!({"error": error, "cause": cause, "state": state});
                if let Some(l) = location {
                    d["location"] = json!(l);
                }
                ("evaluationFailedEventDetails", d)
            }
            EventKind::MapStateStarted { length } => {
                ("mapStateStartedEventDetails", json!({"length": length}))
            }
            EventKind::MapIterationStarted { name, index } => (
                "mapIterationStartedEventDetails",
                json!({"name": name, "index": index}),
            ),
            EventKind::MapIterationSucceeded { name, index } => (
                "mapIterationSucceededEventDetails",
                json!({"name": name, "index": index}),
            ),
            EventKind::MapIterationFailed { name, index } => (
                "mapIterationFailedEventDetails",
                json!({"name": name, "index": index}),
            ),
            EventKind::MapRunStarted { map_run_arn } => (
                "mapRunStartedEventDetails",
                json!({"mapRunArn": map_run_arn}),
            ),
            EventKind::MapRunRedriven {
                map_run_arn,
                redrive_count,
            } => (
                "mapRunRedrivenEventDetails",
                json!({"mapRunArn": map_run_arn, "redriveCount": redrive_count}),
            ),
            EventKind::MapRunFailed { error, cause } => (
                "mapRunFailedEventDetails",
                json!({"error": error, "cause": cause}),
            ),
            EventKind::ParallelStateStarted
            | EventKind::ParallelStateSucceeded
            | EventKind::ParallelStateFailed
            | EventKind::MapStateSucceeded
            | EventKind::MapStateFailed
            | EventKind::MapRunSucceeded => ("", Value::Null),
        };
        let mut out = Map::new();
        out.insert("timestamp".into(), json!(self.timestamp.to_string()));
        out.insert("type".into(), json!(self.kind.type_name()));
        out.insert("id".into(), json!(self.id));
        out.insert("previousEventId".into(), json!(self.previous_event_id));
        if !key.is_empty() {
            out.insert(key.into(), details);
        }
        Value::Object(out)
    }
}

/// How much of the history an execution keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HistoryMode {
    /// Count events only (ids stay right).
    Off,
    /// Build events without their data (inputs, outputs), for an observer to read and drop:
    /// progress displays at little cost and in bounded memory.
    Light,
    /// As `Light`, but only the events that tell a person watching something (tasks, Map
    /// states, Wait and Fail states, failures, the execution's start and end): Pass, Choice,
    /// Succeed and Parallel states' events and Map iterations' starts and successes are
    /// counted, not built, so that watching a run costs next to nothing (progress on a
    /// terminal).
    Notable,
    /// Keep every event with its data, as GetExecutionHistory returns them.
    Full,
}

/// The events of one execution.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct History {
    mode: HistoryMode,
    last_id: u64,
    events: Vec<Event>,
}

impl History {
    /// A history that keeps its events (`recording`), or only counts them.
    pub fn new(recording: bool) -> History {
        History::with_mode(if recording {
            HistoryMode::Full
        } else {
            HistoryMode::Off
        })
    }

    /// A history in the given mode.
    pub fn with_mode(mode: HistoryMode) -> History {
        History {
            mode,
            last_id: 0,
            events: Vec::new(),
        }
    }

    /// Whether events are kept with their data.
    pub fn recording(&self) -> bool {
        self.mode == HistoryMode::Full
    }

    /// The mode.
    pub fn mode(&self) -> HistoryMode {
        self.mode
    }

    /// Hands over the events held (the ones built since the last call, unless appended).
    pub(crate) fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Holds `events` (already numbered: an outcome's history gathers what an execution
    /// handed over).
    pub(crate) fn append(&mut self, events: Vec<Event>) {
        if let Some(last) = events.last() {
            self.last_id = self.last_id.max(last.id);
        }
        self.events.extend(events);
    }

    /// A history in `mode` that has had `events` events, holding none of them (a restored
    /// execution's: its events are in the store).
    pub(crate) fn counted(mode: HistoryMode, events: u64) -> History {
        History {
            mode,
            last_id: events,
            events: Vec::new(),
        }
    }

    /// How many events there have been.
    pub fn len(&self) -> u64 {
        self.last_id
    }

    /// True before the first event.
    pub fn is_empty(&self) -> bool {
        self.last_id == 0
    }

    /// The id the next event will get.
    pub fn next_id(&self) -> u64 {
        self.last_id + 1
    }

    /// Records an event that only says a state was entered or left on the way (a Pass, Choice
    /// or Succeed state): built in the modes that keep or show every event, counted in
    /// `Notable` and `Off`. Returns its id.
    pub(crate) fn push_minor(
        &mut self,
        previous_event_id: u64,
        timestamp: Timestamp,
        kind: impl FnOnce() -> EventKind,
    ) -> u64 {
        if self.mode == HistoryMode::Notable {
            self.last_id += 1;
            return self.last_id;
        }
        self.push(previous_event_id, timestamp, kind)
    }

    /// Records an event built by `kind` (only called when recording); returns its id.
    pub(crate) fn push(
        &mut self,
        previous_event_id: u64,
        timestamp: Timestamp,
        kind: impl FnOnce() -> EventKind,
    ) -> u64 {
        self.last_id += 1;
        if self.mode != HistoryMode::Off {
            self.events.push(Event {
                id: self.last_id,
                previous_event_id,
                timestamp,
                kind: kind(),
            });
        }
        self.last_id
    }

    /// The events held, in order: for an outcome, every event of an execution that records its
    /// history and is not durable (a durable one's are in its store); for a running execution,
    /// the events built since they were last taken.
    pub fn events(&self) -> &[Event] {
        &self.events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_count_even_when_not_recording() {
        let mut h = History::new(false);
        let t = Timestamp { unix_nanos: 0 };
        assert_eq!(
            h.push(0, t, || unreachable!("not built when not recording")),
            1
        );
        assert_eq!(h.push(1, t, || unreachable!()), 2);
        assert_eq!(h.len(), 2);
        assert!(h.events().is_empty());
    }

    #[test]
    fn event_data_reads_back_what_it_was_made_of_however_deep() {
        let mut deep = json!("core");
        for i in 0..300 {
            deep = json!({"w": deep, "i": i});
        }
        let data = EventData::of(&deep);
        assert_eq!(data.value().unwrap(), deep);
        assert_eq!(data.text(), deep.to_string());
        assert_eq!(EventData::null().value().unwrap(), Value::Null);
    }

    #[test]
    fn json_shape() {
        let mut h = History::new(true);
        let t = Timestamp {
            unix_nanos: 1_500_000_000,
        };
        h.push(0, t, || EventKind::StateEntered {
            state_type: "Pass".into(),
            name: "A".into(),
            input: json!({"x": 1}).into(),
        });
        h.push(1, t, || EventKind::MapStateSucceeded);
        assert_eq!(
            h.events()[0].to_json(),
            json!({"timestamp": "1970-01-01T00:00:01.500Z", "type": "PassStateEntered", "id": 1, "previousEventId": 0,
                   "stateEnteredEventDetails": {"name": "A", "input": "{\"x\":1}", "inputDetails": {"truncated": false}}})
        );
        assert_eq!(h.events()[1].to_json()["type"], "MapStateSucceeded");
    }
}
