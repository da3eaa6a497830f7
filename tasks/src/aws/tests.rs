//! The SDK mapping against mocked clients (aws-smithy-mocks): requests built from Step
//! Functions' PascalCase parameters, results in its shapes, errors under its names. The same
//! calls against a real emulator are in `tests/aws.rs`.

use aws_sdk_cloudformation::error::ErrorMetadata;
use aws_sdk_cloudformation::operation::create_stack::{CreateStackError, CreateStackOutput};
use aws_sdk_cloudformation::operation::describe_stack_events::DescribeStackEventsOutput;
use aws_sdk_cloudformation::types::error::AlreadyExistsException;
use aws_sdk_cloudformation::types::{ResourceStatus, StackEvent};
use aws_sdk_lambda::operation::invoke::{InvokeError, InvokeOutput};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::error::ResourceNotFoundException;
use aws_smithy_mocks::{mock, mock_client};
use serde_json::{Value, json};
use stepstone_engine::{Failure, RunId, TaskDispatcher, TaskRequest};

use super::{AwsTasks, Clients, Target, client_request_token};

fn request(resource: &str, input: Value) -> TaskRequest {
    TaskRequest {
        run: RunId::detached(),
        execution_arn: "arn:aws:states:us-east-1:123456789012:execution:deploy:run-1".into(),
        state_name: "Create".into(),
        resource: resource.into(),
        input,
        attempt: 0,
        invocation: 0,
        idempotency_token:
            "arn:aws:states:us-east-1:123456789012:execution:deploy:run-1/Create/2/0".into(),
        region: None,
        timeout_seconds: None,
        task_token: None,
        heartbeat_seconds: None,
    }
}

fn tasks(
    lambda: aws_sdk_lambda::Client,
    cloudformation: aws_sdk_cloudformation::Client,
) -> AwsTasks {
    // S3 is not called by these tests: a client that reaches nowhere.
    let s3 = aws_sdk_s3::Config::builder()
        .behavior_version_latest()
        .region(aws_config::Region::new("us-east-1"))
        .build();
    AwsTasks::with_clients(Clients {
        lambda,
        cloudformation,
        s3: aws_sdk_s3::Client::from_conf(s3),
    })
}

fn no_lambda() -> aws_sdk_lambda::Client {
    mock_client!(aws_sdk_lambda, [])
}

fn no_cloudformation() -> aws_sdk_cloudformation::Client {
    mock_client!(aws_sdk_cloudformation, [])
}

#[tokio::test]
async fn lambda_invoke_sends_the_payload_and_returns_invokes_response() {
    let rule = mock!(aws_sdk_lambda::Client::invoke)
        .match_requests(|r| {
            r.function_name() == Some("prepare")
                && r.payload().map(Blob::as_ref) == Some(br#"{"region":"eu-west-1"}"#.as_slice())
                && r.qualifier() == Some("live")
        })
        .then_output(|| {
            InvokeOutput::builder()
                .status_code(200)
                .executed_version("7")
                .payload(Blob::new(r#"{"ok": true}"#))
                .build()
        });
    let t = tasks(mock_client!(aws_sdk_lambda, [&rule]), no_cloudformation());
    let out = t
        .dispatch(request(
            "arn:aws:states:::lambda:invoke",
            json!({"FunctionName": "prepare", "Payload": {"region": "eu-west-1"}, "Qualifier": "live"}),
        ))
        .await
        .unwrap();
    assert_eq!(out["Payload"], json!({"ok": true}));
    assert_eq!(out["StatusCode"], 200);
    assert_eq!(out["ExecutedVersion"], "7");
    assert_eq!(out["SdkHttpMetadata"]["HttpStatusCode"], 200);
    assert!(out.get("FunctionError").is_none());
}

#[tokio::test]
async fn a_function_arn_returns_the_functions_output_and_its_errors_by_their_type() {
    let ok = mock!(aws_sdk_lambda::Client::invoke)
        .match_requests(|r| r.payload().map(Blob::as_ref) == Some(br#"{"n":1}"#.as_slice()))
        .then_output(|| {
            InvokeOutput::builder()
                .status_code(200)
                .payload(Blob::new(r#"{"n": 2}"#))
                .build()
        });
    let raised = mock!(aws_sdk_lambda::Client::invoke).then_output(|| {
        InvokeOutput::builder()
            .status_code(200)
            .function_error("Unhandled")
            .payload(Blob::new(
                r#"{"errorMessage":"quota","errorType":"QuotaExceeded","stackTrace":[]}"#,
            ))
            .build()
    });
    let t = tasks(
        mock_client!(
            aws_sdk_lambda,
            aws_smithy_mocks::RuleMode::Sequential,
            [&ok, &raised]
        ),
        no_cloudformation(),
    );
    let arn = "arn:aws:lambda:eu-west-1:123456789012:function:prepare";
    assert_eq!(
        t.dispatch(request(arn, json!({"n": 1}))).await.unwrap(),
        json!({"n": 2})
    );
    let err = t.dispatch(request(arn, json!({"n": 2}))).await.unwrap_err();
    assert_eq!(err.error, "QuotaExceeded");
    assert_eq!(
        serde_json::from_str::<Value>(&err.cause).unwrap()["errorMessage"],
        "quota"
    );
}

#[tokio::test]
async fn lambda_service_errors_are_named_lambda_exception() {
    let missing = mock!(aws_sdk_lambda::Client::invoke).then_error(|| {
        InvokeError::ResourceNotFoundException(
            ResourceNotFoundException::builder()
                .message("Function not found: prepare")
                .meta(
                    aws_sdk_lambda::error::ErrorMetadata::builder()
                        .code("ResourceNotFoundException")
                        .message("Function not found: prepare")
                        .build(),
                )
                .build(),
        )
    });
    let t = tasks(
        mock_client!(aws_sdk_lambda, [&missing]),
        no_cloudformation(),
    );
    let err: Failure = t
        .dispatch(request(
            "arn:aws:states:::lambda:invoke",
            json!({"FunctionName": "prepare"}),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.error, "Lambda.ResourceNotFoundException");
    assert!(
        err.cause
            .starts_with("Function not found: prepare (Service: Lambda, Status Code: "),
        "{}",
        err.cause
    );
}

#[tokio::test]
async fn create_stack_maps_pascal_case_and_defaults_the_client_request_token() {
    let token = client_request_token(
        "arn:aws:states:us-east-1:123456789012:execution:deploy:run-1/Create/2/0",
    );
    let expected = token.clone();
    let rule = mock!(aws_sdk_cloudformation::Client::create_stack)
        .match_requests(move |r| {
            let p = &r.parameters()[0];
            r.stack_name() == Some("orders")
                && p.parameter_key() == Some("Env")
                && p.parameter_value() == Some("prod")
                && r.tags()[0].key() == Some("team")
                && r.capabilities()[0].as_str() == "CAPABILITY_IAM"
                && r.client_request_token() == Some(expected.as_str())
        })
        .then_output(|| {
            CreateStackOutput::builder()
                .stack_id("arn:aws:cloudformation:us-east-1:123456789012:stack/orders/1")
                .build()
        });
    let exists = mock!(aws_sdk_cloudformation::Client::create_stack).then_error(|| {
        CreateStackError::AlreadyExistsException(
            AlreadyExistsException::builder()
                .message("Stack [orders] already exists")
                .meta(
                    ErrorMetadata::builder()
                        .code("AlreadyExistsException")
                        .message("Stack [orders] already exists")
                        .build(),
                )
                .build(),
        )
    });
    // On AlreadyExists, the stack's creation event is checked: another request made it.
    let events = mock!(aws_sdk_cloudformation::Client::describe_stack_events).then_output(|| {
        DescribeStackEventsOutput::builder()
            .stack_events(
                StackEvent::builder()
                    .stack_id("arn:aws:cloudformation:us-east-1:123456789012:stack/orders/0")
                    .stack_name("orders")
                    .logical_resource_id("orders")
                    .resource_type("AWS::CloudFormation::Stack")
                    .resource_status(ResourceStatus::CreateInProgress)
                    .client_request_token("someone-else")
                    .event_id("e1")
                    .timestamp(aws_sdk_cloudformation::primitives::DateTime::from_secs(0))
                    .build(),
            )
            .build()
    });
    let t = tasks(
        no_lambda(),
        mock_client!(
            aws_sdk_cloudformation,
            aws_smithy_mocks::RuleMode::Sequential,
            [&rule, &exists, &events]
        ),
    );
    let input = json!({"StackName": "orders", "TemplateBody": "{}",
        "Parameters": [{"ParameterKey": "Env", "ParameterValue": "prod"}],
        "Tags": [{"Key": "team", "Value": "platform"}], "Capabilities": ["CAPABILITY_IAM"]});
    let resource = "arn:aws:states:::aws-sdk:cloudformation:createStack";
    let out = t.dispatch(request(resource, input.clone())).await.unwrap();
    assert_eq!(
        out,
        json!({"StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/orders/1"})
    );
    let err = t.dispatch(request(resource, input)).await.unwrap_err();
    assert_eq!(err.error, "CloudFormation.AlreadyExistsException");
    assert!(
        err.cause
            .starts_with("Stack [orders] already exists (Service: CloudFormation")
    );
}

#[tokio::test]
async fn bad_parameters_fail_with_states_runtime_naming_the_field() {
    let t = tasks(no_lambda(), no_cloudformation());
    let cases = [
        (
            "createStack",
            json!({"TemplateBody": "{}"}),
            "the required parameter 'StackName' is missing",
        ),
        (
            "createStack",
            json!({"StackName": 7}),
            "the parameter 'StackName' must be a string, got 7",
        ),
        (
            "describeStacks",
            json!({"StackNam": "x"}),
            "'StackNam' is not a parameter of this action",
        ),
        (
            "createStack",
            json!({"StackName": "s", "Tags": [{"Key": "k"}]}),
            "Tags[0]: the required parameter 'Value' is missing",
        ),
        (
            "launchRocket",
            json!({}),
            "'launchRocket' is not a CloudFormation action Stepstone supports",
        ),
    ];
    for (action, input, message) in cases {
        let err = t
            .dispatch(request(
                &format!("arn:aws:states:::aws-sdk:cloudformation:{action}"),
                input,
            ))
            .await
            .unwrap_err();
        assert_eq!(err.error, "States.Runtime");
        assert!(err.cause.contains(message), "{action}: {}", err.cause);
    }
    let err = t
        .dispatch(request("arn:aws:states:::sqs:sendMessage", json!({})))
        .await
        .unwrap_err();
    assert_eq!(err.error, "States.Runtime");
    assert!(
        err.cause
            .contains("No route for the task resource 'arn:aws:states:::sqs:sendMessage'")
    );
}

#[test]
fn resources_name_their_api() {
    assert_eq!(
        Target::of("arn:aws:lambda:eu-west-1:123456789012:function:prepare"),
        Some(Target::Function(
            "arn:aws:lambda:eu-west-1:123456789012:function:prepare".into()
        ))
    );
    assert_eq!(
        Target::of("arn:aws:states:::lambda:invoke"),
        Some(Target::LambdaInvoke)
    );
    assert_eq!(
        Target::of("arn:aws:states:::lambda:invoke.waitForTaskToken"),
        Some(Target::LambdaInvoke)
    );
    assert_eq!(
        Target::of("arn:aws:states:us-west-1::aws-sdk:cloudformation:createStack"),
        Some(Target::CloudFormation("createStack".into()))
    );
    assert_eq!(Target::of("arn:aws:states:::sqs:sendMessage"), None);
    assert_eq!(Target::of("not an arn"), None);
}
