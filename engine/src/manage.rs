//! Operations on stored executions, for the executions no driver in this process runs: the
//! store is the execution's whole state, so stopping one is a write to the store.

use std::time::{SystemTime, UNIX_EPOCH};

use stepstone_asl::timestamp::Timestamp;
use stepstone_asl::{Machine, Options, validate_str};

use crate::engine::Error;
use crate::interpreter::{Execution, Status};
use crate::store::{CheckpointStore, Stored};

/// An execution's stored state, and its stored definition compiled again.
pub fn load_stored(store: &dyn CheckpointStore, arn: &str) -> Result<(Stored, Machine), Error> {
    let stored = store
        .load(arn)?
        .ok_or_else(|| Error::NotFound(arn.to_owned()))?;
    let machine = validate_str(&stored.definition, Options::default())
        .machine
        .ok_or_else(|| Error::Definition(arn.to_owned()))?;
    Ok((stored, machine))
}

/// StopExecution for an execution that no driver runs (after a crash, or from another
/// process once the engine that ran it is gone): it becomes ABORTED in the store, with its
/// ExecutionAborted event, frozen where it stood so that it can be redriven. Returns the stop
/// date.
pub fn stop_stored(
    store: &dyn CheckpointStore,
    arn: &str,
    error: &str,
    cause: &str,
) -> Result<Timestamp, Error> {
    let (stored, machine) = load_stored(store, arn)?;
    if stored.checkpoint.status != Status::Running {
        return Err(Error::NotRunning {
            execution_arn: arn.to_owned(),
            status: stored.checkpoint.status.as_str(),
        });
    }
    let mut exec = Execution::restore(&machine, stored.checkpoint)?;
    let real = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    // On a virtual clock the execution may be ahead of the real one; time never runs backwards.
    let now = Timestamp {
        unix_nanos: real.max(exec.checkpoint().now.unix_nanos),
    };
    exec.abort(error, cause, now);
    store.save(&exec.checkpoint(), exec.history().events())?;
    Ok(now)
}
