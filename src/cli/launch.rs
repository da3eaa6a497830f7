//! What an execution is launched with, and on: its task routes (`--task` commands, a
//! MockConfigFile test case, AWS), AWS settings and mocks as the commands take them and as an
//! execution's launch record keeps them, so that `resume`, `redrive`, a `serve` and a process
//! that takes over an execution rebuild them the same way; and the runtime they run on.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use stepstone::engine::{Limits, RunOptions};
use stepstone::tasks::{AwsOptions, AwsTasks, CommandTask, MockCase, MockTasks, Router};

/// Mocked task results: a Step Functions Local MockConfigFile and one of its test cases.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct MockArgs {
    /// Answer Task states from this MockConfigFile (Step Functions Local's format); states the
    /// test case does not mock still go to their real target.
    #[arg(long, value_name = "FILE", requires = "test_case")]
    pub(crate) mock_config: Option<PathBuf>,
    /// The test case of the MockConfigFile to use.
    #[arg(long, value_name = "NAME", requires = "mock_config")]
    pub(crate) test_case: Option<String>,
}

impl MockArgs {
    /// The test case for state machine `machine`, if mocks were asked for.
    pub(crate) fn load(&self, machine: &str) -> Result<Option<MockCase>, String> {
        let (Some(file), Some(case)) = (&self.mock_config, &self.test_case) else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        MockCase::load(&text, machine, case)
            .map(Some)
            .map_err(|e| format!("{}: {e}", file.display()))
    }

    /// As kept in an execution's launch record (the file by absolute path: `resume` may run
    /// elsewhere).
    pub(crate) fn to_json(&self) -> Value {
        let file = self
            .mock_config
            .as_ref()
            .map(|f| std::path::absolute(f).unwrap_or_else(|_| f.clone()));
        json!({"config": file, "test_case": self.test_case})
    }

    /// From a launch record.
    pub(crate) fn from_json(v: &Value) -> MockArgs {
        MockArgs {
            mock_config: v["config"].as_str().map(PathBuf::from),
            test_case: v["test_case"].as_str().map(str::to_owned),
        }
    }
}

/// Where AWS tasks go, when not to the standard AWS configuration's defaults.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct AwsArgs {
    /// The AWS region for tasks that name none (default: AWS_REGION, the profile's, or
    /// us-east-1).
    #[arg(long, value_name = "REGION")]
    pub(crate) region: Option<String>,
    /// Send AWS calls to this endpoint, such as a local emulator: http://127.0.0.1:4566
    /// (default: AWS_ENDPOINT_URL, or AWS itself).
    #[arg(long, value_name = "URL")]
    pub(crate) endpoint_url: Option<String>,
}

impl AwsArgs {
    /// As kept in an execution's launch record.
    pub(crate) fn to_json(&self) -> Value {
        json!({"region": self.region, "endpoint_url": self.endpoint_url})
    }

    /// From a launch record (absent: the defaults).
    pub(crate) fn from_json(v: &Value) -> AwsArgs {
        let text = |k: &str| v[k].as_str().map(str::to_owned);
        AwsArgs {
            region: text("region"),
            endpoint_url: text("endpoint_url"),
        }
    }
}

/// Where tasks go, first match first (as ../shared/DESIGN.md orders it): the `RESOURCE=COMMAND`
/// specs; the states the mock test case mocks; AWS (Lambda and CloudFormation through the SDK,
/// configured by `aws`).
/// Commands run in `dir` (`None`: this process's working directory).
pub(crate) fn router(
    specs: &[String],
    aws: &AwsArgs,
    mocks: Option<MockCase>,
    dir: Option<&Path>,
) -> Result<Router, String> {
    let mut options = AwsOptions::default();
    if let Some(region) = &aws.region {
        options = options.region(region);
    }
    if let Some(url) = &aws.endpoint_url {
        options = options.endpoint_url(url);
    }
    let aws = AwsTasks::new(options);
    let mut router = match mocks {
        Some(case) => Router::new().fallback(MockTasks::new(case, aws)),
        None => Router::new().fallback(aws),
    };
    for spec in specs {
        let (resource, command) = spec
            .split_once('=')
            .filter(|(r, c)| !r.is_empty() && !c.is_empty())
            .ok_or_else(|| format!("--task takes RESOURCE=COMMAND, got '{spec}'"))?;
        let mut task = CommandTask::new(command);
        if let Some(dir) = dir {
            task = task.in_dir(dir);
        }
        router = router.route(resource, task);
    }
    Ok(router)
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// The task routes and options an execution was launched with (its launch record, as
/// `run::launch_record` makes it), plus the routes given now; AWS settings given now replace
/// the launch's. `machine_name` picks the MockConfigFile's state machine.
pub(crate) fn launch_options(
    launch: &Value,
    machine_name: &str,
    extra_tasks: &[String],
    aws: &AwsArgs,
) -> Result<(stepstone::tasks::Router, RunOptions), String> {
    let mut tasks: Vec<String> = launch["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    tasks.extend(extra_tasks.iter().cloned());
    let launched = AwsArgs::from_json(&launch["aws"]);
    let aws_now = AwsArgs {
        region: aws.region.clone().or(launched.region),
        endpoint_url: aws.endpoint_url.clone().or(launched.endpoint_url),
    };
    let mocks = MockArgs::from_json(&launch["mocks"]).load(machine_name)?;
    // Commands run where the execution was started from, wherever it is resumed (launch
    // records older than this kept no directory: the current one, as then).
    let dir = launch["dir"].as_str().map(std::path::Path::new);
    let routes = router(&tasks, &aws_now, mocks, dir)?;
    let mut options = RunOptions::default();
    options.virtual_time = launch["virtual_time"].as_bool().unwrap_or(false);
    options.child_histories = launch["child_histories"].as_bool().unwrap_or(true);
    options.record_history = true;
    let history = launch["history_limit"].as_u64().unwrap_or(25_000);
    let payload = launch["payload_limit"]
        .as_u64()
        .map_or(256 * 1024, |p| usize::try_from(p).unwrap_or(usize::MAX));
    options.limits = Limits::default()
        .with_max_history_events((history > 0).then_some(history))
        .with_max_payload_bytes(match payload {
            0 => usize::MAX,
            bytes => bytes,
        });
    Ok((routes, options))
}
