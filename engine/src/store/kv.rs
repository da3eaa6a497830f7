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
    /// durable when it returns (as durable as the database makes it: see each store). A write
    /// whose [`Fence`] no longer holds is left out, and the answer lists it (its index, and
    /// why) while the others are applied.
    fn apply(&self, writes: Vec<Write<'_>>) -> Result<Refused>;

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

    /// The number the next new execution is kept under, when the database hands them out
    /// (several engines creating executions at once); `None`: the layout counts them itself
    /// (`meta/next`).
    fn next_number(&self) -> Result<Option<u64>> {
        Ok(None)
    }

    /// Reserves the ARN of an execution about to be created, for this engine alone:
    /// [`super::Error::AlreadyExists`] when another engine has it. By default nothing: one
    /// engine uses the database.
    fn reserve(&self, execution_arn: &str) -> Result<()> {
        let _ = execution_arn;
        Ok(())
    }

    /// Gives back a reservation whose creation did not happen (the ARN was taken, the write
    /// failed).
    fn unreserve(&self, execution_arn: &str) {
        let _ = execution_arn;
    }

    /// What a write of execution `execution_arn` must be fenced by (`None`: nothing, one
    /// engine uses the database); an error when this engine may not write it at all.
    fn fence(&self, execution_arn: &str) -> Result<Option<Fence>> {
        let _ = execution_arn;
        Ok(None)
    }

    /// How engines sharing the database divide its executions (`None`: one engine owns it).
    fn leases(&self) -> Option<&dyn super::Leases> {
        None
    }
}

/// The writes [`KeyValue::apply`] left out, by index, each with why.
pub(crate) type Refused = Vec<(usize, super::Error)>;

/// What applying one write came to: its refusal is its failure.
pub(crate) fn applied(result: Result<Refused>) -> Result<()> {
    match result?.into_iter().next() {
        Some((_, refused)) => Err(refused),
        None => Ok(()),
    }
}

/// A write's condition when engines share a database: the execution's lease is still this
/// engine's, under the epoch it was claimed with (another engine that took it over raised it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fence {
    pub(crate) execution: String,
    pub(crate) epoch: i64,
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
    /// Applied only while this holds.
    pub(crate) fence: Option<Fence>,
}

/// A value encoded when its write is applied.
pub(crate) type Later = Box<dyn FnOnce() -> Result<Vec<u8>> + Send>;

impl Write<'_> {
    /// The write with its values owned (to hand to another thread).
    pub(crate) fn into_owned(self) -> Write<'static> {
        Write {
            puts: self
                .puts
                .into_iter()
                .map(|(key, value)| (key, std::borrow::Cow::Owned(value.into_owned())))
                .collect(),
            later: self.later,
            deletes: self.deletes,
            delete_prefixes: self.delete_prefixes,
            fence: self.fence,
        }
    }

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
