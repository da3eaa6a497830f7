//! A big Map, durable, as a user runs it: `stepstone run` over 10,000, 100,000 and 1,000,000
//! items, each iteration a mocked Lambda task (`lambda:invoke`, answered from a MockConfigFile;
//! the iteration keeps `$.Payload.ok`), with `--virtual-time --history-limit 0 --payload-limit 0 --quiet`, in
//! memory (`--ephemeral`) and on each store. It prints one line per run: wall time, time per
//! item, peak memory (the process's VmHWM, polled), the store's size on disk, and the ratio to
//! the in-memory run of the same size.
//!
//! `cargo bench --bench big_map` (release build of the CLI). `STEPSTONE_BENCH_SIZES=10000,100000`
//! picks the sizes; `STEPSTONE_BENCH_STORES=redb` the stores (`memory`, `sled`, `redb`, and
//! `postgres`: a new database per run on the server `STEPSTONE_BENCH_POSTGRES` names);
//! `STEPSTONE_BENCH_MAPS=inline,distributed` the Maps: `inline` takes its items from the
//! execution's input, `distributed` is a DISTRIBUTED Map whose ItemReader reads them from a
//! JSON Lines file (`file://`, the same parsing as an S3 object: no emulator in the timing), and
//! `distributed-s3` the same Map reading the same lines from an S3 object (`s3:getObject`) on
//! the endpoint `STEPSTONE_BENCH_S3_ENDPOINT` names (MiniStack: `http://127.0.0.1:4566`).
//! Not a criterion benchmark: one run of a million items takes tens of seconds, and what matters
//! here is per-item cost staying flat from 10k to 1M, and memory, which criterion does not
//! measure.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not used here.
    let sizes: Vec<u64> = std::env::var("STEPSTONE_BENCH_SIZES")
        .unwrap_or_else(|_| "10000,100000,1000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let stores: Vec<String> = std::env::var("STEPSTONE_BENCH_STORES")
        .unwrap_or_else(|_| "memory,sled,redb".into())
        .split(',')
        .map(|s| s.trim().to_owned())
        .collect();
    let maps: Vec<String> = std::env::var("STEPSTONE_BENCH_MAPS")
        .unwrap_or_else(|_| "inline,distributed".into())
        .split(',')
        .map(|s| s.trim().to_owned())
        .collect();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let process = r#"{"StartAt": "Process", "States": {
  "Process": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
              "Parameters": {"FunctionName": "process", "Payload.$": "$"}, "OutputPath": "$.Payload.ok", "End": true}}}"#;
    let definition = dir.path().join("bigmap.asl.json");
    std::fs::write(
        &definition,
        format!(r#"{{"StartAt": "Items", "States": {{"Items": {{"Type": "Map", "ItemProcessor": {process}, "End": true}}}}}}"#),
    )
    .unwrap();
    let mocks = dir.path().join("mocks.json");
    std::fs::write(
        &mocks,
        r#"{"StateMachines": {"bigmap": {"TestCases": {"Bench": {"Process": "Ok"}}}},
 "MockedResponses": {"Ok": {"0-100000000": {"Return": {"StatusCode": 200, "ExecutedVersion": "$LATEST", "Payload": {"ok": true}}}}}}"#,
    )
    .unwrap();
    println!(
        "{:>11}  {:>9}  {:>6}  {:>9}  {:>8}  {:>9}  {:>8}  {:>9}",
        "map", "items", "store", "seconds", "us/item", "peak MB", "disk MB", "x memory"
    );
    for map in &maps {
        for &n in &sizes {
            let mut aws_args = Vec::new();
            let (definition, input) = match map.as_str() {
                "distributed" | "distributed-s3" => {
                    // The items as JSON Lines, read by the Map's ItemReader.
                    let lines = dir.path().join(format!("items-{n}.jsonl"));
                    let text: String = (0..n).map(|i| format!("{{\"id\": {i}}}\n")).collect();
                    std::fs::write(&lines, &text).unwrap();
                    let reader = if map == "distributed-s3" {
                        let endpoint = std::env::var("STEPSTONE_BENCH_S3_ENDPOINT").expect(
                            "distributed-s3 reads from S3: set STEPSTONE_BENCH_S3_ENDPOINT (MiniStack: http://127.0.0.1:4566)",
                        );
                        let key = format!("items-{n}.jsonl");
                        upload(&endpoint, "stepstone-bench", &key, text.into_bytes());
                        aws_args = vec!["--endpoint-url".to_owned(), endpoint];
                        format!(
                            r#""Resource": "arn:aws:states:::s3:getObject",
  "Parameters": {{"Bucket": "stepstone-bench", "Key": "{key}"}}"#
                        )
                    } else {
                        format!(r#""Resource": "file://{}""#, lines.display())
                    };
                    // Named as the MockConfigFile's state machine is.
                    let definition_dir = dir.path().join(format!("{map}-{n}"));
                    std::fs::create_dir_all(&definition_dir).unwrap();
                    let definition = definition_dir.join("bigmap.asl.json");
                    std::fs::write(
                        &definition,
                        format!(
                            r#"{{"StartAt": "Items", "States": {{"Items": {{"Type": "Map",
  "ItemReader": {{{reader}, "ReaderConfig": {{"InputType": "JSONL"}}}},
  "MaxConcurrency": 1000,
  "ItemProcessor": {{"ProcessorConfig": {{"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}},
    "StartAt": "Process", "States": {{"Process": {{"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
      "Parameters": {{"FunctionName": "process", "Payload.$": "$"}}, "OutputPath": "$.Payload.ok", "End": true}}}}}},
  "End": true}}}}}}"#
                        ),
                    )
                    .unwrap();
                    let input = dir.path().join("empty.json");
                    std::fs::write(&input, "{}").unwrap();
                    (definition, input)
                }
                _ => {
                    let input = dir.path().join(format!("items-{n}.json"));
                    let items: Vec<String> = (0..n).map(|i| i.to_string()).collect();
                    std::fs::write(&input, format!("[{}]", items.join(","))).unwrap();
                    (definition.clone(), input)
                }
            };
            let mut in_memory = None;
            for store in &stores {
                let store_dir = dir.path().join(format!("store-{store}-{n}"));
                // PostgreSQL: a database of its own per run on the server
                // STEPSTONE_BENCH_POSTGRES names; its size is the database's.
                let database = (store == "postgres").then(|| fresh_database(&format!("{map}_{n}")));
                let location = database
                    .as_ref()
                    .map_or_else(|| store_dir.display().to_string(), |(url, _)| url.clone());
                let (seconds, peak) = run(&definition, &input, &mocks, store, &location, &aws_args);
                let disk = match &database {
                    Some((url, _)) => database_size(url),
                    None => size_of(&store_dir),
                } as f64
                    / 1e6;
                if store == "memory" {
                    in_memory = Some(seconds);
                }
                println!(
                    "{map:>11}  {n:>9}  {store:>6}  {seconds:>9.2}  {:>8.1}  {:>9.0}  {disk:>8.1}  {:>9}",
                    seconds * 1e6 / n as f64,
                    peak as f64 / 1e6,
                    in_memory.map_or("-".into(), |m| format!("{:.1}", seconds / m)),
                );
                let _ = std::fs::remove_dir_all(&store_dir);
            }
        }
    }
}

/// Runs the CLI once; its wall time and peak resident memory in bytes.
fn run(
    definition: &Path,
    input: &Path,
    mocks: &Path,
    store: &str,
    location: &str,
    aws_args: &[String],
) -> (f64, u64) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stepstone"));
    cmd.env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test");
    cmd.arg("run")
        .args(aws_args)
        .arg(definition)
        .arg("--input-file")
        .arg(input)
        .args([
            "--virtual-time",
            "--history-limit",
            "0",
            "--payload-limit",
            "0",
            "--quiet",
        ])
        .arg("--mock-config")
        .arg(mocks)
        .args(["--test-case", "Bench"]);
    match store {
        "memory" => {
            cmd.arg("--ephemeral");
        }
        "postgres" => {
            cmd.arg("--store").arg(location);
        }
        engine => {
            cmd.arg("--store")
                .arg(location)
                .args(["--store-engine", engine]);
        }
    }
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the stepstone binary runs");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            peak = peak.max(vm_hwm(&text));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(
        status.success(),
        "stepstone run failed on the {store} store"
    );
    (started.elapsed().as_secs_f64(), peak)
}

/// Puts `body` at `bucket`/`key` on the S3 endpoint (path-style, an emulator's test
/// credentials), making the bucket if it is not there.
fn upload(endpoint: &str, bucket: &str, key: &str, body: Vec<u8>) {
    // The SDK's crates are built without their default HTTP client: one made here.
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version_latest()
        .http_client(http)
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "bench",
        ))
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(config);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Already there from an earlier size: fine.
        let _ = s3.create_bucket().bucket(bucket).send().await;
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .body(body.into())
            .send()
            .await
            .expect("the benchmark's items uploaded to S3");
    });
}

/// `VmHWM` (peak resident set) from a `/proc/<pid>/status` text, in bytes.
fn vm_hwm(status: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// A new database on the server `STEPSTONE_BENCH_POSTGRES` names (`scripts/test` starts one on
/// `postgres://postgres@127.0.0.1:54329/postgres`): its URL and name.
fn fresh_database(label: &str) -> (String, String) {
    let server = std::env::var("STEPSTONE_BENCH_POSTGRES")
        .expect("the postgres store needs a server: set STEPSTONE_BENCH_POSTGRES (postgres://...)");
    let name = format!("stepstone_bench_{label}_{}", std::process::id());
    let mut client =
        postgres::Client::connect(&server, postgres::NoTls).expect("PostgreSQL answers");
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .and_then(|()| client.batch_execute(&format!("CREATE DATABASE {name}")))
        .expect("a database can be made");
    let (base, _) = server.rsplit_once('/').expect("a URL ending in /database");
    (format!("{base}/{name}"), name)
}

/// The size of the database `url` names, in bytes.
fn database_size(url: &str) -> u64 {
    let mut client = postgres::Client::connect(url, postgres::NoTls).expect("PostgreSQL answers");
    let size: i64 = client
        .query_one("SELECT pg_database_size(current_database())", &[])
        .expect("its size")
        .get(0);
    size as u64
}

fn size_of(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => size_of(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
