//! ItemReader: where a distributed Map reads its items. The Map dispatches its reader as a
//! task (see `stepstone_engine`'s Map state): the request's resource is the ItemReader's
//! Resource and its input the evaluated Parameters (or Arguments) with the `ReaderConfig`
//! (`MaxItems` resolved); the answer is the items as JSON Lines ([`ItemLines`]): the Map
//! holds them compactly, and a million items never exist as one `Value` array.
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
//! separated by `CSVDelimiter`, quoted as RFC 4180 quotes), `MANIFEST` (an S3 Inventory's
//! `manifest.json`: the rows of its gzipped CSV data files, keyed by its `fileSchema`).
//! `MaxItems` keeps the first items.
//! JSON Lines, CSV and a JSON array are made into items as their bytes arrive (the object is
//! never held whole, and reading stops at `MaxItems`); a JSON document with an `ItemsPointer`
//! is parsed once read whole.

use serde_json::{Map, Value};
use stepstone_engine::Failure;
use stepstone_engine::asl::errors;

/// The resource of a reader that reads one object.
pub const GET_OBJECT: &str = "arn:aws:states:::s3:getObject";

/// The resource of a reader that lists objects.
pub const LIST_OBJECTS: &str = "arn:aws:states:::s3:listObjectsV2";

/// The most a reader holds: a JSON object read whole, or the items read from one object or
/// listing. Past this, a clear failure rather than a process the system kills.
pub const MAX_OBJECT_BYTES: u64 = 512 << 20;

/// Fails, before reading it, an object of `size` bytes that would be read whole past
/// [`MAX_OBJECT_BYTES`] (JSON Lines and CSV are split as they arrive: their size is not bound).
pub fn check_size(config: &ReaderConfig, name: &str, size: u64) -> Result<(), Failure> {
    match config.reads_whole() && size > MAX_OBJECT_BYTES {
        true => Err(too_big(name, size)),
        false => Ok(()),
    }
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
    Manifest,
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
            Some("MANIFEST") => InputType::Manifest,
            Some(other) => {
                return Err(reader_failure(format!(
                    "ReaderConfig.InputType {other} is not supported by Stepstone (JSON, JSONL, CSV and MANIFEST are)"
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

    /// Whether `count` items already reach `MaxItems` (a listing stops there).
    pub fn is_full(&self, count: usize) -> bool {
        self.max_items > 0 && count >= self.max_items
    }

    /// Whether the object is read whole before it becomes items (a JSON document with an
    /// `ItemsPointer`, a manifest), rather
    /// than split as it arrives.
    pub fn reads_whole(&self) -> bool {
        match self.input_type {
            // A top-level array is split as it arrives; an ItemsPointer needs the document.
            InputType::Json => self.items_pointer.is_some(),
            InputType::Manifest => true,
            InputType::JsonLines | InputType::Csv => false,
        }
    }

    /// Whether the object is an S3 inventory's `manifest.json` (InputType MANIFEST): its items
    /// are the rows of the data files it names ([`ReaderConfig::inventory`]).
    pub fn is_manifest(&self) -> bool {
        self.input_type == InputType::Manifest
    }

    /// The inventory that manifest `name` (its bytes) describes: S3 Inventory's
    /// `manifest.json`, whose `files` are gzipped CSV (`fileFormat` CSV, the one Step
    /// Functions reads) in `destinationBucket`, their columns named by `fileSchema`.
    pub fn inventory(&self, name: &str, bytes: &[u8]) -> Result<Inventory, Failure> {
        let bad =
            |what: &str| reader_failure(format!("{name} is not an S3 inventory manifest: {what}"));
        let manifest: Value =
            serde_json::from_slice(bytes).map_err(|e| bad(&format!("not JSON ({e})")))?;
        match manifest.get("fileFormat").and_then(Value::as_str) {
            Some("CSV") => {}
            Some(other) => {
                return Err(reader_failure(format!(
                    "{name}: the inventory's fileFormat is {other}; Step Functions reads CSV inventories"
                )));
            }
            None => return Err(bad("no fileFormat")),
        }
        let schema: Vec<String> = manifest
            .get("fileSchema")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no fileSchema"))?
            .split(',')
            .map(|field| field.trim().to_owned())
            .collect();
        // `arn:aws:s3:::BUCKET` (or the bare name).
        let bucket = manifest
            .get("destinationBucket")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no destinationBucket"))?;
        let bucket = bucket.rsplit(":::").next().unwrap_or(bucket).to_owned();
        let files = manifest
            .get("files")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no files"))?
            .iter()
            .map(|file| file.get("key").and_then(Value::as_str).map(str::to_owned))
            .collect::<Option<Vec<String>>>()
            .ok_or_else(|| bad("a file without its key"))?;
        Ok(Inventory {
            bucket,
            files,
            rows: ReaderConfig {
                input_type: InputType::Csv,
                max_items: self.max_items,
                items_pointer: None,
                headers: Some(schema),
                delimiter: b',',
            },
        })
    }

    /// What turns the bytes of object `name` into items, fed as they arrive.
    pub fn sink(&self, name: &str) -> ItemSink<'_> {
        ItemSink {
            config: self,
            name: name.to_owned(),
            pending: Vec::new(),
            lines: 0,
            csv_headers: self.headers.clone(),
            csv_scanned: 0,
            csv_in_quotes: false,
            array: (self.input_type == InputType::Json && self.items_pointer.is_none())
                .then(ArraySplitter::default),
            gunzip: None,
            items: ItemLines::default(),
        }
    }
}

/// An S3 inventory (ItemReader InputType MANIFEST): its data files, read one after the other
/// into one [`ItemSink`] ([`ItemSink::next_object`]), each row an item keyed by the inventory's
/// `fileSchema`.
#[derive(Debug)]
pub struct Inventory {
    /// The bucket the data files are in.
    pub bucket: String,
    /// The data files' keys, in the manifest's order.
    pub files: Vec<String>,
    /// How their rows become items: CSV, headed by the schema.
    rows: ReaderConfig,
}

impl Inventory {
    /// What turns the data files' bytes into items (start each with [`ItemSink::next_object`]).
    pub fn sink(&self) -> ItemSink<'_> {
        self.rows.sink("")
    }

    /// How the data files are read (as CSV, split as they arrive: no size bound).
    pub fn rows(&self) -> &ReaderConfig {
        &self.rows
    }
}

/// Inflates a gzip stream (one or more members) fed a chunk at a time: an inventory's data
/// files are `.csv.gz`.
pub struct Gunzip(flate2::write::MultiGzDecoder<Vec<u8>>);

impl Default for Gunzip {
    fn default() -> Gunzip {
        Gunzip(flate2::write::MultiGzDecoder::new(Vec::new()))
    }
}

impl Gunzip {
    /// The bytes `chunk` inflates to (so far).
    pub fn feed(&mut self, name: &str, chunk: &[u8]) -> Result<Vec<u8>, Failure> {
        use std::io::Write;
        self.0
            .write_all(chunk)
            .map_err(|e| reader_failure(format!("{name} is not gzip data: {e}")))?;
        Ok(std::mem::take(self.0.get_mut()))
    }

    /// The last bytes, once the whole stream was fed.
    pub fn finish(mut self, name: &str) -> Result<Vec<u8>, Failure> {
        self.0
            .try_finish()
            .map_err(|e| reader_failure(format!("{name} ends before its gzip data does: {e}")))?;
        Ok(std::mem::take(self.0.get_mut()))
    }
}

/// Items as a reader answers them: JSON Lines, one compact item per line (the Map holds them
/// so, see `stepstone_engine`'s Map state), never a `Value` array of them all.
#[derive(Debug, Default)]
pub struct ItemLines {
    text: String,
    count: usize,
}

impl ItemLines {
    /// How many items.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Appends an item (refused past [`MAX_OBJECT_BYTES`] of items).
    pub fn push(&mut self, item: &Value) -> Result<(), Failure> {
        self.push_checked(&item.to_string())
    }

    /// Appends an item whose text is one JSON value on one line.
    fn push_checked(&mut self, text: &str) -> Result<(), Failure> {
        if (self.text.len() + text.len()) as u64 > MAX_OBJECT_BYTES {
            return Err(reader_failure(format!(
                "the items read are past {MAX_OBJECT_BYTES} bytes, the most Stepstone holds for one Map (split the data across Map Runs)"
            )));
        }
        self.text.push_str(text);
        self.text.push('\n');
        self.count += 1;
        Ok(())
    }

    /// The reader's answer.
    pub fn into_answer(self) -> Value {
        Value::String(self.text)
    }
}

/// Turns an object's bytes into items as they arrive ([`ItemSink::feed`], then
/// [`ItemSink::finish`]): JSON Lines, CSV and a JSON array are split line by line, row by row
/// and element by element, so the object is never held whole and reading stops at `MaxItems`;
/// a JSON document with an `ItemsPointer` (or a manifest) is parsed once it is whole.
pub struct ItemSink<'c> {
    config: &'c ReaderConfig,
    name: String,
    /// Bytes not made into items yet: a partial line or row, or the JSON document so far.
    pending: Vec<u8>,
    /// JSONL: the lines consumed so far (for the line number in errors).
    lines: usize,
    /// CSV: the header, once read or as given.
    csv_headers: Option<Vec<String>>,
    /// CSV: how far `pending` was scanned for quotes, and whether that point is in a quoted
    /// field (a row ends at a line break outside quotes; a quote inside an unquoted field,
    /// which RFC 4180 does not allow, can make a row look unclosed).
    csv_scanned: usize,
    csv_in_quotes: bool,
    /// JSON without ItemsPointer: the top-level array, split into its elements as it arrives.
    array: Option<ArraySplitter>,
    /// The object is gzipped: its bytes are inflated as they arrive.
    gunzip: Option<Gunzip>,
    items: ItemLines,
}

impl ItemSink<'_> {
    /// Whether `MaxItems` items were read: the rest of the object need not be.
    pub fn is_full(&self) -> bool {
        self.config.is_full(self.items.len())
    }

    /// The next bytes of the object (inflated first if it is gzipped).
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), Failure> {
        if self.gunzip.is_none() {
            return self.feed_plain(chunk);
        }
        // A few KiB at a time: deflate inflates up to about 1,000 times, so a whole chunk of
        // a crafted file could make a gigabyte at once; this way what it makes is items (or
        // a line too long) before the next piece is inflated, within the reader's bounds.
        for piece in chunk.chunks(8 << 10) {
            if self.is_full() {
                break;
            }
            let gunzip = self.gunzip.as_mut().expect("checked above");
            let plain = gunzip.feed(&self.name, piece)?;
            self.feed_plain(&plain)?;
        }
        Ok(())
    }

    fn feed_plain(&mut self, chunk: &[u8]) -> Result<(), Failure> {
        if self.is_full() {
            return Ok(());
        }
        self.pending.extend_from_slice(chunk);
        match self.config.input_type {
            InputType::Json if self.array.is_some() => self.split_array(),
            InputType::Json | InputType::Manifest => {
                if self.pending.len() as u64 > MAX_OBJECT_BYTES {
                    return Err(too_big(&self.name, self.pending.len() as u64));
                }
                Ok(())
            }
            InputType::JsonLines => {
                let Some(end) = last_line_break(&self.pending) else {
                    return self.check_pending();
                };
                let lines: Vec<u8> = self.pending.drain(..=end).collect();
                self.json_lines(&lines)
            }
            InputType::Csv => {
                let mut end = None;
                for (i, &b) in self.pending.iter().enumerate().skip(self.csv_scanned) {
                    match b {
                        b'"' => self.csv_in_quotes = !self.csv_in_quotes,
                        b'\n' if !self.csv_in_quotes => end = Some(i),
                        _ => {}
                    }
                }
                self.csv_scanned = self.pending.len();
                let Some(end) = end else {
                    return self.check_pending();
                };
                let rows: Vec<u8> = self.pending.drain(..=end).collect();
                self.csv_scanned -= rows.len();
                self.csv_rows(&rows)
            }
        }
    }

    /// The items, once the whole object (or `MaxItems` of it) was fed: the reader's answer.
    pub fn finish(mut self) -> Result<Value, Failure> {
        self.end_object()?;
        Ok(self.items.into_answer())
    }

    /// The next object (`name`, gzipped or not) of several read into the same items (an
    /// inventory's data files): the one before ends here.
    pub fn next_object(&mut self, name: &str, gzipped: bool) -> Result<(), Failure> {
        self.end_object()?;
        self.gunzip = gzipped.then(Gunzip::default);
        self.name = name.to_owned();
        self.lines = 0;
        self.csv_scanned = 0;
        self.csv_in_quotes = false;
        Ok(())
    }

    /// What is left of the object fed so far, as its last items.
    fn end_object(&mut self) -> Result<(), Failure> {
        if let Some(gunzip) = self.gunzip.take()
            && !self.is_full()
        {
            let rest = gunzip.finish(&self.name)?;
            self.feed_plain(&rest)?;
        }
        let rest = std::mem::take(&mut self.pending);
        // (An empty JSON document is not one.)
        if self.is_full() || (rest.is_empty() && self.config.input_type != InputType::Json) {
            return Ok(());
        }
        match self.config.input_type {
            InputType::Json if self.array.is_some() => {
                self.pending = rest;
                self.split_array()?;
                self.end_array()
            }
            InputType::Json => self.json_document(&rest),
            InputType::JsonLines => self.json_lines(&rest),
            InputType::Csv => self.csv_rows(&rest),
            // A manifest is read by `inventory`, its data files as CSV.
            InputType::Manifest => Err(reader_failure(format!(
                "{}: a manifest is read with ReaderConfig::inventory",
                self.name
            ))),
        }
    }

    /// A line or row longer than any object Stepstone reads whole is refused as it grows.
    fn check_pending(&self) -> Result<(), Failure> {
        match self.pending.len() as u64 > MAX_OBJECT_BYTES {
            true => Err(too_big(&self.name, self.pending.len() as u64)),
            false => Ok(()),
        }
    }

    /// Splits what `pending` holds of the top-level array into elements, each an item; keeps
    /// the element not yet whole.
    fn split_array(&mut self) -> Result<(), Failure> {
        let Some(mut scan) = self.array.take() else {
            return Ok(());
        };
        let mut starts_at = scan.element_start;
        let mut found = Vec::new();
        for i in scan.scanned..self.pending.len() {
            let b = self.pending[i];
            match scan.stage {
                ArrayStage::Before if b.is_ascii_whitespace() => {}
                ArrayStage::Before if b == b'[' => {
                    scan.stage = ArrayStage::Inside;
                    scan.depth = 1;
                    starts_at = i + 1;
                }
                ArrayStage::Before => return Err(not_an_array(&self.name, b)),
                ArrayStage::Inside if scan.in_string => match b {
                    _ if scan.escaped => scan.escaped = false,
                    b'\\' => scan.escaped = true,
                    b'"' => scan.in_string = false,
                    _ => {}
                },
                ArrayStage::Inside => match b {
                    b'"' => scan.in_string = true,
                    b'[' | b'{' => scan.depth += 1,
                    b'}' if scan.depth == 1 => {
                        return Err(reader_failure(format!(
                            "{} is not valid JSON: its array ends with '}}'",
                            self.name
                        )));
                    }
                    b']' | b'}' => {
                        scan.depth -= 1;
                        if scan.depth == 0 {
                            found.push((starts_at, i, true));
                            scan.stage = ArrayStage::After;
                        }
                    }
                    b',' if scan.depth == 1 => {
                        found.push((starts_at, i, false));
                        starts_at = i + 1;
                    }
                    _ => {}
                },
                ArrayStage::After if b.is_ascii_whitespace() => {}
                ArrayStage::After => {
                    return Err(reader_failure(format!(
                        "{} is not valid JSON: more after the array's end",
                        self.name
                    )));
                }
            }
        }
        for (start, end, last) in found {
            if self.is_full() {
                break;
            }
            let text = std::str::from_utf8(&self.pending[start..end])
                .map_err(|e| reader_failure(format!("{} is not UTF-8 text: {e}", self.name)))?
                .trim();
            // `[]` has no element; an empty one elsewhere (`[1,,2]`, `[1,]`) is not JSON.
            if text.is_empty() && last && scan.elements == 0 {
                continue;
            }
            serde_json::from_str::<&serde_json::value::RawValue>(text).map_err(|e| {
                reader_failure(format!(
                    "{} is not valid JSON: item {} of its array: {e}",
                    self.name,
                    scan.elements + 1
                ))
            })?;
            scan.elements += 1;
            self.items.push_checked(text)?;
        }
        // Keep only the element not yet whole.
        let keep = match scan.stage {
            ArrayStage::Inside => starts_at,
            _ => self.pending.len(),
        };
        self.pending.drain(..keep);
        scan.scanned = self.pending.len();
        scan.element_start = 0;
        self.array = Some(scan);
        self.check_pending()
    }

    /// The object ended: its array must have.
    fn end_array(&mut self) -> Result<(), Failure> {
        match self.array.as_ref().map(|scan| scan.stage) {
            Some(ArrayStage::Before) => Err(reader_failure(format!(
                "{} is not valid JSON: it is empty",
                self.name
            ))),
            Some(ArrayStage::Inside) if !self.is_full() => Err(reader_failure(format!(
                "{} is not valid JSON: its array is not closed",
                self.name
            ))),
            _ => Ok(()),
        }
    }

    fn json_document(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        let name = &self.name;
        let document: Value = serde_json::from_slice(bytes)
            .map_err(|e| reader_failure(format!("{name} is not valid JSON: {e}")))?;
        let found = match &self.config.items_pointer {
            Some(pointer) => document.pointer(pointer).ok_or_else(|| {
                reader_failure(format!("ItemsPointer {pointer} finds nothing in {name}"))
            })?,
            None => &document,
        };
        let Value::Array(found) = found else {
            return Err(reader_failure(format!(
                "the JSON items of {name} must be an array, not {}",
                stepstone_engine::asl::json_type_name(found)
            )));
        };
        for item in found {
            if self.is_full() {
                break;
            }
            self.items.push(item)?;
        }
        Ok(())
    }

    /// Whole lines of a JSON Lines object: each non-blank one is an item, kept as its text.
    fn json_lines(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        for line in bytes.split(|&b| b == b'\n') {
            self.lines += 1;
            if self.is_full() {
                break;
            }
            let n = self.lines;
            let name = &self.name;
            let line = std::str::from_utf8(line)
                .map_err(|e| reader_failure(format!("line {n} of {name} is not UTF-8: {e}")))?
                .trim();
            if line.is_empty() {
                continue;
            }
            serde_json::from_str::<&serde_json::value::RawValue>(line)
                .map_err(|e| reader_failure(format!("line {n} of {name} is not JSON: {e}")))?;
            self.items.push_checked(line)?;
        }
        // `split` sees an empty piece after the final line break: not a line of the object.
        if bytes.last() == Some(&b'\n') {
            self.lines -= 1;
        }
        Ok(())
    }

    /// Whole rows of a CSV object: the first is the header unless it was given; each other
    /// one an object keyed by it.
    fn csv_rows(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        let name = &self.name;
        std::str::from_utf8(bytes)
            .map_err(|e| reader_failure(format!("{name} is not UTF-8 text: {e}")))?;
        let mut rows = CsvRows {
            text: bytes,
            at: 0,
            delimiter: self.config.delimiter,
        };
        while !self.is_full() {
            let name = &self.name;
            let Some(row) = rows
                .next_row()
                .map_err(|e| reader_failure(format!("{name}: {e}")))?
            else {
                break;
            };
            let Some(headers) = &self.csv_headers else {
                self.csv_headers = Some(row);
                continue;
            };
            if row.len() == 1 && row[0].is_empty() {
                continue; // a blank line
            }
            if row.len() != headers.len() {
                return Err(reader_failure(format!(
                    "row {} of {name} has {} fields, its header {}",
                    self.items.len() + 1,
                    row.len(),
                    headers.len()
                )));
            }
            let object: Map<String, Value> = headers
                .iter()
                .cloned()
                .zip(row.into_iter().map(Value::String))
                .collect();
            self.items.push(&Value::Object(object))?;
        }
        Ok(())
    }
}

/// Where a JSON object's top-level array is split: outside it, or inside at some depth, in a
/// string or not.
#[derive(Debug, Default)]
struct ArraySplitter {
    stage: ArrayStage,
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// How much of `pending` was scanned, and where the element being read starts in it.
    scanned: usize,
    element_start: usize,
    /// Elements read.
    elements: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum ArrayStage {
    #[default]
    Before,
    Inside,
    After,
}

/// A JSON object whose top level is not an array, named by its first byte.
fn not_an_array(name: &str, first: u8) -> Failure {
    let found = match first {
        b'{' => "an object",
        b'"' => "a string",
        b't' | b'f' => "a boolean",
        b'n' => "null",
        b'-' | b'0'..=b'9' => "a number",
        _ => return reader_failure(format!("{name} is not valid JSON")),
    };
    reader_failure(format!(
        "the JSON items of {name} must be an array, not {found}"
    ))
}

/// Where the last line break of `bytes` is.
fn last_line_break(bytes: &[u8]) -> Option<usize> {
    bytes.iter().rposition(|&b| b == b'\n')
}

fn too_big(name: &str, size: u64) -> Failure {
    reader_failure(format!(
        "{name} is {size} bytes: Stepstone reads a JSON object with an ItemsPointer whole, at most {MAX_OBJECT_BYTES} bytes (put the items in a top-level array or in JSONL, which are read as they arrive, or split the object)"
    ))
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

/// Reads a `file://PATH` reader's items (relative paths from the working directory), a chunk
/// at a time. With InputType MANIFEST, PATH is an inventory's `manifest.json` and the keys of
/// its data files are paths from its directory.
pub(crate) async fn read_file(resource: &str, request: &Value) -> Result<Value, Failure> {
    let path = resource.strip_prefix("file://").unwrap_or(resource);
    let config = ReaderConfig::of(request)?;
    if config.is_manifest() {
        let mut manifest = config.sink(path);
        feed_file(path, &config, &mut manifest).await?;
        let inventory = config.inventory(path, &manifest.pending)?;
        let dir = std::path::Path::new(path)
            .parent()
            .unwrap_or(std::path::Path::new("."));
        let mut sink = inventory.sink();
        for key in &inventory.files {
            if sink.is_full() {
                break;
            }
            // As in a bucket: a key names a file under the manifest's directory, never one
            // elsewhere (`..`, an absolute path), whatever the manifest says.
            let inside = std::path::Path::new(key)
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !inside {
                return Err(reader_failure(format!(
                    "{path}: the inventory file '{key}' must be a path inside {}",
                    dir.display()
                )));
            }
            let file = dir.join(key);
            let file = file.to_string_lossy();
            sink.next_object(&file, key.ends_with(".gz"))?;
            feed_file(&file, inventory.rows(), &mut sink).await?;
        }
        return sink.finish();
    }
    let mut sink = config.sink(path);
    feed_file(path, &config, &mut sink).await?;
    sink.finish()
}

/// Feeds file `path` to `sink` a chunk at a time, until it ends or MaxItems items are read.
async fn feed_file(
    path: &str,
    config: &ReaderConfig,
    sink: &mut ItemSink<'_>,
) -> Result<(), Failure> {
    use tokio::io::AsyncReadExt;
    let cannot = |e: std::io::Error| reader_failure(format!("cannot read {path}: {e}"));
    let mut file = tokio::fs::File::open(path).await.map_err(cannot)?;
    check_size(config, path, file.metadata().await.map_err(cannot)?.len())?;
    let mut chunk = vec![0; 1 << 20];
    while !sink.is_full() {
        let n = file.read(&mut chunk).await.map_err(cannot)?;
        if n == 0 {
            break;
        }
        sink.feed(&chunk[..n])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(c: Value) -> ReaderConfig {
        ReaderConfig::of(&json!({ "ReaderConfig": c })).unwrap()
    }

    impl ReaderConfig {
        /// The items of `bytes`, fed a few bytes at a time (as an object arrives in chunks, cut
        /// anywhere: inside a line, a quoted field, a UTF-8 character).
        fn items(&self, name: &str, bytes: &[u8]) -> Result<Vec<Value>, Failure> {
            let mut answers = Vec::new();
            for size in [1, 3, 7, bytes.len().max(1)] {
                let mut sink = self.sink(name);
                for chunk in bytes.chunks(size) {
                    sink.feed(chunk)?;
                    if sink.is_full() {
                        break;
                    }
                }
                let Value::String(lines) = sink.finish()? else {
                    panic!("a reader answers JSON Lines");
                };
                let items: Vec<Value> = lines
                    .lines()
                    .map(|line| serde_json::from_str(line).unwrap())
                    .collect();
                answers.push(items);
            }
            assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
            Ok(answers.pop().unwrap())
        }
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
        // A top-level array is split as it arrives, strings and nesting kept whole.
        assert_eq!(
            json.items(
                "x",
                b" [ {\"s\": \"a, ]} \\\" [\"}, [1, [2]], \"\", null ] \n"
            )
            .unwrap(),
            [
                json!({"s": "a, ]} \" ["}),
                json!([1, [2]]),
                json!(""),
                json!(null)
            ]
        );
        assert_eq!(json.items("x", b"[ ]").unwrap(), Vec::<Value>::new());
        let limited = config(json!({"InputType": "JSON", "MaxItems": 1}));
        // Reading stops at MaxItems: what follows is not read (nor checked).
        assert_eq!(limited.items("x", b"[1, 2, oops").unwrap(), [json!(1)]);
        for (bad, says) in [
            (&b"[1, 2"[..], "not closed"),
            (b"[1,, 2]", "item 2"),
            (b"[1, 2,]", "item 3"),
            (b"[1] 2", "after the array"),
            (b"[1}", "ends with"),
            (b"  ", "empty"),
            (b"[{\"a\": }]", "item 1"),
        ] {
            let failure = json.items("x.json", bad).unwrap_err();
            assert!(
                failure.cause.contains(says),
                "{}: {}",
                String::from_utf8_lossy(bad),
                failure.cause
            );
            assert_eq!(failure.error, "States.ItemReaderFailed");
        }
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
        // Line numbers count across chunks and blank lines; characters cut between chunks
        // are whole again.
        let jsonl = config(json!({"InputType": "JSONL"}));
        let bad = jsonl.items("x.jsonl", b"1\n\n2\r\n{\n").unwrap_err();
        assert!(bad.cause.contains("line 4 of x.jsonl"), "{}", bad.cause);
        assert_eq!(
            jsonl
                .items("x", "{\"n\": \"\u{e9}\u{20ac}\"}\n[]".as_bytes())
                .unwrap(),
            [json!({"n": "\u{e9}\u{20ac}"}), json!([])]
        );
        let csv = config(json!({"InputType": "CSV"}));
        assert_eq!(
            csv.items("x", "k\n\u{20ac}\n".as_bytes()).unwrap(),
            [json!({"k": "\u{20ac}"})]
        );
    }

    #[test]
    fn an_inventory_reads_its_gzipped_data_files_as_rows_of_its_schema() {
        use std::io::Write;
        let gzip = |text: &str| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(text.as_bytes()).unwrap();
            e.finish().unwrap()
        };
        let manifest = json!({"destinationBucket": "arn:aws:s3:::inv", "fileFormat": "CSV",
            "fileSchema": "Bucket, Key, Size", "files": [{"key": "d/1.csv.gz"}, {"key": "d/2.csv.gz"}]});
        let files = [
            gzip("\"b\",\"x\n y\",\"1\"\n\"b\",\"z\",\"2\"\n"),
            gzip("\"b\",\"w\",\"3\""),
        ];
        for max in [0, 2] {
            let config = config(json!({"InputType": "MANIFEST", "MaxItems": max}));
            let inventory = config
                .inventory("m.json", manifest.to_string().as_bytes())
                .unwrap();
            assert_eq!(inventory.bucket, "inv");
            assert_eq!(inventory.files, ["d/1.csv.gz", "d/2.csv.gz"]);
            // Fed a few bytes at a time, cut anywhere in the gzip stream.
            let mut sink = inventory.sink();
            for (key, bytes) in inventory.files.iter().zip(&files) {
                sink.next_object(key, true).unwrap();
                for chunk in bytes.chunks(5) {
                    sink.feed(chunk).unwrap();
                }
            }
            let Value::String(lines) = sink.finish().unwrap() else {
                panic!("a reader answers JSON Lines")
            };
            let items: Vec<Value> = lines
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            let all = [
                json!({"Bucket": "b", "Key": "x\n y", "Size": "1"}),
                json!({"Bucket": "b", "Key": "z", "Size": "2"}),
                json!({"Bucket": "b", "Key": "w", "Size": "3"}),
            ];
            let expected = if max == 0 { &all[..] } else { &all[..2] };
            assert_eq!(items, expected, "MaxItems {max}");
        }
        let orc = json!({"destinationBucket": "b", "fileFormat": "ORC", "fileSchema": "Key", "files": []});
        let failure = config(json!({"InputType": "MANIFEST"}))
            .inventory("m.json", orc.to_string().as_bytes())
            .unwrap_err();
        assert!(
            failure.cause.contains("fileFormat is ORC"),
            "{}",
            failure.cause
        );
        // Data that is not gzip fails the reader, naming the file.
        let csv =
            config(json!({"InputType": "CSV", "CSVHeaderLocation": "GIVEN", "CSVHeaders": ["k"]}));
        let mut sink = csv.sink("x");
        sink.next_object("d/3.csv.gz", true).unwrap();
        let bad = sink
            .feed(b"not gzip at all")
            .and_then(|()| sink.finish().map(drop));
        assert!(bad.unwrap_err().cause.contains("d/3.csv.gz"));
    }

    #[test]
    fn an_object_past_the_bound_is_refused_before_it_is_read() {
        // A JSON document with an ItemsPointer is read whole.
        let json = config(json!({"InputType": "JSON", "ItemsPointer": "/items"}));
        assert!(check_size(&json, "s3://b/k", MAX_OBJECT_BYTES).is_ok());
        // JSON Lines, CSV and a top-level JSON array are split as they arrive: any size is read.
        for input_type in ["JSONL", "CSV", "JSON"] {
            let split = config(json!({ "InputType": input_type }));
            assert!(check_size(&split, "s3://b/k", 4 * MAX_OBJECT_BYTES).is_ok());
        }
        let failure = check_size(&json, "s3://b/k", MAX_OBJECT_BYTES + 1).unwrap_err();
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
