//! S3 for a distributed Map's ItemReader: `s3:getObject` (one object's items, by
//! `ReaderConfig.InputType`) and `s3:listObjectsV2` (one item per object under a `Prefix`:
//! `{"Etag", "Key", "LastModified", "Size", "StorageClass"}`, as Step Functions gives them).
//! Failures are States.ItemReaderFailed, with S3's error in the cause.

use aws_sdk_s3::Client;
use serde_json::{Value, json};
use stepstone_engine::Failure;

use super::error::sdk_failure;
use crate::item_reader::{ItemLines, ItemSink, ReaderConfig, check_size, reader_failure};
use crate::result_writer::{ResultFiles, writer_failure};

/// A required string field of the reader's Parameters.
fn required<'a>(request: &'a Value, field: &str, resource: &str) -> Result<&'a str, Failure> {
    request.get(field).and_then(Value::as_str).ok_or_else(|| {
        reader_failure(format!(
            "the ItemReader {resource} needs '{field}' (a string) in its Parameters"
        ))
    })
}

/// An S3 error as the reader's failure.
fn s3_failure<E, R>(what: &str, error: &aws_sdk_s3::error::SdkError<E, R>) -> Failure
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let failure = sdk_failure("S3", error);
    reader_failure(format!("{what}: {}: {}", failure.error, failure.cause))
}

/// `s3:getObject`: the object's items; with InputType MANIFEST, the rows of the inventory
/// whose manifest it is.
pub(crate) async fn get_object(client: &Client, request: Value) -> Result<Value, Failure> {
    let config = ReaderConfig::of(&request)?;
    let bucket = required(&request, "Bucket", "s3:getObject")?;
    let key = required(&request, "Key", "s3:getObject")?;
    let version = request
        .get("VersionId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let name = format!("s3://{bucket}/{key}");
    let body = open(client, bucket, key, version, &config, &name).await?;
    if config.is_manifest() {
        let manifest = body
            .collect()
            .await
            .map_err(|e| reader_failure(format!("cannot read {name}: {e}")))?
            .into_bytes();
        let inventory = config.inventory(&name, &manifest)?;
        let mut sink = inventory.sink();
        for key in &inventory.files {
            if sink.is_full() {
                break;
            }
            let name = format!("s3://{}/{key}", inventory.bucket);
            sink.next_object(&name, key.ends_with(".gz"))?;
            let rows = inventory.rows();
            let body = open(client, &inventory.bucket, key, None, rows, &name).await?;
            feed(body, &mut sink, &name).await?;
        }
        return sink.finish();
    }
    let mut sink = config.sink(&name);
    feed(body, &mut sink, &name).await?;
    sink.finish()
}

/// The body of object `key` (`name` in errors), refused before it is read if it is too big to
/// be read whole.
async fn open(
    client: &Client,
    bucket: &str,
    key: &str,
    version: Option<String>,
    config: &ReaderConfig,
    name: &str,
) -> Result<aws_sdk_s3::primitives::ByteStream, Failure> {
    let object = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version)
        .send()
        .await
        .map_err(|e| s3_failure(&format!("cannot read {name}"), &e))?;
    if let Some(size) = object.content_length() {
        check_size(config, name, u64::try_from(size).unwrap_or(0))?;
    }
    Ok(object.body)
}

/// Feeds `body` to `sink` as it arrives (JSON Lines and CSV become items chunk by chunk), and
/// stops reading once MaxItems items are read.
async fn feed(
    mut body: aws_sdk_s3::primitives::ByteStream,
    sink: &mut ItemSink<'_>,
    name: &str,
) -> Result<(), Failure> {
    while !sink.is_full() {
        let chunk = body
            .try_next()
            .await
            .map_err(|e| reader_failure(format!("cannot read {name}: {e}")))?;
        let Some(chunk) = chunk else {
            break;
        };
        sink.feed(&chunk)?;
    }
    Ok(())
}

/// `s3:listObjectsV2`: an item per object of `Bucket` under `Prefix`, in key order, page after
/// page (up to `MaxItems`).
pub(crate) async fn list_objects(client: &Client, request: Value) -> Result<Value, Failure> {
    let config = ReaderConfig::of(&request)?;
    let bucket = required(&request, "Bucket", "s3:listObjectsV2")?;
    let prefix = request
        .get("Prefix")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut items = ItemLines::default();
    let mut after = None;
    loop {
        let page = client
            .list_objects_v2()
            .bucket(bucket)
            .set_prefix(prefix.clone())
            .set_continuation_token(after.take())
            .send()
            .await
            .map_err(|e| s3_failure(&format!("cannot list s3://{bucket}"), &e))?;
        for object in page.contents() {
            if config.is_full(items.len()) {
                break;
            }
            items.push(&json!({
                "Etag": object.e_tag(),
                "Key": object.key(),
                "LastModified": object.last_modified().map(|t| t.secs()),
                "Size": object.size(),
                "StorageClass": object.storage_class().map(|c| c.as_str()),
            }))?;
        }
        after = page.next_continuation_token().map(str::to_owned);
        if config.is_full(items.len()) || !page.is_truncated().unwrap_or(false) || after.is_none() {
            return Ok(items.into_answer());
        }
    }
}

/// `s3:putObject` as a ResultWriter: the result files, then the manifest; the answer is where
/// the manifest is.
pub(crate) async fn write_results(client: &Client, request: Value) -> Result<Value, Failure> {
    let files = ResultFiles::of(request)?;
    for (key, body) in &files.objects {
        client
            .put_object()
            .bucket(&files.bucket)
            .key(key)
            .body(body.clone().into())
            .send()
            .await
            .map_err(|e| {
                let failure = sdk_failure("S3", &e);
                writer_failure(format!(
                    "cannot write s3://{}/{key}: {}: {}",
                    files.bucket, failure.error, failure.cause
                ))
            })?;
    }
    Ok(files.details())
}
