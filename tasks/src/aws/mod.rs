//! Tasks on AWS through the AWS SDK: Lambda (a function ARN, or `arn:aws:states:::lambda:invoke`)
//! and CloudFormation (`arn:aws:states:::aws-sdk:cloudformation:<action>`), against AWS itself
//! or any endpoint that speaks its APIs (LocalStack, MiniStack).
//!
//! Configuration is the standard AWS one (profiles, environment, `AWS_ENDPOINT_URL`), loaded
//! once, on the first AWS task. Each region gets its own clients, built once: a Map over
//! regions reaches each region with its own. The SDK's retries are off (ASL's Retry decides, as
//! on Step Functions) and every call has a timeout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use serde_json::Value;
use stepstone_engine::asl::errors;
use stepstone_engine::{Failure, TaskDispatcher, TaskFuture, TaskRequest};
use tokio::sync::OnceCell;

mod cloudformation;
mod error;
mod json;
mod lambda;
mod s3;
#[cfg(test)]
mod tests;

pub use error::client_request_token;

/// How [`AwsTasks`] reaches AWS; each field left `None` comes from the standard configuration.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct AwsOptions {
    /// The region for tasks that name none (else `AWS_REGION`, the profile, or `us-east-1`).
    pub region: Option<String>,
    /// Send every call here instead of AWS (else `AWS_ENDPOINT_URL` and its per-service forms).
    pub endpoint_url: Option<String>,
    /// The longest a call may take, attempt included (default 60 s); a task's own
    /// `TimeoutSeconds` applies on top.
    pub call_timeout: Option<Duration>,
}

impl AwsOptions {
    /// Options with this default region.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Options sending every call to `url`.
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }
}

/// The clients of one region.
#[derive(Clone)]
pub(crate) struct Clients {
    pub(crate) lambda: aws_sdk_lambda::Client,
    pub(crate) cloudformation: aws_sdk_cloudformation::Client,
    pub(crate) s3: aws_sdk_s3::Client,
}

/// Dispatches Lambda and CloudFormation tasks through the AWS SDK. Cheap to clone.
#[derive(Clone)]
pub struct AwsTasks {
    inner: Arc<Inner>,
}

struct Inner {
    options: AwsOptions,
    config: OnceCell<SdkConfig>,
    regions: Mutex<HashMap<String, Clients>>,
    /// Clients used for every region (tests give mocked ones).
    fixed: Option<Clients>,
}

/// Which AWS API a Task's resource names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// `arn:aws:lambda:<region>:<account>:function:<name>[:qualifier]`: the function's output.
    Function(String),
    /// `arn:aws:states:::lambda:invoke`: Lambda's Invoke response.
    LambdaInvoke,
    /// `arn:aws:states:::aws-sdk:cloudformation:<action>`.
    CloudFormation(String),
    /// `arn:aws:states:::s3:getObject`: a distributed Map's ItemReader reading an object.
    ReadObject,
    /// `arn:aws:states:::s3:listObjectsV2`: a distributed Map's ItemReader listing objects.
    ListObjects,
    /// `arn:aws:states:::s3:putObject`: a distributed Map's ResultWriter.
    WriteResults,
}

impl Target {
    /// The AWS API `resource` names, if it is one of these.
    pub(crate) fn of(resource: &str) -> Option<Target> {
        let parts: Vec<&str> = resource.splitn(6, ':').collect();
        match parts.as_slice() {
            ["arn", _, "lambda", _, _, rest] if rest.starts_with("function:") => {
                Some(Target::Function(resource.to_owned()))
            }
            ["arn", _, "states", _, _, rest] => {
                let rest = rest.strip_suffix(".waitForTaskToken").unwrap_or(rest);
                if rest == "lambda:invoke" {
                    Some(Target::LambdaInvoke)
                } else if rest == "s3:getObject" {
                    Some(Target::ReadObject)
                } else if rest == "s3:listObjectsV2" {
                    Some(Target::ListObjects)
                } else if rest == "s3:putObject" {
                    Some(Target::WriteResults)
                } else {
                    rest.strip_prefix("aws-sdk:cloudformation:")
                        .map(|action| Target::CloudFormation(action.to_owned()))
                }
            }
            _ => None,
        }
    }
}

impl AwsTasks {
    /// AWS tasks configured from the standard AWS configuration, with `options` on top.
    pub fn new(options: AwsOptions) -> AwsTasks {
        AwsTasks {
            inner: Arc::new(Inner {
                options,
                config: OnceCell::new(),
                regions: Mutex::new(HashMap::new()),
                fixed: None,
            }),
        }
    }

    /// Whether these tasks handle `resource`.
    pub fn handles(resource: &str) -> bool {
        Target::of(resource).is_some()
    }

    /// The clients for `region` (the default region when `None`), built on first use.
    async fn clients(&self, region: Option<&str>) -> Clients {
        let config = self
            .inner
            .config
            .get_or_init(|| load_config(&self.inner.options))
            .await;
        let region = region
            .map(str::to_owned)
            .or_else(|| config.region().map(|r| r.to_string()))
            .unwrap_or_else(|| "us-east-1".to_owned());
        let mut regions = self
            .inner
            .regions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        regions
            .entry(region.clone())
            .or_insert_with(|| {
                let config = config.to_builder().region(Region::new(region)).build();
                // An emulator answers on one host: its buckets are paths, not subdomains.
                let s3 = aws_sdk_s3::config::Builder::from(&config)
                    .force_path_style(self.inner.options.endpoint_url.is_some())
                    .build();
                Clients {
                    lambda: aws_sdk_lambda::Client::new(&config),
                    cloudformation: aws_sdk_cloudformation::Client::new(&config),
                    s3: aws_sdk_s3::Client::from_conf(s3),
                }
            })
            .clone()
    }

    /// Tasks that use these clients for every region (tests give mocked ones).
    #[cfg(test)]
    pub(crate) fn with_clients(clients: Clients) -> AwsTasks {
        AwsTasks {
            inner: Arc::new(Inner {
                options: AwsOptions::default(),
                config: OnceCell::new(),
                regions: Mutex::new(HashMap::new()),
                fixed: Some(clients),
            }),
        }
    }

    async fn call(&self, request: TaskRequest) -> Result<Value, Failure> {
        let target = Target::of(&request.resource).ok_or_else(|| {
            Failure::new(
                errors::RUNTIME,
                format!(
                    "No route for the task resource '{}' of state '{}': Stepstone calls AWS for Lambda functions, lambda:invoke and aws-sdk:cloudformation:* (and S3 for a Map's ItemReader); register a handler for anything else (stepstone run --task RESOURCE=COMMAND, or a closure in the library).",
                    request.resource, request.state_name
                ),
            )
        })?;
        let clients = match &self.inner.fixed {
            Some(clients) => clients.clone(),
            None => self.clients(request.region.as_deref()).await,
        };
        match target {
            Target::Function(arn) => {
                lambda::call_function(&clients.lambda, &arn, request.input).await
            }
            Target::LambdaInvoke => lambda::invoke(&clients.lambda, request.input).await,
            Target::ReadObject => s3::get_object(&clients.s3, request.input).await,
            Target::ListObjects => s3::list_objects(&clients.s3, request.input).await,
            Target::WriteResults => s3::write_results(&clients.s3, request.input).await,
            Target::CloudFormation(action) => {
                cloudformation::call(
                    &clients.cloudformation,
                    &action,
                    request.input,
                    &request.idempotency_token,
                )
                .await
            }
        }
    }
}

impl TaskDispatcher for AwsTasks {
    fn dispatch(&self, request: TaskRequest) -> TaskFuture {
        let tasks = self.clone();
        Box::pin(async move { tasks.call(request).await })
    }
}

/// The shared configuration: standard sources, then `options`; retries off, calls bounded.
async fn load_config(options: &AwsOptions) -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let timeout = options.call_timeout.unwrap_or(Duration::from_secs(60));
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        // ASL's Retry decides what is retried, as on Step Functions.
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .operation_attempt_timeout(timeout)
                .operation_timeout(timeout)
                .build(),
        );
    if let Some(region) = &options.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(url) = &options.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}
