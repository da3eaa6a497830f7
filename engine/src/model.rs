//! The execution's vocabulary, shared by the interpreter, the driver, the records and the stores:
//! what identifies an execution, where it stands, the commands the interpreter hands out and the
//! inputs it takes back. Plain values: nothing here runs anything.

use serde_json::Value;
use stepstone_asl::intrinsics::splitmix64;
use stepstone_asl::timestamp::Timestamp;

use crate::failure::Failure;

/// Identifies a run (the root, a branch, an iteration) within its execution. Ids are reused
/// after a run ends, with a new generation, so a late answer for an ended run is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct RunId {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

impl RunId {
    pub(crate) fn new(index: u32, generation: u32) -> RunId {
        RunId { index, generation }
    }

    /// Slot and generation.
    pub(crate) fn parts(self) -> (u32, u32) {
        (self.index, self.generation)
    }

    /// An id that names no run: answers for it are ignored.
    pub fn detached() -> RunId {
        RunId {
            index: u32::MAX,
            generation: u32::MAX,
        }
    }
}

/// What identifies an execution and what `$$.Execution` and `$$.StateMachine` show.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ExecutionInfo {
    /// `arn:aws:states:<region>:<account>:execution:<machine>:<name>`
    pub execution_arn: String,
    /// The execution's name.
    pub name: String,
    /// `arn:aws:states:<region>:<account>:stateMachine:<machine>`
    pub state_machine_arn: String,
    /// The state machine's name.
    pub state_machine_name: String,
    /// The role ARN shown in `$$.Execution.RoleArn`.
    pub role_arn: String,
    /// When the execution started.
    pub start_time: Timestamp,
    /// The execution's input.
    pub input: Value,
    /// How many times the execution was redriven.
    pub redrive_count: u32,
    /// When it was last redriven. Since checkpoint v2.
    #[serde(default)]
    pub redrive_time: Option<Timestamp>,
    /// An EXPRESS execution: its ARN reads `express:` and it has no RedriveCount.
    pub express: bool,
}

impl ExecutionInfo {
    /// Names and ARNs for an execution `name` of state machine `machine_name`, in the default
    /// local account and region.
    pub fn new(
        machine_name: &str,
        name: &str,
        input: Value,
        start_time: Timestamp,
        express: bool,
    ) -> ExecutionInfo {
        let prefix = "arn:aws:states:us-east-1:123456789012";
        let execution_arn = if express {
            // AWS adds a run id to an express execution's ARN.
            let run_id = splitmix64(start_time.unix_nanos as u64);
            format!(
                "{prefix}:express:{machine_name}:{name}:{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                run_id >> 32,
                (run_id >> 16) & 0xffff,
                run_id & 0xfff,
                (run_id >> 20) & 0xfff,
                run_id & 0xffff_ffff_ffff
            )
        } else {
            format!("{prefix}:execution:{machine_name}:{name}")
        };
        ExecutionInfo {
            execution_arn,
            name: name.to_owned(),
            state_machine_arn: format!("{prefix}:stateMachine:{machine_name}"),
            state_machine_name: machine_name.to_owned(),
            role_arn: "arn:aws:iam::123456789012:role/stepstone".to_owned(),
            start_time,
            input,
            redrive_count: 0,
            redrive_time: None,
            express,
        }
    }
}

/// A task for the driver to perform.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaskRequest {
    /// The run waiting for it.
    pub run: RunId,
    /// The execution's ARN.
    pub execution_arn: String,
    /// The Task state's name.
    pub state_name: String,
    /// The `Resource` ARN as written.
    pub resource: String,
    /// The task's input (after InputPath and Parameters).
    pub input: Value,
    /// 0 for the first try, then one more per retry.
    pub attempt: u32,
    /// How many tasks this state dispatched before in this execution (0 for the first), over
    /// retries, loops and Map iterations alike: what a MockConfigFile's invocation numbers
    /// count. Kept in the checkpoint, so a task sent again after a crash has the same number.
    #[serde(default)]
    pub invocation: u32,
    /// Stable across resumes: `<execution ARN>/<state>/<entered event>/<attempt>`.
    pub idempotency_token: String,
    /// The region the task's calls go to, when the state names one (a Stepstone extension).
    pub region: Option<String>,
    /// `TimeoutSeconds`, when set.
    pub timeout_seconds: Option<u64>,
    /// For a `.waitForTaskToken` task: its token (`$$.Task.Token`). The dispatch only delivers
    /// the request; the result comes back with the token (see [`crate::Signals`]). Since
    /// checkpoint v2.
    #[serde(default)]
    pub task_token: Option<String>,
    /// `HeartbeatSeconds`: for a task waiting for its token, the longest time between two
    /// heartbeats. Since checkpoint v2.
    #[serde(default)]
    pub heartbeat_seconds: Option<u64>,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Perform a task, then report [`Input::TaskDone`].
    Dispatch(TaskRequest),
    /// At `until`, report [`Input::TimerFired`].
    Timer {
        /// The run waiting.
        run: RunId,
        /// When.
        until: Timestamp,
        /// Why, for progress displays.
        reason: TimerReason,
    },
}

/// Why a timer was set.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TimerReason {
    /// A Wait state.
    Wait {
        /// The state's name.
        state: String,
    },
    /// The delay before retry `attempt` of `max_attempts` of a state.
    Retry {
        /// The state's name.
        state: String,
        /// The error being retried.
        error: String,
        /// 1 for the first retry.
        attempt: u32,
        /// The retrier's MaxAttempts.
        max_attempts: u64,
    },
}

/// What the driver reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A dispatched task finished.
    TaskDone {
        /// The run that dispatched it.
        run: RunId,
        /// Its result or failure.
        result: Result<Value, Failure>,
    },
    /// A timer came due.
    TimerFired {
        /// The run that set it.
        run: RunId,
    },
    /// The execution ran past its `TimeoutSeconds`.
    TimedOut,
}

/// Where an execution stands.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Status {
    /// Not finished.
    Running,
    /// Finished with this output.
    Succeeded(Value),
    /// Failed with this error.
    Failed(Failure),
    /// Ran past its `TimeoutSeconds`.
    TimedOut(Failure),
    /// Stopped from outside (`stepstone stop`, StopExecution).
    Aborted(Failure),
}

impl Status {
    /// `RUNNING`, `SUCCEEDED`, `FAILED`, `TIMED_OUT`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Running => "RUNNING",
            Status::Succeeded(_) => "SUCCEEDED",
            Status::Failed(_) => "FAILED",
            Status::TimedOut(_) => "TIMED_OUT",
            Status::Aborted(_) => "ABORTED",
        }
    }
}

/// An execution as ListExecutions shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExecutionRecord {
    /// The execution's ARN.
    pub execution_arn: String,
    /// Its name.
    pub name: String,
    /// The state machine's name.
    pub state_machine_name: String,
    /// RUNNING, SUCCEEDED, FAILED, TIMED_OUT.
    pub status: String,
    /// When it started.
    pub start_date: Timestamp,
    /// When it ended (the checkpoint's clock), unless it is running.
    pub stop_date: Option<Timestamp>,
}

/// A distributed Map's Map Run, as DescribeMapRun and ListMapRuns show it: kept in the store
/// (`M/<map run ARN>`), written when it starts, at each save while its children run, and when
/// it ends.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MapRunRecord {
    /// `arn:aws:states:<region>:<account>:mapRun:<machine>/<label>:<id>`
    pub map_run_arn: String,
    /// The execution that started it.
    pub execution_arn: String,
    /// `arn:aws:states:<region>:<account>:stateMachine:<machine>/<label>`: its children's.
    pub state_machine_arn: String,
    /// RUNNING, SUCCEEDED, FAILED or ABORTED.
    pub status: String,
    /// When it started.
    pub start_date: Timestamp,
    /// When it ended, unless it is running.
    pub stop_date: Option<Timestamp>,
    /// How many children run at once.
    pub max_concurrency: u64,
    /// ToleratedFailureCount (0 without one).
    pub tolerated_failure_count: u64,
    /// ToleratedFailurePercentage (0 without one).
    pub tolerated_failure_percentage: f64,
    /// Children: all of them, and those that succeeded, failed, and are running.
    pub total: u64,
    /// Children that succeeded.
    pub succeeded: u64,
    /// Children that failed.
    pub failed: u64,
    /// Children running.
    pub running: u64,
    /// How many times a redrive took the Map Run up (absent in records written before).
    #[serde(default)]
    pub redrive_count: u32,
    /// When it was last redriven.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redrive_date: Option<Timestamp>,
    /// Children whose results its ResultWriter wrote (DescribeMapRun's `resultsWritten`; 0
    /// until the writer answered, and in records written before it was kept).
    #[serde(default)]
    pub results_written: u64,
}
