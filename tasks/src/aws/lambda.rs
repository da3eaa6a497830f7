//! Lambda, in both of Step Functions' forms.
//!
//! - A function ARN as the resource: the task's input is the event, the function's output is the
//!   result.
//! - `arn:aws:states:::lambda:invoke`: the input is Invoke's request (`FunctionName`, `Payload`,
//!   `InvocationType`, `Qualifier`, `ClientContext`, `LogType`); the result is its response
//!   (`ExecutedVersion`, `Payload`, `StatusCode`, `SdkHttpMetadata`, `SdkResponseMetadata`, and
//!   `FunctionError`, `LogResult` when present).
//!
//! A function that raises fails the task as on AWS: Error is the function's `errorType`, Cause
//! its whole error payload as JSON text (`{"errorMessage", "errorType", "stackTrace"}`).

use aws_sdk_lambda::Client;
use aws_sdk_lambda::operation::invoke::InvokeOutput;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{InvocationType, LogType};
use serde_json::{Map, Value, json};
use stepstone_engine::Failure;

use super::error::sdk_failure;
use super::json::Fields;

/// A function ARN as the resource: `input` is the event; the result is the function's output.
pub(crate) async fn call_function(
    client: &Client,
    function_arn: &str,
    input: Value,
) -> Result<Value, Failure> {
    let output = client
        .invoke()
        .function_name(function_arn)
        .payload(Blob::new(input.to_string()))
        .send()
        .await
        .map_err(|e| sdk_failure("Lambda", &e))?;
    let payload = payload_value(&output);
    function_error(&output, &payload)?;
    Ok(payload)
}

/// `lambda:invoke`: `input` is Invoke's request in Step Functions' PascalCase.
pub(crate) async fn invoke(client: &Client, input: Value) -> Result<Value, Failure> {
    let mut fields = Fields::new("lambda:invoke", input)?;
    let function = fields.required_str("FunctionName")?;
    let mut call = client.invoke().function_name(function);
    if let Some(payload) = fields.take("Payload") {
        // A string payload is sent as it is (it may be JSON text already), as AWS does.
        let bytes = match payload {
            Value::String(s) => s.into_bytes(),
            other => other.to_string().into_bytes(),
        };
        call = call.payload(Blob::new(bytes));
    }
    if let Some(kind) = fields.optional_str("InvocationType")? {
        call = call.invocation_type(InvocationType::from(kind.as_str()));
    }
    if let Some(qualifier) = fields.optional_str("Qualifier")? {
        call = call.qualifier(qualifier);
    }
    if let Some(context) = fields.optional_str("ClientContext")? {
        call = call.client_context(context);
    }
    if let Some(log) = fields.optional_str("LogType")? {
        call = call.log_type(LogType::from(log.as_str()));
    }
    fields.finish()?;
    let output = call.send().await.map_err(|e| sdk_failure("Lambda", &e))?;
    let payload = payload_value(&output);
    function_error(&output, &payload)?;
    let mut result = Map::new();
    if let Some(version) = output.executed_version() {
        result.insert("ExecutedVersion".into(), json!(version));
    }
    if let Some(error) = output.function_error() {
        result.insert("FunctionError".into(), json!(error));
    }
    if let Some(log) = output.log_result() {
        result.insert("LogResult".into(), json!(log));
    }
    result.insert("Payload".into(), payload);
    result.insert(
        "SdkHttpMetadata".into(),
        json!({"HttpStatusCode": output.status_code()}),
    );
    result.insert(
        "SdkResponseMetadata".into(),
        json!({"RequestId": request_id(&output)}),
    );
    result.insert("StatusCode".into(), json!(output.status_code()));
    Ok(Value::Object(result))
}

/// The response payload as JSON; text that is not JSON stays a string (an empty payload, from
/// an asynchronous invocation, is null).
fn payload_value(output: &InvokeOutput) -> Value {
    let bytes = output.payload().map(Blob::as_ref).unwrap_or_default();
    if bytes.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// The function raised: its `errorType` is the error, its error payload the cause.
fn function_error(output: &InvokeOutput, payload: &Value) -> Result<(), Failure> {
    let Some(kind) = output.function_error() else {
        return Ok(());
    };
    let error = payload
        .get("errorType")
        .and_then(Value::as_str)
        .unwrap_or(kind);
    let cause = match payload {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Err(Failure::new(error, cause))
}

fn request_id(output: &InvokeOutput) -> String {
    use aws_sdk_lambda::operation::RequestId;
    output.request_id().unwrap_or_default().to_owned()
}
