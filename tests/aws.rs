//! Tasks on a real AWS API: MiniStack, an AWS emulator, on 127.0.0.1:4566 (or
//! `STEPSTONE_TEST_AWS_ENDPOINT`). `.ci/run` installs and starts it; locally, start it as the
//! README's Development section says. These tests never skip: without the emulator they fail,
//! saying how to start it.
//!
//! Each test drives the `stepstone` binary as a user would (`--endpoint-url`, `--region`), with
//! its own stack and function names, so reruns against the same emulator do not collide.

mod common;

use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

fn endpoint() -> String {
    std::env::var("STEPSTONE_TEST_AWS_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:4566".into())
}

/// Fails the test, loudly, when the emulator is not there.
fn require_emulator() {
    let url = endpoint();
    let address = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let reachable = std::net::ToSocketAddrs::to_socket_addrs(&address)
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| {
            std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(2)).is_ok()
        });
    assert!(
        reachable,
        "no AWS emulator at {url}: these tests need MiniStack. Start it with\n  \
         python3 -m venv .venv-aws && .venv-aws/bin/pip install ministack\n  \
         GATEWAY_PORT=4566 BIND_HOST=127.0.0.1 .venv-aws/bin/ministack -d\n\
         (or point STEPSTONE_TEST_AWS_ENDPOINT elsewhere)"
    );
}

/// A name no other test run has used.
fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{:x}-{}",
        std::process::id(),
        nanos & 0xffff_ffff,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn temp_file(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("stepstone-aws-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// `stepstone run` against the emulator, in `region`.
fn stepstone_run(definition: &Value, input: &Value, region: &str) -> Output {
    let file = temp_file(
        &format!("{}.asl.json", unique("def")),
        &definition.to_string(),
    );
    Command::new(env!("CARGO_BIN_EXE_stepstone"))
        .args([
            "run",
            &file,
            "--ephemeral",
            "--quiet",
            "--json",
            "--virtual-time",
        ])
        .args(["--input", &input.to_string()])
        .args(["--endpoint-url", &endpoint(), "--region", region])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("the binary runs")
}

/// The `--json` result line of a run.
fn result(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

/// One CloudFormation action as a one-state machine; its output, or its `{error, cause}`.
fn cloudformation(
    action: &str,
    parameters: Value,
    region: &str,
) -> Result<Value, (String, String)> {
    let def = json!({"StartAt": "Call", "States": {"Call": {"Type": "Task",
        "Resource": format!("arn:aws:states:::aws-sdk:cloudformation:{action}"),
        "Parameters": parameters, "End": true}}});
    let r = result(&stepstone_run(&def, &json!({}), region));
    match r["status"].as_str() {
        Some("SUCCEEDED") => Ok(r["output"].clone()),
        _ => Err((
            r["error"].as_str().unwrap_or_default().to_owned(),
            r["cause"].as_str().unwrap_or_default().to_owned(),
        )),
    }
}

const TOPIC_TEMPLATE: &str = r#"{"Parameters": {"Env": {"Type": "String", "Default": "dev"}},
  "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
  "Outputs": {"TopicArn": {"Value": {"Ref": "Topic"}, "Export": {"Name": {"Fn::Sub": "${AWS::StackName}-topic"}}}}}"#;

#[test]
fn every_cloudformation_action_maps_requests_results_and_errors() {
    require_emulator();
    let region = "eu-west-1";
    let stack = unique("stack");

    let v = cloudformation(
        "validateTemplate",
        json!({"TemplateBody": TOPIC_TEMPLATE}),
        region,
    )
    .unwrap();
    assert_eq!(v["Parameters"][0]["ParameterKey"], "Env");
    assert_eq!(v["Parameters"][0]["DefaultValue"], "dev");

    let created = cloudformation(
        "createStack",
        json!({"StackName": stack, "TemplateBody": TOPIC_TEMPLATE,
               "Parameters": [{"ParameterKey": "Env", "ParameterValue": "prod"}],
               "Tags": [{"Key": "team", "Value": "platform"}]}),
        region,
    )
    .unwrap();
    let stack_id = created["StackId"].as_str().unwrap().to_owned();
    assert!(
        stack_id.starts_with(&format!("arn:aws:cloudformation:{region}:")),
        "{stack_id}"
    );
    // The stack is in the region asked for, not elsewhere.
    let (error, _) =
        cloudformation("describeStacks", json!({"StackName": stack}), "us-east-1").unwrap_err();
    assert_eq!(error, "CloudFormation.CloudFormationException");

    let (error, cause) = cloudformation(
        "createStack",
        json!({"StackName": stack, "TemplateBody": TOPIC_TEMPLATE}),
        region,
    )
    .unwrap_err();
    assert_eq!(error, "CloudFormation.AlreadyExistsException");
    assert!(
        cause.contains("(Service: CloudFormation, Status Code: 400"),
        "{cause}"
    );

    let d = cloudformation("describeStacks", json!({"StackName": stack}), region).unwrap();
    let s = &d["Stacks"][0];
    assert_eq!(s["StackId"], stack_id.as_str());
    assert_eq!(s["StackStatus"], "CREATE_COMPLETE");
    assert_eq!(
        s["Parameters"],
        json!([{"ParameterKey": "Env", "ParameterValue": "prod"}])
    );
    assert_eq!(s["Tags"], json!([{"Key": "team", "Value": "platform"}]));
    assert_eq!(s["Outputs"][0]["OutputKey"], "TopicArn");
    assert_eq!(s["Outputs"][0]["ExportName"], format!("{stack}-topic"));
    let created_at = s["CreationTime"].as_str().unwrap();
    assert!(
        created_at.ends_with('Z') && created_at.contains('T'),
        "{created_at}"
    );

    let e = cloudformation("describeStackEvents", json!({"StackName": stack}), region).unwrap();
    assert!(
        e["StackEvents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["ResourceStatus"] == "CREATE_COMPLETE")
    );
    let r = cloudformation(
        "describeStackResources",
        json!({"StackName": stack}),
        region,
    )
    .unwrap();
    assert_eq!(r["StackResources"][0]["LogicalResourceId"], "Topic");
    assert_eq!(r["StackResources"][0]["ResourceType"], "AWS::SNS::Topic");
    let l = cloudformation(
        "listStacks",
        json!({"StackStatusFilter": ["CREATE_COMPLETE"]}),
        region,
    )
    .unwrap();
    assert!(
        l["StackSummaries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["StackName"] == stack.as_str())
    );
    let t = cloudformation("getTemplate", json!({"StackName": stack}), region).unwrap();
    assert!(
        t["TemplateBody"]
            .as_str()
            .unwrap()
            .contains("AWS::SNS::Topic")
    );
    let x = cloudformation("listExports", json!({}), region).unwrap();
    assert!(
        x["Exports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["Name"] == format!("{stack}-topic"))
    );

    let u = cloudformation(
        "updateStack",
        json!({"StackName": stack, "UsePreviousTemplate": true,
               "Parameters": [{"ParameterKey": "Env", "ParameterValue": "qa"}]}),
        region,
    )
    .unwrap();
    assert_eq!(u["StackId"], stack_id.as_str());

    let cs = cloudformation(
        "createChangeSet",
        // A change set with no change cannot be executed (as on AWS): add a resource.
        json!({"StackName": stack, "ChangeSetName": "to-staging",
               "TemplateBody": TOPIC_TEMPLATE.replace(
                   r#""Resources": {"#,
                   r#""Resources": {"Queue": {"Type": "AWS::SQS::Queue"}, "#),
               "Parameters": [{"ParameterKey": "Env", "ParameterValue": "staging"}]}),
        region,
    )
    .unwrap();
    assert!(
        cs["Id"].is_string() && cs["StackId"] == stack_id.as_str(),
        "{cs}"
    );
    let dcs = cloudformation(
        "describeChangeSet",
        json!({"StackName": stack, "ChangeSetName": "to-staging"}),
        region,
    )
    .unwrap();
    assert_eq!(dcs["ChangeSetName"], "to-staging");
    assert!(
        dcs["Changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["Type"] == "Resource"
                && c["ResourceChange"]["LogicalResourceId"] == "Queue"
                && c["ResourceChange"]["Action"] == "Add"),
        "{dcs}"
    );
    assert!(dcs["Status"].is_string(), "{dcs}");
    assert_eq!(
        cloudformation(
            "executeChangeSet",
            json!({"StackName": stack, "ChangeSetName": "to-staging"}),
            region
        )
        .unwrap(),
        json!({})
    );
    cloudformation(
        "createChangeSet",
        json!({"StackName": stack, "ChangeSetName": "abandoned", "UsePreviousTemplate": true}),
        region,
    )
    .unwrap();
    assert_eq!(
        cloudformation(
            "deleteChangeSet",
            json!({"StackName": stack, "ChangeSetName": "abandoned"}),
            region
        )
        .unwrap(),
        json!({})
    );
    let (error, _) = cloudformation(
        "describeChangeSet",
        json!({"StackName": stack, "ChangeSetName": "abandoned"}),
        region,
    )
    .unwrap_err();
    assert_eq!(error, "CloudFormation.ChangeSetNotFoundException");

    assert_eq!(
        cloudformation("deleteStack", json!({"StackName": stack}), region).unwrap(),
        json!({})
    );
    match cloudformation("describeStacks", json!({"StackName": stack_id}), region) {
        Ok(d) => assert_eq!(d["Stacks"][0]["StackStatus"], "DELETE_COMPLETE"),
        Err((error, _)) => assert_eq!(error, "CloudFormation.CloudFormationException"),
    }
}

#[test]
fn signal_resource_releases_a_stack_held_by_a_wait_condition() {
    require_emulator();
    let region = "us-west-2";
    let stack = unique("held");
    let template = r#"{"Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"},
        "Wait": {"Type": "AWS::CloudFormation::WaitCondition",
                 "Properties": {"Handle": {"Ref": "Handle"}, "Timeout": "600", "Count": 1}}}}"#;
    cloudformation(
        "createStack",
        json!({"StackName": stack, "TemplateBody": template}),
        region,
    )
    .unwrap();
    let status = |stack: &str| {
        cloudformation("describeStacks", json!({"StackName": stack}), region).unwrap()["Stacks"][0]
            ["StackStatus"]
            .clone()
    };
    assert_eq!(status(&stack), "CREATE_IN_PROGRESS");
    assert_eq!(
        cloudformation(
            "signalResource",
            json!({"StackName": stack, "LogicalResourceId": "Wait", "UniqueId": "deployer", "Status": "SUCCESS"}),
            region
        )
        .unwrap(),
        json!({})
    );
    common::wait_for(20, "the stack stayed held", || {
        (status(&stack) == "CREATE_COMPLETE").then_some(())
    });
}

#[test]
fn lambda_functions_run_in_both_forms_and_their_errors_reach_catch() {
    require_emulator();
    let region = "ap-south-1";
    let function = unique("prepare");
    create_function(
        region,
        &function,
        "import json\ndef handler(event, context):\n    if event.get('fail'):\n        raise ValueError('refused: ' + event['fail'])\n    return {'prepared': event}\n",
    );
    let arn = format!("arn:aws:lambda:{region}:000000000000:function:{function}");
    let def = json!({"StartAt": "Invoke", "States": {
        "Invoke": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                   "Parameters": {"FunctionName": function, "Payload.$": "$"},
                   "ResultSelector": {"payload.$": "$.Payload", "status.$": "$.StatusCode"},
                   "ResultPath": "$.invoked", "Next": "Bare",
                   "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}]},
        "Bare": {"Type": "Task", "Resource": arn, "InputPath": "$.invoked.payload", "End": true},
        "Caught": {"Type": "Pass", "End": true}}});
    let ok = result(&stepstone_run(&def, &json!({"region": region}), region));
    assert_eq!(ok["status"], "SUCCEEDED", "{ok}");
    assert_eq!(
        ok["output"],
        json!({"prepared": {"prepared": {"region": region}}})
    );

    let caught = result(&stepstone_run(&def, &json!({"fail": "no quota"}), region));
    assert_eq!(caught["status"], "SUCCEEDED", "{caught}");
    let error = &caught["output"]["error"];
    // MiniStack names every raised exception Runtime.HandlerError (AWS would say ValueError);
    // the cause is the function's error payload either way.
    assert!(error["Error"].is_string());
    let payload: Value = serde_json::from_str(error["Cause"].as_str().unwrap()).unwrap();
    assert!(
        payload["errorMessage"]
            .as_str()
            .unwrap()
            .contains("refused: no quota"),
        "{payload}"
    );

    let missing = json!({"StartAt": "Invoke", "States": {"Invoke": {"Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": unique("absent")}, "End": true}}});
    let failed = result(&stepstone_run(&missing, &json!({}), region));
    assert_eq!(
        failed["error"], "Lambda.ResourceNotFoundException",
        "{failed}"
    );
}

// ---- the multi-region example (examples/multi-region-deploy), unchanged, on the emulator

fn example_file(name: &str) -> String {
    format!(
        "{}/examples/multi-region-deploy/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn example_definition() -> Value {
    serde_json::from_str(&std::fs::read_to_string(example_file("deploy.asl.json")).unwrap())
        .unwrap()
}

/// A Python Lambda function `function` in `region` running `code`, created the way a user
/// would: a CloudFormation stack with the code inline.
fn create_function(region: &str, function: &str, code: &str) {
    let template = json!({"Resources": {"Fn": {"Type": "AWS::Lambda::Function", "Properties": {
        "FunctionName": function, "Runtime": "python3.12", "Handler": "index.handler",
        "Role": "arn:aws:iam::000000000000:role/lambda", "Code": {"ZipFile": code}}}}});
    cloudformation(
        "createStack",
        json!({"StackName": unique("fn"), "TemplateBody": template.to_string()}),
        region,
    )
    .unwrap();
}

/// The example's preparation function, created in `region` the way its README says.
fn create_prepare_function(region: &str, function: &str) {
    let code = std::fs::read_to_string(example_file("handlers/prepare_region.py")).unwrap();
    create_function(region, function, &code);
}

/// The example's input, for these regions, stack, function and template.
fn example_input(
    stack: &str,
    function: &str,
    regions: &[(&str, &str)],
    template: Option<&str>,
    poll: u64,
) -> Value {
    let mut input: Value =
        serde_json::from_str(&std::fs::read_to_string(example_file("input.json")).unwrap())
            .unwrap();
    input["stackName"] = json!(stack);
    input["regions"] = regions
        .iter()
        .map(|(name, role)| json!({"name": name, "role": role}))
        .collect();
    input["settings"] = json!({"prepareFunction": function, "pollSeconds": poll});
    if let Some(t) = template {
        input["templateBody"] = json!(t);
    }
    input
}

#[test]
fn the_example_deploys_a_stack_in_two_regions() {
    require_emulator();
    let function = unique("prepare-region");
    let regions = [("us-east-2", "primary"), ("eu-central-1", "secondary")];
    for (region, _) in regions {
        create_prepare_function(region, &function);
    }
    let stack = unique("orders");
    let run = stepstone_run(
        &example_definition(),
        &example_input(&stack, &function, &regions, None, 15),
        "us-east-1",
    );
    let r = result(&run);
    assert_eq!(
        r["status"],
        "SUCCEEDED",
        "{r}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let deployed = r["output"]["regions"].as_array().unwrap();
    assert_eq!(deployed.len(), 2, "{r}");
    for ((region, role), d) in regions.iter().zip(deployed) {
        assert_eq!(d["region"], *region);
        assert_eq!(d["role"], *role);
        assert_eq!(d["status"], "CREATE_COMPLETE");
        let outputs = d["outputs"].as_array().unwrap();
        assert!(
            outputs
                .iter()
                .any(|o| o["OutputKey"] == "DeployedRegion" && o["OutputValue"] == *region),
            "{d}"
        );
        // The stack is really there, in its own region, with the parameters the region's own
        // Lambda function prepared.
        let s = cloudformation("describeStacks", json!({"StackName": stack}), region).unwrap();
        let params = &s["Stacks"][0]["Parameters"];
        assert!(
            params
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["ParameterKey"] == "RegionRole" && p["ParameterValue"] == *role),
            "{params}"
        );
    }
}

#[test]
fn a_template_error_is_reported_for_each_region() {
    require_emulator();
    let function = unique("prepare-region");
    let regions = [("us-east-2", "primary"), ("eu-central-1", "secondary")];
    for (region, _) in regions {
        create_prepare_function(region, &function);
    }
    // A resource type CloudFormation does not know: createStack refuses the template.
    let template = r#"{"Parameters": {"Environment": {"Type": "String"}, "DeployRegion": {"Type": "String"}, "RegionRole": {"Type": "String"}},
        "Resources": {"Nope": {"Type": "AWS::Nothing::Here"}}}"#;
    let r = result(&stepstone_run(
        &example_definition(),
        &example_input(&unique("broken"), &function, &regions, Some(template), 15),
        "us-east-1",
    ));
    assert_eq!(r["status"], "SUCCEEDED", "{r}");
    for d in r["output"]["regions"].as_array().unwrap() {
        assert_eq!(d["status"], "FAILED", "{d}");
        assert_eq!(d["error"], "CloudFormation.CloudFormationException", "{d}");
        assert!(
            d["reason"].as_str().unwrap().contains("AWS::Nothing::Here"),
            "{d}"
        );
    }
}

/// A template whose stack stays CREATE_IN_PROGRESS until its WaitCondition is signalled.
const HELD_TEMPLATE: &str = r#"{"Parameters": {"Environment": {"Type": "String"}, "DeployRegion": {"Type": "String"}, "RegionRole": {"Type": "String"}},
    "Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"},
                  "Wait": {"Type": "AWS::CloudFormation::WaitCondition", "Properties": {"Handle": {"Ref": "Handle"}, "Timeout": "600", "Count": 1}}},
    "Outputs": {"DeployedRegion": {"Value": {"Ref": "DeployRegion"}}}}"#;

/// Runs the example in one region on `HELD_TEMPLATE`, polling every second in real time; once
/// the stack is held and polled a few times, signals its WaitCondition with `signal`. Returns
/// the run's result and history.
fn run_held(region: &str, signal: &str) -> (Value, Value, String) {
    let function = unique("prepare-region");
    create_prepare_function(region, &function);
    let stack = unique("held");
    let input = example_input(
        &stack,
        &function,
        &[(region, "primary")],
        Some(HELD_TEMPLATE),
        1,
    );
    let file = temp_file(
        &format!("{}.asl.json", unique("def")),
        &example_definition().to_string(),
    );
    let child = Command::new(env!("CARGO_BIN_EXE_stepstone"))
        .args([
            "run",
            &file,
            "--ephemeral",
            "--quiet",
            "--json",
            "--history",
        ])
        .args(["--input", &input.to_string()])
        .args(["--endpoint-url", &endpoint()])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let s = common::wait_for(30, "the stack was never created", || {
        cloudformation("describeStacks", json!({"StackName": stack}), region).ok()
    });
    assert_eq!(s["Stacks"][0]["StackStatus"], "CREATE_IN_PROGRESS");
    // Let the loop poll a few times while the stack is held, then release it.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    cloudformation(
        "signalResource",
        json!({"StackName": stack, "LogicalResourceId": "Wait", "UniqueId": "test", "Status": signal}),
        region,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let mut lines = out.stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty());
    let r: Value = serde_json::from_slice(lines.next().unwrap()).unwrap();
    let history: Value = serde_json::from_slice(lines.next().unwrap()).unwrap();
    (r, history, stack)
}

fn entered(history: &Value, state: &str) -> usize {
    history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["stateEnteredEventDetails"]["name"] == state)
        .count()
}

#[test]
fn a_stack_that_fails_is_rolled_back_and_reported() {
    require_emulator();
    let region = "ca-central-1";
    let (r, history, stack) = run_held(region, "FAILURE");
    assert_eq!(r["status"], "SUCCEEDED", "{r}");
    let d = &r["output"]["regions"][0];
    assert_eq!(d["status"], "ROLLED_BACK", "{d}");
    assert!(
        d["reason"]
            .as_str()
            .unwrap()
            .starts_with("the stack ended in "),
        "{d}"
    );
    assert_eq!(entered(&history, "RollBack"), 1);
    // The Catch path deleted the stack.
    match cloudformation("describeStacks", json!({"StackName": stack}), region) {
        Ok(s) => assert_eq!(s["Stacks"][0]["StackStatus"], "DELETE_COMPLETE", "{s}"),
        Err((error, _)) => assert_eq!(error, "CloudFormation.CloudFormationException"),
    }
}

#[test]
fn the_polling_loop_follows_a_stack_held_in_progress() {
    require_emulator();
    let (r, history, _) = run_held("us-west-1", "SUCCESS");
    assert_eq!(r["status"], "SUCCEEDED", "{r}");
    assert_eq!(r["output"]["regions"][0]["status"], "CREATE_COMPLETE");
    let polls = entered(&history, "DescribeStack");
    assert!(polls >= 3, "the loop polled {polls} times");
}

#[test]
fn a_create_stack_sent_again_with_its_token_answers_the_stack_it_created() {
    require_emulator();
    let region = "sa-east-1";
    let stack = unique("again");
    let create = |token: &str| {
        cloudformation(
            "createStack",
            json!({"StackName": stack, "TemplateBody": TOPIC_TEMPLATE, "ClientRequestToken": token}),
            region,
        )
    };
    let first = create("attempt-1").unwrap();
    // The same request again (what a resume sends): the same stack, not AlreadyExists.
    assert_eq!(create("attempt-1").unwrap(), first);
    // Another request for the same name is refused, as on AWS.
    let (error, _) = create("attempt-2").unwrap_err();
    assert_eq!(error, "CloudFormation.AlreadyExistsException");
}

#[test]
fn a_run_killed_while_its_stack_is_created_resumes_and_finishes_that_stack() {
    require_emulator();
    let region = "eu-north-1";
    let function = unique("prepare-region");
    create_prepare_function(region, &function);
    let stack = unique("killed");
    let input = example_input(
        &stack,
        &function,
        &[(region, "primary")],
        Some(HELD_TEMPLATE),
        1,
    );
    let file = temp_file(
        &format!("{}.asl.json", unique("def")),
        &example_definition().to_string(),
    );
    let store = std::env::temp_dir().join(unique("store"));
    let stepstone = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_stepstone"));
        c.env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test");
        c
    };
    let mut run = stepstone()
        .args(["run", &file, "--quiet", "--store"])
        .arg(&store)
        .args(["--input", &input.to_string(), "--endpoint-url", &endpoint()])
        .spawn()
        .unwrap();
    common::wait_for(30, "the stack was never created", || {
        cloudformation("describeStacks", json!({"StackName": stack}), region).ok()
    });
    // Killed as the stack is being created (held by its WaitCondition).
    run.kill().unwrap();
    run.wait().unwrap();
    let resume = stepstone()
        .args(["resume", "--json", "--quiet", "--store"])
        .arg(&store)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    cloudformation(
        "signalResource",
        json!({"StackName": stack, "LogicalResourceId": "Wait", "UniqueId": "test", "Status": "SUCCESS"}),
        region,
    )
    .unwrap();
    let out = resume.wait_with_output().unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["status"], "SUCCEEDED", "{r}");
    assert_eq!(
        r["output"]["regions"][0]["status"], "CREATE_COMPLETE",
        "{r}"
    );
    // One stack of that name, the one the first process started.
    let listed = cloudformation("listStacks", json!({}), region).unwrap();
    let named: Vec<&Value> = listed["StackSummaries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["StackName"] == stack.as_str())
        .collect();
    assert_eq!(named.len(), 1, "{named:?}");
    let _ = std::fs::remove_dir_all(&store);
}

#[test]
fn a_lambda_task_waiting_for_its_token_is_completed_from_a_second_process() {
    require_emulator();
    let region = "eu-west-2";
    let function = unique("approver");
    create_function(
        region,
        &function,
        "def handler(event, context):\n    return {'received': event['token'][:8]}\n",
    );
    let def = json!({"StartAt": "Approve", "States": {"Approve": {"Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {"FunctionName": function, "Payload": {"token.$": "$$.Task.Token"}},
        "HeartbeatSeconds": 60, "ResultPath": "$.approval", "End": true}}});
    let file = temp_file(&format!("{}.asl.json", unique("def")), &def.to_string());
    let store = std::env::temp_dir().join(unique("store"));
    let stepstone = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_stepstone"))
            .args(args)
            .arg("--store")
            .arg(&store)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .output()
            .unwrap()
    };
    let o = stepstone(&[
        "run",
        &file,
        "--name",
        "approval",
        "--detach",
        "--region",
        region,
        "--endpoint-url",
        &endpoint(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // An operator finds the token in the history (the task's parameters), and answers.
    let token = common::wait_for(20, "the task was never scheduled", || {
        let history: Value =
            serde_json::from_slice(&stepstone(&["history", "approval", "--json"]).stdout)
                .unwrap_or(Value::Null);
        let scheduled = history["events"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["type"] == "TaskScheduled");
        if let Some(e) = scheduled {
            let parameters: Value = serde_json::from_str(
                e["taskScheduledEventDetails"]["parameters"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
            return Some(parameters["Payload"]["token"].as_str().unwrap().to_owned());
        }
        None
    });
    // The function ran and returned; the task still waits for its token.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let d: Value =
        serde_json::from_slice(&stepstone(&["describe", "approval", "--json"]).stdout).unwrap();
    assert_eq!(d["status"], "RUNNING");
    let o = stepstone(&["send-task-success", &token, r#"{"approved": true}"#]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let d = common::wait_for(20, "the approved execution did not succeed", || {
        let d: Value =
            serde_json::from_slice(&stepstone(&["describe", "approval", "--json"]).stdout)
                .unwrap_or(Value::Null);
        (d["status"] == "SUCCEEDED").then_some(d)
    });
    assert_eq!(d["output"]["approval"], json!({"approved": true}));
    let _ = std::fs::remove_dir_all(&store);
}

#[test]
fn every_cloudformation_action_maps_its_errors() {
    require_emulator();
    let region = "ap-northeast-1";
    let missing = unique("missing");
    let cases = [
        (
            "updateStack",
            json!({"StackName": missing, "UsePreviousTemplate": true}),
            "CloudFormation.CloudFormationException",
        ),
        (
            "describeStacks",
            json!({"StackName": missing}),
            "CloudFormation.CloudFormationException",
        ),
        (
            "describeStackEvents",
            json!({"StackName": missing}),
            "CloudFormation.CloudFormationException",
        ),
        (
            "describeStackResources",
            json!({"StackName": missing}),
            "CloudFormation.CloudFormationException",
        ),
        (
            "listStacks",
            json!({"NextToken": "not-a-token"}),
            "CloudFormation.CloudFormationException",
        ),
        (
            "getTemplate",
            json!({"StackName": missing}),
            "CloudFormation.CloudFormationException",
        ),
        (
            "validateTemplate",
            json!({"TemplateBody": "not a template"}),
            "CloudFormation.CloudFormationException",
        ),
        (
            "createChangeSet",
            json!({"StackName": missing, "ChangeSetName": "c", "UsePreviousTemplate": true}),
            "CloudFormation.CloudFormationException",
        ),
        (
            "describeChangeSet",
            json!({"StackName": missing, "ChangeSetName": "c"}),
            "CloudFormation.ChangeSetNotFoundException",
        ),
        (
            "executeChangeSet",
            json!({"StackName": missing, "ChangeSetName": "c"}),
            "CloudFormation.ChangeSetNotFoundException",
        ),
        (
            "deleteChangeSet",
            json!({"StackName": missing, "ChangeSetName": "c"}),
            "CloudFormation.CloudFormationException",
        ),
        (
            "signalResource",
            json!({"StackName": missing, "LogicalResourceId": "W", "UniqueId": "u", "Status": "SUCCESS"}),
            "CloudFormation.CloudFormationException",
        ),
        (
            "listExports",
            json!({"NextToken": "not-a-token"}),
            "CloudFormation.CloudFormationException",
        ),
    ];
    for (action, parameters, expected) in cases {
        let (error, cause) = cloudformation(action, parameters, region).unwrap_err();
        assert_eq!(error, expected, "{action}: {cause}");
        assert!(
            cause.contains("(Service: CloudFormation, Status Code: "),
            "{action}: {cause}"
        );
    }
    // Deleting a stack that does not exist succeeds, as on AWS.
    assert_eq!(
        cloudformation("deleteStack", json!({"StackName": missing}), region).unwrap(),
        json!({})
    );
}

/// An S3 client on the emulator (path-style: its buckets are paths).
fn s3_client() -> aws_sdk_s3::Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version_latest()
        .http_client(http)
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(endpoint())
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// What `f` does with an S3 client on the emulator, run to its end.
fn on_s3<T>(f: impl AsyncFnOnce(aws_sdk_s3::Client) -> T) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(f(s3_client()))
}

/// A new bucket holding `objects` (key, content).
fn bucket_with<T: AsRef<[u8]>>(objects: &[(&str, T)]) -> String {
    let bucket = unique("items").to_lowercase();
    on_s3(async |s3| {
        s3.create_bucket().bucket(&bucket).send().await.unwrap();
        for (key, text) in objects {
            s3.put_object()
                .bucket(&bucket)
                .key(*key)
                .body(text.as_ref().to_vec().into())
                .send()
                .await
                .unwrap();
        }
    });
    bucket
}

/// A distributed Map whose ItemReader is `reader`, each child execution passing its item on.
fn reader_map(reader: Value) -> Value {
    json!({"StartAt": "Each", "States": {"Each": {"Type": "Map", "ItemReader": reader,
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Take", "States": {"Take": {"Type": "Pass", "End": true}}},
        "End": true}}})
}

#[test]
fn a_distributed_map_reads_json_jsonl_and_csv_objects_and_lists_a_prefix() {
    require_emulator();
    let bucket = bucket_with(&[
        (
            "data/items.json",
            r#"{"batch": {"items": [{"id": 1}, {"id": 2}, {"id": 3}]}}"#,
        ),
        (
            "data/items.jsonl",
            "{\"id\": 1}\n{\"id\": 2}\n\n{\"id\": 3}\n",
        ),
        ("data/items.csv", "id;name\n1;\"a;b\"\n2;c\n"),
        ("logs/one.txt", "1"),
        ("logs/two.txt", "22"),
    ]);
    let get = |key: &str, config: Value| {
        reader_map(json!({"Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": config, "Parameters": {"Bucket": bucket, "Key": key}}))
    };
    let cases = [
        (
            get(
                "data/items.json",
                json!({"InputType": "JSON", "ItemsPointer": "/batch/items", "MaxItems": 2}),
            ),
            json!([{"id": 1}, {"id": 2}]),
        ),
        (
            get("data/items.jsonl", json!({"InputType": "JSONL"})),
            json!([{"id": 1}, {"id": 2}, {"id": 3}]),
        ),
        (
            get(
                "data/items.csv",
                json!({"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW", "CSVDelimiter": "SEMICOLON"}),
            ),
            json!([{"id": "1", "name": "a;b"}, {"id": "2", "name": "c"}]),
        ),
    ];
    for (definition, expected) in cases {
        let r = result(&stepstone_run(&definition, &json!({}), "us-east-1"));
        assert_eq!(r["status"], "SUCCEEDED", "{r}");
        assert_eq!(r["output"], expected);
    }

    // listObjectsV2: an item per object under the prefix, as Step Functions gives them.
    let list = reader_map(json!({"Resource": "arn:aws:states:::s3:listObjectsV2",
        "Parameters": {"Bucket": bucket, "Prefix": "logs/"}}));
    let r = result(&stepstone_run(&list, &json!({}), "us-east-1"));
    assert_eq!(r["status"], "SUCCEEDED", "{r}");
    let objects = r["output"].as_array().unwrap();
    let keys: Vec<&str> = objects.iter().map(|o| o["Key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["logs/one.txt", "logs/two.txt"]);
    assert_eq!(objects[1]["Size"], 2);
    assert!(objects[0]["Etag"].as_str().is_some_and(|e| !e.is_empty()));
    assert!(
        objects[0]["LastModified"]
            .as_i64()
            .is_some_and(|t| t > 1_600_000_000)
    );

    // A missing object fails the Map with States.ItemReaderFailed, S3's error in the cause.
    let missing = get("data/none.json", json!({"InputType": "JSON"}));
    let r = result(&stepstone_run(&missing, &json!({}), "us-east-1"));
    assert_eq!(r["status"], "FAILED");
    assert_eq!(r["error"], "States.ItemReaderFailed");
    assert!(r["cause"].as_str().unwrap().contains("NoSuchKey"), "{r}");
}

#[test]
fn a_distributed_map_reads_an_s3_inventory_from_its_manifest() {
    require_emulator();
    // S3 Inventory's layout: gzipped CSV data files (no header), named by a manifest.json whose
    // fileSchema names the columns and destinationBucket says where the files are.
    let bucket = bucket_with(&[
        (
            "inventory/data/one.csv.gz",
            gzip("\"src\",\"a.txt\",\"3\"\n\"src\",\"b, c.txt\",\"10\"\n"),
        ),
        (
            "inventory/data/two.csv.gz",
            gzip("\"src\",\"d.txt\",\"0\"\n"),
        ),
    ]);
    let manifest = json!({"sourceBucket": "src", "destinationBucket": format!("arn:aws:s3:::{bucket}"),
        "version": "2016-11-30", "fileFormat": "CSV", "fileSchema": "Bucket, Key, Size",
        "files": [{"key": "inventory/data/one.csv.gz", "size": 1}, {"key": "inventory/data/two.csv.gz", "size": 1}]});
    put_object(
        &bucket,
        "inventory/manifest.json",
        manifest.to_string().into_bytes(),
    );
    let read = |config: Value| {
        reader_map(
            json!({"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": config,
            "Parameters": {"Bucket": bucket, "Key": "inventory/manifest.json"}}),
        )
    };
    let r = result(&stepstone_run(
        &read(json!({"InputType": "MANIFEST"})),
        &json!({}),
        "us-east-1",
    ));
    assert_eq!(r["status"], "SUCCEEDED", "{r}");
    assert_eq!(
        r["output"],
        json!([{"Bucket": "src", "Key": "a.txt", "Size": "3"},
               {"Bucket": "src", "Key": "b, c.txt", "Size": "10"},
               {"Bucket": "src", "Key": "d.txt", "Size": "0"}])
    );
    // MaxItems counts across the data files.
    let r = result(&stepstone_run(
        &read(json!({"InputType": "MANIFEST", "MaxItems": 2})),
        &json!({}),
        "us-east-1",
    ));
    assert_eq!(r["output"].as_array().map(Vec::len), Some(2), "{r}");
}

/// `text`, gzipped (as S3 Inventory writes its data files).
fn gzip(text: &str) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(text.as_bytes()).unwrap();
    encoder.finish().unwrap()
}

/// Puts `body` at `key` in `bucket` on the emulator.
fn put_object(bucket: &str, key: &str, body: Vec<u8>) {
    on_s3(async |s3| {
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .body(body.into())
            .send()
            .await
            .unwrap();
    });
}

/// The text of an object on the emulator.
fn s3_text(bucket: &str, key: &str) -> String {
    on_s3(async |s3| {
        let object = s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("s3://{bucket}/{key}: {e:?}"));
        let bytes = object.body.collect().await.unwrap().into_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    })
}

#[test]
fn a_result_writer_writes_the_manifest_and_a_file_per_status() {
    require_emulator();
    let bucket = bucket_with(&[(
        "in/items.jsonl",
        "{\"id\": 1}\n{\"id\": 2, \"fail\": true}\n{\"id\": 3}\n",
    )]);
    let def = json!({"StartAt": "Each", "States": {"Each": {"Type": "Map",
        "ItemReader": {"Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "JSONL"},
            "Parameters": {"Bucket": bucket, "Key": "in/items.jsonl"}},
        "ToleratedFailureCount": 1,
        "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": bucket, "Prefix": "out"}},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Check", "States": {
                "Check": {"Type": "Choice", "Choices": [
                    {"Variable": "$.fail", "IsPresent": true, "Next": "Broken"}], "Default": "Done"},
                "Broken": {"Type": "Fail", "Error": "Item.Broken", "Cause": "item 2 is broken"},
                "Done": {"Type": "Pass", "Result": {"ok": true}, "End": true}}},
        "End": true}}});
    let r = result(&stepstone_run(&def, &json!({}), "us-east-1"));
    assert_eq!(r["status"], "SUCCEEDED", "{r}");
    let output = &r["output"];
    let map_run_arn = output["MapRunArn"].as_str().unwrap();
    let run_id = map_run_arn.rsplit(':').next().unwrap();
    let manifest_key = format!("out/{run_id}/manifest.json");
    assert_eq!(
        output["ResultWriterDetails"],
        json!({"Bucket": bucket, "Key": manifest_key})
    );

    // Object by object, as Step Functions lays them out.
    let manifest: Value = serde_json::from_str(&s3_text(&bucket, &manifest_key)).unwrap();
    let succeeded_key = format!("out/{run_id}/SUCCEEDED_0.json");
    let failed_key = format!("out/{run_id}/FAILED_0.json");
    let succeeded = s3_text(&bucket, &succeeded_key);
    let failed = s3_text(&bucket, &failed_key);
    assert_eq!(
        manifest,
        json!({"DestinationBucket": bucket, "MapRunArn": map_run_arn,
            "ResultFiles": {
                "FAILED": [{"Key": failed_key, "Size": failed.len()}],
                "PENDING": [],
                "SUCCEEDED": [{"Key": succeeded_key, "Size": succeeded.len()}]}})
    );
    let succeeded: Value = serde_json::from_str(&succeeded).unwrap();
    let entries = succeeded.as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["Status"], "SUCCEEDED");
    assert_eq!(entries[0]["Input"], r#"{"id":1}"#);
    assert_eq!(entries[0]["Output"], r#"{"ok":true}"#);
    assert_eq!(entries[1]["Input"], r#"{"id":3}"#);
    let failed: Value = serde_json::from_str(&failed).unwrap();
    assert_eq!(failed[0]["Status"], "FAILED");
    assert_eq!(failed[0]["Error"], "Item.Broken");
    assert_eq!(failed[0]["Cause"], "item 2 is broken");
    assert_eq!(failed[0]["Input"], r#"{"id":2,"fail":true}"#);

    // A bucket that is not there: States.ResultWriterFailed.
    let missing = def.to_string().replace(
        r#""Prefix":"out""#,
        r#""Prefix":"out","Bucket":"no-such-bucket-here""#,
    );
    let missing: Value = serde_json::from_str(&missing).unwrap();
    let r = result(&stepstone_run(&missing, &json!({}), "us-east-1"));
    assert_eq!(r["error"], "States.ResultWriterFailed", "{r}");
}

#[test]
fn a_killed_distributed_map_resumes_without_reading_its_object_again() {
    require_emulator();
    let bucket = bucket_with(&[(
        "in/items.jsonl",
        "{\"id\": 1}\n{\"id\": 2}\n{\"id\": 3}\n{\"id\": 4}\n",
    )]);
    let work = std::env::temp_dir().join(format!("stepstone-aws-kill-{}", unique("w")));
    std::fs::create_dir_all(&work).unwrap();
    let ledger = work.join("ledger");
    // Logs each item; the first call for item 3 waits to be killed.
    let handler = work.join("handler.sh");
    std::fs::write(
        &handler,
        format!(
            "#!/bin/sh\ninput=$(cat)\necho \"$input\" >> {ledger}\ncase \"$input\" in *'\"id\":3'*) if [ ! -e {marker} ]; then touch {marker}; sleep 60; fi;; esac\necho \"$input\"\n",
            ledger = ledger.display(),
            marker = work.join("marker").display()
        ),
    )
    .unwrap();
    let def = json!({"StartAt": "Each", "States": {"Each": {"Type": "Map", "MaxConcurrency": 1,
        "ItemReader": {"Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "JSONL"},
            "Parameters": {"Bucket": bucket, "Key": "in/items.jsonl"}},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"},
            "StartAt": "Work", "States": {"Work": {"Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke", "End": true}}},
        "End": true}}});
    let file = temp_file(&format!("{}.asl.json", unique("def")), &def.to_string());
    let store = work.join("store").display().to_string();
    let route = format!("arn:aws:states:::lambda:invoke=sh {}", handler.display());
    let stepstone = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_stepstone"));
        command
            .args(args)
            .args([
                "--store",
                &store,
                "--endpoint-url",
                &endpoint(),
                "--region",
                "us-east-1",
            ])
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env_remove("AWS_PROFILE");
        command
    };
    let mut run = stepstone(&["run", &file, "--name", "fan", "--quiet", "--task", &route])
        .spawn()
        .unwrap();
    common::wait_for(30, "item 3 never started", || {
        let ledger = std::fs::read_to_string(&ledger).unwrap_or_default();
        ledger.contains("\"id\":3").then_some(())
    });
    run.kill().unwrap();
    run.wait().unwrap();
    // The object is gone: a resume that read it again would fail.
    on_s3(async |s3| {
        s3.delete_object()
            .bucket(&bucket)
            .key("in/items.jsonl")
            .send()
            .await
            .unwrap();
    });
    let o = stepstone(&["resume", "--json", "--quiet", "--task", &route])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(r["status"], "SUCCEEDED", "{r}");
    assert_eq!(
        r["output"],
        json!([{"id": 1}, {"id": 2}, {"id": 3}, {"id": 4}])
    );
    // Items 1 and 2 finished before the kill: not run again; 3 ran again (it was in flight).
    let ledger = std::fs::read_to_string(&ledger).unwrap();
    let count = |id: u32| ledger.matches(&format!("\"id\":{id}")).count();
    assert_eq!(
        (count(1), count(2), count(3), count(4)),
        (1, 1, 2, 1),
        "{ledger}"
    );
}
