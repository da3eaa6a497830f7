//! Parallel: every branch runs on the same input; the output is the array of their outputs.
//! The first branch to fail fails the state, and the other branches are stopped.

use serde_json::Value;
use stepstone_asl::states::Parallel;

use crate::Failure;
use crate::history::EventKind;
use crate::interpreter::{Execution, Flow, Link, RunId, Waiting};

impl Execution<'_> {
    pub(crate) fn parallel(&mut self, id: RunId, state: &Parallel) -> Flow {
        let mut step = || -> Result<Flow, Failure> {
            let mut input = match (&state.flow.parameters, &state.flow.arguments) {
                (Some(t), _) => self.parameters(id, &state.flow, t)?,
                (None, Some(arguments)) => {
                    let effective = self.effective_input(id, &state.flow)?;
                    let scope = self.jsonata_scope(id, &effective, None, None, None);
                    self.jsonata_value(id, "Arguments", arguments, &scope)?
                }
                (None, None) => self.effective_input(id, &state.flow)?,
            };
            if let Some(mocked) = self.probe_mock(id) {
                // TestState: the mock stands for every branch.
                return Ok(match mocked {
                    Ok(outputs) => {
                        self.complete(id, &state.flow, state.transition.as_ref(), outputs)
                    }
                    Err(f) => Flow::Fail(f),
                });
            }
            self.state_event(id, true, || EventKind::ParallelStateStarted);
            let n = state.branches.len();
            let fresh = self.new_children(n, n);
            let mut children = self.children_for(id, fresh);
            // Redriven: the branches that failed or were stopped go on from where they
            // stopped; the ones that succeeded keep their output.
            for (i, child) in std::mem::take(&mut children.to_redrive) {
                children.running.push((i, child));
                self.wake(id, child);
            }
            let (scope, sid, vars, last) = {
                let run = self.run(id);
                (run.scope, run.state, run.vars().child(), run.last_event)
            };
            let fresh: Vec<usize> = (0..n)
                .filter(|i| {
                    !children.has_result(*i) && children.running.iter().all(|(s, _)| s != i)
                })
                .collect();
            for &i in &fresh {
                let branch = scope.child(sid, i).expect("one graph per branch");
                // Every branch gets its own copy; the last one gets the original.
                let child_input = if Some(&i) == fresh.last() {
                    std::mem::take(&mut input)
                } else {
                    input.clone()
                };
                let child = self.spawn(
                    branch,
                    branch.start(),
                    child_input,
                    vars.clone(),
                    Some(Link {
                        parent: id,
                        slot: i,
                    }),
                    last,
                );
                children.running.push((i, child));
            }
            let all_done = children.all_done();
            self.run_mut(id).waiting = Waiting::Children(Box::new(children));
            Ok(if all_done {
                self.parallel_finish(id, state)
            } else {
                Flow::Blocked
            })
        };
        step().unwrap_or_else(Flow::Fail)
    }

    pub(crate) fn parallel_child_done(
        &mut self,
        parent: RunId,
        state: &Parallel,
        slot: usize,
        result: Result<Value, Failure>,
    ) -> Flow {
        let Waiting::Children(children) = &mut self.run_mut(parent).waiting else {
            unreachable!("a Parallel waits for its branches")
        };
        match result {
            Ok(output) => {
                children.done(slot, output);
                if !children.all_done() {
                    return Flow::Blocked;
                }
                self.parallel_finish(parent, state)
            }
            Err(failure) => {
                // The other branches stop where they are (see `fall`), or are let go if a
                // Retry or Catch handles the failure.
                children.fail(slot, Value::Null);
                Flow::Fail(failure)
            }
        }
    }

    fn parallel_finish(&mut self, id: RunId, state: &Parallel) -> Flow {
        let outputs = self.take_outputs(id);
        self.state_event(id, true, || EventKind::ParallelStateSucceeded);
        self.complete(id, &state.flow, state.transition.as_ref(), outputs)
    }

    /// A child run ended: hand it to its parent's state.
    pub(crate) fn child_done(&mut self, link: Link, result: Result<Value, Failure>) -> Flow {
        let (_, state) = self.current(link.parent);
        match &state.kind {
            stepstone_asl::StateKind::Parallel(p) => {
                self.parallel_child_done(link.parent, p, link.slot, result)
            }
            stepstone_asl::StateKind::Map(m) => {
                self.map_child_done(link.parent, m, link.slot, result)
            }
            _ => unreachable!("only Parallel and Map have children"),
        }
    }
}
