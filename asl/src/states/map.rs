//! `{"Type": "Map", "ItemProcessor": {...}}`: runs a processor for each item of an array.

use serde_json::Value;

use super::{
    DataFlow, ErrorHandling, NumberOrExpr, QueryLanguage, StateCx, Supports, Transition,
    int_or_expr, jsonata_value, template, transition,
};
use crate::Code;
use crate::definition::Scope;
use crate::jsonata::{self, JsonataValue};
use crate::parse::{Fields, Loader};
use crate::path::Path;
use crate::template::Template;

/// How a Map runs its iterations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProcessorMode {
    /// `INLINE` (the default): iterations run inside this execution.
    #[default]
    Inline,
    /// `DISTRIBUTED`: each iteration is a child execution of its own.
    Distributed,
}

/// `ItemProcessor` (or the legacy `Iterator`).
#[derive(Debug, Clone, PartialEq)]
pub struct ItemProcessor {
    /// `ProcessorConfig.Mode`
    pub mode: ProcessorMode,
    /// `ProcessorConfig.ExecutionType` (DISTRIBUTED only): `STANDARD` or `EXPRESS`.
    pub execution_type: Option<String>,
    /// The states each iteration runs.
    pub scope: Scope,
}

/// `ItemReader`: where a distributed Map reads its items (S3 objects, CSV, JSON, manifests).
#[derive(Debug, Clone, PartialEq)]
pub struct ItemReader {
    /// `Resource`, e.g. `arn:aws:states:::s3:getObject`.
    pub resource: String,
    /// `ReaderConfig`, kept as written.
    pub reader_config: Option<Value>,
    /// `Parameters` (JSONPath).
    pub parameters: Option<Template>,
    /// `Arguments` (JSONata).
    pub arguments: Option<JsonataValue>,
}

/// `ItemBatcher`: groups items into batches.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemBatcher {
    /// `MaxItemsPerBatch`
    pub max_items_per_batch: Option<NumberOrExpr<i64>>,
    /// `MaxItemsPerBatchPath`
    pub max_items_per_batch_path: Option<Path>,
    /// `MaxInputBytesPerBatch`
    pub max_input_bytes_per_batch: Option<NumberOrExpr<i64>>,
    /// `MaxInputBytesPerBatchPath`
    pub max_input_bytes_per_batch_path: Option<Path>,
    /// `BatchInput`: a fixed object added to every batch.
    pub batch_input: Option<Value>,
}

/// `ResultWriter`: where a distributed Map writes its results.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultWriter {
    /// `Resource`
    pub resource: Option<String>,
    /// `Parameters` (JSONPath)
    pub parameters: Option<Template>,
    /// `Arguments` (JSONata)
    pub arguments: Option<JsonataValue>,
    /// `WriterConfig`, kept as written.
    pub writer_config: Option<Value>,
}

/// A Map state.
#[derive(Debug, Clone, PartialEq)]
pub struct Map {
    /// `ItemProcessor` or `Iterator`.
    pub processor: Option<ItemProcessor>,
    /// `ItemsPath` (JSONPath): where the items are. Default `$`.
    pub items_path: Option<Path>,
    /// `Items` (JSONata): an array or an expression.
    pub items: Option<JsonataValue>,
    /// `ItemSelector` in JSONPath (or the legacy `Parameters`, kept in `flow.parameters`).
    pub item_selector: Option<Template>,
    /// `ItemSelector` in JSONata.
    pub item_selector_jsonata: Option<JsonataValue>,
    /// `ItemReader`
    pub item_reader: Option<ItemReader>,
    /// `ItemBatcher`
    pub item_batcher: Option<ItemBatcher>,
    /// `ResultWriter`
    pub result_writer: Option<ResultWriter>,
    /// `MaxConcurrency`: 0 means no limit.
    pub max_concurrency: Option<NumberOrExpr<i64>>,
    /// `MaxConcurrencyPath`
    pub max_concurrency_path: Option<Path>,
    /// `ToleratedFailurePercentage` (0-100)
    pub tolerated_failure_percentage: Option<NumberOrExpr<f64>>,
    /// `ToleratedFailurePercentagePath`
    pub tolerated_failure_percentage_path: Option<Path>,
    /// `ToleratedFailureCount`
    pub tolerated_failure_count: Option<NumberOrExpr<i64>>,
    /// `ToleratedFailureCountPath`
    pub tolerated_failure_count_path: Option<Path>,
    /// `Label`: names a distributed Map's child executions.
    pub label: Option<String>,
    /// Data-flow fields.
    pub flow: DataFlow,
    /// `Retry` and `Catch`.
    pub errors: ErrorHandling,
    /// `Next` or `End`.
    pub transition: Option<Transition>,
}

impl Map {
    /// Whether its iterations run as child executions (`ProcessorConfig.Mode` DISTRIBUTED).
    pub fn is_distributed(&self) -> bool {
        self.processor
            .as_ref()
            .is_some_and(|p| p.mode == ProcessorMode::Distributed)
    }
}

/// The longest Label AWS accepts.
pub(crate) const MAX_LABEL_CHARS: usize = 40;

/// Characters AWS refuses in a Map Label (the same rule as execution names): whitespace,
/// brackets, wildcards, punctuation with a meaning in ARNs or URLs, and control characters.
fn is_label_char_invalid(c: char) -> bool {
    c.is_whitespace()
        || "<>{}[]?*\"#%\\^|~`$&,;:/".contains(c)
        || ('\u{0}'..='\u{1f}').contains(&c)
        || ('\u{7f}'..='\u{9f}').contains(&c)
}

impl Map {
    pub(crate) fn load(f: &mut Fields, l: &mut Loader, cx: &StateCx) -> Map {
        use QueryLanguage::{JsonPath, Jsonata};
        let lang = cx.lang;
        if f.has("ItemSelector") && f.has("Parameters") {
            l.error(
                f.at.clone(),
                "Only one of the fields 'ItemSelector' and 'Parameters' may be set",
            );
        }
        let supports = Supports {
            parameters: true,
            result_selector: true,
            result_path: true,
            assign: true,
            arguments: false,
        };
        let flow = DataFlow::load(f, l, lang, supports);
        let errors = ErrorHandling::load(f, l, lang);
        let processor = processor(f, l);
        let items_path = if f.in_language(l, "ItemsPath", JsonPath, lang) {
            f.reference_path(l, "ItemsPath")
        } else {
            None
        };
        let items = if f.in_language(l, "Items", Jsonata, lang) {
            jsonata_value(f, l, "Items")
        } else {
            None
        };
        let (item_selector, item_selector_jsonata) = match lang {
            JsonPath => (template(f, l, "ItemSelector"), None),
            Jsonata => (
                None,
                f.object(l, "ItemSelector")
                    .map(|v| JsonataValue::load(l, v, &f.pointer("ItemSelector"))),
            ),
        };
        let label = f.str(l, "Label").map(str::to_owned);
        if let Some(label) = &label {
            if label.chars().count() > MAX_LABEL_CHARS {
                l.error(
                    f.pointer("Label"),
                    format!("Label cannot exceed {MAX_LABEL_CHARS} characters"),
                );
            } else if let Some(c) = label.chars().find(|&c| is_label_char_invalid(c)) {
                l.error(
                    f.pointer("Label"),
                    format!("Label contains invalid character: {c:?}"),
                );
            }
        }
        let item_reader = item_reader(f, l, lang);
        let item_batcher = item_batcher(f, l, lang);
        let result_writer = result_writer(f, l, lang);
        let (max_concurrency, max_concurrency_path) =
            pair(f, l, lang, "MaxConcurrency", |f, l, lang| {
                int_or_expr(f, l, "MaxConcurrency", lang, 0, i64::from(i32::MAX))
            });
        let (tolerated_failure_count, tolerated_failure_count_path) =
            pair(f, l, lang, "ToleratedFailureCount", |f, l, lang| {
                int_or_expr(f, l, "ToleratedFailureCount", lang, 0, i64::from(i32::MAX))
            });
        let (tolerated_failure_percentage, tolerated_failure_percentage_path) = pair(
            f,
            l,
            lang,
            "ToleratedFailurePercentage",
            |f, l, lang| {
                let v = f.take("ToleratedFailurePercentage")?;
                let at = f.pointer("ToleratedFailurePercentage");
                match (v, lang) {
                    (Value::String(s), Jsonata) => match jsonata::parsed(l, &at, s) {
                        Some(e) => Some(NumberOrExpr::Expr(e)),
                        None => {
                            l.error(at, "The field 'ToleratedFailurePercentage' must be a number or a JSONata expression {% ... %}");
                            None
                        }
                    },
                    (v, _) => match v.as_f64() {
                        Some(x) if (0.0..=100.0).contains(&x) => Some(NumberOrExpr::Value(x)),
                        _ => {
                            l.error(at, format!("The field 'ToleratedFailurePercentage' must be a number between 0 and 100, but got {v}"));
                            None
                        }
                    },
                }
            },
        );
        Map {
            processor,
            items_path,
            items,
            item_selector,
            item_selector_jsonata,
            item_reader,
            item_batcher,
            result_writer,
            max_concurrency,
            max_concurrency_path,
            tolerated_failure_percentage,
            tolerated_failure_percentage_path,
            tolerated_failure_count,
            tolerated_failure_count_path,
            label,
            flow,
            errors,
            transition: transition(f, l),
        }
    }
}

type Loaded<T> = (Option<T>, Option<Path>);

/// A value field and its `...Path` twin: at most one of the two.
fn pair<T>(
    f: &mut Fields,
    l: &mut Loader,
    lang: QueryLanguage,
    key: &str,
    value: impl FnOnce(&mut Fields, &mut Loader, QueryLanguage) -> Option<T>,
) -> Loaded<T> {
    let path_key = format!("{key}Path");
    if f.has(key) && f.has(&path_key) {
        l.error(
            f.at.clone(),
            format!("Only one of the fields '{key}' and '{path_key}' may be set"),
        );
    }
    let v = value(f, l, lang);
    let p = if f.in_language(l, &path_key, QueryLanguage::JsonPath, lang) {
        f.reference_path(l, &path_key)
    } else {
        None
    };
    (v, p)
}

fn processor(f: &mut Fields, l: &mut Loader) -> Option<ItemProcessor> {
    let key = match (f.has("ItemProcessor"), f.has("Iterator")) {
        (true, true) => {
            l.error(
                f.at.clone(),
                "Only one of the fields 'ItemProcessor' and 'Iterator' may be set",
            );
            "ItemProcessor"
        }
        (true, false) => "ItemProcessor",
        (false, true) => "Iterator",
        (false, false) => {
            f.require("ItemProcessor");
            return None;
        }
    };
    let at = f.pointer(key);
    let v = f.take(key)?;
    let mut pf = Fields::open(v, at, l)?;
    let (mut mode, mut execution_type) = (ProcessorMode::Inline, None);
    if let Some(config) = pf.object(l, "ProcessorConfig") {
        let mut cf = Fields::open(config, pf.pointer("ProcessorConfig"), l)?;
        match cf.str(l, "Mode") {
            Some("INLINE") | None => {}
            Some("DISTRIBUTED") => mode = ProcessorMode::Distributed,
            Some(other) => l.error(cf.pointer("Mode"), format!("The field 'Mode' should have one of these values: [INLINE, DISTRIBUTED], not '{other}'")),
        }
        match cf.str(l, "ExecutionType") {
            Some(t @ ("STANDARD" | "EXPRESS")) => execution_type = Some(t.to_owned()),
            Some(other) => l.error(cf.pointer("ExecutionType"), format!("The field 'ExecutionType' should have one of these values: [STANDARD, EXPRESS], not '{other}'")),
            None => {}
        }
        cf.finish(l);
    }
    let scope = Scope::load_fields(l, &mut pf);
    pf.finish(l);
    Some(ItemProcessor {
        mode,
        execution_type,
        scope: scope?,
    })
}

/// A `file://` Resource of an ItemReader or ResultWriter (`what`) is a Stepstone extension.
fn flag_local_files(l: &mut Loader, fields: &Fields, resource: Option<&str>, what: &str) {
    if resource.is_some_and(|r| r.starts_with("file://")) {
        l.report(
            Code::StepstoneExtension,
            fields.pointer("Resource"),
            format!("{what} (file://) is a Stepstone extension: AWS Step Functions would reject this resource"),
        );
    }
}

fn item_reader(f: &mut Fields, l: &mut Loader, lang: QueryLanguage) -> Option<ItemReader> {
    let v = f.object(l, "ItemReader")?;
    let mut rf = Fields::open(v, f.pointer("ItemReader"), l)?;
    let resource = rf.req_str(l, "Resource").map(str::to_owned);
    flag_local_files(
        l,
        &rf,
        resource.as_deref(),
        "An ItemReader reading a local file",
    );
    let reader_config = rf.object(l, "ReaderConfig").cloned();
    let parameters = if rf.in_language(l, "Parameters", QueryLanguage::JsonPath, lang) {
        template(&mut rf, l, "Parameters")
    } else {
        None
    };
    let arguments = if rf.in_language(l, "Arguments", QueryLanguage::Jsonata, lang) {
        jsonata_value(&mut rf, l, "Arguments")
    } else {
        None
    };
    rf.finish(l);
    Some(ItemReader {
        resource: resource?,
        reader_config,
        parameters,
        arguments,
    })
}

fn item_batcher(f: &mut Fields, l: &mut Loader, lang: QueryLanguage) -> Option<ItemBatcher> {
    let v = f.object(l, "ItemBatcher")?;
    let mut bf = Fields::open(v, f.pointer("ItemBatcher"), l)?;
    let (max_items_per_batch, max_items_per_batch_path) =
        pair(&mut bf, l, lang, "MaxItemsPerBatch", |f, l, lang| {
            int_or_expr(f, l, "MaxItemsPerBatch", lang, 1, i64::from(i32::MAX))
        });
    let (max_input_bytes_per_batch, max_input_bytes_per_batch_path) =
        pair(&mut bf, l, lang, "MaxInputBytesPerBatch", |f, l, lang| {
            int_or_expr(f, l, "MaxInputBytesPerBatch", lang, 1, 262_144)
        });
    let batch_input = bf.object(l, "BatchInput").cloned();
    bf.finish(l);
    Some(ItemBatcher {
        max_items_per_batch,
        max_items_per_batch_path,
        max_input_bytes_per_batch,
        max_input_bytes_per_batch_path,
        batch_input,
    })
}

fn result_writer(f: &mut Fields, l: &mut Loader, lang: QueryLanguage) -> Option<ResultWriter> {
    let v = f.object(l, "ResultWriter")?;
    let mut wf = Fields::open(v, f.pointer("ResultWriter"), l)?;
    let resource = wf.str(l, "Resource").map(str::to_owned);
    flag_local_files(
        l,
        &wf,
        resource.as_deref(),
        "A ResultWriter writing local files",
    );
    let parameters = if wf.in_language(l, "Parameters", QueryLanguage::JsonPath, lang) {
        template(&mut wf, l, "Parameters")
    } else {
        None
    };
    let arguments = if wf.in_language(l, "Arguments", QueryLanguage::Jsonata, lang) {
        jsonata_value(&mut wf, l, "Arguments")
    } else {
        None
    };
    let writer_config = wf.object(l, "WriterConfig").cloned();
    wf.finish(l);
    if resource.is_none() && writer_config.is_none() {
        l.error(
            f.pointer("ResultWriter"),
            "ResultWriter needs a Resource or a WriterConfig",
        );
    }
    Some(ResultWriter {
        resource,
        parameters,
        arguments,
        writer_config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_characters() {
        for c in [
            '?', '\\', '&', ']', '|', '#', '<', ',', ';', '*', ':', '^', ' ', '\u{0}', '\u{1f}',
            '\u{7f}', '\u{9f}',
        ] {
            assert!(is_label_char_invalid(c), "{c:?}");
        }
        for c in ['a', 'Z', '0', '-', '_', '.', 'é'] {
            assert!(!is_label_char_invalid(c), "{c:?}");
        }
    }
}
