//! `stepstone serve` driven by a real client: boto3 (tests/clients/boto3_client.py), from the
//! virtual environment `scripts/test` makes (STEPSTONE_TEST_PYTHON). Without it the tests fail:
//! they never skip.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// How many executions `serve --shared` nodes said they took over from a dead node.
static TAKEOVERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A running `stepstone serve` and the endpoint it printed.
struct Server {
    child: Child,
    endpoint: String,
}

impl Server {
    fn start(store: &PathBuf) -> Server {
        Server::start_with(store, &[])
    }

    fn start_with(store: &PathBuf, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_stepstone"))
            // Where an engine on a PostgreSQL store keeps its local files (.stepstone/).
            .current_dir(std::env::temp_dir())
            .args(["serve", "--port", "0", "--store"])
            .arg(store)
            .args(extra)
            .args([
                "--task",
                "arn:aws:states:::lambda:invoke.waitForTaskToken=cat",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("stepstone serve starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let first = lines.next().expect("serve says where it listens").unwrap();
        let endpoint = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no endpoint in: {first}"))
            .to_owned();
        // The rest of its standard error goes on to the test's.
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if line.contains("took over") {
                    TAKEOVERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                eprintln!("serve: {line}");
            }
        });
        Server { child, endpoint }
    }

    /// SIGKILL: nothing is flushed or finished.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn boto3(server: &Server, args: &[&str]) -> String {
    let python = std::env::var("STEPSTONE_TEST_PYTHON").expect(
        "STEPSTONE_TEST_PYTHON is not set: run the tests with scripts/test, which installs boto3 \
         into .venv-aws",
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/boto3_client.py");
    let out = Command::new(python)
        .arg(script)
        .arg(&server.endpoint)
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "boto3 {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn store(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("stepstone-serve-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn boto3_manages_state_machines_and_executions() {
    let server = Server::start(&store("boto3"));
    boto3(&server, &["main"]);
}

#[test]
fn boto3_works_activities_as_a_worker_does() {
    let server = Server::start(&store("activities"));
    boto3(&server, &["activities"]);
}

#[test]
fn boto3_publishes_versions_and_routes_aliases() {
    let server = Server::start(&store("versions"));
    boto3(&server, &["versions"]);
}

#[test]
fn boto3_describes_and_lists_map_runs() {
    let server = Server::start(&store("map-runs"));
    boto3(&server, &["map-runs"]);
}

#[test]
fn boto3_runs_child_executions() {
    let server = Server::start(&store("children"));
    boto3(&server, &["children"]);
}

#[test]
fn a_killed_server_restarts_with_nothing_lost() {
    let dir = store("restart");
    let server = Server::start(&dir);
    let arn = boto3(&server, &["before-kill"]);
    assert!(arn.ends_with(":execution:slow:survivor"), "{arn}");
    server.kill();
    let server = Server::start(&dir);
    boto3(&server, &["after-restart", &arn]);
}

/// The service on a PostgreSQL store: boto3's main scenario, then a server killed with SIGKILL
/// and started again as a new process finds everything it had in the database and finishes
/// the execution it left running.
#[test]
fn on_a_postgresql_store_boto3_works_and_a_killed_server_restarts_with_nothing_lost() {
    let server = Server::start(&PathBuf::from(common::postgres::fresh_database("serve")));
    boto3(&server, &["main"]);
    drop(server);
    let database = PathBuf::from(common::postgres::fresh_database("restart"));
    let server = Server::start(&database);
    let arn = boto3(&server, &["before-kill"]);
    server.kill();
    let server = Server::start(&database);
    boto3(&server, &["after-restart", &arn]);
}

/// `aws stepfunctions` (the AWS CLI, from the same environment as boto3).
fn aws(server: &Server, args: &[&str]) -> serde_json::Value {
    let out = aws_signed_with(server, ("test", "test"), args);
    assert!(
        out.status.success(),
        "aws {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// `aws stepfunctions ARGS` signing with the access key `(id, secret)`.
fn aws_signed_with(
    server: &Server,
    (id, secret): (&str, &str),
    args: &[&str],
) -> std::process::Output {
    let python = std::env::var("STEPSTONE_TEST_PYTHON").expect(
        "STEPSTONE_TEST_PYTHON is not set: run the tests with scripts/test, which installs the \
         AWS CLI into .venv-aws",
    );
    let aws = PathBuf::from(python).with_file_name("aws");
    Command::new(&aws)
        .args([
            "stepfunctions",
            "--endpoint-url",
            &server.endpoint,
            "--output",
            "json",
        ])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_DEFAULT_REGION", "eu-west-3")
        .env("AWS_MAX_ATTEMPTS", "1")
        .output()
        .unwrap_or_else(|e| panic!("{} does not run: {e}", aws.display()))
}

/// With `--credentials`, only requests signed with one of its keys are answered (the AWS CLI
/// signs as for AWS); without it, `serve` refuses to listen beyond loopback.
#[test]
fn with_credentials_only_signed_requests_are_answered() {
    let dir = store("sigv4");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.with_extension("credentials");
    std::fs::write(
        &file,
        "[ci]\naws_access_key_id = AKIDSTEPSTONE\naws_secret_access_key = s3cr3t/Key+\n",
    )
    .unwrap();
    let serve = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_stepstone"))
            .args(["serve", "--port", "0", "--store"])
            .arg(&dir)
            .args(extra)
            .output()
            .unwrap()
    };
    // Other users could read the secret: refused.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let o = serve(&["--credentials", file.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&o.stderr).contains("chmod 600"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let o = serve(&["--bind", "0.0.0.0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--credentials FILE"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    let server = Server::start_with(&dir, &["--credentials", file.to_str().unwrap()]);
    let ok = aws_signed_with(
        &server,
        ("AKIDSTEPSTONE", "s3cr3t/Key+"),
        &["list-state-machines"],
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let wrong_secret = aws_signed_with(
        &server,
        ("AKIDSTEPSTONE", "guess"),
        &["list-state-machines"],
    );
    assert!(!wrong_secret.status.success());
    assert!(
        String::from_utf8_lossy(&wrong_secret.stderr).contains("InvalidSignatureException"),
        "{}",
        String::from_utf8_lossy(&wrong_secret.stderr)
    );
    let unknown = aws_signed_with(
        &server,
        ("AKIDOTHER", "s3cr3t/Key+"),
        &["list-state-machines"],
    );
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("UnrecognizedClientException"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
    // No signature at all (a plain HTTP client).
    let answer = call(
        &server.endpoint,
        "ListStateMachines",
        &serde_json::json!({}),
    );
    assert_eq!(
        answer["__type"], "MissingAuthenticationTokenException",
        "{answer}"
    );
}

#[test]
fn the_aws_cli_creates_runs_and_reads_an_execution() {
    let server = Server::start(&store("aws-cli"));
    let definition = r#"{"StartAt": "Hi", "States": {"Hi": {"Type": "Pass", "Result": {"hi": "there"}, "End": true}}}"#;
    let created = aws(
        &server,
        &[
            "create-state-machine",
            "--name",
            "cli",
            "--role-arn",
            "arn:aws:iam::123456789012:role/r",
            "--definition",
            definition,
        ],
    );
    let machine = created["stateMachineArn"].as_str().unwrap().to_owned();
    let listed = aws(&server, &["list-state-machines"]);
    assert_eq!(listed["stateMachines"][0]["name"], "cli");
    let started = aws(
        &server,
        &[
            "start-execution",
            "--state-machine-arn",
            &machine,
            "--name",
            "one",
        ],
    );
    let execution = started["executionArn"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let described = loop {
        let d = aws(
            &server,
            &["describe-execution", "--execution-arn", &execution],
        );
        if d["status"] != "RUNNING" {
            break d;
        }
        assert!(std::time::Instant::now() < deadline, "still RUNNING");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(described["status"], "SUCCEEDED");
    assert_eq!(described["output"], r#"{"hi":"there"}"#);
    let history = aws(
        &server,
        &["get-execution-history", "--execution-arn", &execution],
    );
    assert_eq!(history["events"][0]["type"], "ExecutionStarted");
}

/// One request on a new connection, raw HTTP/1.1 (what the flood below leaves room for).
fn call(endpoint: &str, operation: &str, body: &serde_json::Value) -> serde_json::Value {
    use std::io::{Read, Write};
    let address = endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    let body = body.to_string();
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Amz-Target: AWSStepFunctions.{operation}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (_, json) = answer.split_once("\r\n\r\n").unwrap();
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {answer}"))
}

/// Hundreds of connections that never send a request: the server takes only as many as its
/// descriptors allow (here it may open 128), so the execution it runs still starts its task
/// command and succeeds.
#[test]
fn a_flood_of_idle_connections_does_not_starve_the_server() {
    let dir = store("flood");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 128 && exec '{}' serve --port 0 --store '{}' --task 'arn:aws:lambda:us-east-1:123456789012:function:f=cat'",
            env!("CARGO_BIN_EXE_stepstone"),
            dir.display()
        ))
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let first = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    let endpoint = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_owned();
    let definition = serde_json::json!({"StartAt": "W", "States": {
        "W": {"Type": "Wait", "Seconds": 2, "Next": "T"},
        "T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f", "End": true}}});
    let created = call(
        &endpoint,
        "CreateStateMachine",
        &serde_json::json!({"name": "flooded", "definition": definition.to_string(), "roleArn": "r"}),
    );
    let started = call(
        &endpoint,
        "StartExecution",
        &serde_json::json!({"stateMachineArn": created["stateMachineArn"], "name": "one", "input": "{\"ok\": true}"}),
    );
    assert!(started["executionArn"].is_string(), "{started}");
    let address: std::net::SocketAddr = endpoint.trim_start_matches("http://").parse().unwrap();
    // Until the listen backlog is full (a connect then waits for the kernel's retries).
    let held: Vec<_> = (0..600)
        .map_while(|_| {
            std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_millis(200))
                .ok()
        })
        .collect();
    assert!(held.len() > 128, "only {} connections", held.len());
    // The task command runs once the Wait is over; the store says how it went.
    std::thread::sleep(std::time::Duration::from_secs(4));
    let described = Command::new(env!("CARGO_BIN_EXE_stepstone"))
        .args(["describe", "one", "--json", "--store"])
        .arg(&dir)
        .output()
        .unwrap();
    let described: serde_json::Value = serde_json::from_slice(&described.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&described.stderr)));
    assert_eq!(described["status"], "SUCCEEDED", "{described}");
    drop(held);
    let _ = child.kill();
    let _ = child.wait();
}

/// `stepstone run` on the store a server owns runs its execution in the server, which the API
/// then shows like any other.
#[test]
fn a_run_on_the_servers_store_runs_in_the_server() {
    let dir = store("guest");
    let server = Server::start(&dir);
    let definition = std::env::temp_dir().join(format!(
        "stepstone-serve-guest-{}.asl.json",
        std::process::id()
    ));
    std::fs::write(
        &definition,
        r#"{"StartAt": "Hi", "States": {"Hi": {"Type": "Pass", "Parameters": {"hi.$": "$.who"}, "End": true}}}"#,
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_stepstone"))
        .arg("run")
        .arg(&definition)
        .arg("--store")
        .arg(&dir)
        .args(["--name", "handed", "--input", r#"{"who": "you"}"#, "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let result: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(result["output"], serde_json::json!({"hi": "you"}));
    let arn = result["executionArn"].as_str().unwrap();
    let described = call(
        &server.endpoint,
        "DescribeExecution",
        &serde_json::json!({"executionArn": arn}),
    );
    assert_eq!(described["status"], "SUCCEEDED");
    assert_eq!(described["output"], r#"{"hi":"you"}"#);
    let _ = std::fs::remove_file(&definition);
}

/// The AWS SDK for Rust with only an endpoint, credentials and region, as a Rust user's tests
/// would build it, plus an interceptor that drops the `sync-` host prefix of
/// StartSyncExecution (the Rust SDK has no switch for it, unlike boto3's
/// `inject_host_prefix`; see the README).
fn rust_client(endpoint: &str) -> aws_sdk_sfn::Client {
    use aws_sdk_sfn::config::interceptors::BeforeTransmitInterceptorContextMut;
    use aws_sdk_sfn::config::{ConfigBag, Intercept, RuntimeComponents};

    #[derive(Debug)]
    struct NoHostPrefix;

    impl Intercept for NoHostPrefix {
        fn name(&self) -> &'static str {
            "NoHostPrefix"
        }

        fn modify_before_signing(
            &self,
            context: &mut BeforeTransmitInterceptorContextMut<'_>,
            _: &RuntimeComponents,
            _: &mut ConfigBag,
        ) -> Result<(), aws_sdk_sfn::error::BoxError> {
            let uri = context.request().uri().replacen("://sync-", "://", 1);
            context.request_mut().set_uri(uri)?;
            Ok(())
        }
    }

    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let config = aws_sdk_sfn::Config::builder()
        .behavior_version(aws_sdk_sfn::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_sdk_sfn::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sfn::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .http_client(http)
        .interceptor(NoHostPrefix)
        .build();
    aws_sdk_sfn::Client::from_conf(config)
}

/// `aws-sdk-sfn`, the Rust SDK: state machines, an execution and its history read a page at a
/// time through the SDK's paginator, AWS's errors as the SDK's typed errors, and a
/// synchronous express execution.
#[test]
fn the_rust_sdk_creates_runs_and_pages_through_a_history() {
    use aws_sdk_sfn::types::{ExecutionStatus, StateMachineType, SyncExecutionStatus};

    let server = Server::start(&store("rust-sdk"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = rust_client(&server.endpoint);
        let role = "arn:aws:iam::123456789012:role/r";
        let definition = serde_json::json!({"StartAt": "A", "States": {
            "A": {"Type": "Pass", "Parameters": {"n.$": "States.MathAdd($.n, 1)"}, "Next": "B"},
            "B": {"Type": "Pass", "Parameters": {"n.$": "States.MathAdd($.n, 1)"}, "Next": "C"},
            "C": {"Type": "Pass", "Parameters": {"n.$": "States.MathAdd($.n, 1)"}, "End": true}}})
        .to_string();
        let machine = client
            .create_state_machine()
            .name("rusty")
            .definition(&definition)
            .role_arn(role)
            .send()
            .await
            .unwrap()
            .state_machine_arn
            .clone();
        let invalid = client
            .create_state_machine()
            .name("broken")
            .definition(r#"{"StartAt": "Nowhere", "States": {}}"#)
            .role_arn(role)
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert!(invalid.is_invalid_definition(), "{invalid:?}");

        let execution = client
            .start_execution()
            .state_machine_arn(&machine)
            .name("one")
            .input(r#"{"n": 1}"#)
            .send()
            .await
            .unwrap()
            .execution_arn
            .clone();
        let described = loop {
            let d = client
                .describe_execution()
                .execution_arn(&execution)
                .send()
                .await
                .unwrap();
            if d.status != ExecutionStatus::Running {
                break d;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        assert_eq!(described.status, ExecutionStatus::Succeeded);
        let output: serde_json::Value =
            serde_json::from_str(described.output.as_deref().unwrap()).unwrap();
        assert_eq!(output, serde_json::json!({"n": 4}));

        // Two events a page: the paginator follows nextToken to the end.
        let mut pages = client
            .get_execution_history()
            .execution_arn(&execution)
            .max_results(2)
            .into_paginator()
            .send();
        let (mut page_count, mut ids) = (0, Vec::new());
        while let Some(page) = pages.next().await {
            page_count += 1;
            ids.extend(page.unwrap().events.iter().map(|e| e.id));
        }
        assert_eq!(ids, (1..=8).collect::<Vec<i64>>());
        assert_eq!(page_count, 4);

        let missing = client
            .describe_execution()
            .execution_arn(execution.replace(":one", ":none"))
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert!(missing.is_execution_does_not_exist(), "{missing:?}");
        let twice = client
            .start_execution()
            .state_machine_arn(&machine)
            .name("one")
            .input(r#"{"n": 5}"#)
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert!(twice.is_execution_already_exists(), "{twice:?}");

        let express = client
            .create_state_machine()
            .name("quick")
            .definition(&definition)
            .role_arn(role)
            .r#type(StateMachineType::Express)
            .send()
            .await
            .unwrap()
            .state_machine_arn
            .clone();
        let sync = client
            .start_sync_execution()
            .state_machine_arn(&express)
            .input(r#"{"n": 10}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(sync.status, SyncExecutionStatus::Succeeded);
        assert_eq!(sync.output.as_deref(), Some(r#"{"n":13}"#));
    });
}

/// Two `serve --shared` nodes on one PostgreSQL store, driven by boto3: an execution started on
/// one node is described, called back and stopped through the other.
#[test]
fn two_shared_nodes_answer_for_each_others_executions() {
    let database = PathBuf::from(common::postgres::fresh_database("two_nodes"));
    let shared = ["--shared", "--lease-ttl", "3"];
    let a = Server::start_with(&database, &shared);
    let b = Server::start_with(&database, &shared);
    boto3(&a, &["two-nodes", &b.endpoint]);
}

/// Three `serve --shared` nodes on one PostgreSQL store, one of them (once two) killed with
/// SIGKILL (and started again) every 1.5 s while 24 executions of three tasks each run (about 3 s each,
/// started four before each kill): every execution
/// ends once, SUCCEEDED, with each of its tasks completed once in its history, though some were
/// sent again by the node that took the execution over.
#[test]
fn shared_nodes_killed_one_after_another_lose_and_repeat_nothing() {
    let database = PathBuf::from(common::postgres::fresh_database("three_nodes"));
    let sent = std::env::temp_dir().join(format!("stepstone-sent-{}", std::process::id()));
    let _ = std::fs::remove_file(&sent);
    let resource = "arn:aws:lambda:us-east-1:123456789012:function:work";
    // Each delivery of a task leaves its idempotency token (the same for every delivery of
    // one attempt), and answers its input.
    let route = format!(
        "{resource}=echo \"$STEPSTONE_IDEMPOTENCY_TOKEN\" >> '{}'; cat",
        sent.display()
    );
    let args = ["--shared", "--lease-ttl", "1.5", "--task", &route];
    let start = || Server::start_with(&database, &args);
    let mut nodes = [start(), start(), start()];
    let task = |name: &str, next: &str| {
        serde_json::json!({"Type": "Task", "Resource": resource,
            "Parameters": {"n.$": "$.n"}, "ResultPath": format!("$.{name}"), "Next": next})
    };
    let definition = serde_json::json!({"StartAt": "One", "States": {
        "One": task("one", "PauseOne"),
        "PauseOne": {"Type": "Wait", "Seconds": 1, "Next": "Two"},
        "Two": task("two", "PauseTwo"),
        "PauseTwo": {"Type": "Wait", "Seconds": 1, "Next": "Three"},
        "Three": {"Type": "Task", "Resource": resource, "Parameters": {"n.$": "$.n"},
            "ResultPath": "$.three", "End": true},
    }});
    let machine = call(
        &nodes[0].endpoint,
        "CreateStateMachine",
        &serde_json::json!({"name": "deploy", "definition": definition.to_string(),
            "roleArn": "arn:aws:iam::123456789012:role/stepstone"}),
    )["stateMachineArn"]
        .as_str()
        .expect("the state machine is created")
        .to_owned();
    let takeovers_before = TAKEOVERS.load(std::sync::atomic::Ordering::Relaxed);
    // Four executions started (on the three nodes in turn) before each kill, so that every
    // kill finds executions in the middle of their tasks and waits.
    let mut executions = Vec::new();
    for round in 0..6 {
        for n in round * 4..round * 4 + 4 {
            let started = call(
                &nodes[n % 3].endpoint,
                "StartExecution",
                &serde_json::json!({"stateMachineArn": machine, "name": format!("e{n}"),
                    "input": serde_json::json!({"n": n}).to_string()}),
            );
            executions.push(
                started["executionArn"]
                    .as_str()
                    .unwrap_or_else(|| panic!("not started: {started}"))
                    .to_owned(),
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(1500));
        // One node at a time; in the fifth round, two at once (one node is left).
        let victims = if round == 4 {
            vec![1, 2]
        } else {
            vec![round % 3]
        };
        let dead: Vec<Server> = victims
            .iter()
            .map(|&victim| std::mem::replace(&mut nodes[victim], start()))
            .collect();
        dead.into_iter().for_each(Server::kill);
    }
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut first_history: Option<Vec<String>> = None;
    for (n, arn) in executions.iter().enumerate() {
        let described = loop {
            let described = call(
                &nodes[n % 3].endpoint,
                "DescribeExecution",
                &serde_json::json!({"executionArn": arn}),
            );
            if described["status"] != "RUNNING" {
                break described;
            }
            assert!(
                std::time::Instant::now() < give_up,
                "{arn} still RUNNING after 2 minutes"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        assert_eq!(described["status"], "SUCCEEDED", "{described}");
        let output: serde_json::Value =
            serde_json::from_str(described["output"].as_str().unwrap()).unwrap();
        assert_eq!(output["three"]["n"], n, "{output}");
        let history = call(
            &nodes[(n + 1) % 3].endpoint,
            "GetExecutionHistory",
            &serde_json::json!({"executionArn": arn, "maxResults": 1000}),
        );
        let events = history["events"].as_array().unwrap();
        let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        let ids: Vec<u64> = events.iter().map(|e| e["id"].as_u64().unwrap()).collect();
        assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>(), "{types:?}");
        // Killed or not, an execution of this machine records the same events.
        let expected = first_history
            .get_or_insert_with(|| types.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>());
        assert_eq!(&types, expected, "e{n}'s history differs from e0's");
        let count = |kind: &str| types.iter().filter(|t| **t == kind).count();
        assert_eq!(count("ExecutionStarted"), 1, "{types:?}");
        assert_eq!(count("ExecutionSucceeded"), 1, "{types:?}");
        assert_eq!(
            count("LambdaFunctionSucceeded") + count("TaskSucceeded"),
            3,
            "each task completed once: {types:?}"
        );
        assert_eq!(types.last(), Some(&"ExecutionSucceeded"), "{types:?}");
    }
    // Every task was delivered, some more than once (at least once, as after any crash), and
    // nodes did take executions over.
    let deliveries = std::fs::read_to_string(&sent).unwrap();
    let tokens: std::collections::HashSet<&str> = deliveries.lines().collect();
    assert_eq!(tokens.len(), 24 * 3, "one idempotency token per task");
    assert!(deliveries.lines().count() >= 24 * 3);
    let listed = call(
        &nodes[0].endpoint,
        "ListExecutions",
        &serde_json::json!({"stateMachineArn": machine, "maxResults": 100}),
    );
    assert_eq!(listed["executions"].as_array().unwrap().len(), 24);
    let takeovers = TAKEOVERS.load(std::sync::atomic::Ordering::Relaxed) - takeovers_before;
    assert!(takeovers > 0, "no node took an execution over");
    let _ = std::fs::remove_file(&sent);
}

/// An execution left RUNNING by a single-owner server killed with SIGKILL (it has no lease:
/// leases are for shared stores) is adopted by the `--shared` nodes started on the store
/// afterwards, claimed by one of them, and finished.
#[test]
fn shared_nodes_adopt_what_a_single_owner_left_running() {
    let database = PathBuf::from(common::postgres::fresh_database("adopt"));
    let alone = Server::start(&database);
    let definition = serde_json::json!({"StartAt": "Pause", "States": {
        "Pause": {"Type": "Wait", "Seconds": 2, "Next": "Done"},
        "Done": {"Type": "Pass", "Result": "adopted", "End": true}}});
    let machine = call(
        &alone.endpoint,
        "CreateStateMachine",
        &serde_json::json!({"name": "left", "definition": definition.to_string(),
            "roleArn": "arn:aws:iam::123456789012:role/stepstone"}),
    )["stateMachineArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let arn = call(
        &alone.endpoint,
        "StartExecution",
        &serde_json::json!({"stateMachineArn": machine, "name": "orphan"}),
    )["executionArn"]
        .as_str()
        .unwrap()
        .to_owned();
    alone.kill();
    let shared = ["--shared", "--lease-ttl", "1"];
    let nodes = [
        Server::start_with(&database, &shared),
        Server::start_with(&database, &shared),
    ];
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let described = loop {
        let described = call(
            &nodes[1].endpoint,
            "DescribeExecution",
            &serde_json::json!({"executionArn": arn}),
        );
        if described["status"] != "RUNNING" {
            break described;
        }
        assert!(std::time::Instant::now() < give_up, "still RUNNING");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(described["status"], "SUCCEEDED", "{described}");
    assert_eq!(described["output"], "\"adopted\"");
}
