//! The run table: every run of an execution in a slot, by id.

use serde_json::{Map, Value};
use stepstone_asl::timestamp::Timestamp;
use stepstone_asl::{ScopeRef, State, StateId, StateKind};

use super::{Command, Execution, TaskRequest, TimerReason};
use crate::history::EventKind;
use crate::vars::Vars;

/// Identifies a run (the root, a branch, an iteration) within its execution. Ids are reused
/// after a run ends, with a new generation, so a late answer for an ended run is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct RunId {
    index: u32,
    generation: u32,
}

impl RunId {
    pub(crate) fn new(index: u32, generation: u32) -> RunId {
        RunId { index, generation }
    }

    /// An id that names no run: answers for it are ignored.
    pub fn detached() -> RunId {
        RunId {
            index: u32::MAX,
            generation: u32::MAX,
        }
    }
}

/// What a blocked run waits for.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(crate) enum Waiting {
    Nothing,
    /// A task: the request (re-sent as it is after a crash) and the names its history events
    /// carry.
    Task {
        request: Box<TaskRequest>,
        resource_type: String,
        resource: String,
    },
    /// A Wait state's timer, due at `until`.
    Wait {
        until: Timestamp,
        reason: TimerReason,
    },
    /// The delay before a retry, due at `until`.
    Retry {
        until: Timestamp,
        reason: TimerReason,
    },
    /// Child runs of a Parallel or Map state.
    Children(Box<super::children::Children>),
}

/// The parent of a child run, and which child it is.
#[derive(Clone, Copy, serde::Serialize, serde::Deserialize)]
pub(crate) struct Link {
    pub(crate) parent: RunId,
    pub(crate) slot: usize,
}

pub(crate) struct Run<'m> {
    pub(crate) scope: ScopeRef<'m>,
    /// `scope` as (state, child) steps from the machine's root: what a checkpoint stores.
    pub(crate) scope_path: Vec<(u32, u32)>,
    pub(crate) state: StateId,
    /// The current state's raw input.
    pub(crate) input: Value,
    pub(crate) vars: Vars,
    pub(crate) parent: Option<Link>,
    pub(crate) entered_event: u64,
    pub(crate) entered_time: Timestamp,
    pub(crate) last_event: u64,
    /// Attempts used per retrier of the current state.
    pub(crate) attempts: Vec<u32>,
    pub(crate) retry_count: u32,
    pub(crate) waiting: Waiting,
    /// A Map's effective input while its iterations start (ItemSelector reads it).
    pub(crate) input_for_items: Option<Value>,
    /// Set when Parameters consumed the raw input: how the output follows from the result.
    pub(crate) output_from_result: Option<OutputFrom>,
    /// What the current state assigned, kept (with a full history only) for its StateExited
    /// event. Set and taken within one call: never checkpointed.
    pub(crate) assigned: Option<Map<String, Value>>,
    /// Whether the current state was entered (its StateEntered event, `entered_event`, holds
    /// its raw input); false while the run waits in `ready` to enter it.
    pub(crate) entered: bool,
    /// The run failed, or was stopped because its execution or a sibling failed: it stays,
    /// frozen at its current state, so that a redrive can go on from there (see
    /// `redrive.rs`). A fallen run never advances, and answers to it are ignored.
    pub(crate) fallen: bool,
}

/// How a state's output follows from its result alone (its raw input having been consumed).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(crate) enum OutputFrom {
    /// ResultPath `$`: OutputPath applies to the result.
    Result,
    /// OutputPath inside ResultPath: these steps of the result.
    Suffix(Vec<stepstone_asl::path::Step>),
}

pub(crate) struct Slot<'m> {
    pub(crate) generation: u32,
    pub(crate) run: Option<Run<'m>>,
}

impl<'m> Execution<'m> {
    pub(crate) fn spawn(
        &mut self,
        scope: ScopeRef<'m>,
        state: StateId,
        input: Value,
        vars: Vars,
        parent: Option<Link>,
        last_event: u64,
    ) -> RunId {
        // Where the scope is in the machine: how a checkpoint names it.
        let scope_path = match parent {
            None => Vec::new(),
            Some(link) => {
                let p = self.run(link.parent);
                let (_, parent_state) = self.current(link.parent);
                let child = if matches!(parent_state.kind, StateKind::Parallel(_)) {
                    link.slot as u32
                } else {
                    0
                };
                let mut path = p.scope_path.clone();
                path.push((p.state.0, child));
                path
            }
        };
        let run = Run {
            scope,
            scope_path,
            state,
            input,
            vars,
            parent,
            entered_event: 0,
            entered_time: self.now,
            last_event,
            attempts: Vec::new(),
            retry_count: 0,
            waiting: Waiting::Nothing,
            input_for_items: None,
            output_from_result: None,
            assigned: None,
            entered: false,
            fallen: false,
        };
        let id = match self.free.pop() {
            Some(index) => {
                let slot = &mut self.slots[index as usize];
                slot.generation += 1;
                slot.run = Some(run);
                RunId {
                    index,
                    generation: slot.generation,
                }
            }
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    run: Some(run),
                });
                RunId {
                    index: self.slots.len() as u32 - 1,
                    generation: 0,
                }
            }
        };
        self.ready.push_back(id);
        id
    }

    pub(crate) fn get(&self, id: RunId) -> Option<&Run<'m>> {
        self.slots
            .get(id.index as usize)
            .filter(|s| s.generation == id.generation)?
            .run
            .as_ref()
    }

    pub(crate) fn get_mut(&mut self, id: RunId) -> Option<&mut Run<'m>> {
        self.slots
            .get_mut(id.index as usize)
            .filter(|s| s.generation == id.generation)?
            .run
            .as_mut()
    }

    pub(crate) fn run(&self, id: RunId) -> &Run<'m> {
        self.get(id).expect("the run is alive")
    }

    pub(crate) fn run_mut(&mut self, id: RunId) -> &mut Run<'m> {
        self.get_mut(id).expect("the run is alive")
    }

    /// Removes a run and, recursively, the children it waits for.
    pub(crate) fn remove(&mut self, id: RunId) -> Option<Run<'m>> {
        let slot = self
            .slots
            .get_mut(id.index as usize)
            .filter(|s| s.generation == id.generation)?;
        let run = slot.run.take()?;
        self.free.push(id.index);
        if let Waiting::Children(children) = &run.waiting {
            for child in children.all() {
                self.remove(child);
            }
        }
        Some(run)
    }

    /// Run `id` waits until `until`, for a Wait state or a retry's delay (as `reason` says): the
    /// run records it (a checkpoint re-arms it) and the driver is asked for a timer.
    pub(crate) fn wait_until(&mut self, id: RunId, until: Timestamp, reason: TimerReason) {
        let waiting = match reason {
            TimerReason::Wait { .. } => Waiting::Wait {
                until,
                reason: reason.clone(),
            },
            TimerReason::Retry { .. } => Waiting::Retry {
                until,
                reason: reason.clone(),
            },
        };
        self.run_mut(id).waiting = waiting;
        self.commands.push(Command::Timer {
            run: id,
            until,
            reason,
        });
    }

    /// The run whose task waits for `token`, if one does.
    pub(crate) fn waiting_for_token(&self, token: &str) -> Option<RunId> {
        self.slots.iter().enumerate().find_map(|(index, slot)| {
            let run = slot.run.as_ref().filter(|r| !r.fallen)?;
            match &run.waiting {
                Waiting::Task { request, .. } if request.task_token.as_deref() == Some(token) => {
                    Some(RunId::new(index as u32, slot.generation))
                }
                _ => None,
            }
        })
    }

    pub(super) fn is_waiting_task(&self, id: RunId) -> bool {
        self.get(id)
            .is_some_and(|r| !r.fallen && matches!(r.waiting, Waiting::Task { .. }))
    }

    /// The current state of a run.
    pub(crate) fn current(&self, id: RunId) -> (&'m str, &'m State) {
        let run = self.run(id);
        let (name, state, _) = run.scope.state(run.state);
        (name, state)
    }

    /// Records an event for a run, chaining `previousEventId` through the run's own events.
    pub(crate) fn event(&mut self, id: RunId, kind: impl FnOnce() -> EventKind) -> u64 {
        let last = self.get(id).map_or(self.history.len(), |r| r.last_event);
        let event = self.history.push(last, self.now, kind);
        if let Some(r) = self.get_mut(id) {
            r.last_event = event;
        }
        event
    }
}
