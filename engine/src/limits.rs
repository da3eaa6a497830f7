//! Limits that keep a runaway definition from hanging or exhausting memory. Defaults are AWS's.

/// Limits of one execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Limits {
    /// History events before the execution fails (AWS: 25,000). `None` lifts the limit.
    pub max_history_events: Option<u64>,
    /// Largest state input or output, task input or result, in bytes (AWS: 256 KiB).
    pub max_payload_bytes: usize,
    /// Iterations of one inline Map running at once, whatever its MaxConcurrency (AWS runs at
    /// most 40 concurrent iterations of an inline Map).
    pub max_map_concurrency: usize,
    /// The longest one JSONata expression may run before it fails with
    /// States.QueryEvaluationError (JSONata's D1012); an execution's TimeoutSeconds, when
    /// nearer, bounds it too. AWS states no such figure; 10 s is far more than any expression
    /// that ends needs.
    #[serde(default = "default_evaluation_budget")]
    pub evaluation_budget: std::time::Duration,
}

fn default_evaluation_budget() -> std::time::Duration {
    std::time::Duration::from_secs(10)
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_history_events: Some(25_000),
            max_payload_bytes: 256 * 1024,
            max_map_concurrency: 40,
            evaluation_budget: default_evaluation_budget(),
        }
    }
}

/// How deep a value in an execution may nest (arrays and objects): as deep as JSON text is read
/// (serde_json's limit, which also bounds the input, task results and Lambda responses). A
/// state whose output or variables nest deeper fails with States.DataLimitExceeded: a loop that
/// wraps a value once per pass would otherwise grow it past what the store reads back, or what
/// the stack holds. AWS states no such limit; its 256 KiB payload limit allows far deeper.
pub const MAX_DEPTH: usize = 128;

/// Whether `value` nests deeper than `limit` levels (`[]` and `{"a": 1}` are one level).
pub(crate) fn nests_deeper(value: &serde_json::Value, limit: usize) -> bool {
    depth(value, limit) > limit
}

/// How deep `value` nests, counted up to `limit + 1` (0 for a scalar). It never descends more
/// than `limit + 1` levels, so the recursion is bounded however deep the value is.
pub(crate) fn depth(value: &serde_json::Value, limit: usize) -> usize {
    use serde_json::Value;
    let below = |children: &mut dyn Iterator<Item = &Value>| match limit {
        0 => 0,
        _ => children.map(|c| depth(c, limit - 1)).max().unwrap_or(0),
    };
    match value {
        Value::Array(items) => 1 + below(&mut items.iter()),
        Value::Object(map) => 1 + below(&mut map.values()),
        _ => 0,
    }
}

/// The size of `value` as compact JSON text, in bytes, counted without building the text.
pub(crate) fn json_size(value: &serde_json::Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing into a counter cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

impl Limits {
    /// Sets the history-event limit (`None` lifts it).
    pub fn with_max_history_events(mut self, limit: Option<u64>) -> Limits {
        self.max_history_events = limit;
        self
    }

    /// Sets the payload limit in bytes.
    pub fn with_max_payload_bytes(mut self, bytes: usize) -> Limits {
        self.max_payload_bytes = bytes;
        self
    }

    /// Sets how long one JSONata expression may run.
    pub fn with_evaluation_budget(mut self, budget: std::time::Duration) -> Limits {
        self.evaluation_budget = budget;
        self
    }

    /// Sets how many iterations of one inline Map may run at once.
    pub fn with_max_map_concurrency(mut self, n: usize) -> Limits {
        self.max_map_concurrency = n.max(1);
        self
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::nests_deeper;

    #[test]
    fn nesting_is_counted_by_containers() {
        assert!(!nests_deeper(&json!(1), 0));
        assert!(nests_deeper(&json!([]), 0));
        assert!(!nests_deeper(&json!([1, {"a": 2}]), 2));
        assert!(nests_deeper(&json!([1, {"a": [2]}]), 2));
        let mut deep = json!(0);
        for _ in 0..100_000 {
            deep = Value::Array(vec![deep]);
        }
        assert!(nests_deeper(&deep, 128));
        // Dropping it recursively would overflow the stack: take it apart from the top.
        let mut items = vec![deep];
        while let Some(Value::Array(inner)) = items.pop() {
            items.extend(inner);
        }
    }
}
