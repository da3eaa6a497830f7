//! Time for executions: the wall clock, or a virtual clock that jumps ahead over waits.
//!
//! On the virtual clock, time jumps to the next timer whenever nothing else can happen (the
//! driver decides when), so Waits, retry backoff and the execution timeout finish at once while
//! every timestamp moves as if the time had passed.

use std::time::{SystemTime, UNIX_EPOCH};

use stepstone_asl::timestamp::Timestamp;

/// The real time.
pub(crate) fn wall_clock() -> Timestamp {
    let unix_nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    Timestamp { unix_nanos }
}

/// An execution's clock: the wall clock moved ahead by what virtual time skipped.
pub(crate) struct Clock {
    offset_nanos: i128,
}

impl Clock {
    /// The wall clock.
    pub(crate) fn real() -> Clock {
        Clock { offset_nanos: 0 }
    }

    /// The clock of an execution whose own clock last read `at`: the real time, or `at` if
    /// the execution ran ahead of it on a virtual clock. Time never runs backwards across a
    /// resume.
    pub(crate) fn resuming_at(at: Timestamp) -> Clock {
        Clock {
            offset_nanos: (at.unix_nanos - wall_clock().unix_nanos).max(0),
        }
    }

    pub(crate) fn now(&self) -> Timestamp {
        Timestamp {
            unix_nanos: wall_clock().unix_nanos + self.offset_nanos,
        }
    }

    /// Moves virtual time forward to `t`.
    pub(crate) fn jump_to(&mut self, t: Timestamp) {
        let now = self.now();
        if t > now {
            self.offset_nanos += t.unix_nanos - now.unix_nanos;
        }
    }
}
