//! Bookkeeping of a Parallel or Map state's child runs.
//!
//! A finished child's result is kept as compact JSON text, not as a `Value` tree: a Map over a
//! million items holds a million results until its last iteration ends, and the text takes a
//! few percent of the tree's memory. The results become values again, once, when the state
//! collects them. Each result is also written to the store once, in the batch of the save
//! after it came (`unsaved`), never again.

use serde_json::Value;
use serde_json::value::RawValue;

use super::{Execution, RunId, Waiting};

/// The child runs a Parallel or Map state waits for.
pub(crate) struct Children {
    /// Names these children's results in the store (unique in the execution).
    pub(crate) id: u64,
    /// One result per branch or item, filled as children finish.
    results: Vec<Option<Box<RawValue>>>,
    /// Results that came since the last checkpoint (their indices), to write then.
    unsaved: Vec<u32>,
    /// The store holds results of these children (to delete when they are let go).
    pub(crate) stored: bool,
    /// Children running now, by slot.
    pub(crate) running: Vec<(usize, RunId)>,
    /// Children that failed (a Map may tolerate some), kept frozen for a redrive.
    pub(crate) fallen: Vec<(usize, RunId)>,
    /// While a redrive goes on: the failed or stopped children of the previous attempt, to wake
    /// at the state where they stopped (before any new item starts).
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
    /// `len` children, none finished, `concurrency` at a time.
    pub(crate) fn new(id: u64, len: usize, concurrency: usize) -> Children {
        Children {
            id,
            results: (0..len).map(|_| None).collect(),
            unsaved: Vec::new(),
            stored: false,
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

    /// How many children there are.
    pub(crate) fn len(&self) -> usize {
        self.results.len()
    }

    /// The result of child `slot`, if it finished.
    pub(crate) fn result(&self, slot: usize) -> Option<&RawValue> {
        self.results.get(slot)?.as_deref()
    }

    /// Every result there is, by index.
    pub(crate) fn results(&self) -> impl Iterator<Item = (u64, &RawValue)> {
        self.results
            .iter()
            .enumerate()
            .filter_map(|(i, r)| Some((i as u64, r.as_deref()?)))
    }

    /// Sets the result of child `slot` as read back from the store (not unsaved).
    pub(crate) fn restore_result(&mut self, slot: usize, result: Box<RawValue>) {
        if let Some(place) = self.results.get_mut(slot) {
            *place = Some(result);
        }
    }

    /// The results that came since the last checkpoint, by index; they count as saved now.
    pub(crate) fn take_unsaved(&mut self) -> Vec<(u64, &RawValue)> {
        let unsaved = std::mem::take(&mut self.unsaved);
        unsaved
            .into_iter()
            .filter_map(|i| Some((u64::from(i), self.results[i as usize].as_deref()?)))
            .collect()
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

    fn set_result(&mut self, slot: usize, result: &Value) {
        // Encoding a `Value` cannot fail (its keys are strings).
        let raw = serde_json::value::to_raw_value(result).expect("a JSON value encodes");
        self.results[slot] = Some(raw);
        self.unsaved.push(slot as u32);
    }

    /// Marks slot `slot` finished.
    pub(crate) fn done(&mut self, slot: usize, result: &Value) {
        self.running.retain(|(s, _)| *s != slot);
        self.set_result(slot, result);
        self.finished += 1;
    }

    /// Marks slot `slot` failed with `output` (its error output); its run is kept, fallen.
    pub(crate) fn fail(&mut self, slot: usize, output: &Value) {
        if let Some(at) = self.running.iter().position(|(s, _)| *s == slot) {
            self.fallen.push(self.running.remove(at));
        }
        self.set_result(slot, output);
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
                // Kept under the new children's id: written again, once.
                self.results[slot] = Some(result);
                self.unsaved.push(slot as u32);
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
                .map(|r| {
                    let raw = r.expect("all children are done");
                    serde_json::from_str(raw.get()).expect("written from a JSON value")
                })
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
    /// New children for a Parallel or Map state, with an id of their own.
    pub(crate) fn new_children(&mut self, len: usize, concurrency: usize) -> Children {
        self.next_children += 1;
        Children::new(self.next_children, len, concurrency)
    }

    /// The children a Parallel or Map run was waiting for; the run now waits for nothing.
    pub(crate) fn take_children(&mut self, id: RunId) -> Children {
        match std::mem::replace(&mut self.run_mut(id).waiting, Waiting::Nothing) {
            Waiting::Children(children) => *children,
            _ => unreachable!("a Parallel or Map run waits for its children"),
        }
    }

    /// Lets go of children: their runs are removed, and their results leave the store.
    pub(crate) fn dispose_children(&mut self, children: &Children) {
        for child in children.all() {
            self.remove(child);
        }
        if children.stored {
            self.dropped_children.push(children.id);
        }
    }

    /// The outputs of a Parallel or Map whose children all finished, in slot order; the
    /// children it kept (failures a Map tolerated) are let go.
    pub(crate) fn take_outputs(&mut self, id: RunId) -> Value {
        let children = self.take_children(id);
        self.dispose_children(&children);
        children.into_outputs()
    }

    /// Lets go of the children of a Parallel or Map whose failure is handled (retried or
    /// caught): a redrive will not need them.
    pub(crate) fn discard_children(&mut self, id: RunId) {
        if let Waiting::Children(_) = self.run(id).waiting {
            let children = self.take_children(id);
            self.dispose_children(&children);
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
            self.dispose_children(&old);
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
