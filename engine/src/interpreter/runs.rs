//! The run table: every run of an execution in a slot, by id.

use serde_json::{Map, Value};
use stepstone_asl::growth::Extent;
use stepstone_asl::timestamp::Timestamp;
use stepstone_asl::{ScopeRef, State, StateId, StateKind};

use super::{Command, Execution, RunId, TaskRequest, TimerReason};
use crate::history::EventKind;
use crate::item_list::ItemList;
use crate::names::{child_arns, child_execution_name};
use crate::vars::Vars;

/// What a blocked run waits for.
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
#[derive(Clone, Copy)]
pub(crate) struct Link {
    pub(crate) parent: RunId,
    pub(crate) slot: usize,
}

/// One run: where it stands and what it holds.
///
/// Its data (input, variables, a Map's items) is private: every change goes through a method
/// that notes it, so a checkpoint rewrites the data only when it changed (a Map's input, the
/// whole item list, is written once, not at every save while its iterations run).
pub(crate) struct Run<'m> {
    pub(crate) scope: ScopeRef<'m>,
    /// `scope` as (state, child) steps from the machine's root: what a checkpoint stores.
    pub(crate) scope_path: Vec<(u32, u32)>,
    pub(crate) state: StateId,
    pub(crate) parent: Option<Link>,
    pub(crate) entered_event: u64,
    pub(crate) entered_time: Timestamp,
    pub(crate) last_event: u64,
    /// Attempts used per retrier of the current state.
    pub(crate) attempts: Vec<u32>,
    pub(crate) retry_count: u32,
    /// A bound on how deep and large the current input is, when known (see
    /// `Execution::check_output`): not checkpointed, so a restored run measures again.
    pub(crate) extent: std::cell::Cell<Option<Extent>>,
    /// For a Map or Parallel, a bound on the array of its children's outputs so far, while
    /// each of them ended with a known bound (`None` once one did not, or for a restored run).
    pub(crate) children_extent: std::cell::Cell<Option<Extent>>,
    pub(crate) waiting: Waiting,
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
    /// The current state's raw input.
    input: Value,
    vars: Vars,
    /// A Map's effective input while its iterations start (ItemSelector reads it).
    input_for_items: Option<Value>,
    /// What a Map's ItemReader read (ItemsPath, if any, picks the items from it).
    read_items: Option<ItemList>,
    /// The first run of a distributed Map's child execution: that execution's input, start and
    /// event count (`$$.Execution` for every run in it).
    child_start: Option<ChildStart>,
    /// The input, variables or items changed since the last checkpoint.
    data_changed: bool,
    /// The run is (inside) an iteration of a distributed Map: a child execution, whose events
    /// are its own, not the parent execution's. Follows from where the run is in the machine,
    /// so it is worked out again when a run is restored, never stored.
    pub(crate) in_child_execution: bool,
}

/// A distributed Map's child execution, as a run in it sees it (`$$.Execution`).
pub(crate) struct ChildExecution<'a> {
    /// Its ARN, worked out once when it started.
    pub(crate) arn: &'a str,
    pub(crate) map_run_arn: &'a str,
    pub(crate) input: &'a Value,
    pub(crate) start: Timestamp,
}

impl ChildExecution<'_> {
    /// The child execution's name: worked out from its Map Run and index, so that it is the
    /// same after a resume and in the ResultWriter's entries.
    pub(crate) fn name(&self) -> &str {
        self.arn.rsplit(':').next().unwrap_or(self.arn)
    }
}

/// What a run starts with: everything but where it is.
pub(crate) struct RunData {
    pub(crate) input: Value,
    pub(crate) vars: Vars,
    pub(crate) input_for_items: Option<Value>,
    pub(crate) read_items: Option<ItemList>,
    pub(crate) child_start: Option<ChildStart>,
}

/// What the first run of a distributed Map's child execution keeps of that execution.
#[derive(Clone, Debug)]
pub(crate) struct ChildStart {
    pub(crate) input: Value,
    pub(crate) start: Timestamp,
    /// Events the child execution has numbered (its ExecutionStarted is the first): event ids
    /// name states' attempts (idempotency tokens), and the child's history when it is kept.
    pub(crate) events: u64,
    /// The child execution's ARN, and its Map Run's.
    pub(crate) arn: String,
    pub(crate) map_run_arn: String,
    /// How many times a redrive of its Map Run ran it again.
    pub(crate) redrive_count: u32,
}

impl<'m> Run<'m> {
    /// A run at `state` of `scope`, not entered yet (`entered` false), with `data`; its data
    /// counts as changed unless `saved` (a run restored from a checkpoint).
    pub(crate) fn new(
        scope: ScopeRef<'m>,
        scope_path: Vec<(u32, u32)>,
        state: StateId,
        data: RunData,
        saved: bool,
    ) -> Run<'m> {
        Run {
            scope,
            scope_path,
            state,
            parent: None,
            entered_event: 0,
            entered_time: Timestamp { unix_nanos: 0 },
            last_event: 0,
            attempts: Vec::new(),
            retry_count: 0,
            extent: std::cell::Cell::new(None),
            children_extent: std::cell::Cell::new(None),
            waiting: Waiting::Nothing,
            output_from_result: None,
            assigned: None,
            entered: false,
            fallen: false,
            in_child_execution: false,
            input: data.input,
            vars: data.vars,
            input_for_items: data.input_for_items,
            read_items: data.read_items,
            child_start: data.child_start,
            data_changed: !saved,
        }
    }

    /// The current state's raw input.
    pub(crate) fn input(&self) -> &Value {
        &self.input
    }

    /// Replaces the raw input (the run moved on, or its state keeps another input).
    pub(crate) fn set_input(&mut self, input: Value) {
        self.input = input;
        self.data_changed = true;
    }

    /// Takes the raw input out (nothing reads it afterwards).
    pub(crate) fn take_input(&mut self) -> Value {
        self.data_changed = true;
        std::mem::take(&mut self.input)
    }

    /// The variables in scope.
    pub(crate) fn vars(&self) -> &Vars {
        &self.vars
    }

    /// Sets variables in the run's own scope.
    pub(crate) fn assign(&mut self, values: Map<String, Value>) {
        if !values.is_empty() {
            self.vars.assign(values);
            self.data_changed = true;
        }
    }

    /// A Map's effective input, while its iterations start.
    pub(crate) fn input_for_items(&self) -> Option<&Value> {
        self.input_for_items.as_ref()
    }

    /// What a Map's items are read from: its effective input, or the raw input itself.
    pub(crate) fn items_source(&self) -> &Value {
        self.input_for_items.as_ref().unwrap_or(&self.input)
    }

    pub(crate) fn set_input_for_items(&mut self, value: Option<Value>) {
        if value.is_some() || self.input_for_items.is_some() {
            self.input_for_items = value;
            self.data_changed = true;
        }
    }

    /// The child execution this run begins (see `child_start`).
    pub(crate) fn child_start(&self) -> Option<&ChildStart> {
        self.child_start.as_ref()
    }

    /// What the Map's ItemReader read.
    pub(crate) fn read_items(&self) -> Option<&ItemList> {
        self.read_items.as_ref()
    }

    pub(crate) fn set_read_items(&mut self, items: ItemList) {
        self.read_items = Some(items);
        self.data_changed = true;
    }

    /// Lets go of what a Map's ItemReader read: the Map succeeded, or the run left it. (A Map
    /// that failed keeps them: a redrive, or a Retry, goes on with the same items, as a
    /// redriven Map Run does on AWS.)
    pub(crate) fn clear_read_items(&mut self) {
        if self.read_items.take().is_some() {
            self.data_changed = true;
        }
    }

    /// The data changed since the last call (and counts as saved now).
    pub(super) fn take_data_changed(&mut self) -> bool {
        std::mem::replace(&mut self.data_changed, false)
    }
}

/// How a state's output follows from its result alone (its raw input having been consumed).
#[derive(Clone)]
pub(crate) enum OutputFrom {
    /// ResultPath `$`: OutputPath applies to the result.
    Result,
    /// OutputPath inside ResultPath: these steps of the result.
    Suffix(Vec<stepstone_asl::path::Step>),
}

/// One place in the run table. Its run is reached through `get_mut` (or another method of the
/// table), which notes the change, so that a checkpoint rewrites only the runs that moved.
pub(crate) struct Slot<'m> {
    pub(crate) generation: u32,
    pub(crate) run: Option<Run<'m>>,
    /// The run changed (or left the slot) since the last checkpoint.
    pub(super) changed: bool,
    /// The store holds a record of this slot's run (to delete when the run leaves).
    pub(super) stored: bool,
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
        let data = RunData {
            input,
            vars,
            input_for_items: None,
            read_items: None,
            child_start: None,
        };
        let mut run = Run::new(scope, scope_path, state, data, false);
        // A child's input is built from its parent's (`State::children_growth`): its extent is
        // bounded without walking it.
        if let Some(link) = parent {
            let (_, parent_state) = self.current(link.parent);
            if let (Some(input), Some(growth)) = (
                self.run(link.parent).extent.get(),
                parent_state.children_growth,
            ) {
                run.extent.set(Some(growth.apply(input)));
            }
        }
        run.parent = parent;
        run.in_child_execution = parent.is_some_and(|link| self.starts_child_execution(link));
        if let Some(link) = parent
            && run.in_child_execution
            && !self.run(link.parent).in_child_execution
        {
            // The first run of a child execution: its input and start are the execution's.
            let map_run_arn = match &self.run(link.parent).waiting {
                Waiting::Children(children) => children.map_run.as_ref().map(|m| m.arn.clone()),
                _ => None,
            }
            .unwrap_or_default();
            let arn = format!(
                "{}{}",
                child_arns(&map_run_arn).1,
                child_execution_name(&map_run_arn, link.slot)
            );
            if self.keeps_child_histories() {
                let input = crate::history::EventData::of(&run.input);
                self.child_events.push(
                    arn.clone(),
                    crate::history::Event {
                        id: 1,
                        previous_event_id: 0,
                        timestamp: self.now,
                        kind: EventKind::ExecutionStarted {
                            input,
                            role_arn: self.info.role_arn.clone(),
                        },
                    },
                );
            }
            run.child_start = Some(ChildStart {
                input: run.input.clone(),
                start: self.now,
                events: 1,
                arn,
                map_run_arn,
                redrive_count: 0,
            });
        }
        run.entered_time = self.now;
        run.last_event = match run.child_start {
            // The child's ExecutionStarted.
            Some(_) => 1,
            None => last_event,
        };
        let id = match self.free.pop() {
            Some(index) => {
                let slot = &mut self.slots[index as usize];
                slot.generation += 1;
                slot.run = Some(run);
                slot.changed = true;
                RunId {
                    index,
                    generation: slot.generation,
                }
            }
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    run: Some(run),
                    changed: true,
                    stored: false,
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

    /// The run, to change: its slot counts as changed (the next checkpoint rewrites it).
    pub(crate) fn get_mut(&mut self, id: RunId) -> Option<&mut Run<'m>> {
        let slot = self
            .slots
            .get_mut(id.index as usize)
            .filter(|s| s.generation == id.generation && s.run.is_some())?;
        slot.changed = true;
        slot.run.as_mut()
    }

    /// Every live run, to change (each counts as changed).
    pub(crate) fn runs_mut(&mut self) -> impl Iterator<Item = &mut Run<'m>> {
        self.slots.iter_mut().filter_map(|slot| {
            let run = slot.run.as_mut()?;
            slot.changed = true;
            Some(run)
        })
    }

    /// Every live run, with its id.
    pub(crate) fn runs(&self) -> impl Iterator<Item = (RunId, &Run<'m>)> {
        self.slots.iter().enumerate().filter_map(|(index, slot)| {
            let run = slot.run.as_ref()?;
            Some((RunId::new(index as u32, slot.generation), run))
        })
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
        let mut run = slot.run.take()?;
        slot.changed = true;
        self.free.push(id.index);
        if let Waiting::Children(children) = std::mem::replace(&mut run.waiting, Waiting::Nothing) {
            self.dispose_children(&children);
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
        self.runs().find_map(|(id, run)| match &run.waiting {
            Waiting::Task { request, .. }
                if !run.fallen && request.task_token.as_deref() == Some(token) =>
            {
                Some(id)
            }
            _ => None,
        })
    }

    pub(super) fn is_waiting_task(&self, id: RunId) -> bool {
        self.get(id)
            .is_some_and(|r| !r.fallen && matches!(r.waiting, Waiting::Task { .. }))
    }

    /// Where run `id` is in the execution: the Map iterations and Parallel branches it runs
    /// in, outermost first, as `DeployWaves[1]/DeployRegions[0]` (a Map's item index, a
    /// Parallel's branch index); empty for the root run.
    pub fn path(&self, id: RunId) -> String {
        let mut segments = Vec::new();
        let mut at = self.get(id).and_then(|r| r.parent);
        while let Some(link) = at {
            let Some(parent) = self.get(link.parent) else {
                break;
            };
            let (name, _, _) = parent.scope.state(parent.state);
            segments.push(format!("{name}[{}]", link.slot));
            at = parent.parent;
        }
        segments.reverse();
        segments.join("/")
    }

    /// The current state of a run.
    pub(crate) fn current(&self, id: RunId) -> (&'m str, &'m State) {
        let run = self.run(id);
        let (name, state, _) = run.scope.state(run.state);
        (name, state)
    }

    /// Records an event for a run, chaining `previousEventId` through the run's own events.
    pub(crate) fn event(&mut self, id: RunId, kind: impl FnOnce() -> EventKind) -> u64 {
        self.event_of(id, false, kind)
    }

    /// Records a state's entering or leaving: `minor` for a state that only passes through
    /// (Pass, Choice, Succeed), which an observer of notable events does not get.
    pub(crate) fn state_event(
        &mut self,
        id: RunId,
        minor: bool,
        kind: impl FnOnce() -> EventKind,
    ) -> u64 {
        self.event_of(id, minor, kind)
    }

    /// The child execution run `id` is part of, if it is: its ARN and its Map Run's, and
    /// its first run's input and start.
    pub(crate) fn child_execution_of(&self, id: RunId) -> Option<ChildExecution<'_>> {
        let mut run = id;
        loop {
            let link = self.get(run)?.parent?;
            let parent = self.get(link.parent)?;
            if parent.in_child_execution {
                run = link.parent;
                continue;
            }
            let Waiting::Children(children) = &parent.waiting else {
                return None;
            };
            let child = self.get(run)?.child_start()?;
            return Some(ChildExecution {
                arn: &child.arn,
                map_run_arn: &children.map_run.as_ref()?.arn,
                input: &child.input,
                start: child.start,
            });
        }
    }

    /// Child execution `id` (its first run), failed or stopped, runs again because its Map Run
    /// was redriven: its history records ExecutionRedriven (when it is kept), and its events
    /// go on from there.
    pub(crate) fn redrive_child_execution(&mut self, id: RunId) {
        let Some(child) = self.get_mut(id).and_then(|r| r.child_start.as_mut()) else {
            return;
        };
        child.redrive_count += 1;
        let (previous, redrive_count) = (child.events, child.redrive_count);
        let (event, arn) = self.number_child_event(id);
        if let Some(arn) = arn {
            let redriven = crate::history::Event {
                id: event,
                previous_event_id: previous,
                timestamp: self.now,
                kind: EventKind::ExecutionRedriven { redrive_count },
            };
            self.child_events.push(arn, redriven);
        }
        if let Some(run) = self.get_mut(id) {
            run.last_event = event;
        }
    }

    /// The next event id of the child execution run `id` is part of (0 if there is none), and
    /// that execution's ARN when its history is kept.
    pub(crate) fn number_child_event(&mut self, id: RunId) -> (u64, Option<String>) {
        let mut run = id;
        while let Some(link) = self.get(run).and_then(|r| r.parent) {
            if !self.get(link.parent).is_some_and(|p| p.in_child_execution) {
                break;
            }
            run = link.parent;
        }
        let keep = self.keeps_child_histories();
        let Some(first) = self.get_mut(run) else {
            return (0, None);
        };
        first.data_changed = true;
        first.child_start.as_mut().map_or((0, None), |child| {
            child.events += 1;
            // The ARN only for an event that is kept.
            let names = keep.then(|| child.arn.clone());
            (child.events, names)
        })
    }

    /// Whether a run linked to its parent by `link` is part of a child execution: its parent
    /// is, or is a distributed Map (each of whose iterations is one).
    pub(crate) fn starts_child_execution(&self, link: Link) -> bool {
        let Some(parent) = self.get(link.parent) else {
            return false;
        };
        parent.in_child_execution
            || matches!(&self.current(link.parent).1.kind, StateKind::Map(map) if map.is_distributed())
    }

    fn event_of(&mut self, id: RunId, minor: bool, kind: impl FnOnce() -> EventKind) -> u64 {
        if let Some(previous) = self
            .get(id)
            .filter(|r| r.in_child_execution)
            .map(|r| r.last_event)
        {
            // A child execution's event: numbered in that execution and kept in its history
            // (`child_events`, for the store), not in this one, nor counted against its limit.
            let (event, arn) = self.number_child_event(id);
            if self.keeps_child_histories()
                && let Some(arn) = arn
            {
                let built = crate::history::Event {
                    id: event,
                    previous_event_id: previous,
                    timestamp: self.now,
                    kind: kind(),
                };
                self.child_events.push(arn, built);
            }
            if let Some(r) = self.get_mut(id) {
                r.last_event = event;
            }
            return event;
        }
        let last = self.get(id).map_or(self.history.len(), |r| r.last_event);
        let event = if minor {
            self.history.push_minor(last, self.now, kind)
        } else {
            self.history.push(last, self.now, kind)
        };
        if let Some(r) = self.get_mut(id) {
            r.last_event = event;
        }
        event
    }
}
