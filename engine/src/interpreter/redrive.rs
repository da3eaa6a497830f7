//! Redrive (RedriveExecution): a FAILED, ABORTED or TIMED_OUT execution goes on from where it
//! stopped, with the same ARN, input and definition.
//!
//! AWS's rules, as the Step Functions API reference gives them: the states that succeeded are
//! not run again and their results stand; the unsuccessful state is run again; a Parallel or
//! inline Map reruns only the branches and iterations that failed or were stopped. Stepstone
//! applies the rule at every level: a rerun iteration goes on from the state where it stopped,
//! not from its start.
//!
//! What makes it possible: a run that fails, or is stopped, is not dropped but frozen
//! (`Run::fallen`) where it stands, with its variables, and a Map or Parallel keeps its
//! children's results. The raw input of a frozen state is read back from its StateEntered
//! event (the run itself may have moved it into the state's work).

use serde_json::Value;
use stepstone_asl::timestamp::Timestamp;

use crate::history::{Event, EventKind};
use crate::interpreter::{Execution, RunId, Status, Waiting};

/// Why an execution cannot be redriven: AWS's ExecutionNotRedrivable, with its reasons.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedriveError {
    /// Only FAILED, ABORTED and TIMED_OUT executions can be redriven.
    #[error("Execution is {0} and cannot be redriven.")]
    Status(&'static str),
    /// Its history reached the event limit.
    #[error("Execution history event limit exceeded.")]
    HistoryLimit,
    /// It was stored by a Stepstone that did not keep where it stopped.
    #[error("the execution was stored by an older Stepstone, without where it stopped")]
    NoRedrivePoint,
    /// A state to run again has no StateEntered event to read its input from.
    #[error("history event #{0} (the input of a state to run again) is missing")]
    MissingEvent(u64),
}

impl Execution<'_> {
    /// Whether [`Execution::redrive`] would accept this execution.
    pub fn redrivable(&self) -> Result<(), RedriveError> {
        if matches!(self.status, Status::Running | Status::Succeeded(_)) {
            return Err(RedriveError::Status(self.status.as_str()));
        }
        if let Some(limit) = self.limits.max_history_events
            && self.history.len() >= limit
        {
            return Err(RedriveError::HistoryLimit);
        }
        if self.root().is_none() {
            return Err(RedriveError::NoRedrivePoint);
        }
        Ok(())
    }

    /// The history events a redrive reads: the StateEntered events of the states it enters
    /// again (their raw inputs).
    pub fn redrive_reads(&self) -> Vec<u64> {
        self.runs()
            .filter(|(_, r)| r.fallen && r.entered && !r.in_child_execution)
            .map(|(_, r)| r.entered_event)
            .collect()
    }

    /// Redrives the execution at `now`: an ExecutionRedriven event, then the run that stopped
    /// is ready to enter its state again (call [`Execution::resume`]). `event` gives the
    /// history events [`Execution::redrive_reads`] names (a restored execution does not hold
    /// its events; the store does).
    pub fn redrive(
        &mut self,
        now: Timestamp,
        mut event: impl FnMut(u64) -> Option<Event>,
    ) -> Result<(), RedriveError> {
        self.redrivable()?;
        let root = self.root().ok_or(RedriveError::NoRedrivePoint)?;
        // Every frozen run enters its state again with the input it had, and its retriers
        // start over. A Map or Parallel keeps its children for `children_for`.
        for run in self.runs_mut() {
            if !run.fallen {
                continue;
            }
            // A child execution's events are not in this history: its run enters again with
            // the input it holds (the state's raw input, kept until the state is left).
            if run.entered && !run.in_child_execution {
                let input = entered_input(event(run.entered_event), run.entered_event)
                    .ok_or(RedriveError::MissingEvent(run.entered_event))?;
                run.set_input(input);
            }
            run.attempts.clear();
            run.retry_count = 0;
            run.output_from_result = None;
            run.set_input_for_items(None);
            if !matches!(run.waiting, Waiting::Children(_)) {
                run.waiting = Waiting::Nothing;
            }
        }
        self.now = now;
        self.status = Status::Running;
        self.info.redrive_count += 1;
        self.info.redrive_time = Some(now);
        let count = self.info.redrive_count;
        let last = self.history.len();
        let event = self
            .history
            .push(last, now, || EventKind::ExecutionRedriven {
                redrive_count: count,
            });
        let run = self.run_mut(root);
        run.fallen = false;
        run.last_event = event;
        self.ready.push_back(root);
        Ok(())
    }

    /// The execution's top-level run, if it is kept (it is, once the execution stopped
    /// unsuccessfully).
    fn root(&self) -> Option<RunId> {
        self.runs()
            .find(|(_, run)| run.parent.is_none())
            .map(|(id, _)| id)
    }
}

/// The input recorded by `event`, if it is StateEntered event `id`.
fn entered_input(event: Option<Event>, id: u64) -> Option<Value> {
    match event? {
        Event {
            id: found,
            kind: EventKind::StateEntered { input, .. },
            ..
        } if found == id => input.value().ok(),
        _ => None,
    }
}
