//! A Task handled by a local command.

use std::process::Stdio;

use serde_json::Value;
use stepstone_engine::asl::errors;
use stepstone_engine::{Failure, TaskDispatcher, TaskFuture, TaskRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
///
/// Limits: the command's standard output is read up to [`CommandTask::MAX_OUTPUT`] bytes (the
/// payload limit, 256 KiB); past it the command is killed and the task fails with
/// States.DataLimitExceeded. Its input is written while its output is read, so a command that
/// writes before it reads cannot deadlock. It runs in a process group of its own, killed whole
/// when the task is abandoned (TimeoutSeconds, a stop): nothing it started lingers.
#[derive(Debug, Clone)]
pub struct CommandTask {
    command: String,
    max_output: usize,
    dir: Option<std::path::PathBuf>,
}

impl CommandTask {
    /// The most a command may print on standard output: AWS's payload limit.
    pub const MAX_OUTPUT: usize = 256 * 1024;

    /// How much of standard error is kept for a failure's cause (AWS keeps causes of up to
    /// 32,768 characters); the rest is read and dropped.
    const MAX_ERROR_OUTPUT: usize = 32 * 1024;

    /// A handler running `command` with `sh -c`.
    pub fn new(command: impl Into<String>) -> CommandTask {
        CommandTask {
            command: command.into(),
            max_output: Self::MAX_OUTPUT,
            dir: None,
        }
    }

    /// The same handler, running its command in `dir` (by default, in this process's working
    /// directory): an execution resumed, or run by another process, from elsewhere runs its
    /// commands where it was started.
    pub fn in_dir(mut self, dir: impl Into<std::path::PathBuf>) -> CommandTask {
        self.dir = Some(dir.into());
        self
    }

    /// The same handler, reading at most `bytes` of standard output.
    pub fn with_max_output(mut self, bytes: usize) -> CommandTask {
        self.max_output = bytes;
        self
    }
}

impl TaskDispatcher for CommandTask {
    fn dispatch(&self, request: TaskRequest) -> TaskFuture {
        let this = self.clone();
        Box::pin(async move { this.run(&request).await })
    }

    /// A command routed an activity is its worker: what it prints is the activity's result.
    /// For a `.waitForTaskToken` task it only delivers the request, as on Step Functions.
    fn answers_callbacks(&self, request: &TaskRequest) -> bool {
        request.resource.contains(":activity:")
    }
}

/// The process group of a running command: killed whole when dropped before the command was
/// seen to end (the task was abandoned), so that what the command started goes too.
struct Group {
    #[cfg(unix)]
    id: Option<i32>,
}

impl Group {
    fn of(child: &tokio::process::Child) -> Group {
        Group {
            #[cfg(unix)]
            id: child.id().and_then(|id| i32::try_from(id).ok()),
        }
    }

    /// Kills every process of the group.
    fn kill(&self) {
        #[cfg(unix)]
        if let Some(id) = self.id {
            // SAFETY: kill(2) with a negative pid signals that process group; it touches no
            // memory of ours.
            unsafe {
                libc::kill(-id, libc::SIGKILL);
            }
        }
    }

    /// The command ended: its group is left alone from now on.
    fn release(mut self) {
        #[cfg(unix)]
        {
            self.id = None;
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads `from` to its end, keeping at most `limit` bytes; `true` when there was more. With
/// `stop_at_limit`, reading ends at the limit (and `on_overflow` runs), else the rest is read
/// and dropped so the writer never blocks.
async fn read_bounded(
    from: Option<impl tokio::io::AsyncRead + Unpin>,
    limit: usize,
    stop_at_limit: bool,
    on_overflow: impl FnOnce(),
) -> (Vec<u8>, bool) {
    let Some(mut from) = from else {
        return (Vec::new(), false);
    };
    let mut kept = Vec::new();
    let mut buffer = vec![0u8; 16 * 1024];
    let mut over = false;
    let mut on_overflow = Some(on_overflow);
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let room = limit.saturating_sub(kept.len());
        kept.extend_from_slice(&buffer[..n.min(room)]);
        if n > room {
            over = true;
            if stop_at_limit {
                if let Some(f) = on_overflow.take() {
                    f();
                }
                break;
            }
        }
    }
    (kept, over)
}

impl CommandTask {
    async fn run(&self, request: &TaskRequest) -> Result<Value, Failure> {
        let command = &self.command;
        let failed = |cause: String| Failure::new(errors::TASK_FAILED, cause);
        let mut process = Command::new("sh");
        process
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
            .kill_on_drop(true);
        if let Some(dir) = &self.dir {
            process.current_dir(dir);
        }
        #[cfg(unix)]
        process.process_group(0);
        let mut child = process
            .spawn()
            .map_err(|e| failed(format!("cannot start `{command}`: {e}")))?;
        let group = Group::of(&child);
        let input = request.input.to_string();
        let stdin = child.stdin.take();
        // Input written, output and errors read, all at once: a command may write before it
        // reads.
        let feed = async move {
            if let Some(mut stdin) = stdin {
                // A command that does not read its input closes the pipe early; that is not
                // an error.
                let _ = stdin.write_all(input.as_bytes()).await;
            }
        };
        let output = read_bounded(child.stdout.take(), self.max_output, true, || group.kill());
        let errors = read_bounded(child.stderr.take(), Self::MAX_ERROR_OUTPUT, false, || {});
        let ((), (stdout, overflowed), (stderr, _)) = tokio::join!(feed, output, errors);
        let status = child
            .wait()
            .await
            .map_err(|e| failed(format!("`{command}` failed: {e}")))?;
        group.release();
        if overflowed {
            return Err(Failure::new(
                errors::DATA_LIMIT_EXCEEDED,
                format!(
                    "`{command}` printed more than {} bytes, the most a task result may hold; it was stopped",
                    self.max_output
                ),
            ));
        }
        let stdout = String::from_utf8_lossy(&stdout);
        let stderr = String::from_utf8_lossy(&stderr);
        if !status.success() {
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
                format!("`{command}` exited with {status}")
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

    /// A command that prints without end is stopped at the payload limit: an error, not
    /// gigabytes.
    #[tokio::test]
    async fn endless_output_is_cut_at_the_limit() {
        let out = CommandTask::new("yes").dispatch(request(json!({}))).await;
        let failure = out.unwrap_err();
        assert_eq!(failure.error, "States.DataLimitExceeded");
        assert!(failure.cause.contains("262144"), "{}", failure.cause);
        let out = CommandTask::new("head -c 2000 /dev/zero | tr '\\0' ' '; echo 1")
            .with_max_output(1000)
            .dispatch(request(json!({})))
            .await;
        assert_eq!(out.unwrap_err().error, "States.DataLimitExceeded");
    }

    /// A command that writes 100 KB before it reads its 200 KB input finishes: both pipes are
    /// served at once.
    #[tokio::test]
    async fn a_command_may_write_before_it_reads() {
        let big = "x".repeat(200_000);
        let out = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            CommandTask::new("head -c 100000 /dev/zero | tr '\\0' ' '; wc -c | tr -d ' \\n'; echo")
                .dispatch(request(json!({ "big": big }))),
        )
        .await
        .expect("no deadlock");
        // The input's JSON text: {"big":"..."} is 200,010 bytes.
        assert_eq!(out, Ok(json!(200_010)));
    }

    /// A task abandoned (its TimeoutSeconds passed) takes what it started with it.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn an_abandoned_command_takes_its_children_with_it() {
        let dir = std::env::temp_dir().join(format!("stepstone-group-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pid_file = dir.join("pid");
        let command = format!("sleep 300 & echo $! > {}; wait", pid_file.display());
        let task = CommandTask::new(command).dispatch(request(json!({})));
        let abandoned = tokio::time::timeout(std::time::Duration::from_millis(500), task).await;
        assert!(abandoned.is_err(), "the command was still running");
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        let stat = std::path::PathBuf::from(format!("/proc/{}/stat", pid.trim()));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let state = std::fs::read_to_string(&stat).unwrap_or_default();
            // Gone, or a zombie nobody reaped yet: killed either way.
            if state.is_empty() || state.contains(") Z ") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "sleep {pid} still runs: {state}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}
