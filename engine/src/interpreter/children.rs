//! Bookkeeping of a Parallel or Map state's child runs.
//!
//! A finished child's result is kept as it came (a `Value`, moved, never copied) until a save
//! writes it to the store: the save serializes it anyway, and from then on it is kept as that
//! compact JSON text. A durable Map over a million items thus holds its finished results in a
//! few percent of the memory their trees would take, and an execution without a store never
//! pays for the text. The results become values again, once, when the state collects them.
//! Each result is written to the store once, in the batch of the save after it came
//! (`unsaved`), never again.

use serde_json::Value;
use serde_json::value::RawValue;
use stepstone_asl::growth::Extent;

use super::{Execution, RunId, Waiting};

/// The child runs a Parallel or Map state waits for.
pub(crate) struct Children {
    /// Names these children's results in the store (unique in the execution).
    pub(crate) id: u64,
    /// One result per branch or item, filled as children finish.
    results: Vec<Option<Kept>>,
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
    /// A Map with an ItemBatcher: each child runs a batch of items.
    pub(crate) batching: Option<Batching>,
    /// A distributed Map's Map Run.
    pub(crate) map_run: Option<MapRun>,
}

/// A distributed Map's Map Run, for its record in the store (see `MapRunRecord`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct MapRun {
    pub(crate) arn: String,
    pub(crate) start: stepstone_asl::timestamp::Timestamp,
    /// Its end was recorded (its last record written): later saves leave the record alone.
    pub(crate) ended: bool,
    /// How many times a redrive took it up, and when last.
    pub(crate) redrive_count: u32,
    pub(crate) redrive_date: Option<stepstone_asl::timestamp::Timestamp>,
}

/// How a Map's items are grouped into its children's batches (ItemBatcher).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Batching {
    /// The items there are.
    pub(crate) items: usize,
    /// At most this many items in a batch (0: no bound).
    pub(crate) max_items: usize,
    /// At most this many bytes of items (their JSON text) in a batch (0: no bound).
    pub(crate) max_bytes: usize,
    /// `BatchInput`: given to every batch beside its items.
    pub(crate) batch_input: Option<Value>,
    /// Where each batch starts (by item index), worked out from the items when first needed
    /// (not stored: a restored Map works it out again).
    pub(crate) starts: Option<Vec<usize>>,
}

impl Batching {
    /// The first item of each batch: a batch closes when it holds `max_items`, or when the next
    /// item would take its items' text past `max_bytes` (a batch holds one item at least).
    /// `size(i)` is item `i`'s size in bytes; it is called only with a bound on bytes.
    pub(crate) fn work_out_starts(&self, mut size: impl FnMut(usize) -> usize) -> Vec<usize> {
        let mut starts = Vec::new();
        let (mut count, mut bytes) = (0usize, 0usize);
        for i in 0..self.items {
            let item_bytes = if self.max_bytes > 0 { size(i) + 1 } else { 0 };
            let full = count > 0
                && ((self.max_items > 0 && count >= self.max_items)
                    || (self.max_bytes > 0 && bytes + item_bytes > self.max_bytes));
            if count == 0 || full {
                starts.push(i);
                (count, bytes) = (0, 0);
            }
            count += 1;
            bytes += item_bytes;
        }
        starts
    }

    /// The items of batch `index`, given where batches start.
    pub(crate) fn range(&self, index: usize) -> std::ops::Range<usize> {
        let starts = self.starts.as_deref().unwrap_or_default();
        let start = starts.get(index).copied().unwrap_or(self.items);
        let end = starts.get(index + 1).copied().unwrap_or(self.items);
        start..end
    }
}

impl Children {
    /// The record of this Map Run (if it is one) as it stands, with `status`, ended at
    /// `stop` (if it has).
    pub(crate) fn map_run_record(
        &self,
        execution_arn: &str,
        status: &str,
        stop: Option<stepstone_asl::timestamp::Timestamp>,
    ) -> Option<crate::model::MapRunRecord> {
        let run = self.map_run.as_ref()?;
        // arn:...:mapRun:MACHINE/LABEL:ID -> arn:...:stateMachine:MACHINE/LABEL
        let machine = run
            .arn
            .rsplit_once(':')
            .map_or(run.arn.as_str(), |(m, _)| m)
            .replacen(":mapRun:", ":stateMachine:", 1);
        Some(crate::model::MapRunRecord {
            map_run_arn: run.arn.clone(),
            execution_arn: execution_arn.to_owned(),
            state_machine_arn: machine,
            status: status.to_owned(),
            start_date: run.start,
            stop_date: stop,
            max_concurrency: self.concurrency as u64,
            tolerated_failure_count: self.tolerated_count.unwrap_or(0),
            tolerated_failure_percentage: self.tolerated_percentage.unwrap_or(0.0),
            total: self.len() as u64,
            succeeded: (self.finished - self.failed) as u64,
            failed: self.failed as u64,
            running: self.running.len() as u64,
            redrive_count: run.redrive_count,
            redrive_date: run.redrive_date,
            results_written: 0,
        })
    }

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
            batching: None,
            map_run: None,
        }
    }

    /// How many children there are.
    pub(crate) fn len(&self) -> usize {
        self.results.len()
    }

    /// Whether child `slot` finished.
    pub(crate) fn has_result(&self, slot: usize) -> bool {
        self.results.get(slot).is_some_and(Option::is_some)
    }

    /// Every result there is, by index, as JSON text (copied: for a snapshot).
    pub(crate) fn results_text(&self) -> Vec<(u64, Box<RawValue>)> {
        self.results
            .iter()
            .enumerate()
            .filter_map(|(i, r)| Some((i as u64, r.as_ref()?.to_text())))
            .collect()
    }

    /// Every result there is, by index, kept as text from now on (an execution written whole).
    pub(crate) fn compact_all(&mut self) -> Vec<(u64, &RawValue)> {
        self.unsaved.clear();
        self.results
            .iter_mut()
            .enumerate()
            .filter_map(|(i, r)| Some((i as u64, r.as_mut()?.compact())))
            .collect()
    }

    /// Sets the result of child `slot` as read back from the store (not unsaved).
    pub(crate) fn restore_result(&mut self, slot: usize, result: Box<RawValue>) {
        if let Some(place) = self.results.get_mut(slot) {
            *place = Some(Kept::Text(result));
        }
    }

    /// The results that came since the last checkpoint, by index; they count as saved now.
    pub(crate) fn take_unsaved(&mut self) -> Vec<(u64, &RawValue)> {
        let mut unsaved = std::mem::take(&mut self.unsaved);
        unsaved.sort_unstable();
        unsaved.dedup();
        // Each result is compacted in place (its text is what the store gets), then read.
        for &i in &unsaved {
            if let Some(kept) = self.results[i as usize].as_mut() {
                kept.compact();
            }
        }
        unsaved
            .into_iter()
            .filter_map(|i| match self.results[i as usize].as_ref()? {
                Kept::Text(text) => Some((u64::from(i), &**text)),
                Kept::Value(_) => None,
            })
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

    fn set_result(&mut self, slot: usize, result: Value) {
        self.results[slot] = Some(Kept::Value(result));
        self.unsaved.push(slot as u32);
    }

    /// Marks slot `slot` finished.
    pub(crate) fn done(&mut self, slot: usize, result: Value) {
        self.running.retain(|(s, _)| *s != slot);
        self.set_result(slot, result);
        self.finished += 1;
    }

    /// Marks slot `slot` failed with `output` (its error output); its run is kept, fallen.
    pub(crate) fn fail(&mut self, slot: usize, output: Value) {
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

    /// Child `slot`'s output as JSON text (as it is kept, when it is kept as text).
    pub(crate) fn output_json(&self, slot: usize) -> Option<std::borrow::Cow<'_, str>> {
        match self.results.get(slot)?.as_ref()? {
            Kept::Text(text) => Some(std::borrow::Cow::Borrowed(text.get())),
            Kept::Value(value) => Some(std::borrow::Cow::Owned(value.to_string())),
        }
    }

    /// Every child's output, in slot order: the state's result once all are done.
    pub(crate) fn into_outputs(self) -> Value {
        Value::Array(
            self.results
                .into_iter()
                .map(|r| r.expect("all children are done").into_value())
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
        // Children all of this attempt: their outputs' extents will be known as they end (see
        // `Run::children_extent`); results carried over from before are not.
        self.run(id).children_extent.set(Some(Extent::EMPTY_ARRAY));
        if let Waiting::Children(mut old) =
            std::mem::replace(&mut self.run_mut(id).waiting, Waiting::Nothing)
        {
            self.run(id).children_extent.set(None);
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
        match run.child_start().is_some() {
            // A child execution: its events are numbered in it.
            true => self.redrive_child_execution(child),
            false => run.last_event = last,
        }
        self.ready.push_back(child);
    }
}

/// A finished child's result: as it came, or as JSON text once a save wrote it.
enum Kept {
    Value(Value),
    Text(Box<RawValue>),
}

impl Kept {
    /// The result as text, kept as text from now on.
    fn compact(&mut self) -> &RawValue {
        if let Kept::Value(v) = self {
            *self = Kept::Text(to_text(v));
        }
        match self {
            Kept::Text(text) => text,
            Kept::Value(_) => unreachable!("compacted above"),
        }
    }

    fn to_text(&self) -> Box<RawValue> {
        match self {
            Kept::Value(v) => to_text(v),
            Kept::Text(text) => text.clone(),
        }
    }

    fn into_value(self) -> Value {
        match self {
            Kept::Value(v) => v,
            // Written from a `Value` (or read back from the store, where it was checked).
            Kept::Text(text) => serde_json::from_str(text.get()).expect("JSON text"),
        }
    }
}

fn to_text(v: &Value) -> Box<RawValue> {
    // Encoding a `Value` cannot fail (its keys are strings).
    serde_json::value::to_raw_value(v).expect("a JSON value encodes")
}
