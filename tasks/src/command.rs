//! A Task handled by a local command.

use std::process::Stdio;

use serde_json::Value;
use stepstone_engine::asl::errors;
use stepstone_engine::{Failure, TaskDispatcher, TaskFuture, TaskRequest};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Runs a shell command for each task: the task's input arrives as JSON on standard input, the
/// result is the JSON the command prints on standard output. A command that exits non-zero
/// fails the task with the `{"Error": ..., "Cause": ...}` it printed, or else with
/// `States.TaskFailed` and its standard error as the cause.
///
/// The environment carries `STEPSTONE_EXECUTION_ARN`, `STEPSTONE_STATE_NAME`,
/// `STEPSTONE_ATTEMPT` (0 for the first try), `STEPSTONE_INVOCATION` (how many tasks the state
/// ran before in this execution, over retries, loops and Map iterations; the same after a
/// resume) and `STEPSTONE_IDEMPOTENCY_TOKEN` (the same for every delivery of one attempt), and
/// `STEPSTONE_REGION` when the state names a region. For a
/// task that waits for its token (`.waitForTaskToken`), `STEPSTONE_TASK_TOKEN` holds it: the
/// command's output only says the request was delivered, and the task's result comes with
/// `stepstone send-task-success TOKEN OUTPUT` (or `send-task-failure`).
#[derive(Debug, Clone)]
pub struct CommandTask {
    command: String,
}

impl CommandTask {
    /// A handler running `command` with `sh -c`.
    pub fn new(command: impl Into<String>) -> CommandTask {
        CommandTask {
            command: command.into(),
        }
    }
}

impl TaskDispatcher for CommandTask {
    fn dispatch(&self, request: TaskRequest) -> TaskFuture {
        let command = self.command.clone();
        Box::pin(async move { run(&command, &request).await })
    }
}

async fn run(command: &str, request: &TaskRequest) -> Result<Value, Failure> {
    let failed = |cause: String| Failure::new(errors::TASK_FAILED, cause);
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("STEPSTONE_EXECUTION_ARN", &request.execution_arn)
        .env("STEPSTONE_STATE_NAME", &request.state_name)
        .env("STEPSTONE_ATTEMPT", request.attempt.to_string())
        .env("STEPSTONE_INVOCATION", request.invocation.to_string())
        .env("STEPSTONE_IDEMPOTENCY_TOKEN", &request.idempotency_token)
        .env("STEPSTONE_REGION", request.region.as_deref().unwrap_or(""))
        .env(
            "STEPSTONE_TASK_TOKEN",
            request.task_token.as_deref().unwrap_or(""),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(format!("cannot start `{command}`: {e}")))?;
    let input = request.input.to_string();
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input closes the pipe early; that is not an error.
        let _ = stdin.write_all(input.as_bytes()).await;
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| failed(format!("`{command}` failed: {e}")))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        if let Ok(Value::Object(error)) = serde_json::from_str::<Value>(stdout.trim())
            && let Some(name) = error.get("Error").and_then(Value::as_str)
        {
            let cause = error
                .get("Cause")
                .and_then(Value::as_str)
                .unwrap_or_default();
            return Err(Failure::new(name, cause));
        }
        let cause = if stderr.trim().is_empty() {
            format!("`{command}` exited with {}", output.status)
        } else {
            stderr.trim().to_owned()
        };
        return Err(failed(cause));
    }
    let text = stdout.trim();
    if text.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(text).map_err(|e| {
        failed(format!(
            "`{command}` printed something that is not JSON ({e}): {}",
            truncate(text)
        ))
    })
}

fn truncate(s: &str) -> String {
    if s.chars().count() > 200 {
        format!("{}...", s.chars().take(200).collect::<String>())
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use stepstone_engine::RunId;

    use super::*;

    fn request(input: Value) -> TaskRequest {
        TaskRequest {
            run: RunId::detached(),
            execution_arn: "arn:aws:states:us-east-1:123456789012:execution:sm:ex".into(),
            state_name: "Deploy".into(),
            resource: "arn:aws:states:::lambda:invoke".into(),
            input,
            attempt: 2,
            invocation: 5,
            idempotency_token: "tok-1".into(),
            region: None,
            timeout_seconds: None,
            task_token: None,
            heartbeat_seconds: None,
        }
    }

    #[tokio::test]
    async fn result_from_stdout() {
        let out = CommandTask::new("cat")
            .dispatch(request(json!({"a": [1, 2]})))
            .await;
        assert_eq!(out, Ok(json!({"a": [1, 2]})));
        let out = CommandTask::new("printf '{\"state\": \"%s\", \"attempt\": %s, \"invocation\": %s, \"token\": \"%s\"}' \"$STEPSTONE_STATE_NAME\" \"$STEPSTONE_ATTEMPT\" \"$STEPSTONE_INVOCATION\" \"$STEPSTONE_IDEMPOTENCY_TOKEN\"")
            .dispatch(request(json!({})))
            .await;
        assert_eq!(
            out,
            Ok(json!({"state": "Deploy", "attempt": 2, "invocation": 5, "token": "tok-1"}))
        );
    }

    #[tokio::test]
    async fn failures() {
        let out = CommandTask::new(
            "echo '{\"Error\": \"Stack.Exists\", \"Cause\": \"already there\"}'; exit 3",
        )
        .dispatch(request(json!({})))
        .await;
        assert_eq!(out, Err(Failure::new("Stack.Exists", "already there")));
        let out = CommandTask::new("echo oops >&2; exit 1")
            .dispatch(request(json!({})))
            .await;
        assert_eq!(out, Err(Failure::new("States.TaskFailed", "oops")));
        let out = CommandTask::new("echo not-json")
            .dispatch(request(json!({})))
            .await;
        assert!(
            matches!(out, Err(f) if f.error == "States.TaskFailed" && f.cause.contains("not JSON"))
        );
    }
}
