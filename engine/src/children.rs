//! Bookkeeping of a Parallel or Map state's child runs.

use serde_json::Value;

use crate::interpreter::{Execution, RunId, Waiting};

/// The child runs a Parallel or Map state waits for.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Children {
    /// One result per branch or item, filled as children finish.
    pub(crate) results: Vec<Option<Value>>,
    /// Children running now, by slot.
    pub(crate) running: Vec<(usize, RunId)>,
    /// The next Map item to start; items stay in the Map's input until their iteration starts,
    /// so the array is never copied whole. (Parallel starts every branch at once.)
    pub(crate) next_item: usize,
    /// How many may run at once.
    pub(crate) concurrency: usize,
    pub(crate) finished: usize,
    pub(crate) failed: usize,
    /// Map: failures tolerated before the state fails.
    pub(crate) tolerated_count: Option<u64>,
    pub(crate) tolerated_percentage: Option<f64>,
}

impl Children {
    pub(crate) fn new(len: usize, concurrency: usize) -> Children {
        Children {
            results: (0..len).map(|_| None).collect(),
            running: Vec::new(),
            next_item: 0,
            concurrency: concurrency.max(1),
            finished: 0,
            failed: 0,
            tolerated_count: None,
            tolerated_percentage: None,
        }
    }

    pub(crate) fn running(&self) -> impl Iterator<Item = RunId> + '_ {
        self.running.iter().map(|(_, id)| *id)
    }

    /// Marks slot `slot` finished.
    pub(crate) fn done(&mut self, slot: usize, result: Value) {
        self.running.retain(|(s, _)| *s != slot);
        self.results[slot] = Some(result);
        self.finished += 1;
    }

    /// Every child's output, in slot order: the state's result once all are done.
    pub(crate) fn into_outputs(self) -> Value {
        Value::Array(
            self.results
                .into_iter()
                .map(|r| r.expect("all children are done"))
                .collect(),
        )
    }

    pub(crate) fn all_done(&self) -> bool {
        self.finished == self.results.len()
    }

    /// True when the failures so far exceed what the Map tolerates.
    pub(crate) fn too_many_failures(&self) -> bool {
        let total = self.results.len() as f64;
        let by_count = self.tolerated_count.is_some_and(|n| self.failed as u64 > n);
        let by_percentage = self
            .tolerated_percentage
            .is_some_and(|p| self.failed as f64 * 100.0 / total > p);
        match (self.tolerated_count, self.tolerated_percentage) {
            (None, None) => self.failed > 0,
            (Some(_), None) => by_count,
            (None, Some(_)) => by_percentage,
            (Some(_), Some(_)) => by_count || by_percentage,
        }
    }

    pub(crate) fn tolerates_failures(&self) -> bool {
        self.tolerated_count.is_some() || self.tolerated_percentage.is_some()
    }
}

impl Execution<'_> {
    /// The children a Parallel or Map run was waiting for; the run now waits for nothing.
    pub(crate) fn take_children(&mut self, id: RunId) -> Children {
        match std::mem::replace(&mut self.run_mut(id).waiting, Waiting::Nothing) {
            Waiting::Children(children) => *children,
            _ => unreachable!("a Parallel or Map run waits for its children"),
        }
    }

    /// Ends the children still running: their state has failed.
    pub(crate) fn stop_children(&mut self, id: RunId) {
        for (_, sibling) in self.take_children(id).running {
            self.remove(sibling);
        }
    }
}
