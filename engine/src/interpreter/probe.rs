//! The TestState probe: what the interpreter consults and records while it runs one state on
//! its own (`crate::test_state` builds the probe from a TestState call and reads the answer
//! off it afterwards).
//!
//! The probe changes four things, and only for the run of the tested state (the root run):
//!
//! - the run stops where the state would hand over to the next one (`next_state`);
//! - an error a retrier matches is not retried (`retry`); one a catcher takes goes through the
//!   catcher (`caught`);
//! - a mocked Map or Parallel state runs no iteration or branch: the mock is its result, or its
//!   error;
//! - each step of the data flow is recorded (`steps`, TestState's `inspectionData`).
//!
//! Executions that are not a TestState carry no probe: each hook is one `is_some` test.

use std::cell::RefCell;

use serde_json::{Map, Value};
use stepstone_asl::StateId;
use stepstone_asl::states::Retrier;

use super::{Execution, RunId};
use crate::failure::Failure;

/// A data-flow step the inspection records (TestState's `inspectionData` field names).
pub(crate) mod step {
    pub(crate) const AFTER_INPUT_PATH: &str = "afterInputPath";
    pub(crate) const AFTER_PARAMETERS: &str = "afterParameters";
    pub(crate) const AFTER_ARGUMENTS: &str = "afterArguments";
    pub(crate) const RESULT: &str = "result";
    pub(crate) const AFTER_RESULT_SELECTOR: &str = "afterResultSelector";
    pub(crate) const AFTER_RESULT_PATH: &str = "afterResultPath";
    pub(crate) const AFTER_ITEMS_PATH: &str = "afterItemsPath";
    pub(crate) const MAX_CONCURRENCY: &str = "maxConcurrency";
    pub(crate) const TOLERATED_FAILURE_COUNT: &str = "toleratedFailureCount";
    pub(crate) const TOLERATED_FAILURE_PERCENTAGE: &str = "toleratedFailurePercentage";
}

/// What the interpreter consults and records while it runs the tested state (see the module
/// documentation).
#[derive(Default)]
pub(crate) struct Probe {
    /// The result or error that stands for the state's work (a Task's call, a Map's
    /// iterations, a Parallel's branches).
    pub(crate) mock: Option<Result<Value, Failure>>,
    /// The context object given whole, in place of the one the execution makes up.
    pub(crate) context: Option<Value>,
    /// Retries already made by the retrier that matches the error.
    pub(crate) retrier_retry_count: u32,
    /// For a mocked Map: how many of its iterations failed.
    pub(crate) map_iteration_failure_count: Option<u64>,
    /// For a mocked Map with an ItemReader: what the reader read.
    pub(crate) map_item_reader_data: Option<Value>,
    /// The root run, once started.
    pub(crate) root: Option<RunId>,
    /// Data-flow steps recorded so far (the interpreter records through `&self`).
    pub(crate) steps: RefCell<Map<String, Value>>,
    /// The state the machine would go to next.
    pub(crate) next_state: Option<String>,
    /// A retrier matched: its index and the delay before the retry, in seconds.
    pub(crate) retry: Option<(usize, f64)>,
    /// A catcher took the error: its index and the error.
    pub(crate) caught: Option<(usize, Failure)>,
    /// The variables when the state ended.
    pub(crate) variables: Map<String, Value>,
}

impl Probe {
    /// Kept out of line: executions that are not a TestState only test `probe.is_some()`.
    #[cold]
    #[inline(never)]
    fn record(&self, id: RunId, step: &'static str, value: impl FnOnce() -> Value) {
        if self.root == Some(id) {
            self.steps.borrow_mut().insert(step.into(), value());
        }
    }

    /// A retrier matched the tested state's error: RETRIABLE (with the delay the retry would
    /// wait, from the retries already made) unless the retrier is spent. Jitter is left out:
    /// the delay shown is the backoff's ceiling.
    pub(crate) fn retriable(&mut self, index: usize, retrier: &Retrier) -> bool {
        let used = self.retrier_retry_count;
        if u64::from(used) >= retrier.max_attempts {
            return false;
        }
        self.retry = Some((index, retrier.interval_after(used)));
        true
    }
}

impl Execution<'_> {
    /// Attaches a probe: the execution becomes a TestState of the state it starts at.
    pub(crate) fn attach_probe(&mut self, probe: Probe) {
        self.probe = Some(Box::new(probe));
    }

    /// Takes the probe off, with what it recorded.
    pub(crate) fn detach_probe(&mut self) -> Option<Probe> {
        self.probe.take().map(|p| *p)
    }

    /// Whether run `id` is the tested state's run of a TestState: the one the probe watches.
    #[inline]
    pub(crate) fn probed(&self, id: RunId) -> bool {
        self.probe.as_ref().is_some_and(|p| p.root == Some(id))
    }

    /// Records a data-flow step of the tested state (nothing outside a TestState).
    #[inline(always)]
    pub(crate) fn inspect(&self, id: RunId, step: &'static str, value: impl FnOnce() -> Value) {
        if let Some(probe) = &self.probe {
            probe.record(id, step, value);
        }
    }

    /// The mocked result or error of the tested Map or Parallel state, which then runs no
    /// child.
    pub(crate) fn probe_mock(&self, id: RunId) -> Option<Result<Value, Failure>> {
        if !self.probed(id) {
            return None;
        }
        self.probe.as_ref()?.mock.clone()
    }

    /// The tested state hands over to `next`: the test ends there.
    pub(crate) fn probe_stops_before(&mut self, id: RunId, next: StateId) -> bool {
        if !self.probed(id) {
            return false;
        }
        let (name, _, _) = self.run(id).scope.state(next);
        if let Some(probe) = &mut self.probe {
            probe.next_state = Some(name.to_owned());
        }
        true
    }

    /// The tested state ended: keep its variables for the inspection.
    pub(crate) fn probe_keep_variables(&mut self, id: RunId) {
        if !self.probed(id) {
            return;
        }
        let variables: Map<String, Value> =
            self.run(id).vars().frames().into_iter().flatten().collect();
        if let Some(probe) = &mut self.probe {
            probe.variables = variables;
        }
    }

    /// The items a mocked Map with an ItemReader iterates over: `mapItemReaderData`.
    pub(crate) fn probe_reader_items(&self) -> Option<Value> {
        self.probe.as_ref()?.map_item_reader_data.clone()
    }

    /// For a mocked Map that succeeded: whether `mapIterationFailureCount` failed iterations
    /// exceed its tolerated failure threshold. A Map without ToleratedFailureCount or
    /// ToleratedFailurePercentage is not held to one (as AWS answers).
    pub(crate) fn probe_exceeds_tolerance(
        &self,
        items: usize,
        count: Option<i64>,
        percentage: Option<f64>,
    ) -> bool {
        let Some(failed) = self
            .probe
            .as_ref()
            .and_then(|p| p.map_iteration_failure_count)
        else {
            return false;
        };
        count.is_some_and(|n| failed as i64 > n)
            || percentage.is_some_and(|p| items > 0 && failed as f64 * 100.0 / items as f64 > p)
    }
}
