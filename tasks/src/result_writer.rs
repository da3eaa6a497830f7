//! ResultWriter: the files a distributed Map writes its results to, as Step Functions lays
//! them out under `Prefix/<Map Run id>/`: `SUCCEEDED_0.json` and `FAILED_0.json` (those that
//! have entries; `.jsonl`, one entry per line, with `OutputType: JSONL`), and `manifest.json`
//! listing them: `{"DestinationBucket", "MapRunArn", "ResultFiles": {"FAILED", "PENDING",
//! "SUCCEEDED"}}`, each file as `{"Key", "Size"}`. The Map dispatches its writer as a task
//! whose input is the ResultWriter's Parameters (`Bucket`, `Prefix`) with `MapRunArn`,
//! `OutputType` and the shaped `Results` by status, each the file's content as text (written
//! by the Map entry by entry; an array of entries is also taken); the answer is where the
//! manifest is, `{"Bucket", "Key"}`.
//!
//! `arn:aws:states:::s3:putObject` writes them to S3 (through [`crate::AwsTasks`]);
//! `file://DIR` (a Stepstone extension, for dry runs) writes them under a local directory,
//! `Bucket` being a directory in it.

use serde_json::{Value, json};
use stepstone_engine::Failure;
use stepstone_engine::asl::errors;

/// The resource of a writer that writes to S3.
pub const PUT_OBJECT: &str = "arn:aws:states:::s3:putObject";

/// A writer's failure: States.ResultWriterFailed.
pub fn writer_failure(cause: String) -> Failure {
    Failure::new(errors::RESULT_WRITER_FAILED, cause)
}

/// Whether `request` is a ResultWriter's (rather than an ItemReader's).
pub fn is_writer_request(request: &Value) -> bool {
    request.get("Results").is_some() && request.get("MapRunArn").is_some()
}

/// What a writer writes: the bucket, and each object (key and content), the manifest last.
pub struct ResultFiles {
    /// `Bucket`.
    pub bucket: String,
    /// (key, content), the result files first, the manifest last.
    pub objects: Vec<(String, Vec<u8>)>,
}

impl ResultFiles {
    /// The files of a writer request (taken: the contents it holds become the files').
    pub fn of(mut request: Value) -> Result<ResultFiles, Failure> {
        let bucket = request
            .get("Bucket")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                writer_failure(
                    "the ResultWriter needs 'Bucket' (a string) in its Parameters".into(),
                )
            })?
            .to_owned();
        let prefix = request
            .get("Prefix")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let map_run_arn = request
            .get("MapRunArn")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let run_id = map_run_arn.rsplit(':').next().unwrap_or(&map_run_arn);
        let base = match prefix.trim_end_matches('/') {
            "" => run_id.to_owned(),
            p => format!("{p}/{run_id}"),
        };
        let lines = request.get("OutputType").and_then(Value::as_str) == Some("JSONL");
        let mut objects = Vec::new();
        let mut listed = serde_json::Map::new();
        for status in ["FAILED", "PENDING", "SUCCEEDED"] {
            let mut files = Vec::new();
            if let Some(body) = file_content(&mut request["Results"], status, lines) {
                let key = format!("{base}/{status}_0.{}", if lines { "jsonl" } else { "json" });
                files.push(json!({"Key": key, "Size": body.len()}));
                objects.push((key, body));
            }
            listed.insert(status.into(), Value::Array(files));
        }
        let manifest = json!({
            "DestinationBucket": bucket,
            "MapRunArn": map_run_arn,
            "ResultFiles": listed,
        });
        objects.push((
            format!("{base}/manifest.json"),
            manifest.to_string().into_bytes(),
        ));
        Ok(ResultFiles { bucket, objects })
    }

    /// Where the manifest is: the writer's answer.
    pub fn details(&self) -> Value {
        let key = self.objects.last().map(|(k, _)| k.as_str()).unwrap_or("");
        json!({"Bucket": self.bucket, "Key": key})
    }
}

/// The content of the result file of `status`, if it has entries: the Map gives it as text
/// (a JSON array, or JSON Lines with `OutputType` JSONL); an array of entries (a writer request
/// made otherwise) is written out here.
fn file_content(results: &mut Value, status: &str, lines: bool) -> Option<Vec<u8>> {
    match results.get_mut(status)? {
        Value::String(text) => Some(std::mem::take(text).into_bytes()),
        Value::Array(entries) if entries.is_empty() => None,
        Value::Array(entries) if lines => {
            let mut text = String::new();
            for entry in entries {
                text.push_str(&entry.to_string());
                text.push('\n');
            }
            Some(text.into_bytes())
        }
        entries @ Value::Array(_) => Some(entries.to_string().into_bytes()),
        _ => None,
    }
}

/// Writes a `file://DIR` writer's files under `DIR/<Bucket>/`. A Bucket or key that would
/// leave that directory (`..`, an absolute path) is refused: the definition names where the
/// files go, its input must not move them elsewhere.
pub(crate) async fn write_files(resource: &str, request: Value) -> Result<Value, Failure> {
    let dir = std::path::Path::new(resource.strip_prefix("file://").unwrap_or(resource));
    let files = ResultFiles::of(request)?;
    for (key, body) in &files.objects {
        let inside = |part: &str| {
            std::path::Path::new(part)
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
        };
        if !inside(&files.bucket) || !inside(key) {
            return Err(writer_failure(format!(
                "the ResultWriter's Bucket '{}' and key '{key}' must stay inside {}",
                files.bucket,
                dir.display()
            )));
        }
        let path = dir.join(&files.bucket).join(key);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| writer_failure(format!("cannot create {}: {e}", parent.display())))?;
        }
        tokio::fs::write(&path, body)
            .await
            .map_err(|e| writer_failure(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(files.details())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_laid_out_per_status_under_the_map_run_id() {
        let request = json!({"Bucket": "out", "Prefix": "jobs/", "OutputType": "JSONL",
            "MapRunArn": "arn:aws:states:us-east-1:1:mapRun:m/Label:abc-123",
            "Results": {"SUCCEEDED": [1, {"a": 2}], "FAILED": []}});
        let files = ResultFiles::of(request).unwrap();
        let keys: Vec<&str> = files.objects.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "jobs/abc-123/SUCCEEDED_0.jsonl",
                "jobs/abc-123/manifest.json"
            ]
        );
        assert_eq!(files.objects[0].1, b"1\n{\"a\":2}\n");
        let manifest: Value = serde_json::from_slice(&files.objects[1].1).unwrap();
        assert_eq!(
            manifest,
            json!({"DestinationBucket": "out",
                "MapRunArn": "arn:aws:states:us-east-1:1:mapRun:m/Label:abc-123",
                "ResultFiles": {"FAILED": [], "PENDING": [],
                    "SUCCEEDED": [{"Key": "jobs/abc-123/SUCCEEDED_0.jsonl", "Size": 10}]}})
        );
        assert_eq!(
            files.details(),
            json!({"Bucket": "out", "Key": "jobs/abc-123/manifest.json"})
        );
        let no_bucket = ResultFiles::of(json!({"MapRunArn": "x", "Results": {}}));
        assert_eq!(no_bucket.err().unwrap().error, "States.ResultWriterFailed");
    }

    #[tokio::test]
    async fn local_files_stay_inside_their_directory() {
        let dir = std::env::temp_dir().join(format!("stepstone-writer-{}", std::process::id()));
        let resource = format!("file://{}", dir.display());
        for (bucket, prefix) in [("../escape", "p"), ("b", "../../escape"), ("/tmp", "p")] {
            let request = json!({"Bucket": bucket, "Prefix": prefix, "MapRunArn": "a:b:id",
                "Results": {"SUCCEEDED": [1]}});
            let failure = write_files(&resource, request.clone()).await.unwrap_err();
            assert_eq!(failure.error, "States.ResultWriterFailed");
            assert!(
                failure.cause.contains("must stay inside"),
                "{}",
                failure.cause
            );
        }
        let request = json!({"Bucket": "b", "Prefix": "p", "MapRunArn": "a:b:id",
            "Results": {"SUCCEEDED": [1]}});
        write_files(&resource, request).await.unwrap();
        assert!(dir.join("b/p/id/manifest.json").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
