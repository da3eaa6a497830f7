//! `{"Type": "Task", "Resource": "...", ...}`: does one unit of work somewhere else.

use super::{
    DataFlow, ErrorHandling, NumberOrExpr, QueryLanguage, StateCx, Supports, Transition,
    int_or_expr, transition,
};
use crate::diagnostic::Code;
use crate::parse::{Fields, Loader, MachineType};
use crate::path::Path;

/// How Step Functions waits for an integration (the suffix of its resource ARN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegrationPattern {
    /// No suffix: call and move on with the response.
    RequestResponse,
    /// `.sync` (and `.sync:2`): wait for the job to finish.
    Sync,
    /// `.waitForTaskToken`: wait until someone sends the task token back.
    WaitForTaskToken,
}

/// A Task's `Resource`, recognized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// `arn:aws:lambda:us-east-1:123456789012:function:Name[:qualifier]`: returns the
    /// function's output itself.
    LambdaFunction {
        /// The whole ARN.
        arn: String,
        /// The region in the ARN.
        region: String,
    },
    /// `arn:aws:states:us-east-1:123456789012:activity:Name`
    Activity {
        /// The whole ARN.
        arn: String,
    },
    /// `arn:aws:states:::lambda:invoke`, `arn:aws:states:::aws-sdk:cloudformation:createStack`...
    Service {
        /// `lambda`, `aws-sdk:cloudformation`, `sns`, ...
        service: String,
        /// `invoke`, `createStack`, `publish`, ...
        action: String,
        /// The suffix.
        pattern: IntegrationPattern,
        /// A region written into the ARN (`arn:aws:states:us-west-1::...`): a Stepstone
        /// extension.
        region: Option<String>,
    },
}

/// A Task state.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// `Resource`, recognized.
    pub resource: Option<Resource>,
    /// `Resource` as written.
    pub resource_arn: String,
    /// Data-flow fields.
    pub flow: DataFlow,
    /// `Retry` and `Catch`.
    pub errors: ErrorHandling,
    /// `TimeoutSeconds` (default 99999999, which AWS treats as no timeout).
    pub timeout_seconds: Option<NumberOrExpr<i64>>,
    /// `TimeoutSecondsPath`
    pub timeout_seconds_path: Option<Path>,
    /// `HeartbeatSeconds`
    pub heartbeat_seconds: Option<NumberOrExpr<i64>>,
    /// `HeartbeatSecondsPath`
    pub heartbeat_seconds_path: Option<Path>,
    /// `Credentials` (cross-account role), kept as written.
    pub credentials: Option<serde_json::Value>,
    /// Stepstone extension `Region`: the region this task's calls go to.
    pub region: Option<String>,
    /// Stepstone extension `RegionPath`: a path to the region, read from the state's input.
    pub region_path: Option<Path>,
    /// `Next` or `End`.
    pub transition: Option<Transition>,
}

/// Optimized integrations and their actions, as Step Functions recognizes them. Anything else
/// under `arn:aws:states:::` must go through `aws-sdk:` (e.g. `dynamodb:query` is refused).
const INTEGRATIONS: &[(&str, &[&str])] = &[
    ("lambda", &["invoke"]),
    ("sns", &["publish"]),
    ("sqs", &["sendMessage"]),
    (
        "dynamodb",
        &["getItem", "putItem", "deleteItem", "updateItem"],
    ),
    ("ecs", &["runTask"]),
    ("batch", &["submitJob"]),
    ("glue", &["startJobRun"]),
    ("databrew", &["startJobRun"]),
    ("states", &["startExecution"]),
    ("events", &["putEvents"]),
    ("apigateway", &["invoke"]),
    ("http", &["invoke"]),
    (
        "athena",
        &[
            "startQueryExecution",
            "stopQueryExecution",
            "getQueryExecution",
            "getQueryResults",
        ],
    ),
    ("bedrock", &["invokeModel", "createModelCustomizationJob"]),
    (
        "codebuild",
        &[
            "startBuild",
            "stopBuild",
            "batchDeleteBuilds",
            "batchGetReports",
            "startBuildBatch",
            "stopBuildBatch",
            "retryBuildBatch",
            "retryBuild",
            "deleteBuildBatch",
        ],
    ),
    (
        "eks",
        &[
            "createCluster",
            "deleteCluster",
            "createFargateProfile",
            "deleteFargateProfile",
            "createNodegroup",
            "deleteNodegroup",
            "runJob",
            "call",
        ],
    ),
    (
        "elasticmapreduce",
        &[
            "createCluster",
            "terminateCluster",
            "addStep",
            "cancelStep",
            "setClusterTerminationProtection",
            "modifyInstanceFleetByName",
            "modifyInstanceGroupByName",
        ],
    ),
    (
        "emr-containers",
        &[
            "startJobRun",
            "createVirtualCluster",
            "deleteVirtualCluster",
        ],
    ),
    (
        "emr-serverless",
        &[
            "createApplication",
            "startApplication",
            "stopApplication",
            "deleteApplication",
            "startJobRun",
            "cancelJobRun",
        ],
    ),
    ("mediaconvert", &["createJob"]),
    (
        "sagemaker",
        &[
            "createTrainingJob",
            "createTransformJob",
            "createModel",
            "createEndpointConfig",
            "createEndpoint",
            "updateEndpoint",
            "createHyperParameterTuningJob",
            "createLabelingJob",
            "createProcessingJob",
        ],
    ),
];

const PARTITIONS: [&str; 3] = ["aws", "aws-cn", "aws-us-gov"];

impl Resource {
    /// Recognizes a resource ARN; `None` when Step Functions would not accept it.
    pub fn parse(arn: &str) -> Option<Resource> {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let [prefix, partition, service, region, account, rest] = parts.as_slice() else {
            return None;
        };
        if *prefix != "arn" || !PARTITIONS.contains(partition) {
            return None;
        }
        match *service {
            "lambda" => {
                let name = rest.strip_prefix("function:")?;
                (!region.is_empty() && !account.is_empty() && !name.is_empty()).then(|| {
                    Resource::LambdaFunction {
                        arn: arn.to_owned(),
                        region: (*region).to_owned(),
                    }
                })
            }
            "states" if !account.is_empty() => rest
                .strip_prefix("activity:")
                .filter(|n| !n.is_empty())
                .map(|_| Resource::Activity {
                    arn: arn.to_owned(),
                }),
            "states" => {
                let (target, pattern) = match rest.split_once('.') {
                    None => (*rest, IntegrationPattern::RequestResponse),
                    Some((t, "sync" | "sync:2")) => (t, IntegrationPattern::Sync),
                    Some((t, "waitForTaskToken")) => (t, IntegrationPattern::WaitForTaskToken),
                    Some(_) => return None,
                };
                let (service, action) = match target.strip_prefix("aws-sdk:") {
                    Some(sdk) => {
                        let (svc, action) = sdk.split_once(':')?;
                        if svc.is_empty() || action.is_empty() || action.contains(':') {
                            return None;
                        }
                        (format!("aws-sdk:{svc}"), action)
                    }
                    None => {
                        let (svc, action) = target.split_once(':')?;
                        let (_, actions) = INTEGRATIONS.iter().find(|(s, _)| *s == svc)?;
                        if !actions.contains(&action) {
                            return None;
                        }
                        (svc.to_owned(), action)
                    }
                };
                Some(Resource::Service {
                    service,
                    action: action.to_owned(),
                    pattern,
                    region: (!region.is_empty()).then(|| (*region).to_owned()),
                })
            }
            _ => None,
        }
    }
}

impl Task {
    pub(crate) fn load(f: &mut Fields, l: &mut Loader, cx: &StateCx) -> Task {
        let flow = DataFlow::load(f, l, cx.lang, Supports::ALL);
        let errors = ErrorHandling::load(f, l, cx.lang);
        let resource_arn = f.req_str(l, "Resource").unwrap_or_default().to_owned();
        let resource = if resource_arn.is_empty() {
            None
        } else {
            resource(f, l, &resource_arn)
        };
        let (timeout_seconds, timeout_seconds_path) =
            seconds(f, l, cx.lang, "TimeoutSeconds", "TimeoutSecondsPath");
        let (heartbeat_seconds, heartbeat_seconds_path) =
            seconds(f, l, cx.lang, "HeartbeatSeconds", "HeartbeatSecondsPath");
        if let (Some(NumberOrExpr::Value(t)), Some(NumberOrExpr::Value(h))) =
            (&timeout_seconds, &heartbeat_seconds)
            && h >= t
        {
            l.error(
                f.pointer("HeartbeatSeconds"),
                "HeartbeatSeconds must be smaller than TimeoutSeconds",
            );
        }
        let credentials = f.object(l, "Credentials").cloned();
        let region = f.str(l, "Region").map(str::to_owned);
        let region_path = if f.has("RegionPath") {
            f.reference_path(l, "RegionPath")
        } else {
            None
        };
        for (key, given) in [
            ("Region", region.is_some()),
            ("RegionPath", region_path.is_some()),
        ] {
            if given {
                l.report(Code::StepstoneExtension, f.pointer(key), format!("'{key}' is a Stepstone extension: AWS Step Functions would reject this field"));
            }
        }
        if region.is_some() && region_path.is_some() {
            l.error(
                f.at.clone(),
                "Only one of the fields 'Region' and 'RegionPath' may be set",
            );
        }
        Task {
            resource,
            resource_arn,
            flow,
            errors,
            timeout_seconds,
            timeout_seconds_path,
            heartbeat_seconds,
            heartbeat_seconds_path,
            credentials,
            region,
            region_path,
            transition: transition(f, l),
        }
    }
}

fn resource(f: &Fields, l: &mut Loader, arn: &str) -> Option<Resource> {
    let at = f.pointer("Resource");
    let Some(resource) = Resource::parse(arn) else {
        l.error(at, format!("The resource provided {arn} is not recognized. The value is not a valid resource ARN, or the resource is not available in this region."));
        return None;
    };
    if let Resource::Service {
        pattern, region, ..
    } = &resource
    {
        if l.machine_type == MachineType::Express {
            match pattern {
                IntegrationPattern::Sync => l.error(at.clone(), "Express state machine does not support '.sync' service integration"),
                IntegrationPattern::WaitForTaskToken => {
                    l.error(at.clone(), "Express state machine does not support '.waitForTaskToken' service integration")
                }
                IntegrationPattern::RequestResponse => {}
            }
        }
        if region.is_some() {
            l.report(Code::StepstoneExtension, at, "A region in an integration ARN is a Stepstone extension: AWS Step Functions would reject this resource");
        }
    }
    Some(resource)
}

/// `TimeoutSeconds` / `TimeoutSecondsPath` (or the heartbeat pair): at most one of the two.
fn seconds(
    f: &mut Fields,
    l: &mut Loader,
    lang: QueryLanguage,
    key: &str,
    path_key: &str,
) -> (Option<NumberOrExpr<i64>>, Option<Path>) {
    if f.has(key) && f.has(path_key) {
        l.error(
            f.at.clone(),
            format!("Only one of the fields '{key}' and '{path_key}' may be set"),
        );
    }
    let value = int_or_expr(f, l, key, lang, 1, 99_999_999);
    let path = if f.in_language(l, path_key, QueryLanguage::JsonPath, lang) {
        f.reference_path(l, path_key)
    } else {
        None
    };
    (value, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(arn: &str) -> (String, String, IntegrationPattern) {
        match Resource::parse(arn) {
            Some(Resource::Service {
                service,
                action,
                pattern,
                ..
            }) => (service, action, pattern),
            other => panic!("{arn}: {other:?}"),
        }
    }

    #[test]
    fn recognizes_resources() {
        assert_eq!(
            service("arn:aws:states:::lambda:invoke"),
            (
                "lambda".into(),
                "invoke".into(),
                IntegrationPattern::RequestResponse
            )
        );
        assert_eq!(
            service("arn:aws:states:::lambda:invoke.waitForTaskToken").2,
            IntegrationPattern::WaitForTaskToken
        );
        assert_eq!(
            service("arn:aws:states:::states:startExecution.sync:2").2,
            IntegrationPattern::Sync
        );
        assert_eq!(
            service("arn:aws:states:::aws-sdk:cloudformation:createStack").0,
            "aws-sdk:cloudformation"
        );
        assert!(matches!(
            Resource::parse("arn:aws:states:us-west-1::aws-sdk:cloudformation:describeStacks"),
            Some(Resource::Service { region: Some(r), .. }) if r == "us-west-1"
        ));
        assert!(matches!(
            Resource::parse("arn:aws:lambda:eu-west-1:123456789012:function:prepare:live"),
            Some(Resource::LambdaFunction { region, .. }) if region == "eu-west-1"
        ));
        assert!(matches!(
            Resource::parse("arn:aws:states:us-east-1:123456789012:activity:review"),
            Some(Resource::Activity { .. })
        ));
    }

    #[test]
    fn refuses_what_aws_refuses() {
        for arn in [
            "arn:aws:states:::dynamodb:query",
            "arn:aws:states:::nosuch:thing",
            "arn:aws:states:::lambda:invoke.later",
            "arn:aws:states:::aws-sdk:cloudformation",
            "arn:aws:lambda:us-east-1:123:layer:x",
            "arn:other:states:::lambda:invoke",
            "createToken",
            "",
        ] {
            assert_eq!(Resource::parse(arn), None, "{arn}");
        }
    }
}
