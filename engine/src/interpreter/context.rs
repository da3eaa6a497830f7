//! The context object (`$$`), built on first use.

use std::sync::OnceLock;

use serde_json::{Value, json};
use stepstone_asl::eval::Context;
use stepstone_asl::timestamp::Timestamp;

use super::ExecutionInfo;
use super::runs::ChildExecution;
use crate::names::child_arns;

/// The context object, built on first use.
pub(super) struct LazyContext<'a> {
    /// `$$.Task.Token`, in a `.waitForTaskToken` Task.
    pub(super) task_token: Option<String>,
    pub(super) info: &'a ExecutionInfo,
    pub(super) state_name: &'a str,
    pub(super) entered: Timestamp,
    /// Only states that can retry show `RetryCount`.
    pub(super) retry_count: Option<u32>,
    pub(super) item: Option<(usize, &'a Value)>,
    /// In a distributed Map's child execution: that execution, which `$$.Execution` and
    /// `$$.StateMachine` show (its own ARN, name, input and start; its Map Run's children's
    /// state machine).
    pub(super) child: Option<ChildExecution<'a>>,
    pub(super) cell: OnceLock<Value>,
}

impl Context for LazyContext<'_> {
    fn value(&self) -> &Value {
        self.cell.get_or_init(|| {
            // AWS's key order; Task appears only in a Task that waits for its token.
            let mut execution = json!({
                "Id": self.info.execution_arn,
                "Input": self.info.input,
                "StartTime": self.info.start_time.to_string(),
                "Name": self.info.name,
                "RoleArn": self.info.role_arn,
            });
            if !self.info.express {
                execution["RedriveCount"] = json!(self.info.redrive_count);
            }
            let mut state =
                json!({"Name": self.state_name, "EnteredTime": self.entered.to_string()});
            if let Some(n) = self.retry_count {
                state["RetryCount"] = json!(n);
            }
            let mut machine =
                json!({"Id": self.info.state_machine_arn, "Name": self.info.state_machine_name});
            if let Some(child) = &self.child {
                let (machine_arn, _) = child_arns(child.map_run_arn);
                let name = child.name();
                execution["Id"] = json!(child.arn);
                execution["Input"] = child.input.clone();
                execution["StartTime"] = json!(child.start.to_string());
                execution["Name"] = json!(name);
                // A child is not redriven on its own.
                if let Some(count) = execution.get_mut("RedriveCount") {
                    *count = json!(0);
                }
                let machine_name = machine_arn
                    .rsplit_once(":stateMachine:")
                    .map_or("", |(_, n)| n)
                    .to_owned();
                machine = json!({"Id": machine_arn, "Name": machine_name});
            }
            let mut ctx = json!({
                "Execution": execution,
                "StateMachine": machine,
                "State": state,
            });
            if let Some((index, value)) = self.item {
                ctx["Map"] = json!({"Item": {"Index": index, "Value": value}});
            }
            if let Some(token) = &self.task_token {
                ctx["Task"] = json!({"Token": token});
            }
            ctx
        })
    }
}
