//! The error names Step Functions itself raises (`States.*`), as AWS spells them: what Retry
//! and Catch match in `ErrorEquals`, and what the engine fails states with.

/// Matches any error but the terminal ones, in `ErrorEquals`.
pub const ALL: &str = "States.ALL";
/// A payload or a variable over its size limit (terminal: never retried or caught).
pub const DATA_LIMIT_EXCEEDED: &str = "States.DataLimitExceeded";
/// A Map failed because more iterations failed than it tolerates.
pub const EXCEED_TOLERATED_FAILURE_THRESHOLD: &str = "States.ExceedToleratedFailureThreshold";
/// A task waiting for its token sent no heartbeat within its HeartbeatSeconds.
pub const HEARTBEAT_TIMEOUT: &str = "States.HeartbeatTimeout";
/// An HTTP Task's connection failed.
pub const HTTP_SOCKET: &str = "States.Http.Socket";
/// An intrinsic function failed.
pub const INTRINSIC_FAILURE: &str = "States.IntrinsicFailure";
/// A Distributed Map's ItemReader failed.
pub const ITEM_READER_FAILED: &str = "States.ItemReaderFailed";
/// No Choice rule matched and there is no Default.
pub const NO_CHOICE_MATCHED: &str = "States.NoChoiceMatched";
/// A path in a Task's Parameters read nothing.
pub const PARAMETER_PATH_FAILURE: &str = "States.ParameterPathFailure";
/// The execution's role may not do what a state asked.
pub const PERMISSIONS: &str = "States.Permissions";
/// A JSONata expression failed or gave nothing.
pub const QUERY_EVALUATION_ERROR: &str = "States.QueryEvaluationError";
/// A ResultPath cannot be applied to the state's input.
pub const RESULT_PATH_MATCH_FAILURE: &str = "States.ResultPathMatchFailure";
/// A Distributed Map's ResultWriter failed.
pub const RESULT_WRITER_FAILED: &str = "States.ResultWriterFailed";
/// The execution cannot go on (terminal: never retried or caught).
pub const RUNTIME: &str = "States.Runtime";
/// A task failed; in a Task's `ErrorEquals`, any error but `States.Timeout`.
pub const TASK_FAILED: &str = "States.TaskFailed";
/// A task or the execution ran past its TimeoutSeconds.
pub const TIMEOUT: &str = "States.Timeout";

/// Every name above: any other `States.` name in an `ErrorEquals` is refused.
pub const ALL_NAMES: [&str; 16] = [
    ALL,
    DATA_LIMIT_EXCEEDED,
    EXCEED_TOLERATED_FAILURE_THRESHOLD,
    HEARTBEAT_TIMEOUT,
    HTTP_SOCKET,
    INTRINSIC_FAILURE,
    ITEM_READER_FAILED,
    NO_CHOICE_MATCHED,
    PARAMETER_PATH_FAILURE,
    PERMISSIONS,
    QUERY_EVALUATION_ERROR,
    RESULT_PATH_MATCH_FAILURE,
    RESULT_WRITER_FAILED,
    RUNTIME,
    TASK_FAILED,
    TIMEOUT,
];
