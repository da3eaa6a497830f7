//! Workflow variables (`Assign`) and their scopes.
//!
//! A Parallel branch or a Map iteration reads the variables of the state machine around it but
//! writes its own: assignments inside a child run never reach the parent. The parent is blocked
//! while its children run, so children share its frame instead of copying it.

use std::sync::Arc;

use serde_json::{Map, Value};
use stepstone_asl::eval::Variables;

#[derive(Clone, Default)]
struct Frame {
    values: Map<String, Value>,
    parent: Option<Vars>,
}

/// The variables visible to one run.
#[derive(Clone, Default)]
pub(crate) struct Vars(Arc<Frame>);

impl Vars {
    /// A new scope for a child run, reading this one.
    pub(crate) fn child(&self) -> Vars {
        Vars(Arc::new(Frame {
            values: Map::new(),
            parent: Some(self.clone()),
        }))
    }

    /// Sets variables in this scope (all of a state's assignments at once).
    pub(crate) fn assign(&mut self, values: Map<String, Value>) {
        if values.is_empty() {
            return;
        }
        let frame = Arc::make_mut(&mut self.0);
        for (k, v) in values {
            frame.values.insert(k, v);
        }
    }
}

/// AWS's limits on what one state assigns (the developer guide's "variable size limits"): each
/// variable at most `limit` bytes (256 KiB), and all the variables of one Assign together at
/// most as much. Past them the state fails with States.DataLimitExceeded, as for an oversized
/// payload.
pub(crate) fn check_sizes(values: &Map<String, Value>, limit: usize) -> Result<(), String> {
    let mut total = 0;
    for (name, value) in values {
        if crate::limits::nests_deeper(value, crate::limits::MAX_DEPTH) {
            return Err(format!(
                "The variable '{name}' nests deeper than {} levels, the most Stepstone keeps.",
                crate::limits::MAX_DEPTH
            ));
        }
        let size = crate::limits::json_size(value);
        if size > limit {
            return Err(format!(
                "The variable '{name}' is {size} bytes; a variable may hold at most {limit} bytes."
            ));
        }
        total += size;
    }
    if total > limit {
        return Err(format!(
            "The variables assigned by the state are {total} bytes together; one Assign may hold at most {limit} bytes."
        ));
    }
    Ok(())
}

impl Vars {
    /// The frames by reference, outermost first.
    pub(crate) fn frame_refs(&self) -> Vec<&Map<String, Value>> {
        let mut frames = Vec::new();
        let mut frame = Some(self);
        while let Some(v) = frame {
            frames.push(&v.0.values);
            frame = v.0.parent.as_ref();
        }
        frames.reverse();
        frames
    }

    /// The frames, outermost first: how a checkpoint stores them.
    pub(crate) fn frames(&self) -> Vec<Map<String, Value>> {
        let mut frames = Vec::new();
        let mut frame = Some(self);
        while let Some(v) = frame {
            frames.push(v.0.values.clone());
            frame = v.0.parent.as_ref();
        }
        frames.reverse();
        frames
    }

    /// This scope's own variables (without those of the scopes around it).
    pub(crate) fn own(&self) -> &Map<String, Value> {
        &self.0.values
    }

    /// A child scope of this one, holding `values` (a child run's own, read back).
    pub(crate) fn child_with(&self, values: Map<String, Value>) -> Vars {
        Vars(Arc::new(Frame {
            values,
            parent: Some(self.clone()),
        }))
    }

    /// Rebuilds the chain of frames, outermost first.
    pub(crate) fn from_frames(frames: Vec<Map<String, Value>>) -> Vars {
        let mut vars: Option<Vars> = None;
        for values in frames {
            vars = Some(Vars(Arc::new(Frame {
                values,
                parent: vars,
            })));
        }
        vars.unwrap_or_default()
    }
}

impl Variables for Vars {
    fn get(&self, name: &str) -> Option<&Value> {
        let mut frame = &*self.0;
        loop {
            if let Some(v) = frame.values.get(name) {
                return Some(v);
            }
            frame = &*frame.parent.as_ref()?.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn children_read_but_do_not_write_the_parent() {
        let mut outer = Vars::default();
        outer.assign(json!({"x": 1, "y": 2}).as_object().unwrap().clone());
        let mut inner = outer.child();
        inner.assign(json!({"x": 10}).as_object().unwrap().clone());
        assert_eq!(inner.get("x"), Some(&json!(10)));
        assert_eq!(inner.get("y"), Some(&json!(2)));
        assert_eq!(outer.get("x"), Some(&json!(1)));
        outer.assign(json!({"y": 3}).as_object().unwrap().clone());
        assert_eq!(outer.get("y"), Some(&json!(3)));
        assert_eq!(
            inner.get("y"),
            Some(&json!(2)),
            "the child keeps the frame it started with"
        );
        assert_eq!(inner.get("z"), None);
    }
}
