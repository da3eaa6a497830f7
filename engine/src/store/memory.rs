//! An in-memory store: for tests, and for runs that need not survive the process. It holds the
//! same keys and values as the disk stores (`keyed.rs`), so encoding bugs show in tests.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Mutex;

use super::Result;
use super::keyed::{self, KeyValue, Keyed, Refused, Write};

/// Keeps executions in memory, in the disk stores' layout.
pub struct MemStore {
    keyed: Keyed<Map>,
}

/// The map under a [`MemStore`].
#[derive(Default)]
pub(crate) struct Map(Mutex<BTreeMap<String, Vec<u8>>>);

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        MemStore {
            // Nothing to gain from a writer thread: a map's writes take no time.
            keyed: Keyed::open(Map::default(), false, false).expect("a map cannot fail"),
        }
    }
}

impl Default for MemStore {
    fn default() -> Self {
        MemStore::new()
    }
}

impl KeyValue for Map {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.0.lock().expect("not poisoned").get(key).cloned())
    }

    fn apply(&self, writes: Vec<Write<'_>>) -> Result<Refused> {
        let mut map = self.0.lock().expect("not poisoned");
        for write in writes {
            for prefix in &write.delete_prefixes {
                let doomed: Vec<String> = map
                    .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
                    .take_while(|(k, _)| k.starts_with(prefix.as_str()))
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in doomed {
                    map.remove(&k);
                }
            }
            for k in &write.deletes {
                map.remove(k);
            }
            for (k, v) in write.puts {
                map.insert(k, v.into_owned());
            }
        }
        Ok(Refused::new())
    }

    fn scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let map = self.0.lock().expect("not poisoned");
        Ok(map
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn scan_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let map = self.0.lock().expect("not poisoned");
        let start = match after {
            Some(after) => Bound::Excluded(after),
            None => Bound::Included(prefix),
        };
        Ok(map
            .range::<str, _>((start, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn last_at_or_before(&self, prefix: &str, key: &str) -> Result<Option<(String, Vec<u8>)>> {
        let map = self.0.lock().expect("not poisoned");
        Ok(map
            .range::<str, _>((Bound::Included(prefix), Bound::Included(key)))
            .next_back()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone())))
    }
}

keyed::checkpoint_store_over_keys!(MemStore);
