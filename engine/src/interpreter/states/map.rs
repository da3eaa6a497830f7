//! Map: runs the item processor once per item, a bounded number at a time, and outputs the
//! array of results in item order. DISTRIBUTED mode without an ItemReader runs the same way,
//! its iterations as child runs whose events belong to child executions: the parent's history
//! records the Map Run (MapRunStarted or, redriven, MapRunRedriven; MapRunSucceeded or
//! MapRunFailed), as AWS's does.
//!
//! Items stay where they are (in the state's input) until their iteration starts, so a Map over
//! many items never holds a second copy of the whole array.

use serde_json::Value;
use stepstone_asl::states::{ItemBatcher, ItemReader, Map, NumberOrExpr};
use stepstone_asl::{errors, eval};

use crate::Failure;
use crate::history::EventKind;
use crate::interpreter::children::{Batching, MapRun};
use crate::interpreter::probe::step;
use crate::interpreter::{Command, Execution, Flow, Link, RunId, TaskRequest, Waiting};
use crate::item_list::ItemList;

impl Execution<'_> {
    pub(crate) fn map(&mut self, id: RunId, state: &Map) -> Flow {
        self.map_start(id, state)
            .unwrap_or_else(|failure| self.map_start_failed(id, failure))
    }

    /// An expression of the Map (Items, MaxConcurrency...) failed: AWS records the evaluation
    /// failure, then the Map's failure.
    fn map_start_failed(&mut self, id: RunId, failure: Failure) -> Flow {
        if self.record_evaluation_failure(id, &failure) {
            self.event(id, || EventKind::MapStateFailed);
        }
        Flow::Fail(failure)
    }

    fn map_start(&mut self, id: RunId, state: &Map) -> Result<Flow, Failure> {
        let jsonata = self.is_jsonata(id);
        // In a TestState, a mock stands for every iteration.
        let mocked = self.probe_mock(id);
        let length = match (&state.item_reader, &mocked) {
            // TestState: the items are what the test says the reader read.
            (Some(_), Some(_)) => {
                let items = self.probe_reader_items();
                items.as_ref().and_then(Value::as_array).map_or(0, Vec::len)
            }
            (Some(reader), None) => match self.run(id).read_items() {
                // The reader is a task of its own: the Map goes on when it answers
                // (`map_items_read`).
                None => return self.map_read(id, state, reader),
                Some(items) => items.len(),
            },
            (None, _) => self.map_items(id, state, jsonata)?,
        };
        let max_concurrency = match (&state.max_concurrency, &state.max_concurrency_path) {
            (Some(NumberOrExpr::Value(n)), _) => *n,
            (Some(NumberOrExpr::Expr(e)), _) => {
                let input = self.run(id).input();
                self.jsonata_number(id, "MaxConcurrency", e, input, true)? as i64
            }
            (_, Some(p)) => self.map_number(id, p, "MaxConcurrencyPath", "integer", integer)?,
            _ => 0,
        };
        // AWS records the start before it reads the tolerated failure threshold (a bad
        // ToleratedFailure*Path fails a started Map), after MaxConcurrency.
        self.event(id, || EventKind::MapStateStarted { length });
        let tolerated_count = match (
            &state.tolerated_failure_count,
            &state.tolerated_failure_count_path,
        ) {
            (Some(NumberOrExpr::Value(n)), _) => Some(*n),
            (Some(NumberOrExpr::Expr(e)), _) => {
                let input = self.run(id).input();
                Some(self.jsonata_number(id, "ToleratedFailureCount", e, input, true)? as i64)
            }
            (_, Some(p)) => {
                Some(self.map_number(id, p, "ToleratedFailureCountPath", "integer", integer)?)
            }
            _ => None,
        };
        if tolerated_count.is_some_and(|n| n < 0) {
            return Err(self.state_failure(
                id,
                eval::Error::runtime("ToleratedFailureCount cannot be negative."),
            ));
        }
        let tolerated_percentage = match (
            &state.tolerated_failure_percentage,
            &state.tolerated_failure_percentage_path,
        ) {
            (Some(NumberOrExpr::Value(x)), _) => Some(*x),
            (Some(NumberOrExpr::Expr(e)), _) => {
                let input = self.run(id).input();
                Some(self.jsonata_number(id, "ToleratedFailurePercentage", e, input, false)?)
            }
            (_, Some(p)) => {
                Some(self.map_number(id, p, "ToleratedFailurePercentagePath", "float", float)?)
            }
            _ => None,
        };
        if tolerated_percentage.is_some_and(|x| !(0.0..=100.0).contains(&x)) {
            return Err(self.state_failure(
                id,
                eval::Error::runtime("ToleratedFailurePercentage must be between 0 and 100."),
            ));
        }
        self.inspect(id, step::MAX_CONCURRENCY, || max_concurrency.into());
        if let Some(n) = tolerated_count {
            self.inspect(id, step::TOLERATED_FAILURE_COUNT, || n.into());
        }
        if let Some(x) = tolerated_percentage {
            self.inspect(id, step::TOLERATED_FAILURE_PERCENTAGE, || x.into());
        }
        if let Some(mocked) = mocked {
            // TestState: the mock is the iterations' results, or the error one of them failed
            // with; `mapIterationFailureCount` of them failed.
            self.run_mut(id).set_input_for_items(None);
            return Ok(match mocked {
                Ok(_)
                    if self.probe_exceeds_tolerance(
                        length,
                        tolerated_count,
                        tolerated_percentage,
                    ) =>
                {
                    Flow::Fail(threshold_exceeded())
                }
                Ok(results) => self.complete(id, &state.flow, state.transition.as_ref(), results),
                Err(f) => Flow::Fail(f),
            });
        }
        let distributed = state.is_distributed();
        // A distributed Map runs up to 10,000 child executions at once (AWS's default and
        // most); an inline one, the engine's limit (AWS: 40).
        let cap = if distributed {
            DISTRIBUTED_MAX_CONCURRENCY
        } else {
            self.limits.max_map_concurrency
        };
        // A redrive re-enters a Map whose Map Run failed: the same Map Run goes on
        // (MapRunRedriven, its ARN kept), as AWS redrives a Map Run; else a new one starts.
        let failed_run = match &self.run(id).waiting {
            Waiting::Children(old) => old.map_run.clone(),
            _ => None,
        };
        let map_run = distributed.then(|| match failed_run {
            Some(mut run) => {
                run.ended = false;
                run.redrive_count += 1;
                run.redrive_date = Some(self.now);
                let (map_run_arn, redrive_count) = (run.arn.clone(), run.redrive_count);
                self.event(id, || EventKind::MapRunRedriven {
                    map_run_arn,
                    redrive_count,
                });
                run
            }
            None => {
                let arn = self.map_run_arn(id, state);
                let map_run_arn = arn.clone();
                self.event(id, || EventKind::MapRunStarted { map_run_arn });
                MapRun {
                    arn,
                    start: self.now,
                    ended: false,
                    redrive_count: 0,
                    redrive_date: None,
                }
            }
        });
        let concurrency = if max_concurrency <= 0 {
            cap
        } else {
            (max_concurrency as usize).min(cap)
        };
        // With an ItemBatcher, each child runs a batch of items.
        let batching = match &state.item_batcher {
            Some(batcher) => Some(self.map_batching(id, state, batcher, length)?),
            None => None,
        };
        let count = batching
            .as_ref()
            .map_or(length, |b| b.starts.as_ref().map_or(0, Vec::len));
        let mut children = self.new_children(count, concurrency);
        children.batching = batching;
        children.map_run = map_run;
        children.tolerated_count = tolerated_count.map(|n| n as u64);
        children.tolerated_percentage = tolerated_percentage;
        let children = self.children_for(id, children);
        let all_done = children.all_done();
        self.run_mut(id).waiting = Waiting::Children(Box::new(children));
        if all_done {
            return Ok(self.map_finish(id, state));
        }
        self.map_start_iterations(id, state)?;
        Ok(Flow::Blocked)
    }

    /// The number of items, from `Items` (JSONata) or InputPath and ItemsPath (JSONPath); the
    /// items stay in the run (`input_for_items`, or the input itself) until their iteration
    /// starts.
    fn map_items(&mut self, id: RunId, state: &Map, jsonata: bool) -> Result<usize, Failure> {
        // The raw input stays in place for ResultPath; the effective input is a copy only when
        // InputPath selects part of it.
        let owned = if jsonata {
            // Items (default: the state's input) must give an array.
            let input = self.run(id).input();
            match &state.items {
                Some(items) => {
                    let scope = self.jsonata_scope(id, input, None, None, None);
                    let v = self.jsonata_value(id, "Items", items, &scope)?;
                    if !v.is_array() {
                        let text = items
                            .0
                            .as_str()
                            .and_then(stepstone_asl::jsonata::expression);
                        let text = text.as_ref().map_or("", |e| e.0.as_str());
                        return Err(self.jsonata_type_failure(id, "Items", text, "array", &v));
                    }
                    Some(v)
                }
                // The items are the input itself, read in place (`items_source`).
                None if input.is_array() => None,
                None => {
                    return Err(self.state_failure(
                        id,
                        crate::interpreter::jsonata::query_error(format!(
                            "Map state input must be an array but was: {input}"
                        )),
                    ));
                }
            }
        } else {
            self.effective_copy(id, &state.flow)?
        };
        self.run_mut(id).set_input_for_items(owned);
        let length = self.with_items(id, state, |items| match items {
            Some(Value::Array(items)) => Ok(items.len()),
            other => Err(format!(
                "Items at '{}' must be a JSON array, but found {}",
                state.items_path.as_ref().map_or("$", |p| p.as_str()),
                other.map_or("nothing".into(), Value::to_string)
            )),
        });
        let length = length.map_err(|m| self.state_failure(id, eval::Error::runtime(m)))?;
        self.inspect(id, step::AFTER_ITEMS_PATH, || {
            self.with_items(id, state, |items| items.cloned().unwrap_or_default())
        });
        Ok(length)
    }

    /// Dispatches the ItemReader of Map run `id`: a task whose resource is the reader's, whose
    /// input is its Parameters (JSONPath, `$` the effective input) or Arguments (JSONata) with
    /// its `ReaderConfig` (`MaxItemsPath` read), and whose result is what it read.
    fn map_read(&mut self, id: RunId, state: &Map, reader: &ItemReader) -> Result<Flow, Failure> {
        let mut input = self.map_io_input(
            id,
            state,
            reader.parameters.as_ref(),
            reader.arguments.as_ref(),
        )?;
        let mut config = reader
            .reader_config
            .clone()
            .unwrap_or_else(|| Value::Object(serde_json::Map::new()));
        if let Some(path) = config.get("MaxItemsPath").and_then(Value::as_str) {
            let path = stepstone_asl::Path::parse(path).map_err(|e| {
                self.state_failure(
                    id,
                    eval::Error::runtime(format!("ReaderConfig.MaxItemsPath: {e}")),
                )
            })?;
            let n = self.map_number(id, &path, "MaxItemsPath", "integer", integer)?;
            if let Value::Object(c) = &mut config {
                c.remove("MaxItemsPath");
                c.insert("MaxItems".into(), n.max(0).into());
            }
        }
        let Value::Object(fields) = &mut input else {
            return Err(self.state_failure(
                id,
                eval::Error::runtime("The ItemReader's Parameters must give an object"),
            ));
        };
        fields.insert("ReaderConfig".into(), config);
        self.map_dispatch(id, READER_TASK, &reader.resource, input);
        Ok(Flow::Blocked)
    }

    /// An ItemReader's or ResultWriter's Parameters (JSONPath, `$` the effective input) or
    /// Arguments (JSONata); an empty object without either.
    pub(super) fn map_io_input(
        &self,
        id: RunId,
        state: &Map,
        parameters: Option<&stepstone_asl::Template>,
        arguments: Option<&stepstone_asl::jsonata::JsonataValue>,
    ) -> Result<Value, Failure> {
        Ok(match (parameters, arguments) {
            (Some(t), _) => {
                let effective = self.effective_copy(id, &state.flow)?;
                let run = self.run(id);
                let effective = effective.as_ref().unwrap_or(run.input());
                self.with_env(id, effective, None, |env| env.template(t))
                    .map_err(|e| self.state_failure(id, e))?
            }
            (None, Some(a)) => {
                let input = self.run(id).input();
                let scope = self.jsonata_scope(id, input, None, None, None);
                self.jsonata_value(id, "Arguments", a, &scope)?
            }
            (None, None) => Value::Object(serde_json::Map::new()),
        })
    }

    /// Dispatches the Map's own task (`kind`: its ItemReader or its ResultWriter); the Map
    /// waits for it.
    pub(super) fn map_dispatch(&mut self, id: RunId, kind: &str, resource: &str, input: Value) {
        let (name, _) = self.current(id);
        let invocation = {
            let n = self.dispatches.entry(name.to_owned()).or_insert(0);
            *n += 1;
            *n - 1
        };
        let request = TaskRequest {
            run: id,
            invocation,
            execution_arn: self.info.execution_arn.clone(),
            state_name: name.to_owned(),
            resource: resource.to_owned(),
            input,
            attempt: self.run(id).retry_count,
            idempotency_token: self.idempotency_token(id, name),
            region: None,
            timeout_seconds: None,
            heartbeat_seconds: None,
            task_token: None,
        };
        self.run_mut(id).waiting = Waiting::Task {
            request: Box::new(request.clone()),
            resource_type: kind.to_owned(),
            resource: resource.to_owned(),
        };
        self.commands.push(Command::Dispatch(request));
    }

    /// The task a Map waits for has answered: its ItemReader's or its ResultWriter's.
    pub(crate) fn map_task_done(
        &mut self,
        id: RunId,
        state: &Map,
        result: Result<Value, Failure>,
    ) -> Flow {
        let writing = matches!(
            &self.run(id).waiting,
            Waiting::Task { resource_type, .. } if resource_type == WRITER_TASK
        );
        match writing {
            true => self.map_results_written(id, state, result),
            false => self.map_items_read(id, state, result),
        }
    }

    /// The ItemReader of Map run `id` answered: with what it read, the Map starts (its items
    /// are what ItemsPath, if any, picks from it); a failure fails the Map with
    /// States.ItemReaderFailed.
    ///
    /// A reader answers with the items as an array, or (as Stepstone's own readers do, so that
    /// a million items never exist as one `Value`) as a string of JSON Lines, one item per line.
    fn map_items_read(&mut self, id: RunId, state: &Map, result: Result<Value, Failure>) -> Flow {
        self.run_mut(id).waiting = Waiting::Nothing;
        let read = result.and_then(|read| match read {
            Value::String(lines) => ItemList::from_json_lines(&lines)
                .map(Ok)
                .map_err(|e| Failure::new(errors::ITEM_READER_FAILED, e)),
            other => Ok(Err(other)),
        });
        let read = match read {
            Ok(read) => read,
            Err(failure) => return self.map_task_failed(id, failure, errors::ITEM_READER_FAILED),
        };
        let items = self.map_read_items(id, state, read).and_then(|items| {
            let owned = match self.is_jsonata(id) {
                true => None,
                false => self.effective_copy(id, &state.flow)?,
            };
            self.run_mut(id).set_input_for_items(owned);
            self.run_mut(id).set_read_items(items);
            Ok(())
        });
        match items {
            Ok(()) => self.map(id, state),
            Err(failure) => self.map_start_failed(id, failure),
        }
    }

    /// The Map's own task (its ItemReader or ResultWriter) failed: the Map fails with `error`
    /// (States.ItemReaderFailed, States.ResultWriterFailed), the task's own error in the cause.
    pub(super) fn map_task_failed(&mut self, id: RunId, failure: Failure, error: &str) -> Flow {
        let failure = if failure.error == error {
            failure
        } else {
            Failure::new(error, format!("{}: {}", failure.error, failure.cause))
        };
        self.event(id, || EventKind::MapStateFailed);
        Flow::Fail(failure)
    }

    /// The items of what the ItemReader read (JSON Lines already split, or a value), as
    /// ItemsPath, if any, picks them: they must be an array.
    fn map_read_items(
        &self,
        id: RunId,
        state: &Map,
        read: Result<ItemList, Value>,
    ) -> Result<ItemList, Failure> {
        let Some(path) = &state.items_path else {
            return match read {
                Ok(items) => Ok(items),
                Err(Value::Array(items)) => Ok(ItemList::from_values(&items)),
                Err(other) => Err(self.map_read_not_array(id, state, Some(&other))),
            };
        };
        let read = match read {
            Ok(items) => items.to_value(),
            Err(value) => value,
        };
        self.with_env(id, &read, None, |env| match env.read_ref(path) {
            Some(Value::Array(items)) => Ok(ItemList::from_values(items)),
            other => Err(self.map_read_not_array(id, state, other)),
        })
    }

    fn map_read_not_array(&self, id: RunId, state: &Map, found: Option<&Value>) -> Failure {
        let message = format!(
            "The ItemReader's data{} must be a JSON array, but found {}",
            state
                .items_path
                .as_ref()
                .map_or(String::new(), |p| format!(" at ItemsPath '{}'", p.as_str())),
            found.map_or("nothing".into(), Value::to_string)
        );
        self.state_failure(id, eval::Error::runtime(message))
    }

    /// Calls `f` with the items array (by reference) of a Map without an ItemReader, as
    /// ItemsPath reads it from the effective input.
    fn with_items<T>(&self, id: RunId, state: &Map, f: impl FnOnce(Option<&Value>) -> T) -> T {
        let run = self.run(id);
        let effective = run.items_source();
        match &state.items_path {
            Some(p) => self.with_env(id, effective, None, |env| f(env.read_ref(p))),
            None => f(Some(effective)),
        }
    }

    /// A number read through one of the Map's `*Path` fields, with AWS's message when it is not
    /// one (strings holding a number are accepted, as AWS does).
    fn map_number<T>(
        &self,
        id: RunId,
        path: &stepstone_asl::Path,
        field: &str,
        kind: &str,
        parse: fn(&Value) -> Option<T>,
    ) -> Result<T, Failure> {
        let run = self.run(id);
        let effective = run.items_source();
        let v = self
            .with_env(id, effective, None, |env| env.read(path))
            .unwrap_or(Value::Null);
        parse(&v).ok_or_else(|| {
            let shown = match &v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            self.state_failure(
                id,
                eval::Error::runtime(format!(
                    "The {field} field refers to value \"{shown}\" which is not a valid {kind}: {}",
                    path.as_str()
                )),
            )
        })
    }

    /// The input of child `index`: its item, or with an ItemBatcher its batch
    /// (`{"BatchInput": ..., "Items": [...]}`, each item through ItemSelector).
    pub(super) fn map_child_input(
        &mut self,
        id: RunId,
        state: &Map,
        index: usize,
    ) -> Result<Value, Failure> {
        let batch = match &self.run(id).waiting {
            Waiting::Children(children) => children
                .batching
                .as_ref()
                .map(|b| (b.range(index), b.batch_input.clone())),
            _ => None,
        };
        let Some((items, batch_input)) = batch else {
            return self.map_item_input(id, state, index);
        };
        let mut selected = Vec::with_capacity(items.len());
        for item in items {
            selected.push(self.map_item_input(id, state, item)?);
        }
        let mut batch = serde_json::Map::new();
        if let Some(batch_input) = batch_input {
            batch.insert("BatchInput".into(), batch_input);
        }
        batch.insert("Items".into(), Value::Array(selected));
        Ok(Value::Object(batch))
    }

    /// The input of item `index`'s iteration: the item, through ItemSelector if there is one.
    fn map_item_input(&mut self, id: RunId, state: &Map, index: usize) -> Result<Value, Failure> {
        let item = match state.item_reader {
            Some(_) => self.run(id).read_items().and_then(|items| items.get(index)),
            None => self.with_items(id, state, |items| items.and_then(|a| a.get(index)).cloned()),
        }
        .unwrap_or(Value::Null);
        let selector = state
            .item_selector
            .as_ref()
            .or(state.flow.parameters.as_ref());
        let jsonata_selector = state.item_selector_jsonata.as_ref();
        Ok(match selector {
            None if jsonata_selector.is_some() => {
                // The state's input is read in place: a Map over many items never copies it
                // per iteration.
                let input = self.run(id).input();
                let scope = self.jsonata_scope(id, input, None, None, Some((index, &item)));
                self.jsonata_value(
                    id,
                    "ItemSelector",
                    jsonata_selector.expect("checked"),
                    &scope,
                )?
            }
            Some(t) => {
                let run = self.run(id);
                let effective = run.items_source();
                self.with_env(id, effective, Some((index, &item)), |env| env.template(t))
                    .map_err(|e| self.state_failure(id, e))?
            }
            None => item,
        })
    }

    /// The ItemBatcher of Map run `id` over `items` items, its batches worked out.
    fn map_batching(
        &self,
        id: RunId,
        state: &Map,
        batcher: &ItemBatcher,
        items: usize,
    ) -> Result<Batching, Failure> {
        let bound = |value: &Option<NumberOrExpr<i64>>,
                     path: &Option<stepstone_asl::Path>,
                     field: &str|
         -> Result<usize, Failure> {
            let n = match (value, path) {
                (Some(NumberOrExpr::Value(n)), _) => *n,
                (Some(NumberOrExpr::Expr(e)), _) => {
                    let input = self.run(id).input();
                    self.jsonata_number(id, field, e, input, true)? as i64
                }
                (_, Some(p)) => {
                    self.map_number(id, p, &format!("{field}Path"), "integer", integer)?
                }
                _ => return Ok(0),
            };
            if n <= 0 {
                return Err(self.state_failure(
                    id,
                    eval::Error::runtime(format!(
                        "ItemBatcher.{field} must be a positive integer, not {n}"
                    )),
                ));
            }
            Ok(n as usize)
        };
        let mut batching = Batching {
            items,
            max_items: bound(
                &batcher.max_items_per_batch,
                &batcher.max_items_per_batch_path,
                "MaxItemsPerBatch",
            )?,
            max_bytes: bound(
                &batcher.max_input_bytes_per_batch,
                &batcher.max_input_bytes_per_batch_path,
                "MaxInputBytesPerBatch",
            )?,
            batch_input: batcher.batch_input.clone(),
            starts: None,
        };
        batching.starts = Some(self.map_batch_starts(id, state, &batching));
        Ok(batching)
    }

    /// Where the batches of `batching` start, from the items' sizes.
    fn map_batch_starts(&self, id: RunId, state: &Map, batching: &Batching) -> Vec<usize> {
        if state.item_reader.is_some() {
            // Measured as the item's value is (its text as read may hold spaces).
            let items = self.run(id).read_items();
            return batching.work_out_starts(|i| {
                items
                    .and_then(|a| a.get(i))
                    .map_or(0, |item| crate::limits::json_size(&item))
            });
        }
        self.with_items(id, state, |items| {
            let items = items.and_then(Value::as_array);
            batching.work_out_starts(|i| {
                items
                    .and_then(|a| a.get(i))
                    .map_or(0, crate::limits::json_size)
            })
        })
    }

    /// Starts iterations while there is room under the concurrency limit.
    fn map_start_iterations(&mut self, id: RunId, state: &Map) -> Result<(), Failure> {
        let (name, _) = self.current(id);
        // A restored Map works out where its batches start again.
        if let Waiting::Children(children) = &self.run(id).waiting
            && let Some(batching) = children.batching.as_ref().filter(|b| b.starts.is_none())
        {
            let starts = self.map_batch_starts(id, state, batching);
            if let Waiting::Children(children) = &mut self.run_mut(id).waiting
                && let Some(batching) = &mut children.batching
            {
                batching.starts = Some(starts);
            }
        }
        loop {
            let Waiting::Children(children) = &mut self.run_mut(id).waiting else {
                return Ok(());
            };
            if children.running.len() >= children.concurrency {
                return Ok(());
            }
            if !children.to_redrive.is_empty() {
                // Redriven: the iterations that failed or were stopped go on first, each from
                // the state where it stopped.
                let (index, child) = children.to_redrive.remove(0);
                children.running.push((index, child));
                if !state.is_distributed() {
                    // Counted, not built, for an observer of notable events only.
                    self.state_event(id, true, || EventKind::MapIterationStarted {
                        name: name.to_owned(),
                        index,
                    });
                }
                self.wake(id, child);
                continue;
            }
            if children.next_item >= children.len() {
                return Ok(());
            }
            let index = children.next_item;
            children.next_item += 1;
            let input = self.map_child_input(id, state, index)?;
            if !state.is_distributed() {
                // Counted, not built, for an observer of notable events only. (A distributed
                // Map's iterations are child executions: the parent records its Map Run only.)
                self.state_event(id, true, || EventKind::MapIterationStarted {
                    name: name.to_owned(),
                    index,
                });
            }
            let (scope, sid, vars, last) = {
                let run = self.run(id);
                (run.scope, run.state, run.vars().child(), run.last_event)
            };
            let processor = scope.child(sid, 0).expect("a Map has a processor");
            let child = self.spawn(
                processor,
                processor.start(),
                input,
                vars,
                Some(Link {
                    parent: id,
                    slot: index,
                }),
                last,
            );
            let Waiting::Children(children) = &mut self.run_mut(id).waiting else {
                unreachable!()
            };
            children.running.push((index, child));
        }
    }

    pub(crate) fn map_child_done(
        &mut self,
        parent: RunId,
        state: &Map,
        slot: usize,
        result: Result<Value, Failure>,
    ) -> Flow {
        let (name, _) = self.current(parent);
        let Waiting::Children(children) = &mut self.run_mut(parent).waiting else {
            unreachable!("a Map waits for its iterations")
        };
        match result {
            Ok(output) => {
                children.done(slot, output);
                if !state.is_distributed() {
                    self.state_event(parent, true, || EventKind::MapIterationSucceeded {
                        name: name.to_owned(),
                        index: slot,
                    });
                }
            }
            Err(failure) => {
                let tolerated = children.tolerates_failures();
                children.fail(slot, failure.to_output());
                let too_many = children.too_many_failures();
                if !state.is_distributed() {
                    self.event(parent, || EventKind::MapIterationFailed {
                        name: name.to_owned(),
                        index: slot,
                    });
                }
                if too_many {
                    // The iterations still running stop where they are (see `fall`), or are
                    // let go if a Retry or Catch handles the failure.
                    self.run_mut(parent).set_input_for_items(None);
                    // A distributed Map's Map Run tolerates none by default and fails with
                    // States.ExceedToleratedFailureThreshold whenever its threshold is passed
                    // ("the default percentage value is zero, which means that the workflow
                    // fails if any one of its child workflow executions fails": Step
                    // Functions guide, tolerated failure threshold); an inline Map without a
                    // threshold fails with its iteration's error.
                    let failure = if tolerated || state.is_distributed() {
                        threshold_exceeded()
                    } else {
                        failure
                    };
                    self.map_run_ended(parent, "FAILED");
                    if state.is_distributed() {
                        self.event(parent, || EventKind::MapRunFailed {
                            error: failure.error.clone(),
                            cause: failure.cause.clone(),
                        });
                    }
                    return Flow::Fail(failure);
                }
            }
        }
        let Waiting::Children(children) = &self.run(parent).waiting else {
            unreachable!()
        };
        if children.all_done() {
            return self.map_finish(parent, state);
        }
        match self.map_start_iterations(parent, state) {
            Ok(()) => Flow::Blocked,
            Err(f) => Flow::Fail(f),
        }
    }

    fn map_finish(&mut self, id: RunId, state: &Map) -> Flow {
        if let Some(writer) = &state.result_writer {
            return self
                .map_write_results(id, state, writer)
                .unwrap_or_else(|failure| {
                    self.event(id, || EventKind::MapStateFailed);
                    Flow::Fail(failure)
                });
        }
        self.run_mut(id).set_input_for_items(None);
        self.run_mut(id).clear_read_items();
        self.map_run_ended(id, "SUCCEEDED");
        let outputs = self.take_outputs(id);
        self.map_succeeded(id, state, outputs)
    }

    /// The Map Run of Map run `id` (if it has one) ended with `status`: its last record is
    /// kept for the next save.
    pub(super) fn map_run_ended(&mut self, id: RunId, status: &str) {
        let now = self.now;
        let execution = self.info.execution_arn.clone();
        let Waiting::Children(children) = &mut self.run_mut(id).waiting else {
            return;
        };
        if children.map_run.as_ref().is_none_or(|m| m.ended) {
            return;
        }
        let record = children.map_run_record(&execution, status, Some(now));
        if let Some(map_run) = &mut children.map_run {
            map_run.ended = true;
        }
        self.ended_map_runs.extend(record);
    }

    /// The Map (and its Map Run) succeeded with `output`.
    pub(super) fn map_succeeded(&mut self, id: RunId, state: &Map, output: Value) -> Flow {
        if state.is_distributed() {
            self.event(id, || EventKind::MapRunSucceeded);
        }
        self.event(id, || EventKind::MapStateSucceeded);
        self.complete(id, &state.flow, state.transition.as_ref(), output)
    }
}

impl Execution<'_> {
    /// The ARN of the Map Run that Map run `id` starts:
    /// `arn:aws:states:REGION:ACCOUNT:mapRun:MACHINE/LABEL:ID`, where LABEL is the Map's Label
    /// (its state name without one) and ID is worked out from the execution and the event the
    /// Map was entered at, so that a resumed execution names the same Map Run.
    pub(super) fn map_run_arn(&self, id: RunId, state: &Map) -> String {
        let (name, _) = self.current(id);
        let execution = &self.info.execution_arn;
        // `arn:aws:states:REGION:ACCOUNT:execution:...` (or `express:` for EXPRESS).
        let prefix: String = execution
            .splitn(6, ':')
            .take(5)
            .collect::<Vec<_>>()
            .join(":");
        let label = state.label.as_deref().unwrap_or(name);
        let seed = format!("{execution}#{}", self.run(id).entered_event);
        format!(
            "{prefix}:mapRun:{}/{label}:{}",
            self.info.state_machine_name,
            crate::tokens::uuid_from(seed.as_bytes())
        )
    }
}

/// What a Map's own task is, in its `Waiting::Task`.
pub(super) const READER_TASK: &str = "itemReader";
pub(super) const WRITER_TASK: &str = "resultWriter";

/// The most child executions a distributed Map runs at once (AWS's MaxConcurrency bound, and
/// its default).
const DISTRIBUTED_MAX_CONCURRENCY: usize = 10_000;

/// A Map failed because more iterations failed than it tolerates.
fn threshold_exceeded() -> Failure {
    Failure::new(
        errors::EXCEED_TOLERATED_FAILURE_THRESHOLD,
        "The specified tolerated failure threshold was exceeded",
    )
}

/// An integer, or a string holding one (AWS accepts `"1"` from a path).
fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}
