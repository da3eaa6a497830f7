//! Checkpoints: an execution's whole state, written at every command boundary, from which it
//! resumes after a crash.
//!
//! The interpreter is deterministic between effects (randomness is seeded from the execution),
//! so a checkpoint is taken only when the interpreter hands the driver commands, before the
//! driver performs them: a task dispatch is durable before it is sent. What ran after the last
//! checkpoint is recomputed on resume, identically, and the commands that were outstanding are
//! issued again: a task in flight is re-dispatched with the same idempotency token, a timer is
//! re-armed at its original deadline.
//!
//! The format is a versioned serde document (JSON). Every field added later must say from which
//! version it exists, and old checkpoints must keep restoring.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use stepstone_asl::timestamp::Timestamp;
use stepstone_asl::{Machine, ScopeRef, StateId};

use crate::history::History;
use crate::interpreter::{
    Command, Execution, ExecutionInfo, Link, OutputFrom, Run, RunId, Slot, Status, Waiting,
};
use crate::limits::Limits;
use crate::vars::Vars;

/// The checkpoint format this version writes.
pub const FORMAT_VERSION: u32 = 2;

/// An execution's state, as stored.
#[derive(Serialize, Deserialize)]
pub struct Checkpoint {
    /// [`FORMAT_VERSION`] when written. Since v1.
    pub version: u32,
    /// Identity, input, start time. Since v1.
    pub info: ExecutionInfo,
    /// Where it stands. Since v1.
    pub status: Status,
    /// The execution's clock at the checkpoint (real or virtual). Since v1.
    pub now: Timestamp,
    /// Limits it runs under. Since v1.
    pub limits: Limits,
    /// The history's mode and event count; the events are stored apart, appended as they
    /// happen. Since v1.
    pub history: History,
    /// States entered so far. Since v1.
    pub states_entered: u64,
    /// The seed of its randomness (derived from the ARN, kept so a changed derivation cannot
    /// change a running execution). Since v1.
    pub seed: u64,
    /// Tasks dispatched so far, per state name (`TaskRequest::invocation`). Since checkpoint
    /// v2 with TestState; older checkpoints count from 0 again.
    #[serde(default)]
    pub dispatches: std::collections::BTreeMap<String, u32>,
    runs: Vec<SlotRecord>,
    free: Vec<u32>,
    ready: Vec<RunId>,
}

#[derive(Serialize, Deserialize)]
struct SlotRecord {
    generation: u32,
    run: Option<RunRecord>,
}

/// A [`Run`] with its scope named by path instead of by reference.
#[derive(Serialize, Deserialize)]
struct RunRecord {
    scope_path: Vec<(u32, u32)>,
    state: StateId,
    input: Value,
    /// Variable frames, outermost first.
    vars: Vec<Map<String, Value>>,
    parent: Option<Link>,
    entered_event: u64,
    entered_time: Timestamp,
    last_event: u64,
    attempts: Vec<u32>,
    retry_count: u32,
    waiting: Waiting,
    input_for_items: Option<Value>,
    output_from_result: Option<OutputFrom>,
    /// Whether the current state was entered. Since v2; in v1, a run was entered unless it
    /// waited in `ready`.
    #[serde(default)]
    entered: Option<bool>,
    /// Frozen by a failure, for a redrive. Since v2.
    #[serde(default)]
    fallen: bool,
}

/// A checkpoint that does not fit the machine it is resumed with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// Written by a newer Stepstone.
    #[error("checkpoint format v{0} is newer than this Stepstone understands (v{FORMAT_VERSION})")]
    TooNew(u32),
    /// A run names a state or branch the definition does not have.
    #[error("the checkpoint does not match the definition: {0}")]
    Mismatch(String),
}

impl Execution<'_> {
    /// The execution's state, for a store to write.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            version: FORMAT_VERSION,
            info: self.info.clone(),
            status: self.status.clone(),
            now: self.now,
            limits: self.limits,
            history: self.history.without_events(),
            states_entered: self.states_entered,
            seed: self.seed,
            dispatches: self.dispatches.clone(),
            runs: self
                .slots
                .iter()
                .map(|slot| SlotRecord {
                    generation: slot.generation,
                    run: slot.run.as_ref().map(|r| RunRecord {
                        scope_path: r.scope_path.clone(),
                        state: r.state,
                        input: r.input.clone(),
                        vars: r.vars.frames(),
                        parent: r.parent,
                        entered_event: r.entered_event,
                        entered_time: r.entered_time,
                        last_event: r.last_event,
                        attempts: r.attempts.clone(),
                        retry_count: r.retry_count,
                        waiting: r.waiting.clone(),
                        input_for_items: r.input_for_items.clone(),
                        output_from_result: r.output_from_result.clone(),
                        entered: Some(r.entered),
                        fallen: r.fallen,
                    }),
                })
                .collect(),
            free: self.free.clone(),
            ready: self.ready.iter().copied().collect(),
        }
    }

    /// The commands whose answers the execution still waits for: after a restore, the driver
    /// performs them again (a task with the same idempotency token, a timer at its deadline).
    pub fn outstanding(&self) -> Vec<Command> {
        let mut out = Vec::new();
        for slot in &self.slots {
            let Some(run) = slot.run.as_ref().filter(|r| !r.fallen) else {
                continue;
            };
            match &run.waiting {
                Waiting::Task { request, .. } => out.push(Command::Dispatch((**request).clone())),
                Waiting::Wait { until, reason } | Waiting::Retry { until, reason } => {
                    let id = run_id(&self.slots, run);
                    out.push(Command::Timer {
                        run: id,
                        until: *until,
                        reason: reason.clone(),
                    });
                }
                Waiting::Children(_) | Waiting::Nothing => {}
            }
        }
        out
    }
}

/// The id of a live run (its request carries it for tasks; timers need it recomputed).
fn run_id(slots: &[Slot<'_>], run: &Run<'_>) -> RunId {
    let index = slots
        .iter()
        .position(|s| s.run.as_ref().is_some_and(|r| std::ptr::eq(r, run)))
        .expect("a live run");
    RunId::new(index as u32, slots[index].generation)
}

impl<'m> Execution<'m> {
    /// Rebuilds an execution from a checkpoint, on the same machine.
    pub fn restore(
        machine: &'m Machine,
        checkpoint: Checkpoint,
    ) -> Result<Execution<'m>, RestoreError> {
        if checkpoint.version > FORMAT_VERSION {
            return Err(RestoreError::TooNew(checkpoint.version));
        }
        let mut exec = Execution::new(
            machine,
            checkpoint.info,
            checkpoint.limits,
            checkpoint.history.mode(),
        );
        exec.history = checkpoint.history;
        exec.status = checkpoint.status;
        exec.now = checkpoint.now;
        exec.seed = checkpoint.seed;
        exec.dispatches = checkpoint.dispatches;
        exec.states_entered = checkpoint.states_entered;
        exec.free = checkpoint.free;
        exec.ready = checkpoint.ready.into_iter().collect();
        for (index, record) in checkpoint.runs.into_iter().enumerate() {
            let id = RunId::new(index as u32, record.generation);
            let run = match record.run {
                None => None,
                Some(r) => {
                    let scope = scope_at(machine, &r.scope_path)?;
                    if r.state.0 as usize >= scope.scope.states.len() {
                        return Err(RestoreError::Mismatch(format!(
                            "state #{} is not in its scope",
                            r.state.0
                        )));
                    }
                    Some(Run {
                        scope,
                        scope_path: r.scope_path,
                        state: r.state,
                        input: r.input,
                        vars: Vars::from_frames(r.vars),
                        parent: r.parent,
                        entered_event: r.entered_event,
                        entered_time: r.entered_time,
                        last_event: r.last_event,
                        attempts: r.attempts,
                        retry_count: r.retry_count,
                        waiting: r.waiting,
                        input_for_items: r.input_for_items,
                        output_from_result: r.output_from_result,
                        assigned: None,
                        entered: r.entered.unwrap_or_else(|| !exec.ready.contains(&id)),
                        fallen: r.fallen,
                    })
                }
            };
            exec.slots.push(Slot {
                generation: record.generation,
                run,
            });
        }
        Ok(exec)
    }
}

fn scope_at<'m>(machine: &'m Machine, path: &[(u32, u32)]) -> Result<ScopeRef<'m>, RestoreError> {
    let mut scope = machine.root();
    for &(state, child) in path {
        if state as usize >= scope.scope.states.len() {
            return Err(RestoreError::Mismatch(format!(
                "no state #{state} in scope {}",
                scope.scope.pointer
            )));
        }
        scope = scope.child(StateId(state), child as usize).ok_or_else(|| {
            RestoreError::Mismatch(format!("state #{state} has no child scope #{child}"))
        })?;
    }
    Ok(scope)
}
