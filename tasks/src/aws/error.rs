//! AWS errors as Step Functions names them, so that Retry and Catch written for AWS match:
//! `Lambda.<Exception>` and `CloudFormation.<Exception>`, with AWS's cause format.

use aws_sdk_cloudformation::error::{ProvideErrorMetadata, SdkError};
use sha2::{Digest, Sha256};
use stepstone_engine::Failure;

/// The Failure for an SDK call that failed, for `service` (`Lambda`, `CloudFormation`).
///
/// A service error keeps its exception's name (`Lambda.ResourceNotFoundException`,
/// `CloudFormation.AlreadyExistsException`). Error codes that are not exception names (the
/// Query protocol's `ValidationError`, `Throttling`) are reported under the service's base
/// exception, as Step Functions does through the Java SDK: `CloudFormation.CloudFormationException`,
/// `Lambda.AWSLambdaException`. A call that never got an answer (connection refused, timeout) is
/// `<service>.SdkClientException`.
pub(crate) fn sdk_failure<E, R>(service: &str, error: &SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error {
        SdkError::ServiceError(context) => {
            let err = context.err();
            let code = err.code().unwrap_or("UnknownError");
            let message = err.message().unwrap_or(code);
            let request = err
                .meta()
                .extra("aws_request_id")
                .map(str::to_owned)
                .unwrap_or_default();
            let status = status_of(context.raw());
            Failure::new(
                format!("{service}.{}", exception_name(service, code)),
                format!(
                    "{message} (Service: {service}, Status Code: {status}, Request ID: {request})"
                ),
            )
        }
        other => Failure::new(
            format!("{service}.SdkClientException"),
            format!(
                "Unable to execute HTTP request: {}",
                stepstone_engine::source_chain(other)
            ),
        ),
    }
}

/// The Java SDK's exception name for an error code.
fn exception_name(service: &str, code: &str) -> String {
    match code {
        // CloudFormation's two modeled exceptions whose wire codes lack the suffix.
        "ChangeSetNotFound" => "ChangeSetNotFoundException".into(),
        "InvalidChangeSetStatus" => "InvalidChangeSetStatusException".into(),
        c if c.ends_with("Exception") => c.into(),
        // S3's codes are its modeled errors' names (`NoSuchKey`), the Java SDK's classes
        // those names with the suffix (`NoSuchKeyException`).
        c if service == "S3" => format!("{c}Exception"),
        _ => match service {
            "Lambda" => "AWSLambdaException".into(),
            s => format!("{s}Exception"),
        },
    }
}

/// The HTTP status of a raw response, when the SDK kept one.
fn status_of<R: std::fmt::Debug>(raw: &R) -> String {
    // The raw response type is generic here; its Debug output starts with its status.
    let text = format!("{raw:?}");
    text.split(|c: char| !c.is_ascii_digit())
        .find(|part| part.len() == 3)
        .unwrap_or("0")
        .to_owned()
}

/// CloudFormation's ClientRequestToken for a task attempt: its idempotency token made to fit
/// CloudFormation's rules (at most 128 characters of `[a-zA-Z0-9-]`, starting with a letter or
/// digit), stable across resumes like the token itself.
pub fn client_request_token(idempotency_token: &str) -> String {
    let digest = Sha256::digest(idempotency_token.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("stepstone-{}", &hex[..48])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exception_names_follow_the_java_sdk() {
        assert_eq!(
            exception_name("CloudFormation", "AlreadyExistsException"),
            "AlreadyExistsException"
        );
        assert_eq!(
            exception_name("CloudFormation", "ValidationError"),
            "CloudFormationException"
        );
        assert_eq!(
            exception_name("CloudFormation", "ChangeSetNotFound"),
            "ChangeSetNotFoundException"
        );
        assert_eq!(
            exception_name("Lambda", "ResourceNotFoundException"),
            "ResourceNotFoundException"
        );
        assert_eq!(exception_name("Lambda", "Weird"), "AWSLambdaException");
    }

    #[test]
    fn client_request_tokens_fit_cloudformation() {
        let token = client_request_token(
            "arn:aws:states:us-east-1:123456789012:execution:deploy:run-1/Create stack/7/0",
        );
        assert!(token.len() <= 128);
        assert!(token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        assert_eq!(
            token,
            client_request_token(
                "arn:aws:states:us-east-1:123456789012:execution:deploy:run-1/Create stack/7/0"
            )
        );
        assert_ne!(
            token,
            client_request_token(
                "arn:aws:states:us-east-1:123456789012:execution:deploy:run-1/Create stack/7/1"
            )
        );
    }
}
