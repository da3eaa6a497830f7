//! The compiled [`Machine`]: a [`Definition`] whose transitions are resolved to [`StateId`]s
//! and whose graph passed every check. The engine only ever runs a `Machine`.

use std::collections::{HashMap, VecDeque};

use serde_json::Value;

use crate::definition::{Definition, Scope};
use crate::diagnostic::{Code, Diagnostic, child, index};
use crate::parse::MachineType;
use crate::states::{State, StateKind, Transition};

/// A state's position in its scope: the index of its name in `States`, in document order.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct StateId(pub u32);

/// The resolved edges of one state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Node {
    /// `Next` (`None` for `End`, Choice, Succeed and Fail).
    pub next: Option<StateId>,
    /// A Choice's rules' targets, in rule order.
    pub choices: Vec<StateId>,
    /// A Choice's `Default`.
    pub default: Option<StateId>,
    /// Each `Catch` entry's target, in order.
    pub catches: Vec<StateId>,
    /// A Parallel's branches, or a Map's processor (one graph).
    pub children: Vec<Graph>,
}

/// The resolved graph of one [`Scope`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Graph {
    /// `StartAt`
    pub start: StateId,
    /// One node per state, indexed by [`StateId`].
    pub nodes: Vec<Node>,
}

/// A scope and its graph, walked together.
#[derive(Debug, Clone, Copy)]
pub struct ScopeRef<'m> {
    /// The states as written.
    pub scope: &'m Scope,
    /// Their resolved edges.
    pub graph: &'m Graph,
}

impl<'m> ScopeRef<'m> {
    /// The state a scope starts at.
    pub fn start(self) -> StateId {
        self.graph.start
    }

    /// A state's name, definition and edges.
    pub fn state(self, id: StateId) -> (&'m str, &'m State, &'m Node) {
        let (name, state) = self
            .scope
            .states
            .get_index(id.0 as usize)
            .expect("StateIds come from this scope");
        (name, state, &self.graph.nodes[id.0 as usize])
    }

    /// Finds a state by name.
    pub fn id(self, name: &str) -> Option<StateId> {
        self.scope
            .states
            .get_index_of(name)
            .map(|i| StateId(i as u32))
    }

    /// Every state, in document order.
    pub fn states(self) -> impl Iterator<Item = (StateId, &'m str, &'m State, &'m Node)> {
        (0..self.scope.states.len()).map(move |i| {
            let id = StateId(i as u32);
            let (name, state, node) = self.state(id);
            (id, name, state, node)
        })
    }

    /// The `i`th child scope of a Parallel (a branch) or a Map (its processor, `i == 0`).
    pub fn child(self, id: StateId, i: usize) -> Option<ScopeRef<'m>> {
        let (_, state, node) = self.state(id);
        let scope = child_scopes(state).into_iter().nth(i)?;
        Some(ScopeRef {
            scope,
            graph: node.children.get(i)?,
        })
    }
}

/// A validated, compiled state machine.
#[derive(Debug, Clone)]
pub struct Machine {
    definition: Definition,
    graph: Graph,
    warnings: Vec<Diagnostic>,
    source: String,
}

impl Machine {
    /// The top-level scope.
    pub fn root(&self) -> ScopeRef<'_> {
        ScopeRef {
            scope: &self.definition.scope,
            graph: &self.graph,
        }
    }

    /// The definition as loaded.
    pub fn definition(&self) -> &Definition {
        &self.definition
    }

    /// The definition's JSON text, as validated: what a durable execution stores, to be resumed
    /// from the store alone.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Warnings found while validating (NO_DOLLAR, Stepstone extensions, ...).
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }
}

/// What validating a definition gives: the machine when there is no error, and every
/// diagnostic (errors and warnings) in any case.
#[derive(Debug, Clone)]
pub struct Validation {
    /// `Some` when the definition has no error.
    pub machine: Option<Machine>,
    /// Every problem found, in document order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Validation {
    /// True when there is no error (warnings allowed).
    pub fn is_ok(&self) -> bool {
        self.machine.is_some()
    }
}

/// Options of validation.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct Options {
    /// STANDARD (default) or EXPRESS.
    pub machine_type: MachineType,
}

/// Validates definition text, as `ValidateStateMachineDefinition` does, and compiles it.
pub fn validate_str(text: &str, options: Options) -> Validation {
    let loaded = Definition::load_str(text, options.machine_type);
    finish(loaded.definition, loaded.diagnostics, || text.to_owned())
}

/// Validates a parsed definition and compiles it.
pub fn validate(value: &Value, options: Options) -> Validation {
    let loaded = Definition::load(value, options.machine_type);
    finish(loaded.definition, loaded.diagnostics, || value.to_string())
}

fn finish(
    definition: Option<Definition>,
    mut diagnostics: Vec<Diagnostic>,
    source: impl FnOnce() -> String,
) -> Validation {
    let Some(definition) = definition else {
        return Validation {
            machine: None,
            diagnostics,
        };
    };
    let mut seen = HashMap::new();
    let graph = resolve(&definition.scope, &mut diagnostics, &mut seen);
    if diagnostics.iter().any(Diagnostic::is_error) {
        return Validation {
            machine: None,
            diagnostics,
        };
    }
    let warnings = diagnostics.clone();
    Validation {
        machine: Some(Machine {
            definition,
            graph,
            warnings,
            source: source(),
        }),
        diagnostics,
    }
}

fn child_scopes(state: &State) -> Vec<&Scope> {
    match &state.kind {
        StateKind::Parallel(p) => p.branches.iter().collect(),
        StateKind::Map(m) => m.processor.iter().map(|p| &p.scope).collect(),
        _ => Vec::new(),
    }
}

/// Resolves one scope's names to ids and checks its graph, then its children's.
fn resolve(scope: &Scope, d: &mut Vec<Diagnostic>, seen: &mut HashMap<String, String>) -> Graph {
    let states_at = child(&scope.pointer, "States");
    let lookup = |name: &str| scope.states.get_index_of(name).map(|i| StateId(i as u32));
    let missing = |d: &mut Vec<Diagnostic>, field: &str, target: &str, at: String| {
        d.push(Diagnostic::new(
            Code::MissingTransitionTarget,
            at,
            format!("Missing '{field}' target: {target}"),
        ));
    };
    let start = lookup(&scope.start_at);
    // Without readable States, every StartAt would look missing.
    if start.is_none() && (scope.complete || !scope.states.is_empty()) {
        missing(
            d,
            "StartAt",
            &scope.start_at,
            child(&scope.pointer, "StartAt"),
        );
    }
    let mut nodes = Vec::with_capacity(scope.states.len());
    let mut has_terminal = false;
    for (name, state) in &scope.states {
        let at = child(&states_at, name);
        if let Some(first) = seen.insert(name.clone(), at.clone()) {
            d.push(Diagnostic::new(Code::DuplicateStateName, at.clone(), format!("The state name '{name}' is already used at {first}; state names must be unique in the whole state machine")));
        }
        let mut node = Node::default();
        let target =
            |d: &mut Vec<Diagnostic>, field: &str, name: &str, at: String| -> Option<StateId> {
                let id = lookup(name);
                if id.is_none() {
                    missing(d, field, name, at);
                }
                id
            };
        let (transition, errors) = match &state.kind {
            StateKind::Pass(s) => (&s.transition, None),
            StateKind::Task(s) => (&s.transition, Some(&s.errors)),
            StateKind::Wait(s) => (&s.transition, None),
            StateKind::Parallel(s) => (&s.transition, Some(&s.errors)),
            StateKind::Map(s) => (&s.transition, Some(&s.errors)),
            StateKind::Choice(c) => {
                for (i, rule) in c.choices.iter().enumerate() {
                    let at = child(&index(&child(&at, "Choices"), i), "Next");
                    node.choices.extend(target(d, "Next", &rule.next, at));
                }
                if let Some(default) = &c.default {
                    node.default = target(d, "Default", default, child(&at, "Default"));
                }
                (&None, None)
            }
            StateKind::Succeed(_) | StateKind::Fail(_) => {
                has_terminal = true;
                (&None, None)
            }
        };
        match transition {
            Some(Transition::Next(next)) => node.next = target(d, "Next", next, child(&at, "Next")),
            Some(Transition::End) => has_terminal = true,
            None => {}
        }
        if let Some(errors) = errors {
            for (i, catcher) in errors.catch.iter().enumerate() {
                let at = child(&index(&child(&at, "Catch"), i), "Next");
                node.catches.extend(target(d, "Next", &catcher.next, at));
            }
        }
        node.children = child_scopes(state)
            .into_iter()
            .map(|s| resolve(s, d, seen))
            .collect();
        nodes.push(node);
    }
    // With a state or an edge unreadable, "unreachable" and "no terminal" could be wrong.
    if scope.complete && !has_terminal && !scope.states.is_empty() {
        let message = "Workflow has no terminal state";
        d.push(if scope.pointer.is_empty() {
            Diagnostic::unplaced(Code::MissingEndState, message)
        } else {
            Diagnostic::new(Code::MissingEndState, scope.pointer.clone(), message)
        });
    }
    let graph = Graph {
        start: start.unwrap_or_default(),
        nodes,
    };
    if start.is_some() && scope.complete {
        for (i, reached) in reachable(&graph).into_iter().enumerate() {
            if !reached {
                let (name, _) = scope.states.get_index(i).expect("one node per state");
                d.push(Diagnostic::new(
                    Code::MissingTransitionTarget,
                    child(&states_at, name),
                    format!("State \"{name}\" is not reachable."),
                ));
            }
        }
    }
    graph
}

fn reachable(graph: &Graph) -> Vec<bool> {
    let mut reached = vec![false; graph.nodes.len()];
    let mut queue = VecDeque::from([graph.start]);
    while let Some(id) = queue.pop_front() {
        let Some(seen) = reached.get_mut(id.0 as usize) else {
            continue;
        };
        if std::mem::replace(seen, true) {
            continue;
        }
        let node = &graph.nodes[id.0 as usize];
        queue.extend(
            node.next
                .iter()
                .chain(&node.choices)
                .chain(&node.default)
                .chain(&node.catches),
        );
    }
    reached
}

/// The name TestState gives a state tested on its own (AWS reports its problems, and
/// `$$.State.Name` shows it, under this name).
pub const SINGLE_STATE_NAME: &str = "StateName";

/// Validates one state on its own, as TestState takes it: the state becomes the only state of
/// a machine, named `name`, and every state it names as a transition (`Next`, a Choice rule's
/// `Next`, `Default`, a catcher's `Next`) stands in as a Succeed state, so that a state lifted
/// out of its machine validates (TestState reports where it would go, and never goes there).
pub fn validate_state(state: &Value, name: &str, options: Options) -> Validation {
    let mut states = serde_json::Map::new();
    let targets = state
        .get("Choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(
            state
                .get("Catch")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        )
        .filter_map(|rule| rule.get("Next"))
        .chain(state.get("Next"))
        .chain(state.get("Default"))
        .filter_map(Value::as_str);
    for target in targets {
        if target != name {
            states.insert(target.to_owned(), serde_json::json!({"Type": "Succeed"}));
        }
    }
    states.insert(name.to_owned(), state.clone());
    let machine = serde_json::json!({"StartAt": name, "States": states});
    validate(&machine, options)
}
