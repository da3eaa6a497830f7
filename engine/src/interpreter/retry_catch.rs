//! A state's failure goes to its Retry, then its Catch.

use stepstone_asl::eval;
use stepstone_asl::intrinsics::splitmix64;
use stepstone_asl::states::{ErrorHandling, StateKind, Transition};
use stepstone_asl::timestamp::Timestamp;

use super::{Execution, Flow, RunId, TimerReason, Waiting};
use crate::failure::Failure;
use crate::history::EventKind;

impl Execution<'_> {
    /// Retry, then Catch, for the states that have them; `Err` when the run fails.
    pub(super) fn handle_error(&mut self, id: RunId, failure: Failure) -> Result<Flow, Failure> {
        let (_, state) = self.current(id);
        let (errors, in_task): (&ErrorHandling, bool) = match &state.kind {
            StateKind::Task(t) => (&t.errors, true),
            StateKind::Parallel(p) => (&p.errors, false),
            StateKind::Map(m) => (&m.errors, false),
            _ => return Err(failure),
        };
        // A Map or Parallel that failed because of its children records …StateFailed, unless
        // it is retried: AWS records it once, for the attempt that fails for good.
        let failed_event = match (&self.run(id).waiting, &state.kind) {
            (Waiting::Children(_), StateKind::Map(_)) => Some(EventKind::MapStateFailed),
            (Waiting::Children(_), StateKind::Parallel(_)) => Some(EventKind::ParallelStateFailed),
            _ => None,
        };
        if let Some((i, retrier)) = errors
            .retry
            .iter()
            .enumerate()
            .find(|(_, r)| failure.matches(&r.error_equals, in_task))
        {
            if self.probed(id) {
                // TestState: the answer is RETRIABLE (no retry happens), or, with the
                // retrier spent, whatever Catch makes of the error.
                let probe = self.probe.as_mut().expect("probed");
                if probe.retriable(i, retrier) {
                    return Err(failure);
                }
            } else if self.schedule_retry(id, i, retrier, &failure) {
                return Ok(Flow::Blocked);
            }
            // The first matching retrier decides; when it is spent, Catch gets the error.
        }
        if let Some((index, catcher)) = errors
            .catch
            .iter()
            .enumerate()
            .find(|(_, c)| failure.matches(&c.error_equals, in_task))
        {
            if let Some(kind) = failed_event {
                self.event(id, || kind);
            }
            self.discard_children(id);
            if self.probed(id)
                && let Some(probe) = &mut self.probe
            {
                probe.caught = Some((index, failure.clone()));
            }
            let input = self.run_mut(id).take_input();
            let error_output = failure.to_output();
            let output = if self.is_jsonata(id) {
                // Output (default: the error output) and Assign over $states.errorOutput.
                let jsonata_scope = self.jsonata_scope(id, &input, None, Some(&error_output), None);
                let assigned = match &catcher.assign {
                    Some(a) => Some(self.jsonata_assign(id, "Assign", a, &jsonata_scope)?),
                    None => None,
                };
                let output = match &catcher.output {
                    Some(o) => self.jsonata_value(id, "Output", o, &jsonata_scope)?,
                    None => error_output,
                };
                if let Some(values) = assigned {
                    self.apply_assign(id, values);
                }
                output
            } else {
                if let Some(assign) = &catcher.assign
                    && let Err(e) = self.assign(id, assign, &error_output)
                {
                    return Err(self.state_failure(id, e));
                }
                eval::merge_result(input, catcher.result_path.as_ref(), error_output)
                    .map_err(|e| self.state_failure(id, e))?
            };
            // The state exits through its catcher, as AWS records it (…StateFailed, then
            // …StateExited, then the catcher's Next).
            let next = Transition::Next(catcher.next.clone());
            return Ok(self.exit(id, Some(&next), output));
        }
        if let Some(kind) = failed_event {
            self.event(id, || kind);
        }
        Err(failure)
    }

    /// Retrier `i` of the current state matched `failure`: unless it is spent, the run waits
    /// for the retry's delay (true). Handled either way (retried, or caught once the retrier is
    /// spent), the children of a failed Map or Parallel are done with.
    fn schedule_retry(
        &mut self,
        id: RunId,
        i: usize,
        retrier: &stepstone_asl::states::Retrier,
        failure: &Failure,
    ) -> bool {
        self.discard_children(id);
        let seed = self.seed;
        let run = self.run_mut(id);
        run.attempts.resize(run.attempts.len().max(i + 1), 0);
        let used = run.attempts[i];
        if u64::from(used) >= retrier.max_attempts {
            return false;
        }
        run.attempts[i] += 1;
        run.retry_count += 1;
        let mut delay = retrier.interval_after(used);
        if retrier.full_jitter {
            // Seeded from the execution and the attempt: a rerun draws the same delays.
            let draw = splitmix64(seed ^ (run.entered_event << 16) ^ u64::from(run.retry_count));
            delay *= (draw >> 11) as f64 / (1u64 << 53) as f64;
        }
        let attempt = run.attempts[i];
        let until = Timestamp {
            unix_nanos: self.now.unix_nanos + (delay * 1e9) as i128,
        };
        let (name, _) = self.current(id);
        let reason = TimerReason::Retry {
            state: name.to_owned(),
            error: failure.error.clone(),
            attempt,
            max_attempts: retrier.max_attempts,
        };
        self.wait_until(id, until, reason);
        true
    }
}
