//! Operations on stored executions, for the executions no driver in this process runs: the
//! store is the execution's whole state, so stopping one is a write to the store.

use stepstone_asl::timestamp::Timestamp;
use stepstone_asl::{Machine, Options, validate_str};

use crate::clock::Clock;
use crate::error::Error;
use crate::interpreter::{Execution, Input, Status};
use crate::signal::{Callback, CallbackError, token_names, token_of};
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
    // On a virtual clock the execution may be ahead of the real one; time never runs backwards.
    let now = Clock::resuming_at(exec.now).now();
    exec.abort(error, cause, now);
    store.save(&exec.take_changes()?)?;
    Ok(now)
}

/// SendTaskSuccess / SendTaskFailure / SendTaskHeartbeat for a task of an execution that no
/// driver runs: the result is applied in the store, and the states it leads to are worked out
/// up to their next effects, which `resume` then performs. A heartbeat only checks that the
/// task waits (its deadline is not stored: a resumed task waits a full HeartbeatSeconds again).
pub fn callback_stored(
    store: &dyn CheckpointStore,
    token: &str,
    callback: Callback,
) -> Result<(), Error> {
    if token_names(token).is_none() {
        return Err(CallbackError::InvalidToken.into());
    }
    let record = store
        .list()?
        .into_iter()
        .find(|r| token_of(token, &r.execution_arn))
        .ok_or(CallbackError::TaskDoesNotExist)?;
    let (stored, machine) = load_stored(store, &record.execution_arn)?;
    let mut exec = Execution::restore(&machine, stored.checkpoint)?;
    exec.set_token_key(store.token_key()?);
    let run = exec
        .waiting_for_token(token)
        .filter(|_| *exec.status() == Status::Running)
        .ok_or(CallbackError::TaskDoesNotExist)?;
    let result = match callback {
        Callback::Success(output) => Ok(output),
        Callback::Failure { error, cause } => Err(crate::Failure::new(error, cause)),
        // A worker takes an activity task only from a live `serve`: nothing to record here.
        Callback::Heartbeat | Callback::Started { .. } => return Ok(()),
    };
    let now = Clock::resuming_at(exec.now).now();
    // The commands this yields are recorded in the runs that wait for them: `resume` sends them.
    exec.on_input(Input::TaskDone { run, result }, now);
    store.save(&exec.take_changes()?)?;
    Ok(())
}
