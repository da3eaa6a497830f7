//! Drawing a [`Machine`]: Mermaid flowcharts, Graphviz DOT, and SVG laid out here (`svg.rs`).
//!
//! For Mermaid and DOT one walk collects nodes, edges and clusters (Parallel branches, Map
//! processors); the two renderers only differ in syntax. SVG needs positions, which
//! `svg.rs` computes itself.

pub mod svg;

use std::fmt::Write as _;

use crate::machine::{Machine, ScopeRef};
use crate::states::{Comparison, Operand, Rule, StateKind, Transition};

/// A drawing format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Mermaid `flowchart` (renders on GitHub, GitLab, in many editors).
    Mermaid,
    /// Graphviz DOT (`dot -Tsvg`).
    Dot,
    /// SVG, laid out by Stepstone ([`svg::svg`]).
    Svg,
    /// A page holding the SVG drawing ([`svg::html`]).
    Html,
}

/// Draws the machine's states and transitions.
pub fn render(machine: &Machine, format: Format) -> String {
    match format {
        Format::Svg => return svg::svg(machine, &|_| None),
        Format::Html => return svg::html(machine, "state machine"),
        Format::Mermaid | Format::Dot => {}
    }
    let mut g = Drawing::default();
    let start = g.node("start", String::new(), Shape::Start);
    let first = walk(&mut g, machine.root(), None);
    if let Some(first) = first {
        g.edge(start, first, None, EdgeKind::Normal);
    }
    match format {
        Format::Dot => dot(&g),
        _ => mermaid(&g),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Start,
    End,
    State,
    Choice,
    Succeed,
    Fail,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum EdgeKind {
    Normal,
    Default,
    Catch,
    Child,
}

struct Node {
    id: String,
    label: String,
    shape: Shape,
    cluster: Option<usize>,
}

struct Edge {
    from: usize,
    to: usize,
    label: Option<String>,
    kind: EdgeKind,
}

struct Cluster {
    label: String,
    parent: Option<usize>,
}

#[derive(Default)]
struct Drawing {
    nodes: Vec<Node>,
    edges: Vec<Edge>,
    clusters: Vec<Cluster>,
    cluster: Option<usize>,
}

impl Drawing {
    fn node(&mut self, id: &str, label: String, shape: Shape) -> usize {
        let id = format!("{id}{}", self.nodes.len());
        self.nodes.push(Node {
            id,
            label,
            shape,
            cluster: self.cluster,
        });
        self.nodes.len() - 1
    }

    fn edge(&mut self, from: usize, to: usize, label: Option<String>, kind: EdgeKind) {
        self.edges.push(Edge {
            from,
            to,
            label,
            kind,
        });
    }
}

/// Draws one scope; returns the node of its start state.
fn walk(g: &mut Drawing, scope: ScopeRef<'_>, cluster: Option<usize>) -> Option<usize> {
    let saved = std::mem::replace(&mut g.cluster, cluster);
    let ids: Vec<usize> = scope
        .states()
        .map(|(_, name, state, _)| {
            let shape = match state.kind {
                StateKind::Choice(_) => Shape::Choice,
                StateKind::Succeed(_) => Shape::Succeed,
                StateKind::Fail(_) => Shape::Fail,
                _ => Shape::State,
            };
            g.node("s", format!("{name}\n({})", state.kind.type_name()), shape)
        })
        .collect();
    let mut end = None;
    for (id, name, state, node) in scope.states() {
        let from = ids[id.0 as usize];
        if let Some(next) = node.next {
            g.edge(from, ids[next.0 as usize], None, EdgeKind::Normal);
        }
        let transition = match &state.kind {
            StateKind::Pass(s) => s.transition.as_ref(),
            StateKind::Task(s) => s.transition.as_ref(),
            StateKind::Wait(s) => s.transition.as_ref(),
            StateKind::Parallel(s) => s.transition.as_ref(),
            StateKind::Map(s) => s.transition.as_ref(),
            _ => None,
        };
        if transition == Some(&Transition::End) {
            let end = *end.get_or_insert_with(|| g.node("end", String::new(), Shape::End));
            g.edge(from, end, None, EdgeKind::Normal);
        }
        if let StateKind::Choice(choice) = &state.kind {
            for (rule, to) in choice.choices.iter().zip(&node.choices) {
                g.edge(
                    from,
                    ids[to.0 as usize],
                    Some(describe(&rule.rule)),
                    EdgeKind::Normal,
                );
            }
            if let Some(to) = node.default {
                g.edge(
                    from,
                    ids[to.0 as usize],
                    Some("Default".to_owned()),
                    EdgeKind::Default,
                );
            }
        }
        let catchers = match &state.kind {
            StateKind::Task(s) => &s.errors.catch[..],
            StateKind::Parallel(s) => &s.errors.catch[..],
            StateKind::Map(s) => &s.errors.catch[..],
            _ => &[],
        };
        for (catcher, to) in catchers.iter().zip(&node.catches) {
            g.edge(
                from,
                ids[to.0 as usize],
                Some(format!("Catch {}", catcher.error_equals.join(", "))),
                EdgeKind::Catch,
            );
        }
        let children = node.children.len();
        for i in 0..children {
            let Some(child) = scope.child(id, i) else {
                continue;
            };
            let label = match &state.kind {
                StateKind::Map(_) => format!("{name}: item processor"),
                _ => format!("{name}: branch {}", i + 1),
            };
            g.clusters.push(Cluster {
                label,
                parent: cluster,
            });
            let c = g.clusters.len() - 1;
            if let Some(first) = walk(g, child, Some(c)) {
                g.edge(from, first, None, EdgeKind::Child);
            }
        }
    }
    g.cluster = saved;
    ids.get(scope.start().0 as usize).copied()
}

/// A short text for a Choice rule: `$.status StringEquals "READY"`, `not (...)`, `a and b`.
fn describe(rule: &Rule) -> String {
    let join = |rules: &[Rule], op: &str| {
        rules
            .iter()
            .map(|r| format!("({})", describe(r)))
            .collect::<Vec<_>>()
            .join(op)
    };
    match rule {
        Rule::And(rules) => join(rules, " and "),
        Rule::Or(rules) => join(rules, " or "),
        Rule::Not(rule) => format!("not ({})", describe(rule)),
        Rule::Compare(Comparison {
            variable,
            operator,
            operand,
        }) => {
            let operand = match operand {
                Operand::Value(v) => v.to_string(),
                Operand::Timestamp(t) => t.to_string(),
                Operand::Path(p) => p.as_str().to_owned(),
            };
            format!("{} {} {operand}", variable.as_str(), operator.name())
        }
        Rule::Condition(e) => e.0.clone(),
        Rule::Constant(b) => b.to_string(),
    }
}

fn mermaid(g: &Drawing) -> String {
    let text = |s: &str| s.replace('"', "#quot;").replace('\n', "<br/>");
    let node = |out: &mut String, n: &Node, indent: &str| {
        let label = text(&n.label);
        let _ = match n.shape {
            Shape::Start => writeln!(out, "{indent}{}(( ))", n.id),
            Shape::End => writeln!(out, "{indent}{}((( )))", n.id),
            Shape::State => writeln!(out, "{indent}{}[\"{label}\"]", n.id),
            Shape::Choice => writeln!(out, "{indent}{}{{\"{label}\"}}", n.id),
            Shape::Succeed => writeln!(out, "{indent}{}([\"{label}\"])", n.id),
            Shape::Fail => writeln!(out, "{indent}{}[[\"{label}\"]]", n.id),
        };
    };
    let mut out = String::from("flowchart TD\n");
    fn cluster(
        out: &mut String,
        g: &Drawing,
        c: Option<usize>,
        depth: usize,
        node: &dyn Fn(&mut String, &Node, &str),
    ) {
        let indent = "    ".repeat(depth + 1);
        for n in g.nodes.iter().filter(|n| n.cluster == c) {
            node(out, n, &indent);
        }
        for (i, sub) in g.clusters.iter().enumerate().filter(|(_, k)| k.parent == c) {
            let _ = writeln!(
                out,
                "{indent}subgraph c{i} [\"{}\"]",
                sub.label.replace('"', "#quot;")
            );
            cluster(out, g, Some(i), depth + 1, node);
            let _ = writeln!(out, "{indent}end");
        }
    }
    cluster(&mut out, g, None, 0, &node);
    for e in &g.edges {
        let (from, to) = (&g.nodes[e.from].id, &g.nodes[e.to].id);
        let arrow = match e.kind {
            EdgeKind::Normal => "-->",
            EdgeKind::Default | EdgeKind::Child => "-.->",
            EdgeKind::Catch => "-.->",
        };
        let _ = match &e.label {
            Some(l) => writeln!(out, "    {from} {arrow}|\"{}\"| {to}", text(l)),
            None => writeln!(out, "    {from} {arrow} {to}"),
        };
    }
    out
}

fn dot(g: &Drawing) -> String {
    let quote = |s: &str| {
        format!(
            "\"{}\"",
            s.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        )
    };
    let mut out = String::from(
        "digraph stepstone {\n    graph [fontname=\"Helvetica\"];\n    node [shape=box, style=rounded, fontname=\"Helvetica\"];\n    edge [fontname=\"Helvetica\", fontsize=10];\n",
    );
    fn cluster(
        out: &mut String,
        g: &Drawing,
        c: Option<usize>,
        depth: usize,
        quote: &dyn Fn(&str) -> String,
    ) {
        let indent = "    ".repeat(depth + 1);
        for n in g.nodes.iter().filter(|n| n.cluster == c) {
            let attrs = match n.shape {
                Shape::Start => {
                    "shape=circle, label=\"\", width=0.25, style=filled, fillcolor=black".to_owned()
                }
                Shape::End => {
                    "shape=doublecircle, label=\"\", width=0.2, style=filled, fillcolor=black"
                        .to_owned()
                }
                Shape::State => format!("label={}", quote(&n.label)),
                Shape::Choice => format!("shape=diamond, style=\"\", label={}", quote(&n.label)),
                Shape::Succeed => format!(
                    "style=\"rounded,filled\", fillcolor=palegreen, label={}",
                    quote(&n.label)
                ),
                Shape::Fail => format!(
                    "style=\"rounded,filled\", fillcolor=lightpink, label={}",
                    quote(&n.label)
                ),
            };
            let _ = writeln!(out, "{indent}{} [{attrs}];", n.id);
        }
        for (i, sub) in g.clusters.iter().enumerate().filter(|(_, k)| k.parent == c) {
            let _ = writeln!(
                out,
                "{indent}subgraph cluster_{i} {{\n{indent}    label={};\n{indent}    style=dashed;",
                quote(&sub.label)
            );
            cluster(out, g, Some(i), depth + 1, quote);
            let _ = writeln!(out, "{indent}}}");
        }
    }
    cluster(&mut out, g, None, 0, &quote);
    for e in &g.edges {
        let mut attrs = Vec::new();
        if let Some(l) = &e.label {
            attrs.push(format!("label={}", quote(l)));
        }
        match e.kind {
            EdgeKind::Normal => {}
            EdgeKind::Default | EdgeKind::Child => attrs.push("style=dashed".to_owned()),
            EdgeKind::Catch => attrs.push("style=dashed, color=red, fontcolor=red".to_owned()),
        }
        let attrs = if attrs.is_empty() {
            String::new()
        } else {
            format!(" [{}]", attrs.join(", "))
        };
        let _ = writeln!(
            out,
            "    {} -> {}{attrs};",
            g.nodes[e.from].id, g.nodes[e.to].id
        );
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::machine::{Options, validate};

    fn machine() -> Machine {
        let def = json!({"StartAt": "Check", "States": {
            "Check": {"Type": "Choice", "Choices": [{"Variable": "$.ready", "BooleanEquals": true, "Next": "Fan"}], "Default": "Stop"},
            "Fan": {"Type": "Parallel", "Branches": [{"StartAt": "B1", "States": {"B1": {"Type": "Pass", "End": true}}}], "Next": "Each",
                    "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Stop"}]},
            "Each": {"Type": "Map", "ItemProcessor": {"StartAt": "M1", "States": {"M1": {"Type": "Succeed"}}}, "End": true},
            "Stop": {"Type": "Fail", "Error": "Nope"}
        }});
        validate(&def, Options::default()).machine.expect("valid")
    }

    #[test]
    fn mermaid_has_every_state_and_labelled_edge() {
        let out = render(&machine(), Format::Mermaid);
        assert!(out.starts_with("flowchart TD\n"), "{out}");
        for want in [
            "{\"Check<br/>(Choice)\"}",
            "|\"$.ready BooleanEquals true\"|",
            "|\"Default\"|",
            "|\"Catch States.ALL\"|",
            "subgraph c0 [\"Fan: branch 1\"]",
            "subgraph c1 [\"Each: item processor\"]",
            "[[\"Stop<br/>(Fail)\"]]",
        ] {
            assert!(out.contains(want), "missing {want} in\n{out}");
        }
    }

    #[test]
    fn dot_is_a_digraph_with_clusters() {
        let out = render(&machine(), Format::Dot);
        assert!(out.starts_with("digraph stepstone {"), "{out}");
        assert!(out.contains("subgraph cluster_0"), "{out}");
        assert!(
            out.contains("label=\"Catch States.ALL\", style=dashed, color=red"),
            "{out}"
        );
        assert!(out.contains("shape=diamond"), "{out}");
        assert_eq!(out.matches('{').count(), out.matches('}').count(), "{out}");
    }
}
