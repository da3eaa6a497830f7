//! Formats v1 and v2: the whole execution in one JSON document (`c/<ARN>`), rewritten at every
//! save. Read only: an execution found in one is converted into a [`Checkpoint`] here, and
//! written whole in the current format at its next save.
//!
//! These shapes are what Stepstone 0.1 derived from its interpreter's types; they are frozen
//! here, field for field, so that the interpreter can change without losing them.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{
    Checkpoint, FailureRecord, HistoryModeRecord, LimitsRecord, LinkRecord, OutputFromRecord,
    PathStepRecord, RunDataRecord, RunIdRecord, RunRecord, SlotState, TaskRequestRecord,
    TimerReasonRecord, WaitingRecord,
};
use crate::history::History;
use crate::model::{ExecutionInfo, Status};

/// A v1 or v2 checkpoint document.
#[derive(Deserialize)]
pub(crate) struct Document {
    version: u32,
    info: Info,
    status: StatusV2,
    now: TimestampV2,
    limits: LimitsRecord,
    history: HistoryV2,
    states_entered: u64,
    seed: u64,
    /// Since v2.
    #[serde(default)]
    dispatches: BTreeMap<String, u32>,
    runs: Vec<SlotV2>,
    free: Vec<u32>,
    ready: Vec<RunIdRecord>,
}

#[derive(Deserialize, Clone, Copy)]
struct TimestampV2 {
    unix_nanos: i128,
}

#[derive(Deserialize)]
struct Info {
    execution_arn: String,
    name: String,
    state_machine_arn: String,
    state_machine_name: String,
    role_arn: String,
    start_time: TimestampV2,
    input: Value,
    redrive_count: u32,
    /// Since v2.
    #[serde(default)]
    redrive_time: Option<TimestampV2>,
    express: bool,
}

#[derive(Deserialize)]
enum StatusV2 {
    Running,
    Succeeded(Value),
    Failed(FailureRecord),
    TimedOut(FailureRecord),
    Aborted(FailureRecord),
}

#[derive(Deserialize)]
struct HistoryV2 {
    mode: HistoryModeRecord,
    last_id: u64,
}

#[derive(Deserialize)]
struct SlotV2 {
    generation: u32,
    run: Option<RunV2>,
}

#[derive(Deserialize)]
struct RunV2 {
    scope_path: Vec<(u32, u32)>,
    state: u32,
    input: Value,
    vars: Vec<Map<String, Value>>,
    parent: Option<LinkRecord>,
    entered_event: u64,
    entered_time: TimestampV2,
    last_event: u64,
    attempts: Vec<u32>,
    retry_count: u32,
    waiting: WaitingV2,
    input_for_items: Option<Value>,
    output_from_result: Option<OutputFromV2>,
    /// Since v2; in v1, a run was entered unless it waited in `ready`.
    #[serde(default)]
    entered: Option<bool>,
    /// Since v2.
    #[serde(default)]
    fallen: bool,
}

#[derive(Deserialize)]
enum WaitingV2 {
    Nothing,
    Task {
        request: TaskRequestRecord<'static>,
        resource_type: String,
        resource: String,
    },
    Wait {
        until: TimestampV2,
        reason: TimerReasonRecord,
    },
    Retry {
        until: TimestampV2,
        reason: TimerReasonRecord,
    },
    Children(ChildrenV2),
}

#[derive(Deserialize)]
struct ChildrenV2 {
    results: Vec<Option<Value>>,
    running: Vec<(u64, RunIdRecord)>,
    #[serde(default)]
    fallen: Vec<(u64, RunIdRecord)>,
    #[serde(default)]
    to_redrive: Vec<(u64, RunIdRecord)>,
    next_item: u64,
    concurrency: u64,
    finished: u64,
    failed: u64,
    tolerated_count: Option<u64>,
    tolerated_percentage: Option<f64>,
}

#[derive(Deserialize)]
enum OutputFromV2 {
    Result,
    Suffix(Vec<PathStepRecord>),
}

impl Document {
    /// The version it was written in.
    pub(crate) fn version(&self) -> u32 {
        self.version
    }

    /// The execution it holds, as the current format reads it. Children get ids here (v2 kept
    /// their results inline).
    pub(crate) fn into_checkpoint(self) -> Result<Checkpoint, String> {
        let ready: Vec<_> = self.ready.iter().map(|r| r.into_id()).collect();
        let mut results = BTreeMap::new();
        let mut next_children = 1u64;
        let mut slots = Vec::with_capacity(self.runs.len());
        for (index, slot) in self.runs.into_iter().enumerate() {
            let run = match slot.run {
                None => None,
                Some(run) => {
                    let id = RunIdRecord {
                        index: index as u32,
                        generation: slot.generation,
                    };
                    let entered = run.entered.unwrap_or_else(|| !self.ready.contains(&id));
                    let waiting = match run.waiting {
                        WaitingV2::Nothing => WaitingRecord::Nothing,
                        WaitingV2::Task {
                            request,
                            resource_type,
                            resource,
                        } => WaitingRecord::Task {
                            request,
                            resource_type,
                            resource,
                        },
                        WaitingV2::Wait { until, reason } => WaitingRecord::Wait {
                            until: until.unix_nanos,
                            reason,
                        },
                        WaitingV2::Retry { until, reason } => WaitingRecord::Retry {
                            until: until.unix_nanos,
                            reason,
                        },
                        WaitingV2::Children(c) => {
                            let children = next_children;
                            next_children += 1;
                            let mut batch = Vec::new();
                            for (i, r) in c.results.iter().enumerate() {
                                if let Some(v) = r {
                                    let raw = serde_json::value::to_raw_value(v)
                                        .map_err(|e| e.to_string())?;
                                    batch.push((i as u64, raw));
                                }
                            }
                            results.insert(children, batch);
                            WaitingRecord::Children(super::ChildrenRecord {
                                id: children,
                                len: c.results.len() as u64,
                                running: c.running,
                                fallen: c.fallen,
                                to_redrive: c.to_redrive,
                                next_item: c.next_item,
                                concurrency: c.concurrency,
                                finished: c.finished,
                                failed: c.failed,
                                tolerated_count: c.tolerated_count,
                                tolerated_percentage: c.tolerated_percentage,
                                batching: None,
                                map_run: None,
                                map_run_redrives: None,
                            })
                        }
                    };
                    let record = RunRecord {
                        scope_path: run.scope_path,
                        state: run.state,
                        parent: run.parent,
                        entered_event: run.entered_event,
                        entered_time: run.entered_time.unix_nanos,
                        last_event: run.last_event,
                        attempts: run.attempts,
                        retry_count: run.retry_count,
                        waiting,
                        output_from_result: run.output_from_result.map(|o| match o {
                            OutputFromV2::Result => OutputFromRecord::Result,
                            OutputFromV2::Suffix(steps) => OutputFromRecord::Suffix(steps),
                        }),
                        entered,
                        fallen: run.fallen,
                    };
                    let data = RunDataRecord {
                        input: Cow::Owned(run.input),
                        frames: run.vars.into_iter().map(Cow::Owned).collect(),
                        input_for_items: run.input_for_items.map(Cow::Owned),
                        read_items: None,
                        child_start: None,
                    };
                    Some((record, data))
                }
            };
            slots.push(SlotState {
                generation: slot.generation,
                run,
            });
        }
        let info = self.info;
        Ok(Checkpoint {
            version: self.version,
            info: ExecutionInfo {
                execution_arn: info.execution_arn,
                name: info.name,
                state_machine_arn: info.state_machine_arn,
                state_machine_name: info.state_machine_name,
                role_arn: info.role_arn,
                start_time: super::at(info.start_time.unix_nanos),
                input: info.input,
                redrive_count: info.redrive_count,
                redrive_time: info.redrive_time.map(|t| super::at(t.unix_nanos)),
                express: info.express,
            },
            status: match self.status {
                StatusV2::Running => Status::Running,
                StatusV2::Succeeded(v) => Status::Succeeded(v),
                StatusV2::Failed(f) => Status::Failed(f.into_failure()),
                StatusV2::TimedOut(f) => Status::TimedOut(f.into_failure()),
                StatusV2::Aborted(f) => Status::Aborted(f.into_failure()),
            },
            now: super::at(self.now.unix_nanos),
            limits: self.limits.into_limits(),
            history: History::counted(self.history.mode.into_mode(), self.history.last_id),
            states_entered: self.states_entered,
            seed: self.seed,
            dispatches: self.dispatches,
            slots,
            free: self.free,
            ready,
            results,
            next_children,
            next_batch: 0,
            legacy: true,
        })
    }
}
