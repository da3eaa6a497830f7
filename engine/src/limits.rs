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

/// How deep `value` nests and how large it is as compact JSON text, measured in one walk that
/// stops early: past `depth_limit` levels (the depth is then `depth_limit + 1` and the size
/// partial) or past `size_limit` bytes (the size is then some figure above `size_limit`). Equal
/// to [`depth`] and [`json_size`] when within both limits.
pub(crate) fn measure(
    value: &serde_json::Value,
    depth_limit: usize,
    size_limit: usize,
) -> stepstone_asl::growth::Extent {
    let mut walk = Measure {
        size: 0,
        size_limit,
    };
    let depth = walk.value(value, depth_limit);
    stepstone_asl::growth::Extent {
        depth: u16::try_from(depth).unwrap_or(u16::MAX),
        size: walk.size as u64,
    }
}

struct Measure {
    size: usize,
    size_limit: usize,
}

impl Measure {
    /// Adds `value`'s size; returns its depth, counted up to `limit + 1`.
    fn value(&mut self, value: &serde_json::Value, limit: usize) -> usize {
        use serde_json::Value;
        match value {
            Value::Null => self.size += 4,
            Value::Bool(b) => self.size += if *b { 4 } else { 5 },
            Value::Number(n) => self.size += number_size(n),
            Value::String(s) => self.size += string_size(s),
            Value::Array(items) => {
                // Brackets and the commas between items.
                self.size += 2 + items.len().saturating_sub(1);
                return 1 + self.children(items.iter(), limit);
            }
            Value::Object(map) => {
                // Braces, commas, and each key with its colon.
                self.size += 2 + map.len().saturating_sub(1);
                for key in map.keys() {
                    self.size += string_size(key) + 1;
                }
                return 1 + self.children(map.values(), limit);
            }
        }
        0
    }

    fn children<'v>(
        &mut self,
        children: impl Iterator<Item = &'v serde_json::Value>,
        limit: usize,
    ) -> usize {
        if limit == 0 {
            // Too deep already: the caller counts this level as `limit + 1`.
            return 0;
        }
        let mut deepest = 0;
        for child in children {
            if self.size > self.size_limit {
                break;
            }
            deepest = deepest.max(self.value(child, limit - 1));
            if deepest > limit - 1 {
                break;
            }
        }
        deepest
    }
}

/// A string's size as JSON text: quotes, and what serde_json's escaping adds (`\"` and `\\`
/// and the short escapes take 2 bytes, other control characters 6: `\u0001`).
fn string_size(s: &str) -> usize {
    const fn escape_extra() -> [u8; 256] {
        let mut extra = [0u8; 256];
        let mut b = 0;
        while b < 0x20 {
            extra[b] = 5;
            b += 1;
        }
        extra[b'\x08' as usize] = 1;
        extra[b'\x0c' as usize] = 1;
        extra[b'\n' as usize] = 1;
        extra[b'\r' as usize] = 1;
        extra[b'\t' as usize] = 1;
        extra[b'"' as usize] = 1;
        extra[b'\\' as usize] = 1;
        extra
    }
    static EXTRA: [u8; 256] = escape_extra();
    let count = |bytes: &[u8]| -> usize {
        bytes
            .iter()
            .map(|&b| usize::from(EXTRA[usize::from(b)]))
            .sum()
    };
    // Most strings have nothing to escape: eight bytes at a time, only a word holding a byte
    // below 0x20, a quote or a backslash is looked at byte by byte.
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let has_below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGHS != 0;
    let has_byte = |w: u64, b: u8| has_below(w ^ (ONES * u64::from(b)), 1);
    let bytes = s.as_bytes();
    if bytes.len() < 8 {
        return bytes.len() + 2 + count(bytes);
    }
    let special = |w: u64| has_below(w, 0x20) || has_byte(w, b'"') || has_byte(w, b'\\');
    let mut chunks = bytes.chunks_exact(8);
    let mut extra = count(chunks.remainder());
    for chunk in &mut chunks {
        if special(u64::from_ne_bytes(chunk.try_into().expect("8 bytes"))) {
            extra += count(chunk);
        }
    }
    s.len() + 2 + extra
}

fn number_size(n: &serde_json::Number) -> usize {
    if let Some(i) = n.as_u64() {
        i.checked_ilog10().map_or(1, |d| d as usize + 1)
    } else if let Some(i) = n.as_i64() {
        // Negative: a sign and the digits.
        1 + i
            .unsigned_abs()
            .checked_ilog10()
            .map_or(1, |d| d as usize + 1)
    } else {
        json_size(&serde_json::Value::Number(n.clone()))
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

    use super::{depth, json_size, measure, nests_deeper};

    #[test]
    fn measuring_agrees_with_the_text_and_stops_at_the_limits() {
        let values = [
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(-7),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(1.5e-300),
            json!(0.1),
            json!(""),
            json!("quote \" backslash \\ newline \n tab \t bell \u{7} del \u{7f} é 🦀"),
            json!([]),
            json!({}),
            json!([1, [2, [3, {"k\n": [null, "v"]}]], {"a": {}, "b": []}]),
            json!({"": "", "long key with \u{1}": [-1.25, 10, 100, 1000]}),
        ];
        for v in &values {
            let m = measure(v, 128, usize::MAX);
            assert_eq!(m.size, json_size(v) as u64, "{v}");
            assert_eq!(usize::from(m.depth), depth(v, 128), "{v}");
        }
        // Every byte that needs escaping, at every offset of a word and of the remainder.
        for special in ['"', '\\', '\n', '\u{1}', '\u{1f}', ' ', '\u{7f}', 'é'] {
            for at in 0..20 {
                let mut text: String = "a".repeat(20);
                text.insert(at, special);
                let v = json!(text);
                assert_eq!(measure(&v, 1, usize::MAX).size, json_size(&v) as u64, "{v}");
            }
        }
        // Past the size limit it stops with a figure above it; past the depth limit, at
        // limit + 1.
        let big = json!(["x".repeat(1000), "y".repeat(1000), "z".repeat(1000)]);
        let m = measure(&big, 128, 1500);
        assert!(m.size > 1500 && m.size < json_size(&big) as u64, "{m:?}");
        let deep = json!([[[[1]]]]);
        assert_eq!(measure(&deep, 2, usize::MAX).depth, 3);
        assert_eq!(measure(&deep, 4, usize::MAX).depth, 4);
        assert_eq!(measure(&json!([]), 0, usize::MAX).depth, 1);
    }

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
