//! Map Runs: DescribeMapRun and ListMapRuns, read from the records a distributed Map keeps in
//! the store (`MapRunRecord`: written when it starts, as its children finish, and when it ends).

use serde_json::Value;

use super::{ApiError, Service, api_error, execution_of, page, store_error, text};
use crate::cli::answers::{describe_map_run, list_map_runs};

pub(super) fn operate(
    service: &Service,
    operation: &str,
    input: &Value,
) -> Option<Result<Value, ApiError>> {
    let answered = match operation {
        "DescribeMapRun" => text(input, "mapRunArn").and_then(|arn| {
            describe_map_run(&*service.store, arn)
                .map_err(store_error)?
                .ok_or_else(|| {
                    api_error(
                        "ResourceNotFound",
                        format!("Map Run Does Not Exist: '{arn}'"),
                    )
                })
        }),
        "ListMapRuns" => text(input, "executionArn").and_then(|arn| {
            execution_of(service, arn)?;
            page(
                list_map_runs(&*service.store, arn).map_err(store_error)?,
                input,
                "mapRuns",
            )
        }),
        _ => return None,
    };
    Some(answered)
}
