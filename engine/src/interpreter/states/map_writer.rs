//! A Map's ResultWriter: what becomes of its children's results once they are all in.
//!
//! `WriterConfig.Transformation` shapes each result: `COMPACT` (the output as it is, the
//! default without a Resource), `FLATTEN` (an output that is an array gives its elements) or
//! `NONE` (the output with the child execution's details: its ARN, name, input, status; the
//! default with a Resource). Without a Resource the results are the state's output; with
//! `arn:aws:states:::s3:putObject` they are written to S3 (a task, like the ItemReader: the
//! tasks crate writes `manifest.json` and one file per status under `Prefix/<Map Run id>/`)
//! and the state's output is `{"MapRunArn", "ResultWriterDetails": {"Bucket", "Key"}}`, as on
//! AWS. A failed child's entry is always its full details (AWS: "as with NONE").

use serde_json::{Value, json};
use stepstone_asl::errors;
use stepstone_asl::eval;
use stepstone_asl::states::{Map, ResultWriter};

use super::map::WRITER_TASK;
use crate::Failure;
use crate::interpreter::{Execution, Flow, RunId, Waiting};

/// One result entry: a value, or JSON text as a child's output was kept.
enum Entry<'a> {
    Value(Value),
    Text(&'a str),
}

impl Entry<'_> {
    fn into_value(self) -> Value {
        match self {
            Entry::Value(v) => v,
            // Kept outputs are JSON text the interpreter wrote.
            Entry::Text(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        }
    }

    fn write_to(&self, out: &mut String) {
        match self {
            Entry::Value(v) => out.push_str(&v.to_string()),
            Entry::Text(text) => out.push_str(text),
        }
    }
}

/// `WriterConfig.Transformation`.
#[derive(Clone, Copy, PartialEq)]
enum Transformation {
    None,
    Compact,
    Flatten,
}

impl Execution<'_> {
    /// Every child of Map run `id` is done: its results are shaped, then written or output.
    pub(crate) fn map_write_results(
        &mut self,
        id: RunId,
        state: &Map,
        writer: &ResultWriter,
    ) -> Result<Flow, Failure> {
        let config = writer.writer_config.as_ref();
        let field = |name: &str| config.and_then(|c| c.get(name)).and_then(Value::as_str);
        let transformation = match field("Transformation") {
            Some("NONE") => Transformation::None,
            Some("COMPACT") => Transformation::Compact,
            Some("FLATTEN") => Transformation::Flatten,
            None if writer.resource.is_some() => Transformation::None,
            None => Transformation::Compact,
            Some(other) => return Err(self.writer_config_failure(id, "Transformation", other)),
        };
        let output_type = match field("OutputType") {
            None | Some("JSON") => "JSON",
            Some("JSONL") => "JSONL",
            Some(other) => return Err(self.writer_config_failure(id, "OutputType", other)),
        };
        // The Map Run's own ARN (a redriven one keeps the ARN it started with).
        let map_run_arn = match &self.run(id).waiting {
            Waiting::Children(c) => c.map_run.as_ref().map(|m| m.arn.clone()),
            _ => None,
        }
        .unwrap_or_else(|| self.map_run_arn(id, state));
        let Some(resource) = &writer.resource else {
            // No export: the shaped results are the state's output.
            let output = self.map_shaped_results(id, state, transformation, &map_run_arn)?;
            return Ok(self.map_succeeded(id, state, output));
        };
        let files = self.map_result_files(id, state, transformation, output_type, &map_run_arn)?;
        // Its Map Run's last record (kept for the next save when the children were let go),
        // to write again with the count of results once the writer answers.
        if let Some(record) = self
            .ended_map_runs
            .iter()
            .rfind(|r| r.map_run_arn == map_run_arn)
        {
            self.writing_map_runs.push((id, record.clone()));
        }
        let mut input = self.map_io_input(
            id,
            state,
            writer.parameters.as_ref(),
            writer.arguments.as_ref(),
        )?;
        let Value::Object(fields) = &mut input else {
            return Err(self.state_failure(
                id,
                eval::Error::runtime("The ResultWriter's Parameters must give an object"),
            ));
        };
        fields.insert("MapRunArn".into(), map_run_arn.into());
        fields.insert("OutputType".into(), output_type.into());
        let [succeeded, failed] = files;
        let mut results = serde_json::Map::new();
        for (status, text) in [("SUCCEEDED", succeeded), ("FAILED", failed)] {
            if let Some(text) = text {
                results.insert(status.into(), Value::String(text));
            }
        }
        fields.insert("Results".into(), Value::Object(results));
        self.map_dispatch(id, WRITER_TASK, resource, input);
        Ok(Flow::Blocked)
    }

    /// The results of Map run `id`, shaped, as the state's output (a ResultWriter without a
    /// Resource).
    fn map_shaped_results(
        &mut self,
        id: RunId,
        state: &Map,
        transformation: Transformation,
        map_run_arn: &str,
    ) -> Result<Value, Failure> {
        let mut out = Vec::new();
        self.map_each_entry(id, state, transformation, map_run_arn, |_, entry| {
            out.push(entry.into_value());
        })?;
        Ok(Value::Array(out))
    }

    /// The content of the result files of Map run `id`, succeeded then failed (`None` for a
    /// status without entries): a JSON array, or one entry a line with `OutputType` JSONL.
    /// Written entry by entry as text, so that a big Map's results never exist as one array
    /// of values.
    fn map_result_files(
        &mut self,
        id: RunId,
        state: &Map,
        transformation: Transformation,
        output_type: &str,
        map_run_arn: &str,
    ) -> Result<[Option<String>; 2], Failure> {
        let lines = output_type == "JSONL";
        let mut files: [Option<String>; 2] = [None, None];
        self.map_each_entry(id, state, transformation, map_run_arn, |ok, entry| {
            let file = files[usize::from(!ok)].get_or_insert_with(|| match lines {
                true => String::new(),
                false => "[".to_owned(),
            });
            if !lines && file.len() > 1 {
                file.push(',');
            }
            entry.write_to(file);
            if lines {
                file.push('\n');
            }
        })?;
        if !lines {
            for file in files.iter_mut().flatten() {
                file.push(']');
            }
        }
        Ok(files)
    }

    /// Hands each result entry of Map run `id` to `f` in child order, with whether its child
    /// succeeded: the child's output as `transformation` shapes it, or (NONE, or a failed
    /// child) its details. The Map's children and items are let go.
    fn map_each_entry(
        &mut self,
        id: RunId,
        state: &Map,
        transformation: Transformation,
        map_run_arn: &str,
        mut f: impl FnMut(bool, Entry<'_>),
    ) -> Result<(), Failure> {
        let failed: std::collections::BTreeSet<usize> = match &self.run(id).waiting {
            Waiting::Children(c) => c.fallen.iter().map(|(slot, _)| *slot).collect(),
            _ => Default::default(),
        };
        self.map_run_ended(id, "SUCCEEDED");
        let count = match &self.run(id).waiting {
            Waiting::Children(c) => c.len(),
            _ => 0,
        };
        for index in 0..count {
            let ok = !failed.contains(&index);
            // A child's details give its input, worked out again while the items (and the
            // batches) are there.
            let input = match transformation == Transformation::None || !ok {
                true => Some(self.map_child_input(id, state, index)?),
                false => None,
            };
            let output = match &self.run(id).waiting {
                Waiting::Children(c) => c.output_json(index).map(String::from),
                _ => None,
            }
            .unwrap_or_default();
            if let Some(input) = input {
                let output: Value = serde_json::from_str(&output).unwrap_or(Value::Null);
                let details = child_details(map_run_arn, index, Some(&input), output, ok);
                f(ok, Entry::Value(details));
            } else if transformation == Transformation::Flatten && output.starts_with('[') {
                match serde_json::from_str(&output) {
                    Ok(Value::Array(items)) => {
                        items.into_iter().for_each(|i| f(ok, Entry::Value(i)))
                    }
                    _ => f(ok, Entry::Text(&output)),
                }
            } else {
                f(ok, Entry::Text(&output));
            }
        }
        let children = self.take_children(id);
        self.dispose_children(&children);
        self.run_mut(id).set_input_for_items(None);
        self.run_mut(id).clear_read_items();
        Ok(())
    }

    /// The ResultWriter's task answered with where the manifest is (`{"Bucket", "Key"}`).
    pub(crate) fn map_results_written(
        &mut self,
        id: RunId,
        state: &Map,
        result: Result<Value, Failure>,
    ) -> Flow {
        // The Map Run's ARN, as the writer's request gave it (its children are gone).
        let map_run_arn = match std::mem::replace(&mut self.run_mut(id).waiting, Waiting::Nothing) {
            Waiting::Task { request, .. } => request.input.get("MapRunArn").cloned(),
            _ => None,
        };
        let written = self
            .writing_map_runs
            .iter()
            .position(|(run, _)| *run == id)
            .map(|at| self.writing_map_runs.swap_remove(at).1);
        match result {
            Ok(details) => {
                if let Some(mut record) = written {
                    // Every child's result is in the files (succeeded and failed alike).
                    record.results_written = record.succeeded + record.failed;
                    self.ended_map_runs.push(record);
                }
                let map_run_arn = map_run_arn.unwrap_or_else(|| self.map_run_arn(id, state).into());
                let output = json!({
                    "MapRunArn": map_run_arn,
                    "ResultWriterDetails": details,
                });
                self.map_succeeded(id, state, output)
            }
            Err(failure) => self.map_task_failed(id, failure, errors::RESULT_WRITER_FAILED),
        }
    }

    fn writer_config_failure(&self, id: RunId, field: &str, given: &str) -> Failure {
        self.state_failure(
            id,
            eval::Error::runtime(format!(
                "ResultWriter.WriterConfig.{field} '{given}' is not one Step Functions knows"
            )),
        )
    }
}

/// A child's entry with its details, as AWS's ResultWriter writes them (Transformation
/// NONE, and every failed child). Its dates are not kept, so not given.
fn child_details(
    map_run_arn: &str,
    index: usize,
    input: Option<&Value>,
    output: Value,
    ok: bool,
) -> Value {
    let name = crate::names::child_execution_name(map_run_arn, index);
    let (machine_arn, execution_prefix) = crate::names::child_arns(map_run_arn);
    let mut entry = json!({
        "ExecutionArn": format!("{execution_prefix}{name}"),
        "Name": name,
        "StateMachineArn": machine_arn,
        "Input": input.map(Value::to_string),
        "InputDetails": {"Included": true},
        "Status": if ok { "SUCCEEDED" } else { "FAILED" },
        "RedriveCount": 0,
    });
    if ok {
        entry["Output"] = output.to_string().into();
        entry["OutputDetails"] = json!({"Included": true});
    } else {
        entry["Error"] = output.get("Error").cloned().unwrap_or(Value::Null);
        entry["Cause"] = output.get("Cause").cloned().unwrap_or(Value::Null);
    }
    entry
}
