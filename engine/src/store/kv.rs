//! What a database gives the stores' key layout (`keyed.rs`): string keys, byte values, and
//! atomic writes. sled, redb and the memory map each implement [`KeyValue`]; the writer thread
//! (`group_commit.rs`) applies [`Write`]s through it.

use std::borrow::Cow;

use super::Result;

/// What a database gives the layout: string keys, byte values.
pub(crate) trait KeyValue {
    /// The value under `key`.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// Applies `writes` in order, all or none, each one's deletions first, then its puts;
    /// durable when it returns (as durable as the database makes it: see each store).
    fn apply(&self, writes: Vec<Write<'_>>) -> Result<()>;

    /// Every pair whose key starts with `prefix`, in key order.
    fn scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>>;

    /// At most `limit` pairs whose key starts with `prefix`, in key order, after the key
    /// `after` (from the first when `None`): a scan in pages, for what is too large to read at
    /// once.
    fn scan_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>>;

    /// The pair with the greatest key that starts with `prefix` and is at most `key`.
    fn last_at_or_before(&self, prefix: &str, key: &str) -> Result<Option<(String, Vec<u8>)>>;
}

/// One atomic write. Values are borrowed where they can be (a save's records are written
/// from the `Changes` as they are).
#[derive(Default)]
pub(crate) struct Write<'a> {
    pub(crate) puts: Vec<(String, Cow<'a, [u8]>)>,
    /// Values still to be encoded, by whoever applies the write ([`Write::encode_later`]).
    pub(crate) later: Vec<(String, Later)>,
    pub(crate) deletes: Vec<String>,
    /// Every key with one of these prefixes is deleted.
    pub(crate) delete_prefixes: Vec<String>,
}

/// A value encoded when its write is applied.
pub(crate) type Later = Box<dyn FnOnce() -> Result<Vec<u8>> + Send>;

impl Write<'_> {
    /// Puts under `key` what `encode` makes, encoded only when the write is about to be
    /// applied: a disk store's writer thread encodes it, not the interpreter's thread (the two
    /// then work at once, on a machine with a core for each).
    pub(crate) fn encode_later(&mut self, key: String, encode: Later) {
        self.later.push((key, encode));
    }

    /// Encodes the values left for later, as puts (after the others); the first failure fails
    /// the write. Called before [`KeyValue::apply`], which takes only encoded writes.
    pub(crate) fn encode_now(&mut self) -> Result<()> {
        for (key, encode) in std::mem::take(&mut self.later) {
            let value = encode()?;
            self.puts.push((key, Cow::Owned(value)));
        }
        Ok(())
    }
}
