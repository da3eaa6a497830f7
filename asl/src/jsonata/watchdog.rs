//! The watchdog of JSONata evaluations: one thread, started with the first evaluation, that
//! stops an evaluation whose execution was stopped ([`Interrupt`]) or that makes the process
//! grow by more than [`MAX_GROWTH`] bytes.
//!
//! jsonata-core bounds time and some sequence lengths itself, but not memory: a path that maps
//! each of 10,000 items to 10,000 more builds its 100 million values in a few seconds. The
//! process's resident size is read (Linux: `/proc/self/status`) every [`PERIOD`] while an
//! evaluation runs; one that has run at least a period is measured against the size when the
//! watchdog first saw it.
//!
//! Each thread that evaluates has a slot the watchdog reads; an evaluation only marks its slot
//! (two uncontended locks), so a short one costs tens of nanoseconds, and the watchdog sleeps
//! while no evaluation runs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use jsonata_core::evaluator::CancelToken;

/// A flag that stops the evaluations that hold it, from any thread: StopExecution raises it,
/// and an expression that loops forever then fails at its next step instead of running on.
/// Once raised it stays raised.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Interrupt {
    /// A flag not raised yet.
    pub fn new() -> Interrupt {
        Interrupt::default()
    }

    /// Stops every evaluation holding this flag (or a clone of it), within milliseconds (the
    /// watchdog, `watchdog.rs`, passes it on).
    pub fn raise(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether [`Interrupt::raise`] was called on this flag or a clone.
    pub fn is_raised(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// How much an evaluation may grow the process, in bytes.
pub const MAX_GROWTH: u64 = 512 << 20;

/// How often the watchdog looks, while evaluations run.
const PERIOD: Duration = Duration::from_millis(10);

/// One evaluating thread, as the watchdog sees it.
#[derive(Default)]
struct Slot {
    /// Odd while an evaluation runs: each start and end adds one, so the watchdog tells one
    /// evaluation from the next.
    generation: AtomicU64,
    /// The running evaluation's token and interrupt; changed and acted on under this lock.
    running: Mutex<Running>,
    /// Set when the watchdog stopped the evaluation for its memory.
    over_memory: AtomicBool,
}

#[derive(Default)]
struct Running {
    token: CancelToken,
    interrupt: Option<Interrupt>,
}

impl Slot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Running> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One evaluation being watched; it stops being watched when this is dropped.
pub(crate) struct Watched {
    slot: Arc<Slot>,
    /// Given to the evaluator: cancelled, the evaluation stops at its next step.
    pub(crate) token: CancelToken,
}

impl Watched {
    /// Whether the watchdog stopped the evaluation for the memory it took.
    pub(crate) fn over_memory(&self) -> bool {
        self.slot.over_memory.load(Ordering::Relaxed)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let mut running = self.slot.lock();
        running.interrupt = None;
        self.slot.generation.fetch_add(1, Ordering::AcqRel);
    }
}

struct Watchdog {
    slots: Mutex<Vec<Weak<Slot>>>,
    /// Whether the watchdog sleeps until an evaluation starts.
    asleep: AtomicBool,
    thread: Option<std::thread::Thread>,
}

fn watchdog() -> &'static Watchdog {
    static WATCHDOG: OnceLock<Watchdog> = OnceLock::new();
    WATCHDOG.get_or_init(|| {
        // Without the thread, evaluations are still bounded in time; only the memory bound
        // and the prompt stop are lost.
        let thread = std::thread::Builder::new()
            .name("jsonata-watchdog".into())
            .spawn(|| watch_loop(watchdog()))
            .ok()
            .map(|handle| handle.thread().clone());
        Watchdog {
            slots: Mutex::new(Vec::new()),
            asleep: AtomicBool::new(false),
            thread,
        }
    })
}

thread_local! {
    static SLOT: Arc<Slot> = {
        let slot = Arc::new(Slot::default());
        watchdog()
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::downgrade(&slot));
        slot
    };
}

/// Watches an evaluation on this thread that `interrupt` (if any) may stop.
pub(crate) fn watch(interrupt: Option<&Interrupt>) -> Watched {
    let slot = SLOT.with(Arc::clone);
    let token = {
        let mut running = slot.lock();
        // A token once cancelled stays so: the next evaluation gets a fresh one.
        if running.token.is_cancelled() {
            running.token = CancelToken::new();
        }
        running.interrupt = interrupt.cloned();
        slot.over_memory.store(false, Ordering::Relaxed);
        slot.generation.fetch_add(1, Ordering::AcqRel);
        running.token.clone()
    };
    let dog = watchdog();
    if dog.asleep.load(Ordering::Acquire)
        && let Some(thread) = &dog.thread
    {
        thread.unpark();
    }
    Watched { slot, token }
}

fn watch_loop(dog: &'static Watchdog) {
    // Per slot: the evaluation last seen (its generation) and the process's size then.
    let mut seen: Vec<(Weak<Slot>, u64, u64)> = Vec::new();
    loop {
        let slots: Vec<Arc<Slot>> = {
            let mut all = dog.slots.lock().unwrap_or_else(PoisonError::into_inner);
            all.retain(|w| w.strong_count() > 0);
            all.iter().filter_map(Weak::upgrade).collect()
        };
        let busy = |s: &Arc<Slot>| s.generation.load(Ordering::Acquire) % 2 == 1;
        if !slots.iter().any(busy) {
            // Sleep until an evaluation starts; looked at again after saying so, so that one
            // starting meanwhile is not missed (its unpark makes the park return at once).
            dog.asleep.store(true, Ordering::Release);
            if !slots.iter().any(busy) {
                std::thread::park();
            }
            dog.asleep.store(false, Ordering::Release);
            continue;
        }
        let size = resident_bytes();
        seen.retain(|(w, _, _)| w.strong_count() > 0);
        for slot in &slots {
            let running = slot.lock();
            let generation = slot.generation.load(Ordering::Acquire);
            if generation % 2 == 0 {
                continue;
            }
            if running.interrupt.as_ref().is_some_and(Interrupt::is_raised) {
                running.token.cancel();
            }
            let Some(size) = size else { continue };
            let entry = seen
                .iter_mut()
                .find(|(w, _, _)| std::ptr::eq(w.as_ptr(), Arc::as_ptr(slot)));
            match entry {
                Some((_, g, base)) if *g == generation => {
                    if size > base.saturating_add(MAX_GROWTH) {
                        slot.over_memory.store(true, Ordering::Relaxed);
                        running.token.cancel();
                    }
                }
                Some((_, g, base)) => (*g, *base) = (generation, size),
                None => seen.push((Arc::downgrade(slot), generation, size)),
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
