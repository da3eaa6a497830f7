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
    /// Children that failed (a Map may tolerate some), kept frozen for a redrive. Since v2.
    #[serde(default)]
    pub(crate) fallen: Vec<(usize, RunId)>,
    /// While a redrive goes on: the failed or stopped children of the previous attempt, to wake
    /// at the state where they stopped (before any new item starts). Since v2.
    #[serde(default)]
    pub(crate) to_redrive: Vec<(usize, RunId)>,
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
            fallen: Vec::new(),
            to_redrive: Vec::new(),
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

    /// Every child run this state still holds: running, fallen, or waiting for a redrive.
    pub(crate) fn all(&self) -> impl Iterator<Item = RunId> + '_ {
        self.running
            .iter()
            .chain(&self.fallen)
            .chain(&self.to_redrive)
            .map(|(_, id)| *id)
    }

    /// Marks slot `slot` finished.
    pub(crate) fn done(&mut self, slot: usize, result: Value) {
        self.running.retain(|(s, _)| *s != slot);
        self.results[slot] = Some(result);
        self.finished += 1;
    }

    /// Marks slot `slot` failed with `output` (its error output); its run is kept, fallen.
    pub(crate) fn fail(&mut self, slot: usize, output: Value) {
        if let Some(at) = self.running.iter().position(|(s, _)| *s == slot) {
            self.fallen.push(self.running.remove(at));
        }
        self.results[slot] = Some(output);
        self.finished += 1;
        self.failed += 1;
    }

    /// Takes over what the previous attempt of this state left, for a redrive: the results of
    /// the children that succeeded are kept; the others are queued in `to_redrive`, in slot
    /// order. False (and nothing taken) when `old` does not fit (another number of items).
    fn carry_over(&mut self, old: &mut Children) -> bool {
        if old.results.len() != self.results.len() {
            return false;
        }
        let mut unsuccessful: Vec<(usize, RunId)> = old
            .running
            .drain(..)
            .chain(old.fallen.drain(..))
            .chain(old.to_redrive.drain(..))
            .collect();
        unsuccessful.sort_by_key(|(slot, _)| *slot);
        for (slot, result) in old.results.iter_mut().enumerate() {
            if unsuccessful.iter().all(|(s, _)| *s != slot)
                && let Some(result) = result.take()
            {
                self.results[slot] = Some(result);
                self.finished += 1;
            }
        }
        self.next_item = old.next_item;
        self.to_redrive = unsuccessful;
        true
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

    /// The outputs of a Parallel or Map whose children all finished, in slot order; the
    /// children it kept (failures a Map tolerated) are let go.
    pub(crate) fn take_outputs(&mut self, id: RunId) -> Value {
        let children = self.take_children(id);
        for child in children.all() {
            self.remove(child);
        }
        children.into_outputs()
    }

    /// Lets go of the children of a Parallel or Map whose failure is handled (retried or
    /// caught): a redrive will not need them.
    pub(crate) fn discard_children(&mut self, id: RunId) {
        if let Waiting::Children(_) = self.run(id).waiting {
            for child in self.take_children(id).all() {
                self.remove(child);
            }
        }
    }

    /// The children a state starts with: fresh ones, or, when a redrive re-enters the state,
    /// what its previous attempt left (see [`Children::carry_over`]).
    pub(crate) fn children_for(&mut self, id: RunId, mut fresh: Children) -> Children {
        if let Waiting::Children(mut old) =
            std::mem::replace(&mut self.run_mut(id).waiting, Waiting::Nothing)
        {
            let carried = fresh.carry_over(&mut old);
            // Whatever was not carried over will not run again.
            for child in old.all() {
                self.remove(child);
            }
            debug_assert!(carried || fresh.to_redrive.is_empty());
        }
        fresh
    }

    /// Wakes a child frozen by the previous attempt, at the state where it stopped.
    pub(crate) fn wake(&mut self, parent: RunId, child: RunId) {
        let last = self.run(parent).last_event;
        let run = self.run_mut(child);
        run.fallen = false;
        run.last_event = last;
        self.ready.push_back(child);
    }
}
