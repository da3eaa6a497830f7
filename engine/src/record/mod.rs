//! The persisted shapes: what a store keeps of an execution, as types of their own.
//!
//! The interpreter's types (`Run`, `Waiting`, `Children`...) change as the interpreter does;
//! these do not, because an execution checkpointed by one version must resume under every
//! later one. The interpreter converts its state into these records (`interpreter/persist.rs`)
//! and back; stores only place them under keys.
//!
//! Format v3 is incremental: an execution is several records, and each save writes only those
//! that changed since the last one (see [`Changes`]):
//!
//! | record | holds | written |
//! |---|---|---|
//! | [`HeaderRecord`] | status, clock, counters, the slot table's generations, ready runs | every save (small) |
//! | input | the execution's input | once, at creation |
//! | [`RunRecord`] | one run's position: scope, state, event ids, retries, what it waits for | when the run moved |
//! | [`RunDataRecord`] | one run's input, own variables, a Map's items | when they changed |
//! | results batch | results of a Map's or Parallel's children that finished since the last save | once each |
//! | history batch | the events since the last save | once each |
//!
//! Formats v1 and v2 kept the whole execution in one document, rewritten at every save; they
//! are still read (`legacy.rs`), and an execution read from one is written whole in v3 at its
//! next save. Rules for later versions: add fields with `#[serde(default)]` and a `/// Since vN`
//! line; never change the meaning of a field; bump [`FORMAT_VERSION`] and check in a fixture
//! store (`tests/fixtures/`) with each change.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use stepstone_asl::timestamp::Timestamp;

use crate::failure::Failure;
use crate::history::{Event, History, HistoryMode};
use crate::item_list::ItemList;
use crate::limits::Limits;
use crate::model::{ExecutionInfo, RunId, Status, TaskRequest, TimerReason};

pub(crate) mod legacy;

/// The checkpoint format this version writes.
pub const FORMAT_VERSION: u32 = 3;

/// An execution's whole state as a store holds it, read back: what
/// [`crate::Execution::restore`] rebuilds the execution from.
pub struct Checkpoint {
    /// The format it was written in.
    pub version: u32,
    /// Identity, input, start time.
    pub info: ExecutionInfo,
    /// Where it stands.
    pub status: Status,
    /// The execution's clock when it was last saved (real or virtual).
    pub now: Timestamp,
    /// Limits it runs under.
    pub limits: Limits,
    /// The history's mode and event count (the events are stored apart).
    pub history: History,
    /// States entered so far.
    pub states_entered: u64,
    /// The seed of its randomness.
    pub seed: u64,
    /// Tasks dispatched so far, per state name (`TaskRequest::invocation`).
    pub dispatches: BTreeMap<String, u32>,
    pub(crate) slots: Vec<SlotState>,
    pub(crate) free: Vec<u32>,
    pub(crate) ready: Vec<RunId>,
    /// The finished children's results, by their Map's or Parallel's children id.
    pub(crate) results: BTreeMap<u64, Vec<(u64, Box<RawValue>)>>,
    pub(crate) next_children: u64,
    pub(crate) next_batch: u64,
    /// Read from a v1 or v2 document: the next save writes the execution whole, in v3.
    pub(crate) legacy: bool,
}

/// One slot of the run table, as stored.
pub(crate) struct SlotState {
    pub(crate) generation: u32,
    pub(crate) run: Option<(RunRecord<'static>, RunDataRecord<'static>)>,
}

/// The record kinds of an execution, for a store to place under its own keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RecordKey {
    /// The [`HeaderRecord`].
    Header,
    /// The execution's input.
    Input,
    /// The [`RunRecord`] of slot `n`.
    Run(u32),
    /// The [`RunDataRecord`] of slot `n`.
    RunData(u32),
    /// A batch of results of the children `children` (a Map's or Parallel's), `batch` counting
    /// the execution's batches.
    Results {
        /// The children's id.
        children: u64,
        /// The batch's number.
        batch: u64,
    },
    /// Every results batch of `children` (only ever deleted, as a whole).
    AllResults {
        /// The children's id.
        children: u64,
    },
    /// A batch of history events, the first with id `first`.
    History {
        /// The id of its first event.
        first: u64,
    },
}

/// What a save writes: the records of one execution that changed since its last save, and the
/// events recorded since then. Stores apply it in one atomic write.
pub struct Changes {
    pub(crate) execution_arn: String,
    /// Every record of the execution is here (its creation, or its first save after it was
    /// read from a v1 or v2 document).
    pub(crate) complete: bool,
    /// The listing record, when the status changed.
    pub(crate) listing: Option<crate::model::ExecutionRecord>,
    /// Every record to write but the history batch, encoded.
    pub(crate) puts: Vec<(RecordKey, Vec<u8>)>,
    pub(crate) deletes: Vec<RecordKey>,
    /// The history batch's events, encoded by the store when it writes them: on a disk store,
    /// by its writer thread, while the interpreter goes on (shared with it for that time).
    pub(crate) events: std::sync::Arc<Vec<Event>>,
    /// The run of saves they continue (each applied only after the one before it).
    pub(crate) chain: crate::store::chain::Chain,
    /// The Map Runs that moved (started, progressed, ended).
    pub(crate) map_runs: Vec<crate::model::MapRunRecord>,
    /// Events of distributed Maps' child executions since the last save, by child.
    pub(crate) child_events: Vec<ChildEvents>,
}

/// Events of one child execution of a distributed Map, in order.
#[derive(Debug)]
pub(crate) struct ChildEvents {
    pub(crate) arn: String,
    pub(crate) events: Vec<Event>,
}

/// A mark of a distributed Map's child execution (`k/<child id>/s`, `e` or `p<first id>`):
/// which batch (`b/...`) holds its events of one save, and, when it started or ended in that
/// save, when (and how it ended). The store lists a Map Run's children from their marks.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ChildMarkRecord {
    pub(crate) batch: String,
    /// The id of the child's first event in the batch.
    pub(crate) first: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) started: Option<Timestamp>,
    /// Its status (SUCCEEDED, FAILED, ABORTED) and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ended: Option<(String, Timestamp)>,
    /// When a redrive of its Map Run ran it again (it is running again, unless it also ended in
    /// this save).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) redriven: Option<Timestamp>,
}

impl ChildMarkRecord {
    pub(crate) fn pointer(batch: String, first: u64) -> ChildMarkRecord {
        ChildMarkRecord {
            batch,
            first,
            started: None,
            ended: None,
            redriven: None,
        }
    }
}

/// The child executions' events an execution has recorded since its last save.
#[derive(Debug, Default)]
pub(crate) struct ChildHistories(Vec<ChildEvents>);

impl ChildHistories {
    /// Adds `event` of child `arn`.
    pub(crate) fn push(&mut self, arn: String, event: Event) {
        match self.0.last_mut() {
            Some(last) if last.arn == arn => last.events.push(event),
            _ => self.0.push(ChildEvents {
                arn,
                events: vec![event],
            }),
        }
    }

    /// Everything recorded since the last call.
    pub(crate) fn take(&mut self) -> Vec<ChildEvents> {
        std::mem::take(&mut self.0)
    }
}

impl Changes {
    /// The execution they belong to.
    pub fn execution_arn(&self) -> &str {
        &self.execution_arn
    }

    /// The history events recorded since the previous save, in order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Whether they hold every record of the execution (a creation).
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// The records to write, encoded, but for the history batch ([`Changes::history_record`]).
    pub fn puts(&self) -> &[(RecordKey, Vec<u8>)] {
        &self.puts
    }

    /// The history batch's record, encoded (none without events).
    pub fn history_record(
        &self,
    ) -> Result<Option<(RecordKey, Vec<u8>)>, crate::store::error::Error> {
        let Some(first) = self.events.first() else {
            return Ok(None);
        };
        Ok(Some((
            RecordKey::History { first: first.id },
            encode_events(&self.events)?,
        )))
    }

    /// The records to delete.
    pub fn deletes(&self) -> &[RecordKey] {
        &self.deletes
    }

    /// The execution's listing record, when it changed (its status).
    pub fn listing(&self) -> Option<&crate::model::ExecutionRecord> {
        self.listing.as_ref()
    }

    /// Hands the events over (for an observer, once they are saved).
    pub fn into_events(self) -> Vec<Event> {
        unshare(self.events)
    }
}

/// Events that were shared with a store's writer: taken back whole once it let go of them (it
/// has when it answered the write), copied if it still holds them.
pub(crate) fn unshare(events: std::sync::Arc<Vec<Event>>) -> Vec<Event> {
    std::sync::Arc::try_unwrap(events).unwrap_or_else(|shared| (*shared).clone())
}

// ---- the records

/// A time in the listing record and in v1/v2 documents: `{"unix_nanos": N}`.
#[derive(Serialize, Deserialize, Clone, Copy)]
pub(crate) struct TimestampField {
    pub(crate) unix_nanos: i128,
}

/// The listing record (`e/<ARN>` in the key layout): what ListExecutions shows, and where the
/// execution's other records are.
#[derive(Serialize, Deserialize)]
pub(crate) struct ListingRecord {
    pub(crate) execution_arn: String,
    pub(crate) name: String,
    pub(crate) state_machine_name: String,
    pub(crate) status: String,
    pub(crate) start_date: TimestampField,
    pub(crate) stop_date: Option<TimestampField>,
    /// The number the execution's records are kept under. Since v3; a v1 or v2 execution has
    /// none (its checkpoint is one document).
    #[serde(default)]
    pub(crate) key: Option<u64>,
}

impl ListingRecord {
    pub(crate) fn of(record: &crate::model::ExecutionRecord, key: Option<u64>) -> ListingRecord {
        ListingRecord {
            execution_arn: record.execution_arn.clone(),
            name: record.name.clone(),
            state_machine_name: record.state_machine_name.clone(),
            status: record.status.clone(),
            start_date: TimestampField {
                unix_nanos: record.start_date.unix_nanos,
            },
            stop_date: record.stop_date.map(|t| TimestampField {
                unix_nanos: t.unix_nanos,
            }),
            key,
        }
    }

    pub(crate) fn to_record(&self) -> crate::model::ExecutionRecord {
        crate::model::ExecutionRecord {
            execution_arn: self.execution_arn.clone(),
            name: self.name.clone(),
            state_machine_name: self.state_machine_name.clone(),
            status: self.status.clone(),
            start_date: at(self.start_date.unix_nanos),
            stop_date: self.stop_date.map(|t| at(t.unix_nanos)),
        }
    }
}

/// Execution-level state: everything but the runs, the input and the results. Small, and
/// rewritten at every save.
#[derive(Serialize, Deserialize)]
pub(crate) struct HeaderRecord<'a> {
    pub(crate) version: u32,
    /// How many times the execution was redriven, and when it last was (the rest of its
    /// identity is in the input record).
    pub(crate) redrive_count: u32,
    pub(crate) redrive_time: Option<i128>,
    pub(crate) status: StatusRecord<'a>,
    pub(crate) now: i128,
    pub(crate) limits: LimitsRecord,
    pub(crate) history: HistoryModeRecord,
    /// History events so far (their ids are 1 to this).
    pub(crate) events: u64,
    pub(crate) states_entered: u64,
    pub(crate) seed: u64,
    pub(crate) dispatches: BTreeMap<String, u32>,
    /// Each slot's generation, live or free (a run id names slot and generation).
    pub(crate) generations: Vec<u32>,
    pub(crate) free: Vec<u32>,
    pub(crate) ready: Vec<RunIdRecord>,
    /// The id the next Map's or Parallel's children get.
    pub(crate) next_children: u64,
    /// The number the next results batch gets.
    pub(crate) next_batch: u64,
}

/// The input record: the execution's identity and input, written once, at its creation
/// (redrives, which change the execution's redrive count, are in the header).
#[derive(Serialize, Deserialize)]
pub(crate) struct InputRecord<'a> {
    pub(crate) execution_arn: Cow<'a, str>,
    pub(crate) name: Cow<'a, str>,
    pub(crate) state_machine_arn: Cow<'a, str>,
    pub(crate) state_machine_name: Cow<'a, str>,
    pub(crate) role_arn: Cow<'a, str>,
    pub(crate) start_time: i128,
    pub(crate) express: bool,
    pub(crate) input: Cow<'a, Value>,
}

impl InputRecord<'_> {
    pub(crate) fn of(info: &ExecutionInfo) -> InputRecord<'_> {
        InputRecord {
            execution_arn: Cow::Borrowed(&info.execution_arn),
            name: Cow::Borrowed(&info.name),
            state_machine_arn: Cow::Borrowed(&info.state_machine_arn),
            state_machine_name: Cow::Borrowed(&info.state_machine_name),
            role_arn: Cow::Borrowed(&info.role_arn),
            start_time: info.start_time.unix_nanos,
            express: info.express,
            input: Cow::Borrowed(&info.input),
        }
    }

    /// The execution's info, with what the header says of its redrives.
    pub(crate) fn into_info(self, header: &HeaderRecord<'_>) -> ExecutionInfo {
        ExecutionInfo {
            execution_arn: self.execution_arn.into_owned(),
            name: self.name.into_owned(),
            state_machine_arn: self.state_machine_arn.into_owned(),
            state_machine_name: self.state_machine_name.into_owned(),
            role_arn: self.role_arn.into_owned(),
            start_time: at(self.start_time),
            input: self.input.into_owned(),
            redrive_count: header.redrive_count,
            redrive_time: header.redrive_time.map(at),
            express: self.express,
        }
    }
}

/// A time as nanoseconds since 1970.
pub(crate) fn at(unix_nanos: i128) -> Timestamp {
    Timestamp { unix_nanos }
}

#[derive(Serialize, Deserialize)]
pub(crate) enum StatusRecord<'a> {
    Running,
    Succeeded(Cow<'a, Value>),
    Failed(FailureRecord),
    TimedOut(FailureRecord),
    Aborted(FailureRecord),
}

impl StatusRecord<'_> {
    pub(crate) fn of(status: &Status) -> StatusRecord<'_> {
        match status {
            Status::Running => StatusRecord::Running,
            Status::Succeeded(v) => StatusRecord::Succeeded(Cow::Borrowed(v)),
            Status::Failed(f) => StatusRecord::Failed(FailureRecord::of(f)),
            Status::TimedOut(f) => StatusRecord::TimedOut(FailureRecord::of(f)),
            Status::Aborted(f) => StatusRecord::Aborted(FailureRecord::of(f)),
        }
    }

    pub(crate) fn into_status(self) -> Status {
        match self {
            StatusRecord::Running => Status::Running,
            StatusRecord::Succeeded(v) => Status::Succeeded(v.into_owned()),
            StatusRecord::Failed(f) => Status::Failed(f.into_failure()),
            StatusRecord::TimedOut(f) => Status::TimedOut(f.into_failure()),
            StatusRecord::Aborted(f) => Status::Aborted(f.into_failure()),
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct FailureRecord {
    pub(crate) error: String,
    pub(crate) cause: String,
}

impl FailureRecord {
    pub(crate) fn of(f: &Failure) -> FailureRecord {
        FailureRecord {
            error: f.error.clone(),
            cause: f.cause.clone(),
        }
    }

    pub(crate) fn into_failure(self) -> Failure {
        Failure::new(self.error, self.cause)
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct LimitsRecord {
    pub(crate) max_history_events: Option<u64>,
    pub(crate) max_payload_bytes: usize,
    pub(crate) max_map_concurrency: usize,
}

impl LimitsRecord {
    pub(crate) fn of(l: &Limits) -> LimitsRecord {
        LimitsRecord {
            max_history_events: l.max_history_events,
            max_payload_bytes: l.max_payload_bytes,
            max_map_concurrency: l.max_map_concurrency,
        }
    }

    pub(crate) fn into_limits(self) -> Limits {
        Limits::default()
            .with_max_history_events(self.max_history_events)
            .with_max_payload_bytes(self.max_payload_bytes)
            .with_max_map_concurrency(self.max_map_concurrency)
    }
}

#[derive(Serialize, Deserialize, Clone, Copy)]
pub(crate) enum HistoryModeRecord {
    Off,
    Light,
    Full,
    /// Never stored by `run` (a durable execution records its history in full); here so that
    /// every mode has its record.
    Notable,
}

impl HistoryModeRecord {
    pub(crate) fn of(mode: HistoryMode) -> HistoryModeRecord {
        match mode {
            HistoryMode::Off => HistoryModeRecord::Off,
            HistoryMode::Light => HistoryModeRecord::Light,
            HistoryMode::Full => HistoryModeRecord::Full,
            HistoryMode::Notable => HistoryModeRecord::Notable,
        }
    }

    pub(crate) fn into_mode(self) -> HistoryMode {
        match self {
            HistoryModeRecord::Off => HistoryMode::Off,
            HistoryModeRecord::Light => HistoryMode::Light,
            HistoryModeRecord::Full => HistoryMode::Full,
            HistoryModeRecord::Notable => HistoryMode::Notable,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunIdRecord {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

impl RunIdRecord {
    pub(crate) fn of(id: RunId) -> RunIdRecord {
        let (index, generation) = id.parts();
        RunIdRecord { index, generation }
    }

    pub(crate) fn into_id(self) -> RunId {
        RunId::new(self.index, self.generation)
    }
}

/// A run's position: everything but its data. Rewritten whenever the run moves.
#[derive(Serialize, Deserialize)]
pub(crate) struct RunRecord<'a> {
    /// The run's scope, as (state index, child index) steps from the machine's root.
    pub(crate) scope_path: Vec<(u32, u32)>,
    /// Its current state's index in that scope.
    pub(crate) state: u32,
    pub(crate) parent: Option<LinkRecord>,
    pub(crate) entered_event: u64,
    pub(crate) entered_time: i128,
    pub(crate) last_event: u64,
    /// Attempts used per retrier of the current state.
    pub(crate) attempts: Vec<u32>,
    pub(crate) retry_count: u32,
    pub(crate) waiting: WaitingRecord<'a>,
    pub(crate) output_from_result: Option<OutputFromRecord>,
    /// Whether its current state was entered (its raw input is then in that state's
    /// StateEntered event).
    pub(crate) entered: bool,
    /// Frozen by a failure, for a redrive.
    pub(crate) fallen: bool,
}

/// A run's data: its current state's raw input, the variables it assigned (its own frame; a
/// run without a parent keeps every frame, outermost first), and a Map's effective input while
/// its iterations start. Written when one of them changed.
#[derive(Serialize, Deserialize)]
pub(crate) struct RunDataRecord<'a> {
    pub(crate) input: Cow<'a, Value>,
    pub(crate) frames: Vec<Cow<'a, Map<String, Value>>>,
    pub(crate) input_for_items: Option<Cow<'a, Value>>,
    /// What a Map's ItemReader read (absent in stores written before there were readers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) read_items: Option<Cow<'a, ItemList>>,
    /// The first run of a distributed Map's child execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) child_start: Option<ChildStartRecord<'a>>,
}

/// What the first run of a distributed Map's child execution keeps of that execution.
#[derive(Serialize, Deserialize)]
pub(crate) struct ChildStartRecord<'a> {
    pub(crate) input: Cow<'a, Value>,
    pub(crate) start: i128,
    pub(crate) events: u64,
    pub(crate) arn: Cow<'a, str>,
    pub(crate) map_run_arn: Cow<'a, str>,
    /// How many times its Map Run's redrives ran it again (absent: none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) redrive_count: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Serialize, Deserialize, Clone, Copy)]
pub(crate) struct LinkRecord {
    pub(crate) parent: RunIdRecord,
    pub(crate) slot: u64,
}

#[derive(Serialize, Deserialize)]
pub(crate) enum WaitingRecord<'a> {
    Nothing,
    Task {
        request: TaskRequestRecord<'a>,
        resource_type: String,
        resource: String,
    },
    Wait {
        until: i128,
        reason: TimerReasonRecord,
    },
    Retry {
        until: i128,
        reason: TimerReasonRecord,
    },
    Children(ChildrenRecord),
}

/// A Map's or Parallel's children, without their results (stored apart, in batches).
#[derive(Serialize, Deserialize)]
pub(crate) struct ChildrenRecord {
    /// Names the results batches of these children.
    pub(crate) id: u64,
    /// How many children (branches, items).
    pub(crate) len: u64,
    pub(crate) running: Vec<(u64, RunIdRecord)>,
    pub(crate) fallen: Vec<(u64, RunIdRecord)>,
    pub(crate) to_redrive: Vec<(u64, RunIdRecord)>,
    pub(crate) next_item: u64,
    pub(crate) concurrency: u64,
    pub(crate) finished: u64,
    pub(crate) failed: u64,
    pub(crate) tolerated_count: Option<u64>,
    pub(crate) tolerated_percentage: Option<f64>,
    /// A Map with an ItemBatcher (absent in stores written before there were batches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) batching: Option<BatchingRecord>,
    /// A distributed Map's Map Run: its ARN, start and whether its end is recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) map_run: Option<(String, i128, bool)>,
    /// A redriven Map Run: how many times, and when last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) map_run_redrives: Option<(u32, i128)>,
}

/// How a Map groups its items into batches; where the batches start is worked out again.
#[derive(Serialize, Deserialize)]
pub(crate) struct BatchingRecord {
    pub(crate) items: u64,
    pub(crate) max_items: u64,
    pub(crate) max_bytes: u64,
    pub(crate) batch_input: Option<Value>,
}

#[derive(Serialize, Deserialize)]
pub(crate) enum OutputFromRecord {
    Result,
    Suffix(Vec<PathStepRecord>),
}

#[derive(Serialize, Deserialize)]
pub(crate) enum PathStepRecord {
    Field(String),
    Index(usize),
}

impl PathStepRecord {
    pub(crate) fn of(step: &stepstone_asl::path::Step) -> PathStepRecord {
        match step {
            stepstone_asl::path::Step::Field(n) => PathStepRecord::Field(n.clone()),
            stepstone_asl::path::Step::Index(i) => PathStepRecord::Index(*i),
        }
    }

    pub(crate) fn into_step(self) -> stepstone_asl::path::Step {
        match self {
            PathStepRecord::Field(n) => stepstone_asl::path::Step::Field(n),
            PathStepRecord::Index(i) => stepstone_asl::path::Step::Index(i),
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct TaskRequestRecord<'a> {
    pub(crate) run: RunIdRecord,
    pub(crate) execution_arn: String,
    pub(crate) state_name: String,
    pub(crate) resource: String,
    pub(crate) input: Cow<'a, Value>,
    pub(crate) attempt: u32,
    #[serde(default)]
    pub(crate) invocation: u32,
    pub(crate) idempotency_token: String,
    pub(crate) region: Option<String>,
    pub(crate) timeout_seconds: Option<u64>,
    #[serde(default)]
    pub(crate) task_token: Option<String>,
    #[serde(default)]
    pub(crate) heartbeat_seconds: Option<u64>,
}

impl TaskRequestRecord<'_> {
    pub(crate) fn of(r: &TaskRequest) -> TaskRequestRecord<'_> {
        TaskRequestRecord {
            run: RunIdRecord::of(r.run),
            execution_arn: r.execution_arn.clone(),
            state_name: r.state_name.clone(),
            resource: r.resource.clone(),
            input: Cow::Borrowed(&r.input),
            attempt: r.attempt,
            invocation: r.invocation,
            idempotency_token: r.idempotency_token.clone(),
            region: r.region.clone(),
            timeout_seconds: r.timeout_seconds,
            task_token: r.task_token.clone(),
            heartbeat_seconds: r.heartbeat_seconds,
        }
    }

    pub(crate) fn into_request(self) -> TaskRequest {
        TaskRequest {
            run: self.run.into_id(),
            execution_arn: self.execution_arn,
            state_name: self.state_name,
            resource: self.resource,
            input: self.input.into_owned(),
            attempt: self.attempt,
            invocation: self.invocation,
            idempotency_token: self.idempotency_token,
            region: self.region,
            timeout_seconds: self.timeout_seconds,
            task_token: self.task_token,
            heartbeat_seconds: self.heartbeat_seconds,
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) enum TimerReasonRecord {
    Wait {
        state: String,
    },
    Retry {
        state: String,
        error: String,
        attempt: u32,
        max_attempts: u64,
    },
}

impl TimerReasonRecord {
    pub(crate) fn of(r: &TimerReason) -> TimerReasonRecord {
        match r {
            TimerReason::Wait { state } => TimerReasonRecord::Wait {
                state: state.clone(),
            },
            TimerReason::Retry {
                state,
                error,
                attempt,
                max_attempts,
            } => TimerReasonRecord::Retry {
                state: state.clone(),
                error: error.clone(),
                attempt: *attempt,
                max_attempts: *max_attempts,
            },
        }
    }

    pub(crate) fn into_reason(self) -> TimerReason {
        match self {
            TimerReasonRecord::Wait { state } => TimerReason::Wait { state },
            TimerReasonRecord::Retry {
                state,
                error,
                attempt,
                max_attempts,
            } => TimerReason::Retry {
                state,
                error,
                attempt,
                max_attempts,
            },
        }
    }
}

/// The records of a v3 execution, read back.
pub(crate) struct Records {
    pub(crate) header: HeaderRecord<'static>,
    pub(crate) input: InputRecord<'static>,
    pub(crate) runs: BTreeMap<u32, RunRecord<'static>>,
    pub(crate) data: BTreeMap<u32, RunDataRecord<'static>>,
    /// Results batches in the order they were written, by children id.
    pub(crate) results: BTreeMap<u64, Vec<(u64, Box<RawValue>)>>,
}

impl Checkpoint {
    /// The execution the records hold. A run without its data is an error.
    pub(crate) fn from_records(records: Records) -> Result<Checkpoint, String> {
        let Records {
            header,
            input,
            mut runs,
            mut data,
            results,
        } = records;
        let mut slots = Vec::with_capacity(header.generations.len());
        for (index, generation) in header.generations.iter().enumerate() {
            let index = index as u32;
            let run = match (runs.remove(&index), data.remove(&index)) {
                (Some(run), Some(data)) => Some((run, data)),
                (None, _) => None,
                (Some(_), None) => return Err(format!("run #{index} has no data record")),
            };
            slots.push(SlotState {
                generation: *generation,
                run,
            });
        }
        if let Some(index) = runs.keys().next() {
            return Err(format!("run #{index} is outside the run table"));
        }
        Ok(Checkpoint {
            version: header.version,
            info: input.into_info(&header),
            status: header.status.into_status(),
            now: at(header.now),
            limits: header.limits.into_limits(),
            history: History::counted(header.history.into_mode(), header.events),
            states_entered: header.states_entered,
            seed: header.seed,
            dispatches: header.dispatches,
            slots,
            free: header.free,
            ready: header.ready.into_iter().map(RunIdRecord::into_id).collect(),
            results,
            next_children: header.next_children,
            next_batch: header.next_batch,
            legacy: false,
        })
    }
}

// ---- encoding

/// Records at least this long are stored compressed (LZ4): history batches and large inputs or
/// outputs shrink several times (their JSON repeats field names, ARNs, state names), smaller
/// records are not worth the work.
const COMPRESS_FROM: usize = 1024;

/// The first byte of a compressed record. No JSON text starts with it.
const COMPRESSED: u8 = 0xC4;

/// The most a compressed record may claim to expand to, per compressed byte (LZ4 cannot do
/// better than about 255:1): a corrupt length is an error, not an allocation of gigabytes.
const MAX_RATIO: usize = 256;

/// A record as JSON text.
pub(crate) fn encode_json<T: Serialize>(value: &T) -> Result<Vec<u8>, crate::store::error::Error> {
    serde_json::to_vec(value)
        .map_err(|e| crate::store::error::Error::Io(format!("cannot encode a record: {e}")))
}

/// How deep a record's JSON may nest, written or read: the deepest value an execution holds
/// ([`crate::limits::MAX_DEPTH`]) with ample room for the record around it. One bound both
/// ways: what the store writes, it reads back (serde_json alone reads 128 levels, and a record
/// around a value of 128 levels is deeper).
pub(crate) const MAX_RECORD_DEPTH: usize = 2 * crate::limits::MAX_DEPTH;

/// How deep JSON text nests (arrays and objects), counted without parsing it. Every record
/// written and read goes through it, so strings (most of a record's text) are skipped whole,
/// from quote to quote, rather than byte by byte.
fn nesting(json: &[u8]) -> usize {
    let (mut depth, mut deepest, mut at) = (0usize, 0usize, 0usize);
    while let Some(&b) = json.get(at) {
        at += 1;
        match b {
            b'"' => loop {
                // To the closing quote, stepping over escapes (`\"` is not one).
                match memchr::memchr2(b'"', b'\\', &json[at..]) {
                    Some(i) if json[at + i] == b'\\' => at = (at + i + 2).min(json.len()),
                    Some(i) => {
                        at += i + 1;
                        break;
                    }
                    None => return deepest,
                }
            },
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// A record as stored: JSON, compressed when it is large.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, crate::store::error::Error> {
    let json = encode_json(value)?;
    let depth = nesting(&json);
    if depth > MAX_RECORD_DEPTH {
        return Err(crate::store::error::Error::Io(format!(
            "cannot store a record that nests {depth} levels (at most {MAX_RECORD_DEPTH} are read back)"
        )));
    }
    if json.len() < COMPRESS_FROM {
        return Ok(json);
    }
    let mut out = Vec::with_capacity(json.len() / 4 + 8);
    out.push(COMPRESSED);
    out.extend_from_slice(&lz4_flex::block::compress_prepend_size(&json));
    Ok(out)
}

/// A stored record's JSON text: decompressed if it was stored compressed.
fn json_of<'a>(
    key: &str,
    bytes: &'a [u8],
) -> Result<std::borrow::Cow<'a, [u8]>, crate::store::error::Error> {
    let Some((&COMPRESSED, packed)) = bytes.split_first() else {
        return Ok(std::borrow::Cow::Borrowed(bytes));
    };
    let corrupt = |reason: String| crate::store::error::Error::Corrupt {
        key: key.to_owned(),
        reason,
    };
    let claimed = packed
        .get(..4)
        .map(|n| u32::from_le_bytes([n[0], n[1], n[2], n[3]]) as usize)
        .ok_or_else(|| corrupt("a compressed record without its length".into()))?;
    if claimed > packed.len().saturating_mul(MAX_RATIO) {
        return Err(corrupt(format!(
            "a compressed record of {} bytes claims {claimed} bytes",
            packed.len()
        )));
    }
    lz4_flex::block::decompress_size_prepended(packed)
        .map(std::borrow::Cow::Owned)
        .map_err(|e| corrupt(format!("cannot decompress: {e}")))
}

/// A stored record read back; `key` names it in the error.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    key: &str,
    bytes: &[u8],
) -> Result<T, crate::store::error::Error> {
    let json = json_of(key, bytes)?;
    let corrupt = |reason: String| crate::store::error::Error::Corrupt {
        key: key.to_owned(),
        reason,
    };
    let depth = nesting(&json);
    if depth > MAX_RECORD_DEPTH {
        return Err(corrupt(format!(
            "it nests {depth} levels; records nest at most {MAX_RECORD_DEPTH}"
        )));
    }
    // Bounded above, so the parser's own limit (128) is not needed, and would refuse records
    // the store wrote.
    let mut parser = serde_json::Deserializer::from_slice(&json);
    parser.disable_recursion_limit();
    let value = T::deserialize(&mut parser).map_err(|e| corrupt(e.to_string()))?;
    parser.end().map_err(|e| corrupt(e.to_string()))?;
    Ok(value)
}

/// A history batch as stored: a JSON array of events. (v1 and v2 stored one event per record,
/// a JSON object: [`decode_events`] reads both.)
pub(crate) fn encode_events(events: &[Event]) -> Result<Vec<u8>, crate::store::error::Error> {
    encode(&events)
}

/// The events of one save's child executions, as one record: `[[child id, [events]], ...]`
/// (`id_of` gives a child's id, the last part of its ARN).
pub(crate) fn encode_child_batch(
    children: &[ChildEvents],
    id_of: fn(&str) -> &str,
) -> Result<Vec<u8>, crate::store::error::Error> {
    let batch: Vec<(&str, &[Event])> = children
        .iter()
        .map(|child| (id_of(&child.arn), child.events.as_slice()))
        .collect();
    encode(&batch)
}

/// The events of child `id` in a batch written by [`encode_child_batch`] (only its own are
/// parsed).
pub(crate) fn decode_child_batch(
    key: &str,
    bytes: &[u8],
    id: &str,
) -> Result<Vec<Event>, crate::store::error::Error> {
    let batch: Vec<(String, Box<RawValue>)> = decode(key, bytes)?;
    let mut events = Vec::new();
    for (child, raw) in batch.iter().filter(|(child, _)| child == id) {
        let more: Vec<Event> = decode(key, raw.get().as_bytes()).map_err(|e| match e {
            crate::store::error::Error::Corrupt { key, reason } => {
                crate::store::error::Error::Corrupt {
                    key,
                    reason: format!("child {child}: {reason}"),
                }
            }
            other => other,
        })?;
        events.extend(more);
    }
    Ok(events)
}

/// The events of a stored history record: a batch (v3) or one event (v1, v2).
pub(crate) fn decode_events(
    key: &str,
    bytes: &[u8],
) -> Result<Vec<Event>, crate::store::error::Error> {
    let json = json_of(key, bytes)?;
    let first = json.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        decode(key, &json)
    } else {
        decode(key, &json).map(|e: Event| vec![e])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_records_are_compressed_and_read_back() {
        let big: Vec<String> = (0..200).map(|i| format!("region-{i}")).collect();
        let bytes = encode(&big).unwrap();
        assert_eq!(bytes[0], COMPRESSED);
        assert!(bytes.len() < encode_json(&big).unwrap().len() / 2);
        let back: Vec<String> = decode("k", &bytes).unwrap();
        assert_eq!(back, big);
        let small = encode(&"ok").unwrap();
        assert_eq!(small, b"\"ok\"");
    }

    /// A value nested as deep as an execution may hold, inside a record, is read back: the
    /// store reads what it writes (serde_json alone stops at 128 levels).
    #[test]
    fn what_is_written_is_read_back_at_any_depth_the_engine_keeps() {
        let mut deep = Value::from(1);
        for _ in 0..crate::limits::MAX_DEPTH {
            deep = serde_json::json!({ "w": deep });
        }
        let record = serde_json::json!([{"details": {"input": deep}}]);
        let bytes = encode(&record).unwrap();
        let back: Value = decode("x/1/h/1", &bytes).unwrap();
        assert_eq!(back, record);

        // Deeper than the store reads: refused when written, an error when found.
        let mut deeper = Value::from(1);
        for _ in 0..=MAX_RECORD_DEPTH {
            deeper = Value::Array(vec![deeper]);
        }
        assert!(encode(&deeper).is_err());
        let text = serde_json::to_vec(&deeper).unwrap();
        let err = decode::<Value>("x/1/h/2", &text).unwrap_err();
        assert!(err.to_string().contains("nests"), "{err}");
        // Brackets inside strings are text, not nesting.
        let text = format!("[\"{}\"]", "[{".repeat(1000));
        assert_eq!(nesting(text.as_bytes()), 1);
        // Escaped quotes and backslashes do not end a string; an escaped backslash does not
        // escape the quote after it.
        assert_eq!(nesting(br#"[{"a\"[[[": ["\\", [1]]}]"#), 4);
        assert_eq!(nesting(br#"["\\\"{{{"]"#), 1);
        assert_eq!(nesting(br#"[["unterminated \"#), 2);
        assert!(decode::<Value>("k", text.as_bytes()).is_ok());
    }

    #[test]
    fn a_corrupt_compressed_record_is_an_error_not_an_allocation() {
        // Claims 4 GiB from a handful of bytes.
        let bytes = [COMPRESSED, 0xff, 0xff, 0xff, 0xff, 0x10, 0x00];
        let err = decode::<Value>("x/1/h", &bytes).unwrap_err();
        assert!(
            matches!(&err, crate::store::error::Error::Corrupt { key, .. } if key == "x/1/h"),
            "{err}"
        );
        let truncated = [COMPRESSED, 0x40];
        assert!(decode::<Value>("x/1/h", &truncated).is_err());
    }
}
