//! Map: runs the item processor once per item, a bounded number at a time, and outputs the
//! array of results in item order. DISTRIBUTED mode without an ItemReader runs the same way,
//! its iterations as child runs.

use serde_json::Value;
use stepstone_asl::eval;
use stepstone_asl::states::{Map, NumberOrExpr};

use crate::Failure;
use crate::children::Children;
use crate::history::EventKind;
use crate::interpreter::{Execution, Flow, Link, RunId, Waiting};

impl Execution<'_> {
    pub(crate) fn map(&mut self, id: RunId, state: &Map) -> Flow {
        self.map_start(id, state).unwrap_or_else(Flow::Fail)
    }

    fn map_start(&mut self, id: RunId, state: &Map) -> Result<Flow, Failure> {
        // The raw input stays in place for ResultPath; the effective input is a copy only when
        // InputPath selects part of it.
        let owned = self.effective_copy(id, &state.flow)?;
        let effective = owned.as_ref().unwrap_or(&self.run(id).input);
        let runtime = |s: &Self, m: String| s.state_failure(id, eval::Error::runtime(m));
        let items = match &state.items_path {
            Some(p) => self.with_env(id, effective, None, |env| env.read(p)),
            None if state.items.is_some() => {
                return Err(runtime(self, "JSONata Items are not evaluated yet".into()));
            }
            None => Some(effective.clone()),
        };
        let items = match items {
            Some(Value::Array(items)) => items,
            other => {
                let path = state.items_path.as_ref().map_or("$", |p| p.as_str());
                return Err(runtime(
                    self,
                    format!(
                        "Items at '{path}' must be a JSON array, but found {}",
                        other.map_or("nothing".into(), |v| v.to_string())
                    ),
                ));
            }
        };
        let read_int = |s: &Self, field: &str, p: &stepstone_asl::Path| -> Result<i64, Failure> {
            let v = s
                .with_env(id, effective, None, |env| env.read(p))
                .unwrap_or(Value::Null);
            integer(&v).ok_or_else(|| {
                runtime(
                    s,
                    format!(
                        "The {field} field refers to value \"{}\" which is not a valid integer: {}",
                        bare(&v),
                        p.as_str()
                    ),
                )
            })
        };
        let max_concurrency = match (&state.max_concurrency, &state.max_concurrency_path) {
            (Some(NumberOrExpr::Value(n)), _) => *n,
            (_, Some(p)) => read_int(self, "MaxConcurrencyPath", p)?,
            _ => 0,
        };
        let tolerated_count = match (
            &state.tolerated_failure_count,
            &state.tolerated_failure_count_path,
        ) {
            (Some(NumberOrExpr::Value(n)), _) => Some(*n),
            (_, Some(p)) => Some(read_int(self, "ToleratedFailureCountPath", p)?),
            _ => None,
        };
        if tolerated_count.is_some_and(|n| n < 0) {
            return Err(runtime(
                self,
                "ToleratedFailureCount cannot be negative.".into(),
            ));
        }
        let tolerated_percentage = match (
            &state.tolerated_failure_percentage,
            &state.tolerated_failure_percentage_path,
        ) {
            (Some(NumberOrExpr::Value(x)), _) => Some(*x),
            (_, Some(p)) => {
                let v = self
                    .with_env(id, effective, None, |env| env.read(p))
                    .unwrap_or(Value::Null);
                Some(float(&v).ok_or_else(|| {
                    runtime(self, format!("The ToleratedFailurePercentagePath field refers to value \"{}\" which is not a valid float: {}", bare(&v), p.as_str()))
                })?)
            }
            _ => None,
        };
        if tolerated_percentage.is_some_and(|x| !(0.0..=100.0).contains(&x)) {
            return Err(runtime(
                self,
                "ToleratedFailurePercentage must be between 0 and 100.".into(),
            ));
        }
        let length = items.len();
        self.event(id, || EventKind::MapStateStarted { length });
        let cap = self.limits.max_map_concurrency;
        let concurrency = if max_concurrency <= 0 {
            cap
        } else {
            (max_concurrency as usize).min(cap)
        };
        let mut children = Children::new(length, concurrency);
        children.tolerated_count = tolerated_count.map(|n| n as u64);
        children.tolerated_percentage = tolerated_percentage;
        // Iteration inputs are computed as iterations start, so a large Map never holds them
        // all at once.
        children.waiting = items.into_iter().enumerate().collect();
        let run = self.run_mut(id);
        run.input_for_items = owned;
        run.waiting = Waiting::Children(Box::new(children));
        if length == 0 {
            return Ok(self.map_finish(id, state));
        }
        self.map_start_iterations(id, state)?;
        Ok(Flow::Blocked)
    }

    /// Starts iterations while there is room under the concurrency limit.
    fn map_start_iterations(&mut self, id: RunId, state: &Map) -> Result<(), Failure> {
        let (name, _) = self.current(id);
        loop {
            let Waiting::Children(children) = &mut self.run_mut(id).waiting else {
                return Ok(());
            };
            if children.running.len() >= children.concurrency {
                return Ok(());
            }
            let Some((index, item)) = children.waiting.pop_front() else {
                return Ok(());
            };
            let run = self.run(id);
            let effective = run.input_for_items.as_ref().unwrap_or(&run.input);
            let selector = state
                .item_selector
                .as_ref()
                .or(state.flow.parameters.as_ref());
            let input = match selector {
                Some(t) => self
                    .with_env(id, effective, Some((index, &item)), |env| env.template(t))
                    .map_err(|e| self.state_failure(id, e))?,
                None => item,
            };
            self.event(id, || EventKind::MapIterationStarted {
                name: name.to_owned(),
                index,
            });
            let (scope, sid, vars, last) = {
                let run = self.run(id);
                (run.scope, run.state, run.vars.child(), run.last_event)
            };
            let processor = scope.child(sid, 0).expect("a Map has a processor");
            let child = self.spawn(
                processor,
                processor.start(),
                input,
                vars,
                Some(Link {
                    parent: id,
                    slot: index,
                }),
                last,
            );
            let Waiting::Children(children) = &mut self.run_mut(id).waiting else {
                unreachable!()
            };
            children.running.push((index, child));
        }
    }

    pub(crate) fn map_child_done(
        &mut self,
        parent: RunId,
        state: &Map,
        slot: usize,
        result: Result<Value, Failure>,
    ) -> Flow {
        let (name, _) = self.current(parent);
        let Waiting::Children(children) = &mut self.run_mut(parent).waiting else {
            unreachable!("a Map waits for its iterations")
        };
        match result {
            Ok(output) => {
                children.done(slot, output);
                self.event(parent, || EventKind::MapIterationSucceeded {
                    name: name.to_owned(),
                    index: slot,
                });
            }
            Err(failure) => {
                children.failed += 1;
                let tolerated = children.tolerates_failures();
                children.done(slot, failure.to_output());
                let too_many = children.too_many_failures();
                self.event(parent, || EventKind::MapIterationFailed {
                    name: name.to_owned(),
                    index: slot,
                });
                if too_many {
                    let Waiting::Children(children) =
                        std::mem::replace(&mut self.run_mut(parent).waiting, Waiting::Nothing)
                    else {
                        unreachable!()
                    };
                    for (_, sibling) in children.running {
                        self.remove(sibling);
                    }
                    self.event(parent, || EventKind::MapStateFailed);
                    return Flow::Fail(if tolerated {
                        Failure::new(
                            "States.ExceedToleratedFailureThreshold",
                            "The specified tolerated failure threshold was exceeded",
                        )
                    } else {
                        failure
                    });
                }
            }
        }
        let Waiting::Children(children) = &self.run(parent).waiting else {
            unreachable!()
        };
        if children.all_done() {
            return self.map_finish(parent, state);
        }
        match self.map_start_iterations(parent, state) {
            Ok(()) => Flow::Blocked,
            Err(f) => Flow::Fail(f),
        }
    }

    fn map_finish(&mut self, id: RunId, state: &Map) -> Flow {
        let run = self.run_mut(id);
        run.input_for_items = None;
        let Waiting::Children(children) = std::mem::replace(&mut run.waiting, Waiting::Nothing)
        else {
            unreachable!()
        };
        let outputs = Value::Array(
            children
                .results
                .into_iter()
                .map(|r| r.expect("all done"))
                .collect(),
        );
        self.event(id, || EventKind::MapStateSucceeded);
        match self.finish_data_flow(id, &state.flow, outputs) {
            Ok(out) => self.exit(id, state.transition.as_ref(), out),
            Err(f) => Flow::Fail(f),
        }
    }
}

/// An integer, or a string holding one (AWS accepts `"1"` from a path).
fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A value as these causes quote it: strings without their quotes.
fn bare(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
