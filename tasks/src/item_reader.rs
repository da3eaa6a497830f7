//! ItemReader: where a distributed Map reads its items. The Map dispatches its reader as a
//! task (see `stepstone_engine`'s Map state): the request's resource is the ItemReader's
//! Resource and its input the evaluated Parameters (or Arguments) with the `ReaderConfig`
//! (`MaxItems` resolved); the answer is the array of items.
//!
//! - `arn:aws:states:::s3:getObject` reads one object (through [`crate::AwsTasks`]), and
//!   `arn:aws:states:::s3:listObjectsV2` lists a bucket's objects under a `Prefix`, one item per
//!   object, as Step Functions does.
//! - `file://PATH` (a Stepstone extension, for dry runs without S3) reads a local file as
//!   `getObject` reads an object.
//!
//! The object's text becomes items by `ReaderConfig.InputType`: `JSON` (an array, or the array
//! `ItemsPointer` points at), `JSONL` (one value per line), `CSV` (one object per row, keyed by
//! the header: the first row, or `CSVHeaders` with `CSVHeaderLocation: GIVEN`; fields
//! separated by `CSVDelimiter`, quoted as RFC 4180 quotes). `MaxItems` keeps the first items.

use serde_json::{Map, Value};
use stepstone_engine::Failure;
use stepstone_engine::asl::errors;

/// The resource of a reader that reads one object.
pub const GET_OBJECT: &str = "arn:aws:states:::s3:getObject";

/// The resource of a reader that lists objects.
pub const LIST_OBJECTS: &str = "arn:aws:states:::s3:listObjectsV2";

/// The largest object a reader reads. It is read whole, then held as items (several times its
/// size in memory): past this, a clear failure rather than a process the system kills.
pub const MAX_OBJECT_BYTES: u64 = 512 << 20;

/// Fails a read of `name`, `size` bytes long, past [`MAX_OBJECT_BYTES`].
pub fn check_size(name: &str, size: u64) -> Result<(), Failure> {
    if size > MAX_OBJECT_BYTES {
        return Err(reader_failure(format!(
            "{name} is {size} bytes: Stepstone reads an ItemReader's object whole, at most {MAX_OBJECT_BYTES} bytes (split it, or list its parts with s3:listObjectsV2)"
        )));
    }
    Ok(())
}

/// How an object's text becomes items.
#[derive(Debug, Clone, PartialEq)]
pub struct ReaderConfig {
    input_type: InputType,
    /// `MaxItems`: at most this many items (0: all).
    max_items: usize,
    /// `ItemsPointer` (JSON): where the array is in the document.
    items_pointer: Option<String>,
    /// `CSVHeaders`, when the header is given rather than read.
    headers: Option<Vec<String>>,
    delimiter: u8,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum InputType {
    Json,
    JsonLines,
    Csv,
}

impl ReaderConfig {
    /// The `ReaderConfig` of a reader request (`request` is the task's input).
    pub fn of(request: &Value) -> Result<ReaderConfig, Failure> {
        let config = request.get("ReaderConfig").unwrap_or(&Value::Null);
        let text = |field: &str| config.get(field).and_then(Value::as_str);
        let input_type = match text("InputType") {
            None | Some("JSON") => InputType::Json,
            Some("JSONL") => InputType::JsonLines,
            Some("CSV") => InputType::Csv,
            Some(other) => {
                return Err(reader_failure(format!(
                    "ReaderConfig.InputType {other} is not supported by Stepstone (JSON, JSONL and CSV are)"
                )));
            }
        };
        let max_items = match config.get("MaxItems") {
            None | Some(Value::Null) => 0,
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    reader_failure(format!(
                        "ReaderConfig.MaxItems must be a non-negative integer, not {v}"
                    ))
                })?,
        };
        let headers = match (text("CSVHeaderLocation"), config.get("CSVHeaders")) {
            (Some("GIVEN"), Some(Value::Array(names))) => Some(
                names
                    .iter()
                    .map(|n| n.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| reader_failure("CSVHeaders must be strings".into()))?,
            ),
            (Some("GIVEN"), _) => {
                return Err(reader_failure(
                    "CSVHeaderLocation GIVEN needs CSVHeaders, an array of column names".into(),
                ));
            }
            _ => None,
        };
        let delimiter = match text("CSVDelimiter") {
            None | Some("COMMA") => b',',
            Some("PIPE") => b'|',
            Some("SEMICOLON") => b';',
            Some("SPACE") => b' ',
            Some("TAB") => b'\t',
            Some(other) => {
                return Err(reader_failure(format!(
                    "ReaderConfig.CSVDelimiter {other} is not one of COMMA, PIPE, SEMICOLON, SPACE, TAB"
                )));
            }
        };
        Ok(ReaderConfig {
            input_type,
            max_items,
            items_pointer: text("ItemsPointer").map(str::to_owned),
            headers,
            delimiter,
        })
    }

    /// At most `MaxItems` of `items`.
    pub fn limit(&self, mut items: Vec<Value>) -> Vec<Value> {
        if self.max_items > 0 {
            items.truncate(self.max_items);
        }
        items
    }

    /// Whether `count` items already reach `MaxItems` (a listing stops there).
    pub fn is_full(&self, count: usize) -> bool {
        self.max_items > 0 && count >= self.max_items
    }

    /// The items of an object whose content is `bytes`; `name` says which object, in errors.
    pub fn items(&self, name: &str, bytes: &[u8]) -> Result<Vec<Value>, Failure> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| reader_failure(format!("{name} is not UTF-8 text: {e}")))?;
        let items = match self.input_type {
            InputType::Json => self.json_items(name, text)?,
            InputType::JsonLines => self.json_lines(name, text)?,
            InputType::Csv => self.csv_items(name, text)?,
        };
        Ok(self.limit(items))
    }

    fn json_items(&self, name: &str, text: &str) -> Result<Vec<Value>, Failure> {
        let document: Value = serde_json::from_str(text)
            .map_err(|e| reader_failure(format!("{name} is not valid JSON: {e}")))?;
        let found = match &self.items_pointer {
            Some(pointer) => document.pointer(pointer).ok_or_else(|| {
                reader_failure(format!("ItemsPointer {pointer} finds nothing in {name}"))
            })?,
            None => &document,
        };
        match found {
            Value::Array(items) => Ok(items.clone()),
            other => Err(reader_failure(format!(
                "the JSON items of {name} must be an array, not {}",
                stepstone_engine::asl::json_type_name(other)
            ))),
        }
    }

    fn json_lines(&self, name: &str, text: &str) -> Result<Vec<Value>, Failure> {
        let mut items = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if self.is_full(items.len()) {
                break;
            }
            if line.trim().is_empty() {
                continue;
            }
            items.push(serde_json::from_str(line).map_err(|e| {
                reader_failure(format!("line {} of {name} is not JSON: {e}", n + 1))
            })?);
        }
        Ok(items)
    }

    fn csv_items(&self, name: &str, text: &str) -> Result<Vec<Value>, Failure> {
        let mut rows = CsvRows {
            text: text.as_bytes(),
            at: 0,
            delimiter: self.delimiter,
        };
        let headers = match &self.headers {
            Some(given) => given.clone(),
            None => rows
                .next_row()
                .map_err(|e| reader_failure(format!("{name}: {e}")))?
                .ok_or_else(|| reader_failure(format!("{name} has no header row")))?,
        };
        let mut items = Vec::new();
        while !self.is_full(items.len()) {
            let Some(row) = rows
                .next_row()
                .map_err(|e| reader_failure(format!("{name}: {e}")))?
            else {
                break;
            };
            if row.len() == 1 && row[0].is_empty() {
                continue; // a blank line
            }
            if row.len() != headers.len() {
                return Err(reader_failure(format!(
                    "row {} of {name} has {} fields, its header {}",
                    items.len() + 1,
                    row.len(),
                    headers.len()
                )));
            }
            let object: Map<String, Value> = headers
                .iter()
                .cloned()
                .zip(row.into_iter().map(Value::String))
                .collect();
            items.push(Value::Object(object));
        }
        Ok(items)
    }
}

/// Rows of CSV text: fields separated by the delimiter, rows by `\n` or `\r\n`; a field in
/// double quotes may hold delimiters, line breaks and `""` (a quote).
struct CsvRows<'a> {
    text: &'a [u8],
    at: usize,
    delimiter: u8,
}

impl CsvRows<'_> {
    fn next_row(&mut self) -> Result<Option<Vec<String>>, String> {
        if self.at >= self.text.len() {
            return Ok(None);
        }
        let mut row = Vec::new();
        loop {
            let (field, more) = self.next_field()?;
            row.push(field);
            if !more {
                return Ok(Some(row));
            }
        }
    }

    /// The next field, and whether another follows on the same row.
    fn next_field(&mut self) -> Result<(String, bool), String> {
        let mut field = Vec::new();
        if self.text.get(self.at) == Some(&b'"') {
            self.at += 1;
            loop {
                match self.text.get(self.at) {
                    None => return Err("a quoted field is not closed".into()),
                    Some(b'"') if self.text.get(self.at + 1) == Some(&b'"') => {
                        field.push(b'"');
                        self.at += 2;
                    }
                    Some(b'"') => {
                        self.at += 1;
                        break;
                    }
                    Some(&b) => {
                        field.push(b);
                        self.at += 1;
                    }
                }
            }
        }
        loop {
            match self.text.get(self.at) {
                None => return Ok((text_of(field), false)),
                Some(&b) if b == self.delimiter => {
                    self.at += 1;
                    return Ok((text_of(field), true));
                }
                Some(b'\n') => {
                    self.at += 1;
                    return Ok((text_of(field), false));
                }
                Some(b'\r') if self.text.get(self.at + 1) == Some(&b'\n') => {
                    self.at += 2;
                    return Ok((text_of(field), false));
                }
                Some(&b) => {
                    field.push(b);
                    self.at += 1;
                }
            }
        }
    }
}

fn text_of(bytes: Vec<u8>) -> String {
    // The whole text was checked to be UTF-8, and fields split at ASCII bytes.
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A reader's failure: States.ItemReaderFailed, as Step Functions names it.
pub fn reader_failure(cause: String) -> Failure {
    Failure::new(errors::ITEM_READER_FAILED, cause)
}

/// Reads a `file://PATH` reader's items (relative paths from the working directory).
pub(crate) async fn read_file(resource: &str, request: &Value) -> Result<Value, Failure> {
    let path = resource.strip_prefix("file://").unwrap_or(resource);
    let config = ReaderConfig::of(request)?;
    let size = tokio::fs::metadata(path)
        .await
        .map_err(|e| reader_failure(format!("cannot read {path}: {e}")))?
        .len();
    check_size(path, size)?;
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|e| reader_failure(format!("cannot read {path}: {e}")))?;
    Ok(Value::Array(config.items(path, &bytes)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(c: Value) -> ReaderConfig {
        ReaderConfig::of(&json!({ "ReaderConfig": c })).unwrap()
    }

    #[test]
    fn csv_rows_become_objects_keyed_by_the_header() {
        let text = "id,name,note\n1,alpha,\"a, b\"\r\n2,beta,\"say \"\"hi\"\"\nthere\"\n\n";
        let items = config(json!({"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"}))
            .items("x.csv", text.as_bytes())
            .unwrap();
        assert_eq!(
            items,
            [
                json!({"id": "1", "name": "alpha", "note": "a, b"}),
                json!({"id": "2", "name": "beta", "note": "say \"hi\"\nthere"})
            ]
        );
        let given = config(json!({"InputType": "CSV", "CSVHeaderLocation": "GIVEN",
            "CSVHeaders": ["a", "b"], "CSVDelimiter": "PIPE", "MaxItems": 1}));
        assert_eq!(
            given.items("x", b"1|2\n3|4\n").unwrap(),
            [json!({"a": "1", "b": "2"})]
        );
        let short = config(json!({"InputType": "CSV"})).items("x.csv", b"a,b\n1\n");
        assert!(
            short
                .unwrap_err()
                .cause
                .contains("row 1 of x.csv has 1 fields")
        );
        let open = config(json!({"InputType": "CSV"})).items("x.csv", b"a\n\"1\n");
        assert_eq!(open.unwrap_err().error, "States.ItemReaderFailed");
    }

    #[test]
    fn json_and_json_lines() {
        let json = config(json!({"InputType": "JSON"}));
        assert_eq!(
            json.items("x", b"[1, {\"a\": 2}]").unwrap(),
            [json!(1), json!({"a": 2})]
        );
        let not_array = json.items("x.json", b"{\"a\": 1}").unwrap_err();
        assert!(not_array.cause.contains("must be an array, not an object"));
        let pointed = config(json!({"InputType": "JSON", "ItemsPointer": "/data/items"}));
        assert_eq!(
            pointed.items("x", b"{\"data\": {\"items\": [3]}}").unwrap(),
            [json!(3)]
        );
        let lines = config(json!({"InputType": "JSONL", "MaxItems": 2}));
        assert_eq!(
            lines.items("x", b"{\"a\":1}\n\n[2]\n3\n").unwrap(),
            [json!({"a": 1}), json!([2])]
        );
        let bad = config(json!({"InputType": "JSONL"})).items("x.jsonl", b"1\n{\n");
        assert!(bad.unwrap_err().cause.contains("line 2 of x.jsonl"));
    }

    #[test]
    fn an_object_past_the_bound_is_refused_before_it_is_read() {
        assert!(check_size("s3://b/k", MAX_OBJECT_BYTES).is_ok());
        let failure = check_size("s3://b/k", MAX_OBJECT_BYTES + 1).unwrap_err();
        assert_eq!(failure.error, "States.ItemReaderFailed");
        assert!(
            failure.cause.starts_with("s3://b/k is 536870913 bytes"),
            "{}",
            failure.cause
        );
    }

    #[test]
    fn a_bad_config_is_a_reader_failure_naming_the_field() {
        for (c, says) in [
            (json!({"InputType": "PARQUET"}), "InputType PARQUET"),
            (json!({"MaxItems": -1}), "MaxItems"),
            (
                json!({"InputType": "CSV", "CSVHeaderLocation": "GIVEN"}),
                "CSVHeaders",
            ),
            (json!({"CSVDelimiter": "DASH"}), "CSVDelimiter DASH"),
        ] {
            let failure = ReaderConfig::of(&json!({ "ReaderConfig": c })).unwrap_err();
            assert_eq!(failure.error, "States.ItemReaderFailed");
            assert!(failure.cause.contains(says), "{}", failure.cause);
        }
    }
}
