//! How large a value is, or can become: the types of the bounds the validator finds for each
//! state ([`crate::State::growth`], computed in `bounds.rs`) and the engine carries for each
//! run, so that it checks the limits on a state's output (nesting depth, payload size) without
//! walking the output at every state.

/// A bound on a size in bytes of compact JSON text, as a function of the size `s` of the
/// state's input: at most `factor * s + extra`. Arithmetic saturates: a bound too large to
/// count is as good as unknown (the engine walks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeBound {
    /// How many copies of the input the output can hold (0 when it holds none).
    pub factor: u64,
    /// Bytes on top of those copies (literals, keys, what intrinsic functions make).
    pub extra: u64,
}

impl SizeBound {
    /// The output is the input, or a part of it.
    pub const INPUT: SizeBound = SizeBound {
        factor: 1,
        extra: 0,
    };

    /// A value of at most `bytes` bytes whatever the input.
    pub const fn fixed(bytes: u64) -> SizeBound {
        SizeBound {
            factor: 0,
            extra: bytes,
        }
    }

    /// The bound for an input of `input` bytes.
    pub fn apply(self, input: u64) -> u64 {
        self.factor.saturating_mul(input).saturating_add(self.extra)
    }

    /// `self` applied to what `inner` outputs.
    pub(crate) fn after(self, inner: SizeBound) -> SizeBound {
        SizeBound {
            factor: self.factor.saturating_mul(inner.factor),
            extra: self
                .factor
                .saturating_mul(inner.extra)
                .saturating_add(self.extra),
        }
    }

    pub(crate) fn plus(self, other: SizeBound) -> SizeBound {
        SizeBound {
            factor: self.factor.saturating_add(other.factor),
            extra: self.extra.saturating_add(other.extra),
        }
    }

    pub(crate) fn times(self, k: u64) -> SizeBound {
        SizeBound {
            factor: self.factor.saturating_mul(k),
            extra: self.extra.saturating_mul(k),
        }
    }

    pub(crate) fn and_bytes(self, bytes: u64) -> SizeBound {
        SizeBound {
            extra: self.extra.saturating_add(bytes),
            ..self
        }
    }
}

/// How deep and how large a value is, or at most is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Levels of nesting (`[]` and `{"a": 1}` are one level; a scalar none).
    pub depth: u16,
    /// Bytes of compact JSON text.
    pub size: u64,
}

impl Extent {
    /// `[]`
    pub const EMPTY_ARRAY: Extent = Extent { depth: 1, size: 2 };

    /// The extent of this array with `item` appended.
    pub fn with_item(self, item: Extent) -> Extent {
        Extent {
            depth: self.depth.max(item.depth.saturating_add(1)),
            // The item and a comma (one too many for the first item: a bound need not be
            // exact).
            size: self.size.saturating_add(item.size).saturating_add(1),
        }
    }

    /// A bound on both `self` and `other`: as deep as the deeper, as large as both together.
    pub fn with(self, other: Extent) -> Extent {
        Extent {
            depth: self.depth.max(other.depth),
            size: self.size.saturating_add(other.size),
        }
    }
}

/// How much larger than its input a state's output can be: [`State::growth`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Growth {
    /// Levels of nesting the output can add to the input's.
    pub depth: u16,
    /// The output's size from the input's.
    pub size: SizeBound,
}

impl Growth {
    /// The bound on the output of a state whose input is within `input`.
    pub fn apply(self, input: Extent) -> Extent {
        Extent {
            depth: input.depth.saturating_add(self.depth),
            size: self.size.apply(input.size),
        }
    }
}
