//! Task: dispatches work through the driver and resumes with its result or failure.

use serde_json::Value;
use stepstone_asl::states::{IntegrationPattern, NumberOrExpr, Resource, Task};
use stepstone_asl::timestamp::Timestamp;
use stepstone_asl::{errors, eval};

use crate::Failure;
use crate::history::{EventData, EventKind};
use crate::interpreter::probe::step;
use crate::interpreter::{Command, Execution, Flow, RunId, TaskRequest, Waiting};

impl Execution<'_> {
    pub(crate) fn task(&mut self, id: RunId, state: &Task) -> Flow {
        self.task_dispatch(id, state).unwrap_or_else(Flow::Fail)
    }

    fn task_dispatch(&mut self, id: RunId, state: &Task) -> Result<Flow, Failure> {
        let flow = &state.flow;
        let effective = self.effective_input(id, flow)?;
        let input = match (&flow.parameters, &flow.arguments) {
            (None, Some(arguments)) => {
                let scope = self.jsonata_scope(id, &effective, None, None, None);
                self.jsonata_value(id, "Arguments", arguments, &scope)?
            }
            (Some(t), _) => self
                .with_env(id, &effective, None, |env| env.template(t))
                .map_err(|mut e| {
                    // In a Task, a `.$` path that reads nothing is AWS's States.ParameterPathFailure.
                    if e.error == errors::RUNTIME {
                        e.error = errors::PARAMETER_PATH_FAILURE;
                    }
                    self.state_failure(id, e)
                })?,
            (None, None) => effective.clone(),
        };
        let step = if flow.arguments.is_some() {
            step::AFTER_ARGUMENTS
        } else {
            step::AFTER_PARAMETERS
        };
        self.inspect(id, step, || input.clone());
        self.check_size(id, &input, "the task's input")?;
        let region = match (&state.region, &state.region_path) {
            (Some(r), _) => Some(r.clone()),
            (None, Some(p)) => match self.with_env(id, &effective, None, |env| env.read(p)) {
                Some(Value::String(r)) => Some(r),
                other => {
                    return Err(self.state_failure(
                        id,
                        eval::Error::runtime(format!(
                            "The RegionPath '{}' must point to a region name, but found {}",
                            p.as_str(),
                            other.map_or("nothing".into(), |v| v.to_string())
                        )),
                    ));
                }
            },
            (None, None) => match &state.resource {
                Some(Resource::LambdaFunction { region, .. }) => Some(region.clone()),
                Some(Resource::Service { region, .. }) => region.clone(),
                _ => None,
            },
        };
        let timeout_seconds = self.task_seconds(
            id,
            &effective,
            state.timeout_seconds.as_ref(),
            state.timeout_seconds_path.as_ref(),
            "TimeoutSecondsPath",
        )?;
        let heartbeat_seconds = self.task_seconds(
            id,
            &effective,
            state.heartbeat_seconds.as_ref(),
            state.heartbeat_seconds_path.as_ref(),
            "HeartbeatSecondsPath",
        )?;
        let task_token = self.task_token(id);
        let (name, _) = self.current(id);
        let resource_arn = state.resource_arn.clone();
        let (resource_type, resource) = resource_names(state, &resource_arn);
        let attempt = self.run(id).retry_count;
        let token = self.idempotency_token(id, name);
        let recorded = if self.history.recording() {
            EventData::of(&input)
        } else {
            EventData::null()
        };
        let (rt, rs, rg) = (
            resource_type.clone(),
            resource.clone(),
            region.clone().unwrap_or_default(),
        );
        if matches!(state.resource, Some(Resource::Activity { .. })) {
            // An activity is queued for a worker: ActivityStarted comes when one takes it
            // (`Execution::activity_started`).
            self.event(id, || EventKind::ActivityScheduled {
                resource: rs,
                input: recorded,
                timeout_in_seconds: timeout_seconds,
                heartbeat_in_seconds: heartbeat_seconds,
            });
        } else {
            self.event(id, || EventKind::TaskScheduled {
                resource_type: rt,
                resource: rs,
                region: rg,
                parameters: recorded,
                timeout_in_seconds: timeout_seconds,
            });
            let (rt, rs) = (resource_type.clone(), resource.clone());
            self.event(id, || EventKind::TaskStarted {
                resource_type: rt,
                resource: rs,
            });
        }
        let invocation = match self.dispatches.get_mut(name) {
            Some(n) => {
                *n += 1;
                *n - 1
            }
            None => {
                self.dispatches.insert(name.to_owned(), 1);
                0
            }
        };
        let request = TaskRequest {
            run: id,
            invocation,
            execution_arn: self.info.execution_arn.clone(),
            state_name: name.to_owned(),
            resource: resource_arn,
            input,
            attempt,
            idempotency_token: token,
            region,
            timeout_seconds,
            heartbeat_seconds: task_token.as_ref().and(heartbeat_seconds),
            task_token,
        };
        self.run_mut(id).waiting = Waiting::Task {
            request: Box::new(request.clone()),
            resource_type,
            resource,
        };
        self.commands.push(Command::Dispatch(request));
        Ok(Flow::Blocked)
    }

    /// `TimeoutSeconds` or `HeartbeatSeconds`: the value, or what its `*Path` reads from the
    /// effective input (a positive integer, else AWS's message naming `path_field`).
    fn task_seconds(
        &self,
        id: RunId,
        effective: &Value,
        value: Option<&NumberOrExpr<i64>>,
        path: Option<&stepstone_asl::Path>,
        path_field: &str,
    ) -> Result<Option<u64>, Failure> {
        match value {
            Some(NumberOrExpr::Value(s)) => return Ok(Some(*s as u64)),
            Some(NumberOrExpr::Expr(e)) => {
                let field = path_field.trim_end_matches("Path");
                let n = self.jsonata_number(id, field, e, effective, true)?;
                if n < 1.0 {
                    return Err(self.state_failure(
                        id,
                        crate::interpreter::jsonata::query_error(format!(
                            "The JSONata expression '{}' specified for the field '{field}' returned a value that is not a positive integer: {n}",
                            e.0
                        )),
                    ));
                }
                return Ok(Some(n as u64));
            }
            None => {}
        }
        let Some(p) = path else { return Ok(None) };
        match self.with_env(id, effective, None, |env| env.read(p)) {
            Some(Value::Number(n)) if n.as_u64().is_some_and(|s| s > 0) => Ok(n.as_u64()),
            other => Err(self.state_failure(
                id,
                eval::Error::runtime(format!(
                    "The {path_field} parameter does not reference a positive integer: {} == {}",
                    p.as_str(),
                    other.map_or("null".into(), |v| v.to_string())
                )),
            )),
        }
    }

    /// The idempotency token of run `id`'s current attempt at its Task `name`:
    /// `<execution ARN>/<state>/<entered event id>/<attempt>`. Stable across resumes (a task sent
    /// again after a crash carries the same one), different for each attempt.
    pub(crate) fn idempotency_token(&self, id: RunId, name: &str) -> String {
        let run = self.run(id);
        // In a distributed Map's child execution, that execution's ARN (its event ids are its
        // own).
        let child = run
            .in_child_execution
            .then(|| self.child_execution_of(id))
            .flatten();
        let execution = match child {
            Some(child) => child.arn.to_owned(),
            None => self.info.execution_arn.clone(),
        };
        format!(
            "{execution}/{name}/{}/{}",
            run.entered_event, run.retry_count
        )
    }

    /// `$$.Task.Token` for run `id`, if its current state is a Task that waits for its token:
    /// the attempt's idempotency token, hex-encoded and signed (`tokens.rs`). It names the
    /// execution (see [`crate::signal::token_names`]) and is the same after a resume.
    pub(crate) fn task_token(&self, id: RunId) -> Option<String> {
        let (name, state) = self.current(id);
        let stepstone_asl::StateKind::Task(task) = &state.kind else {
            return None;
        };
        // A callback task, or an activity (whose worker answers with the token).
        let waits_for_token = matches!(
            &task.resource,
            Some(
                Resource::Service {
                    pattern: IntegrationPattern::WaitForTaskToken,
                    ..
                } | Resource::Activity { .. }
            )
        );
        if !waits_for_token {
            return None;
        }
        let idempotency = self.idempotency_token(id, name);
        Some(crate::tokens::task_token(&self.token_key, &idempotency))
    }

    /// A worker took the activity task waiting for `token` (GetActivityTask): records
    /// ActivityStarted with its name. False when no activity task waits for it.
    pub fn activity_started(&mut self, token: &str, worker_name: &str, now: Timestamp) -> bool {
        let Some(id) = self.waiting_for_token(token) else {
            return false;
        };
        let (_, state) = self.current(id);
        let stepstone_asl::StateKind::Task(task) = &state.kind else {
            return false;
        };
        if !matches!(task.resource, Some(Resource::Activity { .. })) {
            return false;
        }
        self.now = now;
        let worker_name = worker_name.to_owned();
        self.event(id, || EventKind::ActivityStarted { worker_name });
        true
    }

    /// The task finished: record it, then ResultSelector, ResultPath, OutputPath and Assign.
    pub(crate) fn task_done(&mut self, id: RunId, result: Result<Value, Failure>) -> Flow {
        let Waiting::Task {
            resource_type,
            resource,
            ..
        } = std::mem::replace(&mut self.run_mut(id).waiting, Waiting::Nothing)
        else {
            unreachable!("checked by the caller")
        };
        let (_, state) = self.current(id);
        let stepstone_asl::StateKind::Task(task) = &state.kind else {
            unreachable!("waiting in a Task state")
        };
        match result {
            Ok(output) => {
                if let Err(f) = self.check_size(id, &output, "the task's result") {
                    return Flow::Fail(f);
                }
                self.inspect(id, step::RESULT, || output.clone());
                let recorded = if self.history.recording() {
                    EventData::of(&output)
                } else {
                    EventData::null()
                };
                if resource_type == ACTIVITIES {
                    self.event(id, || EventKind::ActivitySucceeded { output: recorded });
                } else {
                    self.event(id, || EventKind::TaskSucceeded {
                        resource_type,
                        resource,
                        output: recorded,
                    });
                }
                self.complete(id, &task.flow, task.transition.as_ref(), output)
            }
            Err(failure) => {
                let (error, cause) = (failure.error.clone(), failure.cause.clone());
                let timed_out =
                    failure.error == errors::TIMEOUT || failure.error == errors::HEARTBEAT_TIMEOUT;
                if resource_type == ACTIVITIES {
                    self.event(id, || {
                        if timed_out {
                            EventKind::ActivityTimedOut { error, cause }
                        } else {
                            EventKind::ActivityFailed { error, cause }
                        }
                    });
                } else if timed_out {
                    self.event(id, || EventKind::TaskTimedOut {
                        resource_type,
                        resource,
                        error,
                        cause,
                    });
                } else {
                    self.event(id, || EventKind::TaskFailed {
                        resource_type,
                        resource,
                        error,
                        cause,
                    });
                }
                Flow::Fail(failure)
            }
        }
    }

    /// States.DataLimitExceeded for a state whose output nests deeper than
    /// [`crate::limits::MAX_DEPTH`].
    pub(crate) fn too_deep_failure(&self, id: RunId) -> Failure {
        let (name, _) = self.current(id);
        Failure::new(
            errors::DATA_LIMIT_EXCEEDED,
            format!(
                "The state/task '{name}' returned a result that nests deeper than {} levels, the most Stepstone keeps.",
                crate::limits::MAX_DEPTH
            ),
        )
    }

    /// States.DataLimitExceeded when a payload is over the limit.
    pub(crate) fn check_size(&self, id: RunId, value: &Value, what: &str) -> Result<(), Failure> {
        let size = crate::limits::json_size(value);
        if size > self.limits.max_payload_bytes {
            return Err(self.over_limit_failure(id, what, size));
        }
        Ok(())
    }

    /// States.DataLimitExceeded for a state whose output is over the payload limit.
    pub(crate) fn too_large_failure(&self, id: RunId, output: &Value) -> Failure {
        self.over_limit_failure(id, "its output", crate::limits::json_size(output))
    }

    fn over_limit_failure(&self, id: RunId, what: &str, size: usize) -> Failure {
        let (name, _) = self.current(id);
        let limit = self.limits.max_payload_bytes;
        Failure::new(
            errors::DATA_LIMIT_EXCEEDED,
            format!(
                "The state/task '{name}' returned a result with a size exceeding the maximum number of bytes service limit: {what} is {size} bytes, the limit is {limit}."
            ),
        )
    }
}

/// The `resourceType` of an activity task.
const ACTIVITIES: &str = "activities";

/// `resourceType` and `resource` as Step Functions' history shows them.
fn resource_names(state: &Task, arn: &str) -> (String, String) {
    match &state.resource {
        Some(Resource::Service {
            service, action, ..
        }) => (service.clone(), action.clone()),
        Some(Resource::LambdaFunction { .. }) => ("lambda".into(), arn.to_owned()),
        Some(Resource::Activity { .. }) => (ACTIVITIES.into(), arn.to_owned()),
        None => (String::new(), arn.to_owned()),
    }
}
