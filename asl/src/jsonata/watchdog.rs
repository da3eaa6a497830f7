//! The watchdog of JSONata evaluations: one thread, started with the first evaluation, that
//! stops an evaluation whose execution was stopped ([`Interrupt`]) or that makes the process
//! grow by more than [`MAX_GROWTH`] bytes.
//!
//! jsonata-core bounds time and some sequence lengths itself, but not memory: a path that maps
//! each of 10,000 items to 10,000 more builds its 100 million values in a few seconds. The
//! process's resident size is read (Linux: `/proc/self/status`) every [`PERIOD`] while an
//! evaluation runs; one that has run at least a period is measured against the size when the
//! watchdog first saw it. Evaluations shorter than a period cost a registration only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use jsonata_core::evaluator::CancelToken;

use super::eval::Interrupt;

/// How much an evaluation may grow the process, in bytes.
pub const MAX_GROWTH: u64 = 512 << 20;

/// How often the watchdog looks, while evaluations run.
const PERIOD: Duration = Duration::from_millis(10);

/// One evaluation being watched; it stops being watched when this is dropped.
pub(crate) struct Watched {
    id: u64,
    /// Given to the evaluator: cancelled, the evaluation stops at its next step.
    pub(crate) token: CancelToken,
    over_memory: Arc<AtomicBool>,
}

impl Watched {
    /// Whether the watchdog stopped the evaluation for the memory it took.
    pub(crate) fn over_memory(&self) -> bool {
        self.over_memory.load(Ordering::Relaxed)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        watchdog().lock().remove(&self.id);
    }
}

struct Entry {
    token: CancelToken,
    interrupt: Option<Interrupt>,
    over_memory: Arc<AtomicBool>,
    /// The process's size when the watchdog first saw the evaluation.
    baseline: Option<u64>,
}

struct Watchdog {
    entries: Mutex<HashMap<u64, Entry>>,
    woken: Condvar,
    next: AtomicU64,
}

impl Watchdog {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        // Every operation on the map is one call: it stays consistent after a panic.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn watchdog() -> &'static Watchdog {
    static WATCHDOG: OnceLock<Watchdog> = OnceLock::new();
    WATCHDOG.get_or_init(|| {
        let started = std::thread::Builder::new()
            .name("jsonata-watchdog".into())
            .spawn(|| watch_loop(watchdog()));
        // Without the thread, evaluations are still bounded in time; only the memory bound
        // and the prompt stop are lost.
        drop(started);
        Watchdog {
            entries: Mutex::new(HashMap::new()),
            woken: Condvar::new(),
            next: AtomicU64::new(0),
        }
    })
}

/// Watches an evaluation that `interrupt` (if any) may stop.
pub(crate) fn watch(interrupt: Option<&Interrupt>) -> Watched {
    let dog = watchdog();
    let token = CancelToken::new();
    let over_memory = Arc::new(AtomicBool::new(false));
    let id = dog.next.fetch_add(1, Ordering::Relaxed);
    let mut entries = dog.lock();
    let was_idle = entries.is_empty();
    entries.insert(
        id,
        Entry {
            token: token.clone(),
            interrupt: interrupt.cloned(),
            over_memory: over_memory.clone(),
            baseline: None,
        },
    );
    drop(entries);
    if was_idle {
        dog.woken.notify_one();
    }
    Watched {
        id,
        token,
        over_memory,
    }
}

fn watch_loop(dog: &'static Watchdog) {
    loop {
        {
            let mut entries = dog.lock();
            while entries.is_empty() {
                entries = dog
                    .woken
                    .wait(entries)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            let size = resident_bytes();
            for entry in entries.values_mut() {
                if entry.interrupt.as_ref().is_some_and(Interrupt::is_raised) {
                    entry.token.cancel();
                }
                let Some(size) = size else { continue };
                match entry.baseline {
                    None => entry.baseline = Some(size),
                    Some(base) if size > base.saturating_add(MAX_GROWTH) => {
                        entry.over_memory.store(true, Ordering::Relaxed);
                        entry.token.cancel();
                    }
                    Some(_) => {}
                }
            }
        }
        std::thread::sleep(PERIOD);
    }
}

/// The process's resident size in bytes (`None` where it cannot be read).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
