//! The data flow shared by the states: InputPath, Parameters, ResultSelector, ResultPath,
//! OutputPath and Assign, moving values instead of copying them where AWS semantics allow.

use std::sync::OnceLock;

use serde_json::{Map, Value};
use stepstone_asl::eval::{self, Env};
use stepstone_asl::intrinsics::splitmix64;
use stepstone_asl::states::{Assign, DataFlow, Transition};
use stepstone_asl::{StateKind, errors};

use super::context::LazyContext;
use super::probe::step;
use super::{Execution, Flow, OutputFrom, RunId};
use crate::failure::Failure;
use crate::history::{EventData, EventKind};

impl Execution<'_> {
    /// The environment for evaluating paths of run `id` with `$` = `input`.
    pub(crate) fn with_env<T>(
        &self,
        id: RunId,
        input: &Value,
        item: Option<(usize, &Value)>,
        f: impl FnOnce(&Env) -> T,
    ) -> T {
        let run = self.run(id);
        let (name, _) = self.current(id);
        let (_, state) = self.current(id);
        let retriable = matches!(
            state.kind,
            StateKind::Task(_) | StateKind::Parallel(_) | StateKind::Map(_)
        );
        let context = LazyContext {
            task_token: self.task_token(id),
            info: &self.info,
            state_name: name,
            entered: run.entered_time,
            retry_count: retriable.then_some(run.retry_count),
            item,
            child: run
                .in_child_execution
                .then(|| self.child_execution_of(id))
                .flatten(),
            cell: OnceLock::new(),
        };
        let counter = std::cell::Cell::new(
            self.seed
                ^ run.entered_event.wrapping_mul(0x9E37_79B9)
                ^ u64::from(run.retry_count) << 40,
        );
        let random = || {
            let next = splitmix64(counter.get());
            counter.set(next);
            next
        };
        // TestState may give the context object whole.
        let given = self.probe.as_ref().and_then(|p| p.context.as_ref());
        let env = Env {
            input,
            context: match given {
                Some(c) => c,
                None => &context,
            },
            variables: run.vars(),
            random: &random,
            max_bytes: self.limits.max_payload_bytes,
        };
        f(&env)
    }

    /// Prefixes an evaluation error with the state and its entered event, as AWS does.
    pub(crate) fn state_failure(&self, id: RunId, e: eval::Error) -> Failure {
        if e.error == errors::QUERY_EVALUATION_ERROR {
            self.evaluation_failed.replace(Some((id, None)));
        }
        let (name, _) = self.current(id);
        let event = self.run(id).entered_event;
        Failure::new(
            e.error,
            format!(
                "An error occurred while executing the state '{name}' (entered at the event id #{event}). {}",
                e.message
            ),
        )
    }

    /// InputPath: the effective input of the current state. The raw input is moved, not
    /// copied, when nothing needs it later: a ResultPath of `$` replaces it, and there is no
    /// Retry (which starts the state over) or Catch (which writes the error into it).
    pub(crate) fn effective_input(&mut self, id: RunId, flow: &DataFlow) -> Result<Value, Failure> {
        // A JSONata state's Output and Assign read `$states.input`: it stays.
        // So does a child execution's: a redrive enters its state again with it (its events,
        // where the parent's runs find theirs, are not in the history).
        let raw_needed_later = self.handles_errors(id)
            || self.is_jsonata(id)
            || self.run(id).in_child_execution
            || !flow.result_path.as_ref().is_some_and(is_root);
        let run = self.run_mut(id);
        let raw = if raw_needed_later {
            run.input().clone()
        } else {
            run.take_input()
        };
        if self.probe.is_none() {
            return self.select(id, raw, flow.input_path.as_ref());
        }
        let effective = self.select(id, raw, flow.input_path.as_ref());
        if let Ok(v) = &effective {
            self.inspect(id, step::AFTER_INPUT_PATH, || v.clone());
        }
        effective
    }

    /// Evaluates `f` with `$` = the current state's effective input, reading the raw input in
    /// place when InputPath is `$` (the common case) instead of copying it.
    pub(crate) fn on_effective<T>(
        &self,
        id: RunId,
        flow: &DataFlow,
        f: impl FnOnce(&Env) -> Result<T, eval::Error>,
    ) -> Result<T, Failure> {
        let owned = self.effective_copy(id, flow)?;
        let effective = owned.as_ref().unwrap_or(self.run(id).input());
        self.with_env(id, effective, None, f)
            .map_err(|e| self.state_failure(id, e))
    }

    /// The effective input as a new value, or `None` when it is the raw input itself
    /// (InputPath `$`), which then stays in place.
    pub(crate) fn effective_copy(
        &self,
        id: RunId,
        flow: &DataFlow,
    ) -> Result<Option<Value>, Failure> {
        let copy = match flow.input_path.as_ref() {
            Some(p) if is_root(p) => None,
            None => Some(Value::Object(Map::new())),
            Some(p) => {
                let raw = self.run(id).input();
                let part = self.with_env(id, raw, None, |env| env.read(p));
                let part = part.ok_or_else(|| {
                    self.state_failure(
                        id,
                        eval::Error::runtime(format!(
                            "Invalid path '{}' : No results for path: {}",
                            p.as_str(),
                            p
                        )),
                    )
                })?;
                Some(part)
            }
        };
        self.inspect(id, step::AFTER_INPUT_PATH, || {
            copy.clone().unwrap_or_else(|| self.run(id).input().clone())
        });
        Ok(copy)
    }

    /// InputPath or OutputPath applied to `value`.
    pub(crate) fn select(
        &self,
        id: RunId,
        value: Value,
        path: Option<&stepstone_asl::Path>,
    ) -> Result<Value, Failure> {
        let read = |v: &Value| path.and_then(|p| self.with_env(id, v, None, |env| env.read(p)));
        eval::filter(value, path, read).map_err(|e| self.state_failure(id, e))
    }

    /// ResultSelector, ResultPath and OutputPath, after a state produced `result`; then Assign
    /// (with the variables as they were before the state, and `$` = the result).
    pub(crate) fn finish_data_flow(
        &mut self,
        id: RunId,
        flow: &DataFlow,
        result: Value,
    ) -> Result<Value, Failure> {
        if self.is_jsonata(id) {
            return self.jsonata_finish(id, flow.output.as_ref(), flow.assign.as_ref(), result);
        }
        // The result is not needed after ResultSelector: its subtrees move, not copy.
        let result = match &flow.result_selector {
            Some(t) => self
                .with_env(id, &Value::Null, None, |env| {
                    eval::template_taking(env, t, result)
                })
                .map_err(|e| self.state_failure(id, e))?,
            None => result,
        };
        let assigned = match &flow.assign {
            Some(assign) => Some(
                self.evaluate_assign(id, assign, &result)
                    .map_err(|e| self.state_failure(id, e))?,
            ),
            None => None,
        };
        self.inspect(id, step::AFTER_RESULT_SELECTOR, || result.clone());
        let output = match self.run_mut(id).output_from_result.take() {
            // The raw input was consumed by Parameters: the output follows from the result.
            Some(OutputFrom::Result) => self.select(id, result, flow.output_path.as_ref())?,
            Some(OutputFrom::Suffix(steps)) => {
                self.select_steps(id, result, &steps, flow.output_path.as_ref())?
            }
            None => {
                let input = self.run_mut(id).take_input();
                let merged = eval::merge_result(input, flow.result_path.as_ref(), result)
                    .map_err(|e| self.state_failure(id, e))?;
                self.inspect(id, step::AFTER_RESULT_PATH, || merged.clone());
                self.select(id, merged, flow.output_path.as_ref())?
            }
        };
        if let Some(values) = assigned {
            self.apply_assign(id, values);
        }
        Ok(output)
    }

    /// OutputPath inside ResultPath, applied to the result alone: the part of OutputPath below
    /// ResultPath. Errors name the whole OutputPath, as AWS does.
    fn select_steps(
        &self,
        id: RunId,
        value: Value,
        steps: &[stepstone_asl::path::Step],
        whole: Option<&stepstone_asl::Path>,
    ) -> Result<Value, Failure> {
        let found = stepstone_asl::path::get(&value, steps).is_some();
        if !found {
            return self.select(id, Value::Null, whole);
        }
        let mut value = value;
        let mut at = &mut value;
        for step in steps {
            at = match (step, at) {
                (stepstone_asl::path::Step::Field(n), Value::Object(m)) => {
                    m.get_mut(n).expect("found")
                }
                (stepstone_asl::path::Step::Index(i), Value::Array(a)) => &mut a[*i],
                _ => unreachable!("found"),
            };
        }
        Ok(std::mem::take(at))
    }

    /// Parameters evaluated with `$` = the effective input. When nothing reads the raw input
    /// afterwards (see [`OutputFrom`]), its subtrees move into the parameters instead of being
    /// copied.
    pub(crate) fn parameters(
        &mut self,
        id: RunId,
        flow: &DataFlow,
        t: &stepstone_asl::Template,
    ) -> Result<Value, Failure> {
        match self.output_ignores_input(id, flow) {
            Some(from) => {
                let raw = self.run_mut(id).take_input();
                self.run_mut(id).output_from_result = Some(from);
                self.with_env(id, &Value::Null, None, |env| {
                    eval::template_taking(env, t, raw)
                })
                .map_err(|e| self.state_failure(id, e))
            }
            None => self.on_effective(id, flow, |env| env.template(t)),
        }
    }

    /// Whether the current state's output can be computed from its result alone, so its raw
    /// input is dead once Parameters are evaluated: InputPath `$`, no Retry or Catch (a retry
    /// starts over from the input, a catch writes into it), and ResultPath `$`, or an OutputPath
    /// inside the ResultPath (which must still apply to the input, or AWS's
    /// States.ResultPathMatchFailure would be lost).
    fn output_ignores_input(&self, id: RunId, flow: &DataFlow) -> Option<OutputFrom> {
        if self.handles_errors(id)
            || self.run(id).in_child_execution
            || !flow.input_path.as_ref().is_some_and(is_root)
        {
            return None;
        }
        let result_path = flow.result_path.as_ref()?;
        if is_root(result_path) {
            return Some(OutputFrom::Result);
        }
        let output_path = flow.output_path.as_ref()?;
        let (rp, op) = (result_path.steps()?, output_path.steps()?);
        let inside =
            matches!(output_path.root(), stepstone_asl::path::Root::Input) && op.starts_with(rp);
        (inside && eval::result_path_applies(self.run(id).input(), result_path))
            .then(|| OutputFrom::Suffix(op[rp.len()..].to_vec()))
    }

    /// True when the current state has Retry or Catch.
    /// (In a TestState, the tested state keeps its raw input too: each step is inspected.)
    #[inline]
    fn handles_errors(&self, id: RunId) -> bool {
        if self.probed(id) {
            return true;
        }
        let (_, state) = self.current(id);
        match &state.kind {
            StateKind::Task(t) => !t.errors.retry.is_empty() || !t.errors.catch.is_empty(),
            StateKind::Parallel(p) => !p.errors.retry.is_empty() || !p.errors.catch.is_empty(),
            StateKind::Map(m) => !m.errors.retry.is_empty() || !m.errors.catch.is_empty(),
            _ => false,
        }
    }

    /// Evaluates an Assign with `$` = `input`, without applying it.
    pub(crate) fn evaluate_assign(
        &self,
        id: RunId,
        assign: &Assign,
        input: &Value,
    ) -> Result<Map<String, Value>, eval::Error> {
        match assign {
            Assign::JsonPath(t) => match self.with_env(id, input, None, |env| env.template(t))? {
                Value::Object(values) => {
                    crate::vars::check_sizes(&values, self.limits.max_payload_bytes).map_err(
                        |m| eval::Error {
                            error: errors::DATA_LIMIT_EXCEEDED,
                            message: m,
                        },
                    )?;
                    Ok(values)
                }
                _ => unreachable!("Assign is validated to be an object"),
            },
            // A JSONata Assign belongs to a JSONata state, whose fields go through
            // `jsonata_assign` (engine/src/jsonata.rs).
            Assign::Jsonata(_) => unreachable!("a JSONata state's Assign is evaluated as JSONata"),
        }
    }

    /// States.DataLimitExceeded when what a state assigns is over AWS's variable limits.
    pub(crate) fn check_assign_sizes(
        &self,
        id: RunId,
        values: &Map<String, Value>,
    ) -> Result<(), Failure> {
        crate::vars::check_sizes(values, self.limits.max_payload_bytes).map_err(|m| {
            self.state_failure(
                id,
                eval::Error {
                    error: errors::DATA_LIMIT_EXCEEDED,
                    message: m,
                },
            )
        })
    }

    /// Evaluates and applies an Assign.
    pub(crate) fn assign(
        &mut self,
        id: RunId,
        assign: &Assign,
        input: &Value,
    ) -> Result<(), eval::Error> {
        let values = self.evaluate_assign(id, assign, input)?;
        self.apply_assign(id, values);
        Ok(())
    }

    /// A state's work gave `result`: the rest of its data flow, then on to the next state (or
    /// its failure).
    pub(crate) fn complete(
        &mut self,
        id: RunId,
        flow: &DataFlow,
        transition: Option<&Transition>,
        result: Value,
    ) -> Flow {
        match self.finish_data_flow(id, flow, result) {
            Ok(out) => self.exit(id, transition, out),
            Err(f) => Flow::Fail(f),
        }
    }

    /// Applies what a state assigned to its run's variables (all at once, after the state's
    /// other fields were evaluated), keeping a copy for its StateExited event when the history
    /// keeps data.
    pub(crate) fn apply_assign(&mut self, id: RunId, values: Map<String, Value>) {
        let keep = self.history.recording();
        let run = self.run_mut(id);
        if keep {
            run.assigned = Some(values.clone());
        }
        run.assign(values);
    }

    /// Records the current state's StateExited event with `output` and what it assigned.
    pub(crate) fn record_exit(&mut self, id: RunId, output: &Value) {
        let (name, state) = self.current(id);
        if !self.history.recording() {
            // Nothing owned to carry into the event (this is every state's path on an
            // execution that keeps no history data).
            let minor = super::step::passes_through(&state.kind);
            self.state_event(id, minor, || EventKind::StateExited {
                state_type: state.kind.type_name().into(),
                name: name.to_owned(),
                output: EventData::null(),
                assigned: None,
            });
            return;
        }
        let recorded = EventData::of(output);
        let assigned = self.run_mut(id).assigned.take();
        self.event(id, || EventKind::StateExited {
            state_type: state.kind.type_name().into(),
            name: name.to_owned(),
            output: recorded,
            assigned,
        });
    }

    /// Records the exited event and goes on to the next state or ends the run.
    pub(crate) fn exit(
        &mut self,
        id: RunId,
        transition: Option<&Transition>,
        output: Value,
    ) -> Flow {
        self.record_exit(id, &output);
        match transition {
            Some(Transition::Next(next)) => Flow::Next(
                self.run(id).scope.id(next).expect("validated target"),
                output,
            ),
            _ => Flow::End(output),
        }
    }
}

/// `$` itself.
pub(crate) fn is_root(path: &stepstone_asl::Path) -> bool {
    matches!(path.root(), stepstone_asl::path::Root::Input)
        && path.steps().is_some_and(<[_]>::is_empty)
}
