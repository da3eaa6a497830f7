//! The execution as records (`crate::record`): what changed since the last checkpoint, for a
//! store to write; and the execution rebuilt from what a store read back.
//!
//! What changed is known without comparing anything: the run table marks a slot when its run
//! is reached to be changed (`Execution::get_mut`), a run marks its data when its input,
//! variables or items change, and children keep the indices of the results that came since.
//! A checkpoint therefore costs what moved, not what the execution holds: a Map over a million
//! items writes its item list once, then per save only the iterations that moved and their
//! results.
//!
//! A checkpoint is taken between interpreter calls, where the execution is consistent; states
//! worked out after it and lost in a crash are recomputed identically on resume (randomness is
//! seeded from the execution).

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::value::RawValue;
use stepstone_asl::{Machine, ScopeRef, StateId};

use super::children::{Batching, Children, MapRun};
use super::runs::ChildStart;
use super::{Command, Execution, Link, OutputFrom, Run, RunData, RunId, Slot, Status, Waiting};
use crate::history::History;
use crate::model::ExecutionRecord;
use crate::record::{
    self, BatchingRecord, Changes, Checkpoint, ChildStartRecord, ChildrenRecord, FORMAT_VERSION,
    HeaderRecord, HistoryModeRecord, InputRecord, LimitsRecord, LinkRecord, OutputFromRecord,
    PathStepRecord, RecordKey, RunDataRecord, RunIdRecord, RunRecord, StatusRecord,
    TaskRequestRecord, TimerReasonRecord, WaitingRecord,
};
use crate::store::error::Error as StoreError;
use crate::vars::Vars;

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

/// What the execution knows of its records in the store, beyond the marks on runs.
#[derive(Default)]
pub(super) struct Persisted {
    /// The status the store lists; `None` until the execution is first saved (or while it was
    /// read from a v1 or v2 document): the next save then writes every record.
    listed: Option<&'static str>,
    /// The number the next results batch gets.
    next_batch: u64,
    /// This run's saves, one after another (a restored execution starts a new chain).
    chain: crate::store::chain::Chain,
}

impl Execution<'_> {
    /// Everything that changed since the last call (at the first call, everything), as records
    /// for [`crate::store::CheckpointStore::save`], with the events recorded since. From then
    /// on the execution counts them as saved: a driver whose save fails must not go on with
    /// it (resume it from the store instead).
    pub fn take_changes(&mut self) -> Result<Changes, StoreError> {
        let complete = self.persisted.listed.is_none();
        let mut puts = Vec::new();
        let mut deletes = Vec::new();
        let mut next_batch = self.persisted.next_batch;
        let mut map_runs = std::mem::take(&mut self.ended_map_runs);
        // A Map Run still going when its execution is not was stopped with it.
        let map_run_status = match self.status {
            Status::Running => "RUNNING",
            _ => "ABORTED",
        };
        let stopped = (self.status != Status::Running).then_some(self.now);
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if !(slot.changed || complete) {
                continue;
            }
            let index = index as u32;
            slot.changed = false;
            let Some(run) = slot.run.as_mut() else {
                if std::mem::replace(&mut slot.stored, false) {
                    deletes.push(RecordKey::Run(index));
                    deletes.push(RecordKey::RunData(index));
                }
                continue;
            };
            let data_changed = run.take_data_changed();
            puts.push((RecordKey::Run(index), record::encode(&run_record(run))?));
            if data_changed || complete || !slot.stored {
                puts.push((
                    RecordKey::RunData(index),
                    record::encode(&data_record(run))?,
                ));
            }
            slot.stored = true;
            if let Waiting::Children(children) = &mut run.waiting {
                if children.map_run.as_ref().is_some_and(|m| !m.ended) {
                    map_runs.extend(children.map_run_record(
                        &self.info.execution_arn,
                        map_run_status,
                        stopped,
                    ));
                }
                let id = children.id;
                let batch = if complete {
                    children.compact_all()
                } else {
                    children.take_unsaved()
                };
                if !batch.is_empty() {
                    let key = RecordKey::Results {
                        children: id,
                        batch: next_batch,
                    };
                    next_batch += 1;
                    puts.push((key, record::encode(&batch)?));
                    children.stored = true;
                }
            }
        }
        self.persisted.next_batch = next_batch;
        deletes.extend(
            self.dropped_children
                .drain(..)
                .map(|children| RecordKey::AllResults { children }),
        );
        puts.push((RecordKey::Header, record::encode(&self.header_record())?));
        if complete {
            puts.push((
                RecordKey::Input,
                record::encode(&InputRecord::of(&self.info))?,
            ));
        }
        let status = self.status.as_str();
        let listing = (self.persisted.listed != Some(status)).then(|| ExecutionRecord {
            execution_arn: self.info.execution_arn.clone(),
            name: self.info.name.clone(),
            state_machine_name: self.info.state_machine_name.clone(),
            status: status.to_owned(),
            start_date: self.info.start_time,
            stop_date: (status != "RUNNING").then_some(self.now),
        });
        self.persisted.listed = Some(status);
        // Encoded by the store (see `Changes::events`).
        let events = std::sync::Arc::new(self.history.take_events());
        Ok(Changes {
            execution_arn: self.info.execution_arn.clone(),
            complete,
            listing,
            puts,
            deletes,
            events,
            chain: self.persisted.chain.clone(),
            map_runs,
            child_events: self.child_events.take(),
        })
    }

    /// Every record of the execution as it stands, as JSON text (never compressed), in key
    /// order, without counting anything as saved: what a store holds of it after a save now,
    /// but for how results are batched (here one batch per children, numbered 0). Two
    /// executions in the same state give the same records: how tests check that one read back
    /// from a store is the one that was saved.
    pub fn snapshot(&self) -> Result<Vec<(RecordKey, Vec<u8>)>, StoreError> {
        let mut records = Vec::new();
        for (index, slot) in self.slots.iter().enumerate() {
            let Some(run) = &slot.run else { continue };
            let index = index as u32;
            records.push((
                RecordKey::Run(index),
                record::encode_json(&run_record(run))?,
            ));
            records.push((
                RecordKey::RunData(index),
                record::encode_json(&data_record(run))?,
            ));
            if let Waiting::Children(children) = &run.waiting {
                let batch = children.results_text();
                if !batch.is_empty() {
                    let key = RecordKey::Results {
                        children: children.id,
                        batch: 0,
                    };
                    records.push((key, record::encode_json(&batch)?));
                }
            }
        }
        records.push((
            RecordKey::Header,
            record::encode_json(&self.header_record())?,
        ));
        records.push((
            RecordKey::Input,
            record::encode_json(&InputRecord::of(&self.info))?,
        ));
        records.sort_by_key(|(key, _)| *key);
        Ok(records)
    }

    fn header_record(&self) -> HeaderRecord<'_> {
        HeaderRecord {
            version: FORMAT_VERSION,
            redrive_count: self.info.redrive_count,
            redrive_time: self.info.redrive_time.map(|t| t.unix_nanos),
            status: StatusRecord::of(&self.status),
            now: self.now.unix_nanos,
            limits: LimitsRecord::of(&self.limits),
            history: HistoryModeRecord::of(self.history.mode()),
            events: self.history.len(),
            states_entered: self.states_entered,
            seed: self.seed,
            dispatches: self.dispatches.clone(),
            generations: self.slots.iter().map(|s| s.generation).collect(),
            free: self.free.clone(),
            ready: self.ready.iter().map(|id| RunIdRecord::of(*id)).collect(),
            next_children: self.next_children,
            next_batch: self.persisted.next_batch,
        }
    }

    /// The commands whose answers the execution still waits for: after a restore, the driver
    /// performs them again (a task with the same idempotency token, a timer at its deadline).
    pub fn outstanding(&self) -> Vec<Command> {
        let mut out = Vec::new();
        for (id, run) in self.runs().filter(|(_, r)| !r.fallen) {
            match &run.waiting {
                Waiting::Task { request, .. } => out.push(Command::Dispatch((**request).clone())),
                Waiting::Wait { until, reason } | Waiting::Retry { until, reason } => {
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

fn run_record<'a>(run: &'a Run<'_>) -> RunRecord<'a> {
    RunRecord {
        scope_path: run.scope_path.clone(),
        state: run.state.0,
        parent: run.parent.map(|l| LinkRecord {
            parent: RunIdRecord::of(l.parent),
            slot: l.slot as u64,
        }),
        entered_event: run.entered_event,
        entered_time: run.entered_time.unix_nanos,
        last_event: run.last_event,
        attempts: run.attempts.clone(),
        retry_count: run.retry_count,
        waiting: match &run.waiting {
            Waiting::Nothing => WaitingRecord::Nothing,
            Waiting::Task {
                request,
                resource_type,
                resource,
            } => WaitingRecord::Task {
                request: TaskRequestRecord::of(request),
                resource_type: resource_type.clone(),
                resource: resource.clone(),
            },
            Waiting::Wait { until, reason } => WaitingRecord::Wait {
                until: until.unix_nanos,
                reason: TimerReasonRecord::of(reason),
            },
            Waiting::Retry { until, reason } => WaitingRecord::Retry {
                until: until.unix_nanos,
                reason: TimerReasonRecord::of(reason),
            },
            Waiting::Children(c) => WaitingRecord::Children(children_record(c)),
        },
        output_from_result: run.output_from_result.as_ref().map(|o| match o {
            OutputFrom::Result => OutputFromRecord::Result,
            OutputFrom::Suffix(steps) => {
                OutputFromRecord::Suffix(steps.iter().map(PathStepRecord::of).collect())
            }
        }),
        entered: run.entered,
        fallen: run.fallen,
    }
}

fn children_record(c: &Children) -> ChildrenRecord {
    let slots = |list: &[(usize, RunId)]| -> Vec<(u64, RunIdRecord)> {
        list.iter()
            .map(|(slot, id)| (*slot as u64, RunIdRecord::of(*id)))
            .collect()
    };
    ChildrenRecord {
        id: c.id,
        len: c.len() as u64,
        running: slots(&c.running),
        fallen: slots(&c.fallen),
        to_redrive: slots(&c.to_redrive),
        next_item: c.next_item as u64,
        concurrency: c.concurrency as u64,
        finished: c.finished as u64,
        failed: c.failed as u64,
        tolerated_count: c.tolerated_count,
        tolerated_percentage: c.tolerated_percentage,
        map_run: c
            .map_run
            .as_ref()
            .map(|m| (m.arn.clone(), m.start.unix_nanos, m.ended)),
        map_run_redrives: c
            .map_run
            .as_ref()
            .and_then(|m| Some((m.redrive_count, m.redrive_date?.unix_nanos))),
        batching: c.batching.as_ref().map(|b| BatchingRecord {
            items: b.items as u64,
            max_items: b.max_items as u64,
            max_bytes: b.max_bytes as u64,
            batch_input: b.batch_input.clone(),
        }),
    }
}

/// A run's data, borrowed: a child run keeps only its own variables (the ones around it are
/// its parent's, restored with the parent).
fn data_record<'a>(run: &'a Run<'_>) -> RunDataRecord<'a> {
    let frames = match run.parent {
        Some(_) => vec![Cow::Borrowed(run.vars().own())],
        None => run
            .vars()
            .frame_refs()
            .into_iter()
            .map(Cow::Borrowed)
            .collect(),
    };
    RunDataRecord {
        input: Cow::Borrowed(run.input()),
        frames,
        input_for_items: run.input_for_items().map(Cow::Borrowed),
        read_items: run.read_items().map(Cow::Borrowed),
        child_start: run.child_start().map(|c| ChildStartRecord {
            input: Cow::Borrowed(&c.input),
            start: c.start.unix_nanos,
            events: c.events,
            arn: Cow::Borrowed(&c.arn),
            map_run_arn: Cow::Borrowed(&c.map_run_arn),
            redrive_count: c.redrive_count,
        }),
    }
}

impl<'m> Execution<'m> {
    /// Rebuilds an execution from a checkpoint, on the same machine. A checkpoint that does
    /// not fit the machine (a scope or state it does not have) is an error, never a panic.
    pub fn restore(
        machine: &'m Machine,
        checkpoint: Checkpoint,
    ) -> Result<Execution<'m>, RestoreError> {
        if checkpoint.version > FORMAT_VERSION {
            return Err(RestoreError::TooNew(checkpoint.version));
        }
        let legacy = checkpoint.legacy;
        let mut exec = Execution::new(
            machine,
            checkpoint.info,
            checkpoint.limits,
            checkpoint.history.mode(),
        );
        exec.history = History::counted(checkpoint.history.mode(), checkpoint.history.len());
        exec.status = checkpoint.status;
        exec.now = checkpoint.now;
        exec.seed = checkpoint.seed;
        exec.dispatches = checkpoint.dispatches;
        exec.states_entered = checkpoint.states_entered;
        exec.free = checkpoint.free;
        exec.ready = checkpoint.ready.into_iter().collect();
        exec.next_children = checkpoint.next_children;
        exec.persisted = Persisted {
            listed: (!legacy).then(|| exec.status.as_str()),
            next_batch: checkpoint.next_batch,
            chain: crate::store::chain::Chain::default(),
        };
        let mut results = checkpoint.results;
        let mut runs = Vec::new();
        for (index, slot) in checkpoint.slots.into_iter().enumerate() {
            exec.slots.push(Slot {
                generation: slot.generation,
                run: None,
                changed: legacy,
                stored: !legacy && slot.run.is_some(),
            });
            if let Some(run) = slot.run {
                runs.push((index, run));
            }
        }
        // Parents first: a child's variables read its parent's. A child's scope lies inside
        // its parent's, so its scope path is longer.
        runs.sort_by_key(|(_, (record, _))| record.scope_path.len());
        for (index, (record, data)) in runs {
            let run = exec.restore_run(index, record, data, &mut results, legacy)?;
            exec.slots[index].run = Some(run);
        }
        Ok(exec)
    }

    fn restore_run(
        &self,
        index: usize,
        record: RunRecord<'static>,
        data: RunDataRecord<'static>,
        results: &mut BTreeMap<u64, Vec<(u64, Box<RawValue>)>>,
        legacy: bool,
    ) -> Result<Run<'m>, RestoreError> {
        let mismatch = |m: String| RestoreError::Mismatch(m);
        let scope = scope_at(self.machine, &record.scope_path)?;
        if record.state as usize >= scope.scope.states.len() {
            return Err(mismatch(format!(
                "state #{} is not in its scope",
                record.state
            )));
        }
        let parent = record.parent.map(|l| Link {
            parent: l.parent.into_id(),
            slot: l.slot as usize,
        });
        let mut frames = data.frames.into_iter().map(Cow::into_owned);
        let vars = match parent {
            None => Vars::from_frames(frames.collect()),
            Some(link) => {
                let parent = self.get(link.parent).ok_or_else(|| {
                    mismatch(format!("run #{index} names a parent that is not there"))
                })?;
                parent
                    .vars()
                    .child_with(frames.next_back().unwrap_or_default())
            }
        };
        let run_data = RunData {
            input: data.input.into_owned(),
            vars,
            input_for_items: data.input_for_items.map(Cow::into_owned),
            read_items: data.read_items.map(Cow::into_owned),
            child_start: data.child_start.map(|c| ChildStart {
                input: c.input.into_owned(),
                start: record::at(c.start),
                events: c.events,
                arn: c.arn.into_owned(),
                map_run_arn: c.map_run_arn.into_owned(),
                redrive_count: c.redrive_count,
            }),
        };
        let mut run = Run::new(
            scope,
            record.scope_path,
            StateId(record.state),
            run_data,
            !legacy,
        );
        run.parent = parent;
        // Its parent is restored before it (a shorter scope path).
        run.in_child_execution = parent.is_some_and(|link| self.starts_child_execution(link));
        run.entered_event = record.entered_event;
        run.entered_time = record::at(record.entered_time);
        run.last_event = record.last_event;
        run.attempts = record.attempts;
        run.retry_count = record.retry_count;
        run.entered = record.entered;
        run.fallen = record.fallen;
        run.output_from_result = record.output_from_result.map(|o| match o {
            OutputFromRecord::Result => OutputFrom::Result,
            OutputFromRecord::Suffix(steps) => {
                OutputFrom::Suffix(steps.into_iter().map(PathStepRecord::into_step).collect())
            }
        });
        run.waiting = match record.waiting {
            WaitingRecord::Nothing => Waiting::Nothing,
            WaitingRecord::Task {
                request,
                resource_type,
                resource,
            } => Waiting::Task {
                request: Box::new(request.into_request()),
                resource_type,
                resource,
            },
            WaitingRecord::Wait { until, reason } => Waiting::Wait {
                until: record::at(until),
                reason: reason.into_reason(),
            },
            WaitingRecord::Retry { until, reason } => Waiting::Retry {
                until: record::at(until),
                reason: reason.into_reason(),
            },
            WaitingRecord::Children(c) => {
                let stored = results.remove(&c.id);
                let children = restore_children(c, stored, legacy).map_err(mismatch)?;
                Waiting::Children(Box::new(children))
            }
        };
        Ok(run)
    }
}

fn restore_children(
    c: ChildrenRecord,
    results: Option<Vec<(u64, Box<RawValue>)>>,
    legacy: bool,
) -> Result<Children, String> {
    // A Map's items are counted in the record, not listed: a corrupt count must not become
    // an allocation of gigabytes.
    const MOST_CHILDREN: u64 = 100_000_000;
    if c.len > MOST_CHILDREN {
        return Err(format!("{} children (at most {MOST_CHILDREN})", c.len));
    }
    let len = c.len as usize;
    let mut children = Children::new(c.id, len, c.concurrency as usize);
    let slots = |list: Vec<(u64, RunIdRecord)>| -> Vec<(usize, RunId)> {
        list.into_iter()
            .map(|(slot, id)| (slot as usize, id.into_id()))
            .collect()
    };
    for (index, result) in results.into_iter().flatten() {
        if index >= c.len {
            return Err(format!("a result for child #{index} of {} children", c.len));
        }
        children.restore_result(index as usize, result);
    }
    children.stored = !legacy;
    children.running = slots(c.running);
    children.fallen = slots(c.fallen);
    children.to_redrive = slots(c.to_redrive);
    children.next_item = c.next_item as usize;
    children.finished = c.finished as usize;
    children.failed = c.failed as usize;
    children.tolerated_count = c.tolerated_count;
    children.tolerated_percentage = c.tolerated_percentage;
    let redrives = c.map_run_redrives;
    children.map_run = c.map_run.map(|(arn, start, ended)| MapRun {
        arn,
        start: record::at(start),
        ended,
        redrive_count: redrives.map_or(0, |(n, _)| n),
        redrive_date: redrives.map(|(_, at)| record::at(at)),
    });
    children.batching = c.batching.map(|b| Batching {
        items: b.items as usize,
        max_items: b.max_items as usize,
        max_bytes: b.max_bytes as usize,
        batch_input: b.batch_input,
        starts: None,
    });
    Ok(children)
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
