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
use crate::history::EventKind;
use crate::interpreter::{Execution, Flow, RunId, Waiting};

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
        let failed: std::collections::BTreeSet<usize> = match &self.run(id).waiting {
            Waiting::Children(c) => c.fallen.iter().map(|(slot, _)| *slot).collect(),
            _ => Default::default(),
        };
        // A child's details give its input: worked out again while the items are there.
        let needs_inputs = transformation == Transformation::None || !failed.is_empty();
        let count = match &self.run(id).waiting {
            Waiting::Children(c) => c.len(),
            _ => 0,
        };
        let mut inputs = Vec::new();
        if needs_inputs {
            for index in 0..count {
                inputs.push(self.map_child_input(id, state, index)?);
            }
        }
        self.run_mut(id).set_input_for_items(None);
        self.run_mut(id).clear_read_items();
        self.map_run_ended(id, "SUCCEEDED");
        let Value::Array(outputs) = self.take_outputs(id) else {
            unreachable!("a Map's outputs are an array")
        };
        let mut entries = Vec::with_capacity(outputs.len());
        for (index, output) in outputs.into_iter().enumerate() {
            let ok = !failed.contains(&index);
            let entry = if transformation == Transformation::None || !ok {
                child_details(&map_run_arn, index, inputs.get(index), output, ok)
            } else {
                output
            };
            entries.push((ok, entry));
        }
        let flatten = |entries: Vec<(bool, Value)>| -> Vec<Value> {
            let mut out = Vec::with_capacity(entries.len());
            for (ok, entry) in entries {
                match entry {
                    Value::Array(items) if ok && transformation == Transformation::Flatten => {
                        out.extend(items)
                    }
                    other => out.push(other),
                }
            }
            out
        };
        let Some(resource) = &writer.resource else {
            // No export: the shaped results are the state's output.
            let output = Value::Array(flatten(entries));
            return Ok(self.map_succeeded(id, state, output));
        };
        let (succeeded, failed): (Vec<_>, Vec<_>) = entries.into_iter().partition(|(ok, _)| *ok);
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
        fields.insert(
            "Results".into(),
            json!({"SUCCEEDED": flatten(succeeded), "FAILED": flatten(failed)}),
        );
        self.map_dispatch(id, WRITER_TASK, resource, input);
        Ok(Flow::Blocked)
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
        match result {
            Ok(details) => {
                let map_run_arn = map_run_arn.unwrap_or_else(|| self.map_run_arn(id, state).into());
                let output = json!({
                    "MapRunArn": map_run_arn,
                    "ResultWriterDetails": details,
                });
                self.map_succeeded(id, state, output)
            }
            Err(failure) => {
                let failure = if failure.error == errors::RESULT_WRITER_FAILED {
                    failure
                } else {
                    Failure::new(
                        errors::RESULT_WRITER_FAILED,
                        format!("{}: {}", failure.error, failure.cause),
                    )
                };
                self.event(id, || EventKind::MapStateFailed);
                Flow::Fail(failure)
            }
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
