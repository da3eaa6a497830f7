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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_history_events: Some(25_000),
            max_payload_bytes: 256 * 1024,
            max_map_concurrency: 40,
        }
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

    /// Sets how many iterations of one inline Map may run at once.
    pub fn with_max_map_concurrency(mut self, n: usize) -> Limits {
        self.max_map_concurrency = n.max(1);
        self
    }
}
