//! Group commit: a store's writes go through one writer thread, which commits all the writes
//! waiting for it in one transaction, so executions that save at the same time share a
//! commit (one fsync on redb, one flush on sled) instead of queueing for one each.
//!
//! Nothing about durability changes: a write's caller is answered only once the transaction
//! holding it is committed, and the writes of one transaction are applied in the order they
//! were submitted. What changes is who waits: an async caller ([`super::Saving`]) gives its
//! thread back to the runtime while the disk works, which on a small machine is the difference
//! between running other executions during an fsync and not.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::chain::{Chain, broken};
use super::kv::{KeyValue, Write};
use super::{Error, Result};

/// What a writer answers a write with, once it is committed (or failed).
pub(crate) type Done = Box<dyn FnOnce(Result<()>) + Send>;

/// At most this many writes go into one transaction: a bound on how long the first of them
/// waits for the others to be applied.
const MAX_WRITES: usize = 512;

/// At most this many bytes of values go into one transaction (a big Map's saves carry
/// batches of results), for the same reason.
const MAX_BYTES: usize = 32 << 20;

struct Job {
    write: Write<'static>,
    chain: Option<Chain>,
    done: Done,
}

/// A store's writer thread. Dropping it lets the thread apply what was submitted, then joins
/// it: when the store is gone, so is every write it accepted.
pub(crate) struct Committer {
    queue: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Option<JoinHandle<()>>,
}

impl Committer {
    /// Starts the writer thread over `kv`.
    pub(crate) fn start<K: KeyValue + Send + Sync + 'static>(kv: Arc<K>) -> Result<Committer> {
        let (queue, jobs) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("stepstone-store-writer".into())
            .spawn(move || write_all(&*kv, &jobs))
            .map_err(|e| Error::Io(format!("cannot start the store's writer thread: {e}")))?;
        Ok(Committer {
            queue: Mutex::new(Some(queue)),
            thread: Some(thread),
        })
    }

    /// Queues `write`, a link of `chain` if it has one; `done` is called from the writer
    /// thread once it is committed.
    pub(crate) fn submit(&self, write: Write<'static>, chain: Option<Chain>, done: Done) {
        let queue = self.queue.lock().expect("not poisoned");
        let job = Job { write, chain, done };
        let refused = match queue.as_ref() {
            Some(queue) => queue.send(job).err().map(|e| e.0),
            None => Some(job),
        };
        drop(queue);
        if let Some(job) = refused {
            (job.done)(Err(stopped()));
        }
    }
}

/// What a write fails with when the writer thread is gone.
pub(crate) fn stopped() -> Error {
    Error::Io("the store's writer thread stopped before the write was committed".into())
}

impl Drop for Committer {
    fn drop(&mut self) {
        // Closing the queue ends the thread's loop once it has applied what is in it.
        self.queue.lock().expect("not poisoned").take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread: takes the first write waiting, then every other one already queued (up
/// to the bounds), applies them in one transaction and answers each.
fn write_all<K: KeyValue>(kv: &K, jobs: &mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut bytes = size(&first.write);
        let mut batch = vec![first];
        while batch.len() < MAX_WRITES && bytes < MAX_BYTES {
            match jobs.try_recv() {
                Ok(job) => {
                    bytes += size(&job.write);
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        let mut writes = Vec::with_capacity(batch.len());
        let mut answers = Vec::with_capacity(batch.len());
        // Each write's chain, by the write's index.
        let mut chains: Vec<Option<Chain>> = Vec::new();
        for mut job in batch {
            // A link after a failed save is answered at once, unapplied. (A link after one in
            // this same transaction stands or falls with it.)
            if job.chain.as_ref().is_some_and(Chain::is_broken) {
                (job.done)(Err(broken()));
                continue;
            }
            // What was left to encode is encoded here, off the callers' threads; a write that
            // cannot be encoded fails alone (and the saves after it in its chain).
            if let Err(e) = job.write.encode_now() {
                if let Some(chain) = &job.chain {
                    chain.break_off();
                }
                (job.done)(Err(e));
                continue;
            }
            writes.push(job.write);
            answers.push(job.done);
            chains.push(job.chain);
        }
        if writes.is_empty() {
            continue;
        }
        // A database that panics (sled does on some faults) fails the writes it was given,
        // and the thread goes on: no caller is left waiting for an answer that never comes.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| kv.apply(writes)))
            .unwrap_or_else(|_| {
                Err(Error::Io(
                    "the store's database panicked while writing".into(),
                ))
            });
        match result {
            Err(e) => {
                chains.iter().flatten().for_each(Chain::break_off);
                for done in answers {
                    done(Err(e.clone()));
                }
            }
            // A write its fence refused (engines sharing a database: its execution's lease
            // went to another engine) fails alone; the others of the transaction committed.
            Ok(refused) => {
                let mut refused: std::collections::HashMap<usize, Error> =
                    refused.into_iter().collect();
                for (index, (done, chain)) in answers.into_iter().zip(chains).enumerate() {
                    match refused.remove(&index) {
                        Some(e) => {
                            chain.iter().for_each(Chain::break_off);
                            done(Err(e));
                        }
                        None => done(Ok(())),
                    }
                }
            }
        }
    }
}

fn size(write: &Write<'_>) -> usize {
    write.puts.iter().map(|(k, v)| k.len() + v.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::kv::Refused;
    use crate::store::memory::Map;
    use std::borrow::Cow;

    /// A memory map that counts transactions (to see writes share them), can be held (`gate`)
    /// and fails its first transaction when `fail_first` is set.
    #[derive(Default)]
    struct Counting {
        map: Map,
        transactions: std::sync::atomic::AtomicUsize,
        gate: Mutex<()>,
        fail_first: std::sync::atomic::AtomicBool,
    }

    impl KeyValue for Counting {
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
            self.map.get(key)
        }
        fn apply(&self, writes: Vec<Write<'_>>) -> Result<Refused> {
            let _held = self.gate.lock().unwrap();
            self.transactions
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if self
                .fail_first
                .swap(false, std::sync::atomic::Ordering::SeqCst)
            {
                return Err(Error::Io("no space".into()));
            }
            self.map.apply(writes)
        }
        fn scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
            self.map.scan(prefix)
        }
        fn scan_page(
            &self,
            prefix: &str,
            after: Option<&str>,
            limit: usize,
        ) -> Result<Vec<(String, Vec<u8>)>> {
            self.map.scan_page(prefix, after, limit)
        }
        fn last_at_or_before(&self, prefix: &str, key: &str) -> Result<Option<(String, Vec<u8>)>> {
            self.map.last_at_or_before(prefix, key)
        }
    }

    fn put(key: &str, value: &str) -> Write<'static> {
        let mut write = Write::default();
        write
            .puts
            .push((key.to_owned(), Cow::Owned(value.as_bytes().to_vec())));
        write
    }

    #[test]
    fn writes_waiting_together_share_one_transaction_in_order() {
        let kv = Arc::new(Counting::default());
        let committer = Committer::start(kv.clone()).unwrap();
        let (tx, rx) = mpsc::channel();
        // Holding the database makes the writes pile up behind the first.
        let held = kv.gate.lock().unwrap();
        for i in 0..50 {
            let tx = tx.clone();
            let mut write = put("k", &i.to_string());
            write.puts.push((format!("n/{i:02}"), Cow::Borrowed(b"x")));
            committer.submit(write, None, Box::new(move |r| tx.send((i, r)).unwrap()));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        drop(held);
        let mut answered: Vec<i32> = (0..50)
            .map(|_| rx.recv().unwrap())
            .map(|(i, r)| {
                r.unwrap();
                i
            })
            .collect();
        answered.sort();
        assert_eq!(answered, (0..50).collect::<Vec<_>>());
        let transactions = kv.transactions.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            transactions <= 2,
            "50 waiting writes took {transactions} transactions"
        );
        // Applied in submission order: the last write of `k` wins.
        assert_eq!(kv.get("k").unwrap().unwrap(), b"49");
        assert_eq!(kv.scan("n/").unwrap().len(), 50);
    }

    #[test]
    fn a_failed_transaction_fails_each_of_its_writes_and_the_writer_goes_on() {
        struct Failing(std::sync::atomic::AtomicBool);
        impl KeyValue for Failing {
            fn get(&self, _: &str) -> Result<Option<Vec<u8>>> {
                Ok(None)
            }
            fn apply(&self, _: Vec<Write<'_>>) -> Result<Refused> {
                if self.0.swap(false, std::sync::atomic::Ordering::SeqCst) {
                    panic!("the disk went away");
                }
                Err(Error::Io("no space".into()))
            }
            fn scan(&self, _: &str) -> Result<Vec<(String, Vec<u8>)>> {
                Ok(Vec::new())
            }
            fn scan_page(
                &self,
                _: &str,
                _: Option<&str>,
                _: usize,
            ) -> Result<Vec<(String, Vec<u8>)>> {
                Ok(Vec::new())
            }
            fn last_at_or_before(&self, _: &str, _: &str) -> Result<Option<(String, Vec<u8>)>> {
                Ok(None)
            }
        }
        let committer =
            Committer::start(Arc::new(Failing(std::sync::atomic::AtomicBool::new(true)))).unwrap();
        let (tx, rx) = mpsc::channel();
        for _ in 0..2 {
            let tx = tx.clone();
            committer.submit(put("k", "v"), None, Box::new(move |r| tx.send(r).unwrap()));
            let error = rx.recv().unwrap().unwrap_err().to_string();
            assert!(
                error.contains("panicked") || error.contains("no space"),
                "{error}"
            );
        }
    }

    #[test]
    fn a_save_queued_after_a_failed_one_of_its_chain_is_not_applied() {
        // Fails its first transaction, then works.
        let kv = Arc::new(Counting::default());
        kv.fail_first
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let committer = Committer::start(kv.clone()).unwrap();
        let chain = Chain::default();
        let submit = |key: &str, chain: Option<Chain>| {
            let (tx, rx) = mpsc::channel();
            committer.submit(put(key, "v"), chain, Box::new(move |r| tx.send(r).unwrap()));
            rx.recv().unwrap()
        };
        assert!(submit("first", Some(chain.clone())).is_err());
        // The database works again, but the next link of the broken chain is refused...
        let error = submit("second", Some(chain)).unwrap_err().to_string();
        assert!(error.contains("earlier save"), "{error}");
        assert_eq!(kv.get("second").unwrap(), None);
        // ...while other writes go on.
        submit("other", None).unwrap();
        submit("another", Some(Chain::default())).unwrap();
        assert_eq!(kv.get("other").unwrap().as_deref(), Some(&b"v"[..]));
    }
}
