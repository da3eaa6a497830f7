//! CloudFormation as Step Functions' AWS SDK integration,
//! `arn:aws:states:::aws-sdk:cloudformation:<action>`: requests and responses in the PascalCase
//! names Step Functions uses for this service (`StackName`, `Parameters: [{ParameterKey,
//! ParameterValue}]`, `Stacks[0].StackStatus`), timestamps as ISO 8601 text.
//!
//! `ClientRequestToken` defaults to the attempt's idempotency token (made to fit
//! CloudFormation's rules, see [`client_request_token`]): a task re-sent after a crash repeats
//! the same request, which CloudFormation recognises instead of starting a second operation.

use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudformation::primitives::{DateTime, DateTimeFormat};
use aws_sdk_cloudformation::types::{
    Capability, ChangeSetType, OnFailure, Output, Parameter, Stack, StackEvent, StackResource,
    StackStatus, StackSummary, Tag,
};
use serde_json::{Map, Value, json};
use stepstone_engine::Failure;

use super::error::{client_request_token, sdk_failure};
use super::json::{Fields, runtime};

/// The actions supported, as written in resource ARNs (camelCase, as on Step Functions).
pub(crate) const ACTIONS: &[&str] = &[
    "createStack",
    "updateStack",
    "deleteStack",
    "describeStacks",
    "describeStackEvents",
    "describeStackResources",
    "listStacks",
    "getTemplate",
    "validateTemplate",
    "createChangeSet",
    "describeChangeSet",
    "executeChangeSet",
    "deleteChangeSet",
    "signalResource",
    "listExports",
];

/// Performs `action` with the request in `input`.
pub(crate) async fn call(
    client: &Client,
    action: &str,
    input: Value,
    idempotency_token: &str,
) -> Result<Value, Failure> {
    let name = format!("cloudformation:{action}");
    let mut f = Fields::new(&name, input)?;
    let token = || client_request_token(idempotency_token);
    let result = match action {
        "createStack" => {
            let stack_name = f.required_str("StackName")?;
            let request_token = f.optional_str("ClientRequestToken")?.unwrap_or_else(token);
            let call = client
                .create_stack()
                .stack_name(&stack_name)
                .set_template_body(f.optional_str("TemplateBody")?)
                .set_template_url(f.optional_str("TemplateURL")?)
                .set_parameters(Some(parameters(&mut f)?))
                .set_disable_rollback(f.optional_bool("DisableRollback")?)
                .set_timeout_in_minutes(f.optional_i32("TimeoutInMinutes")?)
                .set_notification_arns(Some(f.string_list("NotificationARNs")?))
                .set_capabilities(Some(capabilities(&mut f)?))
                .set_resource_types(Some(f.string_list("ResourceTypes")?))
                .set_role_arn(f.optional_str("RoleARN")?)
                .set_on_failure(
                    f.optional_str("OnFailure")?
                        .map(|s| OnFailure::from(s.as_str())),
                )
                .set_stack_policy_body(f.optional_str("StackPolicyBody")?)
                .set_stack_policy_url(f.optional_str("StackPolicyURL")?)
                .set_tags(Some(tags(&mut f)?))
                .client_request_token(&request_token)
                .set_enable_termination_protection(f.optional_bool("EnableTerminationProtection")?)
                .set_retain_except_on_create(f.optional_bool("RetainExceptOnCreate")?);
            f.finish()?;
            match call.send().await {
                Ok(out) => object([("StackId", opt_str(out.stack_id()))]),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_already_exists_exception()) =>
                {
                    // Sent again (after a crash, on resume) with the same token: the stack this
                    // very request created is the answer, as for the first send. CloudFormation
                    // recognises a repeated token itself; an emulator may not, so the stack's own
                    // creation event, which records the token, decides.
                    match created_by(client, &stack_name, &request_token).await {
                        Some(stack_id) => object([("StackId", json!(stack_id))]),
                        None => return Err(failed(e)),
                    }
                }
                Err(e) => return Err(failed(e)),
            }
        }
        "updateStack" => {
            let call = client
                .update_stack()
                .stack_name(f.required_str("StackName")?)
                .set_template_body(f.optional_str("TemplateBody")?)
                .set_template_url(f.optional_str("TemplateURL")?)
                .set_use_previous_template(f.optional_bool("UsePreviousTemplate")?)
                .set_parameters(Some(parameters(&mut f)?))
                .set_capabilities(Some(capabilities(&mut f)?))
                .set_resource_types(Some(f.string_list("ResourceTypes")?))
                .set_role_arn(f.optional_str("RoleARN")?)
                .set_notification_arns(Some(f.string_list("NotificationARNs")?))
                .set_stack_policy_body(f.optional_str("StackPolicyBody")?)
                .set_stack_policy_url(f.optional_str("StackPolicyURL")?)
                .set_tags(Some(tags(&mut f)?))
                .set_disable_rollback(f.optional_bool("DisableRollback")?)
                .client_request_token(f.optional_str("ClientRequestToken")?.unwrap_or_else(token))
                .set_retain_except_on_create(f.optional_bool("RetainExceptOnCreate")?);
            f.finish()?;
            let out = call.send().await.map_err(failed)?;
            object([("StackId", opt_str(out.stack_id()))])
        }
        "deleteStack" => {
            let call = client
                .delete_stack()
                .stack_name(f.required_str("StackName")?)
                .set_retain_resources(Some(f.string_list("RetainResources")?))
                .set_role_arn(f.optional_str("RoleARN")?)
                .client_request_token(f.optional_str("ClientRequestToken")?.unwrap_or_else(token));
            f.finish()?;
            call.send().await.map_err(failed)?;
            json!({})
        }
        "describeStacks" => {
            let call = client
                .describe_stacks()
                .set_stack_name(f.optional_str("StackName")?)
                .set_next_token(f.optional_str("NextToken")?);
            f.finish()?;
            let out = call.send().await.map_err(failed)?;
            object([
                ("Stacks", list(out.stacks(), stack)),
                ("NextToken", opt_str(out.next_token())),
            ])
        }
        "describeStackEvents" => {
            let call = client
                .describe_stack_events()
                .set_stack_name(f.optional_str("StackName")?)
                .set_next_token(f.optional_str("NextToken")?);
            f.finish()?;
            let out = call.send().await.map_err(failed)?;
            object([
                ("StackEvents", list(out.stack_events(), stack_event)),
                ("NextToken", opt_str(out.next_token())),
            ])
        }
        "describeStackResources" => {
            let call = client
                .describe_stack_resources()
                .set_stack_name(f.optional_str("StackName")?)
                .set_logical_resource_id(f.optional_str("LogicalResourceId")?)
                .set_physical_resource_id(f.optional_str("PhysicalResourceId")?);
            f.finish()?;
            let out = call.send().await.map_err(failed)?;
            object([(
                "StackResources",
                list(out.stack_resources(), stack_resource),
            )])
        }
        "listStacks" => {
            let filter = f
                .string_list("StackStatusFilter")?
                .iter()
                .map(|s| StackStatus::from(s.as_str()))
                .collect();
            let call = client
                .list_stacks()
                .set_next_token(f.optional_str("NextToken")?)
                .set_stack_status_filter(Some(filter));
            f.finish()?;
            let out = call.send().await.map_err(failed)?;
            object([
                ("StackSummaries", list(out.stack_summaries(), stack_summary)),
                ("NextToken", opt_str(out.next_token())),
            ])
        }
        "getTemplate" => {
            let call = client
                .get_template()
                .set_stack_name(f.optional_str("StackName")?)
                .set_change_set_name(f.optional_str("ChangeSetName")?)
                .set_template_stage(
                    f.optional_str("TemplateStage")?
                        .map(|s| aws_sdk_cloudformation::types::TemplateStage::from(s.as_str())),
                );
            f.finish()?;
            let out = call.send().await.map_err(failed)?;
            object([
                ("TemplateBody", opt_str(out.template_body())),
                (
                    "StagesAvailable",
                    Value::Array(
                        out.stages_available()
                            .iter()
                            .map(|s| json!(s.as_str()))
                            .collect(),
                    ),
                ),
            ])
        }
        "validateTemplate" => {
            let call = client
                .validate_template()
                .set_template_body(f.optional_str("TemplateBody")?)
                .set_template_url(f.optional_str("TemplateURL")?);
            f.finish()?;
            let out = call.send().await.map_err(failed)?;
            let parameters = list(out.parameters(), |p| {
                object([
                    ("ParameterKey", opt_str(p.parameter_key())),
                    ("DefaultValue", opt_str(p.default_value())),
                    ("NoEcho", opt_bool(p.no_echo())),
                    ("Description", opt_str(p.description())),
                ])
            });
            object([
                ("Parameters", parameters),
                ("Description", opt_str(out.description())),
                (
                    "Capabilities",
                    strings(out.capabilities().iter().map(Capability::as_str)),
                ),
                ("CapabilitiesReason", opt_str(out.capabilities_reason())),
                (
                    "DeclaredTransforms",
                    strings(out.declared_transforms().iter().map(String::as_str)),
                ),
            ])
        }
        "createChangeSet" => {
            let call = client
                .create_change_set()
                .stack_name(f.required_str("StackName")?)
                .change_set_name(f.required_str("ChangeSetName")?)
                .set_template_body(f.optional_str("TemplateBody")?)
                .set_template_url(f.optional_str("TemplateURL")?)
                .set_use_previous_template(f.optional_bool("UsePreviousTemplate")?)
                .set_parameters(Some(parameters(&mut f)?))
                .set_capabilities(Some(capabilities(&mut f)?))
                .set_resource_types(Some(f.string_list("ResourceTypes")?))
                .set_role_arn(f.optional_str("RoleARN")?)
                .set_notification_arns(Some(f.string_list("NotificationARNs")?))
                .set_tags(Some(tags(&mut f)?))
                .set_client_token(f.optional_str("ClientToken")?)
                .set_description(f.optional_str("Description")?)
                .set_change_set_type(
                    f.optional_str("ChangeSetType")?
                        .map(|s| ChangeSetType::from(s.as_str())),
                )
                .set_include_nested_stacks(f.optional_bool("IncludeNestedStacks")?);
            f.finish()?;
            let out = call.send().await.map_err(failed)?;
            object([
                ("Id", opt_str(out.id())),
                ("StackId", opt_str(out.stack_id())),
            ])
        }
        "describeChangeSet" => {
            let call = client
                .describe_change_set()
                .change_set_name(f.required_str("ChangeSetName")?)
                .set_stack_name(f.optional_str("StackName")?)
                .set_next_token(f.optional_str("NextToken")?);
            f.finish()?;
            let out = call.send().await.map_err(failed)?;
            let changes = list(out.changes(), |c| {
                let resource = c.resource_change().map_or(Value::Null, |r| {
                    object([
                        ("Action", opt_str(r.action().map(|a| a.as_str()))),
                        ("LogicalResourceId", opt_str(r.logical_resource_id())),
                        ("PhysicalResourceId", opt_str(r.physical_resource_id())),
                        ("ResourceType", opt_str(r.resource_type())),
                        ("Replacement", opt_str(r.replacement().map(|a| a.as_str()))),
                    ])
                });
                object([
                    ("Type", opt_str(c.r#type().map(|t| t.as_str()))),
                    ("ResourceChange", resource),
                ])
            });
            object([
                ("ChangeSetName", opt_str(out.change_set_name())),
                ("ChangeSetId", opt_str(out.change_set_id())),
                ("StackId", opt_str(out.stack_id())),
                ("StackName", opt_str(out.stack_name())),
                ("Description", opt_str(out.description())),
                ("Parameters", list(out.parameters(), parameter)),
                ("CreationTime", time(out.creation_time())),
                (
                    "ExecutionStatus",
                    opt_str(out.execution_status().map(|s| s.as_str())),
                ),
                ("Status", opt_str(out.status().map(|s| s.as_str()))),
                ("StatusReason", opt_str(out.status_reason())),
                (
                    "NotificationARNs",
                    strings(out.notification_arns().iter().map(String::as_str)),
                ),
                (
                    "Capabilities",
                    strings(out.capabilities().iter().map(Capability::as_str)),
                ),
                ("Tags", list(out.tags(), tag)),
                ("Changes", changes),
                ("NextToken", opt_str(out.next_token())),
            ])
        }
        "executeChangeSet" => {
            let call = client
                .execute_change_set()
                .change_set_name(f.required_str("ChangeSetName")?)
                .set_stack_name(f.optional_str("StackName")?)
                .client_request_token(f.optional_str("ClientRequestToken")?.unwrap_or_else(token))
                .set_disable_rollback(f.optional_bool("DisableRollback")?)
                .set_retain_except_on_create(f.optional_bool("RetainExceptOnCreate")?);
            f.finish()?;
            call.send().await.map_err(failed)?;
            json!({})
        }
        "deleteChangeSet" => {
            let call = client
                .delete_change_set()
                .change_set_name(f.required_str("ChangeSetName")?)
                .set_stack_name(f.optional_str("StackName")?);
            f.finish()?;
            call.send().await.map_err(failed)?;
            json!({})
        }
        "signalResource" => {
            let call = client
                .signal_resource()
                .stack_name(f.required_str("StackName")?)
                .logical_resource_id(f.required_str("LogicalResourceId")?)
                .unique_id(f.required_str("UniqueId")?)
                .status(aws_sdk_cloudformation::types::ResourceSignalStatus::from(
                    f.required_str("Status")?.as_str(),
                ));
            f.finish()?;
            call.send().await.map_err(failed)?;
            json!({})
        }
        "listExports" => {
            let call = client
                .list_exports()
                .set_next_token(f.optional_str("NextToken")?);
            f.finish()?;
            let out = call.send().await.map_err(failed)?;
            let exports = list(out.exports(), |e| {
                object([
                    ("ExportingStackId", opt_str(e.exporting_stack_id())),
                    ("Name", opt_str(e.name())),
                    ("Value", opt_str(e.value())),
                ])
            });
            object([
                ("Exports", exports),
                ("NextToken", opt_str(out.next_token())),
            ])
        }
        other => {
            return Err(runtime(
                &name,
                format!(
                    "'{other}' is not a CloudFormation action Stepstone supports; supported: {}",
                    ACTIONS.join(", ")
                ),
            ));
        }
    };
    Ok(result)
}

/// An SDK failure of a CloudFormation call.
fn failed<E, R>(error: SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    sdk_failure("CloudFormation", &error)
}

/// The id of stack `stack_name` if the request with ClientRequestToken `token` created it: its
/// `CREATE_IN_PROGRESS` event carries that token. Events come newest first; a stack with a long
/// history is searched over at most 20 pages.
async fn created_by(client: &Client, stack_name: &str, token: &str) -> Option<String> {
    let mut next = None;
    for _ in 0..20 {
        let page = client
            .describe_stack_events()
            .stack_name(stack_name)
            .set_next_token(next)
            .send()
            .await
            .ok()?;
        let creation = page.stack_events().iter().find(|e| {
            e.resource_type() == Some("AWS::CloudFormation::Stack")
                && e.logical_resource_id() == Some(stack_name)
                && e.resource_status().map(|s| s.as_str()) == Some("CREATE_IN_PROGRESS")
        });
        if let Some(event) = creation {
            return (event.client_request_token() == Some(token))
                .then(|| event.stack_id().map(str::to_owned))
                .flatten();
        }
        next = page.next_token().map(str::to_owned);
        next.as_ref()?;
    }
    None
}

// ---- requests

fn parameters(f: &mut Fields) -> Result<Vec<Parameter>, Failure> {
    f.object_list("Parameters")?
        .into_iter()
        .map(|mut p| {
            let parameter = Parameter::builder()
                .set_parameter_key(p.optional_str("ParameterKey")?)
                .set_parameter_value(p.optional_str("ParameterValue")?)
                .set_use_previous_value(p.optional_bool("UsePreviousValue")?)
                .set_resolved_value(p.optional_str("ResolvedValue")?)
                .build();
            p.finish()?;
            Ok(parameter)
        })
        .collect()
}

fn tags(f: &mut Fields) -> Result<Vec<Tag>, Failure> {
    f.object_list("Tags")?
        .into_iter()
        .map(|mut t| {
            let key = t.required_str("Key")?;
            let value = t.required_str("Value")?;
            t.finish()?;
            Ok(Tag::builder().key(key).value(value).build())
        })
        .collect()
}

fn capabilities(f: &mut Fields) -> Result<Vec<Capability>, Failure> {
    Ok(f.string_list("Capabilities")?
        .iter()
        .map(|c| Capability::from(c.as_str()))
        .collect())
}

// ---- responses

/// A JSON object of the fields that have a value (AWS leaves absent members out).
fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    let map: Map<String, Value> = fields
        .into_iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    Value::Object(map)
}

fn opt_str(s: Option<&str>) -> Value {
    s.map_or(Value::Null, |s| json!(s))
}

fn opt_bool(b: Option<bool>) -> Value {
    b.map_or(Value::Null, Value::Bool)
}

fn opt_i32(n: Option<i32>) -> Value {
    n.map_or(Value::Null, |n| json!(n))
}

/// A timestamp as ISO 8601 text with milliseconds, as Step Functions shows SDK results.
fn time(t: Option<&DateTime>) -> Value {
    t.and_then(|t| t.fmt(DateTimeFormat::DateTime).ok())
        .map_or(Value::Null, Value::String)
}

fn strings<'a>(items: impl Iterator<Item = &'a str>) -> Value {
    Value::Array(items.map(|s| json!(s)).collect())
}

fn list<T>(items: &[T], each: impl Fn(&T) -> Value) -> Value {
    Value::Array(items.iter().map(each).collect())
}

fn parameter(p: &Parameter) -> Value {
    object([
        ("ParameterKey", opt_str(p.parameter_key())),
        ("ParameterValue", opt_str(p.parameter_value())),
        ("UsePreviousValue", opt_bool(p.use_previous_value())),
        ("ResolvedValue", opt_str(p.resolved_value())),
    ])
}

fn tag(t: &Tag) -> Value {
    object([("Key", json!(t.key())), ("Value", json!(t.value()))])
}

fn output(o: &Output) -> Value {
    object([
        ("OutputKey", opt_str(o.output_key())),
        ("OutputValue", opt_str(o.output_value())),
        ("Description", opt_str(o.description())),
        ("ExportName", opt_str(o.export_name())),
    ])
}

fn stack(s: &Stack) -> Value {
    object([
        ("StackId", opt_str(s.stack_id())),
        ("StackName", opt_str(s.stack_name())),
        ("ChangeSetId", opt_str(s.change_set_id())),
        ("Description", opt_str(s.description())),
        ("Parameters", list(s.parameters(), parameter)),
        ("CreationTime", time(s.creation_time())),
        ("DeletionTime", time(s.deletion_time())),
        ("LastUpdatedTime", time(s.last_updated_time())),
        ("StackStatus", opt_str(s.stack_status().map(|x| x.as_str()))),
        ("StackStatusReason", opt_str(s.stack_status_reason())),
        ("DisableRollback", opt_bool(s.disable_rollback())),
        (
            "NotificationARNs",
            strings(s.notification_arns().iter().map(String::as_str)),
        ),
        ("TimeoutInMinutes", opt_i32(s.timeout_in_minutes())),
        (
            "Capabilities",
            strings(s.capabilities().iter().map(Capability::as_str)),
        ),
        ("Outputs", list(s.outputs(), output)),
        ("RoleARN", opt_str(s.role_arn())),
        ("Tags", list(s.tags(), tag)),
        (
            "EnableTerminationProtection",
            opt_bool(s.enable_termination_protection()),
        ),
        ("ParentId", opt_str(s.parent_id())),
        ("RootId", opt_str(s.root_id())),
    ])
}

fn stack_event(e: &StackEvent) -> Value {
    object([
        ("StackId", opt_str(e.stack_id())),
        ("EventId", opt_str(e.event_id())),
        ("StackName", opt_str(e.stack_name())),
        ("LogicalResourceId", opt_str(e.logical_resource_id())),
        ("PhysicalResourceId", opt_str(e.physical_resource_id())),
        ("ResourceType", opt_str(e.resource_type())),
        ("Timestamp", time(e.timestamp())),
        (
            "ResourceStatus",
            opt_str(e.resource_status().map(|x| x.as_str())),
        ),
        ("ResourceStatusReason", opt_str(e.resource_status_reason())),
        ("ResourceProperties", opt_str(e.resource_properties())),
        ("ClientRequestToken", opt_str(e.client_request_token())),
    ])
}

fn stack_resource(r: &StackResource) -> Value {
    object([
        ("StackName", opt_str(r.stack_name())),
        ("StackId", opt_str(r.stack_id())),
        ("LogicalResourceId", opt_str(r.logical_resource_id())),
        ("PhysicalResourceId", opt_str(r.physical_resource_id())),
        ("ResourceType", opt_str(r.resource_type())),
        ("Timestamp", time(r.timestamp())),
        (
            "ResourceStatus",
            opt_str(r.resource_status().map(|x| x.as_str())),
        ),
        ("ResourceStatusReason", opt_str(r.resource_status_reason())),
        ("Description", opt_str(r.description())),
    ])
}

fn stack_summary(s: &StackSummary) -> Value {
    object([
        ("StackId", opt_str(s.stack_id())),
        ("StackName", opt_str(s.stack_name())),
        ("TemplateDescription", opt_str(s.template_description())),
        ("CreationTime", time(s.creation_time())),
        ("LastUpdatedTime", time(s.last_updated_time())),
        ("DeletionTime", time(s.deletion_time())),
        ("StackStatus", opt_str(s.stack_status().map(|x| x.as_str()))),
        ("StackStatusReason", opt_str(s.stack_status_reason())),
        ("ParentId", opt_str(s.parent_id())),
        ("RootId", opt_str(s.root_id())),
    ])
}
