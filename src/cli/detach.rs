//! `stepstone run --detach`: the same run, in a background process that outlives the command.
//!
//! The command checks what it can first (definition, input), then starts itself again without
//! `--detach`, its output going to `<store>/logs/<name>.log`, and waits until the execution is
//! in the store: the ARN it prints names an execution that exists, and that `resume` can finish
//! if the background process dies.

use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use super::control;
use super::run::{RunArgs, compile, read_input};

/// Opens `path` in `logs` for the background run's output: owner-only, and never through a
/// symbolic link (a link planted at `logs/NAME.log` would otherwise have the run truncate and
/// overwrite whatever it points to).
fn open_log(logs: &std::path::Path, path: &std::path::Path) -> Result<std::fs::File, String> {
    let mut dir = std::fs::DirBuilder::new();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        dir.mode(0o700);
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    dir.recursive(true)
        .create(logs)
        .map_err(|e| format!("cannot create {}: {e}", logs.display()))?;
    if std::fs::symlink_metadata(logs).is_ok_and(|m| !m.is_dir()) {
        return Err(format!("{} is not a directory", logs.display()));
    }
    options
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))
}

/// How long the background run may take to store its execution.
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) fn start(args: &RunArgs) -> Result<ExitCode, String> {
    let spec = &args
        .store()
        .ok_or("--detach keeps the execution in a store: it cannot be --ephemeral")?;
    // Refuse a bad definition or input here, where the user sees it.
    let text = super::read_definition(&args.definition)?;
    compile(&text, &args.definition.display().to_string())?;
    read_input(args)?;
    if args.definition.as_os_str() == "-" || args.input.input_file.as_deref() == Some("-".as_ref())
    {
        return Err("--detach cannot read the definition or input from standard input".into());
    }
    let name = args.name.clone().unwrap_or_else(super::run::generated_name);
    spec.ensure_dir()?;
    let logs = spec.dir.join("logs");
    // The name was checked (`check_names`): no `/`, so the log stays in `logs`.
    let log_path = logs.join(format!("{name}.log"));
    let log = open_log(&logs, &log_path)?;
    let log_err = log
        .try_clone()
        .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;

    let mut argv: Vec<std::ffi::OsString> = std::env::args_os()
        .skip(1)
        .filter(|a| a != "--detach")
        .collect();
    if args.name.is_none() {
        argv.extend(["--name".into(), name.clone().into()]);
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut command = Command::new(exe);
    command
        .args(&argv)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    #[cfg(unix)]
    {
        // Its own process group: Ctrl-C in this terminal does not reach it.
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start the background run: {e}"))?;

    let describe = json!({"op": "describe", "execution": name});
    let started = Instant::now();
    let arn = loop {
        if let Some(Ok(described)) = control::request(&spec.dir, &describe) {
            break described["executionArn"].as_str().map(str::to_owned);
        }
        if let Ok(Some(status)) = child.try_wait() {
            // Ended already (a short execution), or could not start: the store tells which.
            let stored = spec.open_existing().ok().and_then(|store| {
                let records = store.list().ok()?;
                records
                    .into_iter()
                    .find(|r| r.name == name)
                    .map(|r| r.execution_arn)
            });
            if stored.is_some() {
                break stored;
            }
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!(
                "the background run stopped before storing its execution ({status}):\n{}",
                log.trim_end()
            ));
        }
        if started.elapsed() > START_TIMEOUT {
            return Err(format!(
                "the background run (pid {}) did not store its execution within {} s; see {}",
                child.id(),
                START_TIMEOUT.as_secs(),
                log_path.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let arn = arn.ok_or("the engine described the execution without its ARN")?;
    outln!("{arn}");
    eprintln!(
        "started in the background (pid {}); progress: {}\n  stepstone describe {name}    stepstone stop {name}",
        child.id(),
        log_path.display()
    );
    Ok(ExitCode::SUCCESS)
}
