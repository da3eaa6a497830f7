//! Drawing a [`Machine`] as SVG, laid out here (no Graphviz needed): what
//! `stepstone graph --format svg|html` prints and the execution viewer of `stepstone serve`
//! shows, coloured by each state's status.
//!
//! The layout is layered, per scope: each state's row is the longest forward path to it from
//! the scope's start (a transition back to an earlier row, a loop, is drawn around the right
//! side; one down more than one row passes between the states of the rows it crosses, through
//! a waypoint in each), states keep the order in which a walk from the start meets them, and a
//! Map or Parallel is a box holding its processor or branches side by side, each laid out the
//! same way. Every state is a `<g class="state" data-state="NAME" data-type="TYPE"
//! data-status="STATUS">`: state names are unique in a machine, so the name alone finds a
//! state, nested ones included.

use std::fmt::Write as _;

use crate::machine::{Machine, ScopeRef};
use crate::states::{StateKind, Transition};

/// How one state is shown: its status (a CSS class of the drawing: `succeeded`, `failed`,
/// `caught`, `running`, `not-reached`) and how many times it was entered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// The status.
    pub status: &'static str,
    /// Times entered (shown when more than one: iterations, loops, retries of a branch).
    pub entered: u64,
}

/// The drawing's style: a standalone SVG shows the statuses without any page around it.
pub const STYLE: &str = "\
.stepstone-graph { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; }
.stepstone-graph .state > rect { fill: #ffffff; stroke: #8a8f98; stroke-width: 1.2; }
.stepstone-graph .state .name { font-size: 12px; font-weight: 600; fill: #1f2328; }
.stepstone-graph .state .type { font-size: 10px; fill: #59636e; }
.stepstone-graph .state .count { font-size: 10px; font-weight: 600; fill: #1f2328; }
.stepstone-graph .container > rect { fill: #fafbfc; stroke-dasharray: 5 3; }
.stepstone-graph .container[data-status] > rect { fill-opacity: 0.35; }
.stepstone-graph .scope { fill: none; stroke: #d0d7de; stroke-dasharray: 3 3; }
.stepstone-graph .edge { fill: none; stroke: #6e7781; stroke-width: 1.2; }
.stepstone-graph .edge.catch { stroke: #cf222e; stroke-dasharray: 4 3; }
.stepstone-graph .edge.default { stroke-dasharray: 4 3; }
.stepstone-graph .label { font-size: 10px; fill: #59636e; }
.stepstone-graph .marker { fill: #1f2328; }
.stepstone-graph [data-status=succeeded] > rect { fill: #dafbe1; stroke: #1a7f37; }
.stepstone-graph [data-status=failed] > rect { fill: #ffebe9; stroke: #cf222e; stroke-width: 2; }
.stepstone-graph [data-status=caught] > rect { fill: #fff1e5; stroke: #bc4c00; stroke-width: 2; }
.stepstone-graph [data-status=running] > rect { fill: #ddf4ff; stroke: #0969da; stroke-width: 2; }
.stepstone-graph [data-status=not-reached] > rect { fill: #f6f8fa; stroke: #d0d7de; }
.stepstone-graph [data-status=not-reached] .name { fill: #8c959f; }
";

/// Draws `machine` as an SVG document, each state marked by `mark` (by name; `None`: no
/// status).
pub fn svg(machine: &Machine, mark: &dyn Fn(&str) -> Option<Mark>) -> String {
    let root = lay_out(machine.root(), true);
    let (width, height) = (root.width + 2.0 * MARGIN, root.height + 2.0 * MARGIN);
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"stepstone-graph\" width=\"{width:.0}\" \
         height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\">\
         <style>{STYLE}</style><defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" \
         refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\">\
         <path d=\"M0,0 L10,5 L0,10 z\" fill=\"#6e7781\"/></marker></defs>"
    );
    draw(&mut out, &root, MARGIN, MARGIN, mark);
    out.push_str("</svg>\n");
    out
}

/// A standalone page holding the drawing (`stepstone graph --format html`).
pub fn html(machine: &Machine, title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>body {{ margin: 24px; background: #ffffff; }}</style></head><body>\n{}</body></html>\n",
        escape(title),
        svg(machine, &|_| None)
    )
}

const MARGIN: f64 = 16.0;
const NODE_HEIGHT: f64 = 44.0;
const MIN_NODE_WIDTH: f64 = 110.0;
const ROW_GAP: f64 = 44.0;
const COLUMN_GAP: f64 = 28.0;
const HEADER: f64 = 34.0;
const PADDING: f64 = 14.0;
const MARKER: f64 = 14.0;
/// The room a transition takes in a row it crosses.
const WAYPOINT: f64 = 10.0;
/// Room on the right of a scope for the transitions drawn back up around it.
const LOOP_LANE: f64 = 22.0;

/// A scope laid out: its nodes, placed relative to its top left corner, and its edges.
struct Scope {
    width: f64,
    height: f64,
    nodes: Vec<Placed>,
    edges: Vec<Edge>,
}

struct Placed {
    x: f64,
    y: f64,
    width: f64,
    height: f64,
    rank: usize,
    what: What,
}

enum What {
    Start,
    End,
    /// Where a transition crosses a row on its way to a state more than one row down: it
    /// takes room in the row, so that it passes between the states there, not through them.
    Waypoint,
    State {
        name: String,
        type_name: &'static str,
        /// A Map's processor or a Parallel's branches, laid out inside the state's box.
        children: Vec<Scope>,
    },
}

struct Edge {
    from: usize,
    to: usize,
    label: Option<String>,
    class: &'static str,
    /// The waypoints it passes, top to bottom (a transition down more than one row).
    via: Vec<usize>,
}

/// Roughly how wide text is at the drawing's sizes (no font metrics in a renderer that runs
/// anywhere): wide enough for most faces.
fn text_width(text: &str, per_char: f64) -> f64 {
    text.chars().count() as f64 * per_char
}

fn lay_out(scope: ScopeRef<'_>, root: bool) -> Scope {
    let states: Vec<_> = scope.states().collect();
    // Nodes: the scope's states in order, then (root only) the start and end markers.
    let mut nodes: Vec<Placed> = Vec::with_capacity(states.len() + 2);
    let mut edges = Vec::new();
    for (id, name, state, node) in &states {
        let children: Vec<Scope> = (0..node.children.len())
            .filter_map(|i| scope.child(*id, i))
            .map(|child| lay_out(child, false))
            .collect();
        let type_name = state.kind.type_name();
        // Room for the name, and on its right for the times-entered count.
        let text = text_width(name, 7.4).max(text_width(type_name, 6.2)) + 56.0;
        let (width, height) = if children.is_empty() {
            (text.max(MIN_NODE_WIDTH), NODE_HEIGHT)
        } else {
            let inner: f64 = children.iter().map(|c| c.width).sum::<f64>()
                + COLUMN_GAP * (children.len() - 1) as f64;
            let tallest = children.iter().map(|c| c.height).fold(0.0, f64::max);
            (
                text.max(inner + 2.0 * PADDING),
                HEADER + tallest + 2.0 * PADDING,
            )
        };
        nodes.push(Placed {
            x: 0.0,
            y: 0.0,
            width,
            height,
            rank: 0,
            what: What::State {
                name: (*name).to_owned(),
                type_name,
                children,
            },
        });
        let from = id.0 as usize;
        if let Some(next) = node.next {
            edges.push(edge(from, next.0 as usize, None, "normal"));
        }
        if let StateKind::Choice(choice) = &state.kind {
            for (rule, to) in choice.choices.iter().zip(&node.choices) {
                let label = super::describe(&rule.rule);
                edges.push(edge(from, to.0 as usize, Some(label), "normal"));
            }
            if let Some(to) = node.default {
                edges.push(edge(from, to.0 as usize, Some("Default".into()), "default"));
            }
        }
        for to in &node.catches {
            edges.push(edge(from, to.0 as usize, Some("Catch".into()), "catch"));
        }
    }
    let count = nodes.len();
    let start = scope.start().0 as usize;
    let mut first = start;
    if root {
        nodes.push(marker(What::Start));
        nodes.push(marker(What::End));
        let (start_marker, end_marker) = (count, count + 1);
        edges.push(edge(start_marker, start, None, "normal"));
        for (id, _, state, _) in &states {
            if ends(&state.kind) {
                edges.push(edge(id.0 as usize, end_marker, None, "normal"));
            }
        }
        first = start_marker;
    }
    let back = rank(&mut nodes, &edges, first);
    // A transition down more than one row gets a waypoint in each row it crosses, ordered in
    // its row between its two ends.
    for (i, edge) in edges.iter_mut().enumerate() {
        let (top, bottom) = (nodes[edge.from].rank, nodes[edge.to].rank);
        if back[i] || bottom <= top + 1 {
            continue;
        }
        let order = (nodes[edge.from].x + nodes[edge.to].x) / 2.0;
        for rank in top + 1..bottom {
            nodes.push(Placed {
                x: order,
                y: 0.0,
                width: WAYPOINT,
                height: 0.0,
                rank,
                what: What::Waypoint,
            });
            edge.via.push(nodes.len() - 1);
        }
    }
    place(&mut nodes);
    let width = nodes.iter().map(|n| n.x + n.width).fold(0.0, f64::max)
        + if back.iter().any(|b| *b) {
            LOOP_LANE
        } else {
            0.0
        };
    let height = nodes.iter().map(|n| n.y + n.height).fold(0.0, f64::max);
    Scope {
        width,
        height,
        nodes,
        edges,
    }
}

fn edge(from: usize, to: usize, label: Option<String>, class: &'static str) -> Edge {
    Edge {
        from,
        to,
        label,
        class,
        via: Vec::new(),
    }
}

fn marker(what: What) -> Placed {
    Placed {
        x: 0.0,
        y: 0.0,
        width: MARKER,
        height: MARKER,
        rank: 0,
        what,
    }
}

/// Whether a state ends its scope: `End`, Succeed, Fail.
fn ends(kind: &StateKind) -> bool {
    let transition = match kind {
        StateKind::Pass(s) => s.transition.as_ref(),
        StateKind::Task(s) => s.transition.as_ref(),
        StateKind::Wait(s) => s.transition.as_ref(),
        StateKind::Parallel(s) => s.transition.as_ref(),
        StateKind::Map(s) => s.transition.as_ref(),
        StateKind::Succeed(_) | StateKind::Fail(_) => return true,
        StateKind::Choice(_) => None,
    };
    transition == Some(&Transition::End)
}

/// Gives each node its row: the longest path to it from `first` over the transitions that
/// are not loops. Returns which edges go back (to a node on the walk's current path).
fn rank(nodes: &mut [Placed], edges: &[Edge], first: usize) -> Vec<bool> {
    let n = nodes.len();
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, e) in edges.iter().enumerate() {
        out[e.from].push(i);
    }
    // Depth-first from `first`, without recursion (a scope may hold thousands of states).
    #[derive(Clone, Copy, PartialEq)]
    enum Seen {
        No,
        OnPath,
        Done,
    }
    let mut seen = vec![Seen::No; n];
    let mut back = vec![false; edges.len()];
    let mut finished = Vec::with_capacity(n);
    let mut roots = vec![first];
    // States no walk from the start reaches (the validator refuses them in a valid machine,
    // but a drawing should not lose them) start walks of their own.
    roots.extend((0..n).filter(|&i| i != first));
    for root in roots {
        if seen[root] != Seen::No {
            continue;
        }
        let mut stack = vec![(root, 0usize)];
        seen[root] = Seen::OnPath;
        while let Some((node, next)) = stack.last_mut() {
            let node = *node;
            if let Some(&e) = out[node].get(*next) {
                *next += 1;
                let to = edges[e].to;
                match seen[to] {
                    Seen::No => {
                        seen[to] = Seen::OnPath;
                        stack.push((to, 0));
                    }
                    Seen::OnPath => back[e] = true,
                    Seen::Done => {}
                }
            } else {
                seen[node] = Seen::Done;
                finished.push(node);
                stack.pop();
            }
        }
    }
    // Longest path in reverse finishing order (a topological order of the forward edges).
    for &node in finished.iter().rev() {
        for &e in &out[node] {
            if !back[e] {
                let to = edges[e].to;
                nodes[to].rank = nodes[to].rank.max(nodes[node].rank + 1);
            }
        }
    }
    // The order each row keeps: as the walk first met the nodes (reverse finishing order is
    // close to it and stable).
    let order: Vec<usize> = finished.iter().rev().copied().collect();
    for (position, &node) in order.iter().enumerate() {
        nodes[node].x = position as f64; // a sort key until `place` sets the real x
    }
    back
}

/// Sets each node's position: rows top to bottom, each row centred on the widest.
fn place(nodes: &mut [Placed]) {
    let rows = nodes.iter().map(|n| n.rank).max().map_or(0, |r| r + 1);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); rows];
    for (i, n) in nodes.iter().enumerate() {
        members[n.rank].push(i);
    }
    for row in &mut members {
        row.sort_by(|a, b| nodes[*a].x.total_cmp(&nodes[*b].x));
    }
    let widths: Vec<f64> = members
        .iter()
        .map(|row| {
            row.iter().map(|&i| nodes[i].width).sum::<f64>()
                + COLUMN_GAP * row.len().saturating_sub(1) as f64
        })
        .collect();
    let widest = widths.iter().copied().fold(0.0, f64::max);
    let mut y = 0.0;
    for (row, width) in members.iter().zip(&widths) {
        let mut x = (widest - width) / 2.0;
        let tallest = row.iter().map(|&i| nodes[i].height).fold(0.0, f64::max);
        for &i in row {
            nodes[i].x = x;
            nodes[i].y = y + (tallest - nodes[i].height) / 2.0;
            x += nodes[i].width + COLUMN_GAP;
        }
        y += tallest + ROW_GAP;
    }
}

fn draw(out: &mut String, scope: &Scope, ox: f64, oy: f64, mark: &dyn Fn(&str) -> Option<Mark>) {
    let right = ox + scope.width
        - if scope_loops(scope) {
            LOOP_LANE / 2.0
        } else {
            0.0
        };
    let mut loops: f64 = 0.0;
    // The transitions going down leave a state's bottom and reach a state's top spread out
    // (in the order of the targets', sources' positions), so that no two lie on each other.
    let spread = |ends: &dyn Fn(&Edge) -> usize, other: &dyn Fn(&Edge) -> usize| {
        let mut at = vec![0.5; scope.edges.len()];
        for node in 0..scope.nodes.len() {
            let mut mine: Vec<usize> = (0..scope.edges.len())
                .filter(|&i| {
                    let e = &scope.edges[i];
                    ends(e) == node && scope.nodes[e.to].rank > scope.nodes[e.from].rank
                })
                .collect();
            mine.sort_by(|&i, &j| {
                let (p, q) = (
                    &scope.nodes[other(&scope.edges[i])],
                    &scope.nodes[other(&scope.edges[j])],
                );
                p.x.total_cmp(&q.x)
            });
            let n = mine.len() as f64;
            for (k, &i) in mine.iter().enumerate() {
                at[i] = (k as f64 + 1.0) / (n + 1.0);
            }
        }
        at
    };
    let leaving = spread(&|e| e.from, &|e| e.via.first().copied().unwrap_or(e.to));
    let arriving = spread(&|e| e.to, &|e| e.via.last().copied().unwrap_or(e.from));
    for (i, e) in scope.edges.iter().enumerate() {
        let (a, b) = (&scope.nodes[e.from], &scope.nodes[e.to]);
        let path = if b.rank > a.rank {
            // Down through its waypoints: a smooth curve between each two points.
            let mut points = vec![(ox + a.x + a.width * leaving[i], oy + a.y + a.height)];
            points.extend(e.via.iter().map(|&w| {
                let w = &scope.nodes[w];
                (ox + w.x + w.width / 2.0, oy + w.y)
            }));
            points.push((ox + b.x + b.width * arriving[i], oy + b.y));
            let mut path = format!("M{:.1},{:.1}", points[0].0, points[0].1);
            for pair in points.windows(2) {
                let ((sx, sy), (tx, ty)) = (pair[0], pair[1]);
                let bend = (ty - sy) / 2.0;
                let _ = write!(
                    path,
                    " C{sx:.1},{:.1} {tx:.1},{:.1} {tx:.1},{ty:.1}",
                    sy + bend,
                    ty - bend
                );
            }
            path
        } else {
            // Back up (a loop) or along a row: around the right side of the scope.
            loops += 4.0;
            let lane = right + loops.min(LOOP_LANE / 2.0);
            let (sx, sy) = (ox + a.x + a.width, oy + a.y + a.height / 2.0);
            let (tx, ty) = (ox + b.x + b.width, oy + b.y + b.height / 2.0);
            format!("M{sx:.1},{sy:.1} C{lane:.1},{sy:.1} {lane:.1},{ty:.1} {tx:.1},{ty:.1}")
        };
        let _ = write!(
            out,
            "<path class=\"edge {}\" d=\"{path}\" marker-end=\"url(#arrow)\"/>",
            e.class
        );
        if let Some(label) = &e.label {
            let short: String = label.chars().take(24).collect();
            let short = if short.len() < label.len() {
                format!("{short}…")
            } else {
                short
            };
            let (lx, ly) = if b.rank > a.rank {
                // Beside the first stretch, below the state it leaves.
                let (nx, ny) = match e.via.first() {
                    Some(&w) => {
                        let w = &scope.nodes[w];
                        (w.x + w.width / 2.0, w.y)
                    }
                    None => (b.x + b.width * arriving[i], b.y),
                };
                (
                    ox + (a.x + a.width * leaving[i] + nx) / 2.0 + 4.0,
                    oy + (a.y + a.height + ny) / 2.0,
                )
            } else {
                (right - 6.0, oy + (a.y + b.y) / 2.0 + a.height / 2.0)
            };
            // A loop's label stays inside the scope, left of its lane.
            let anchor = if b.rank > a.rank { "start" } else { "end" };
            let _ = write!(
                out,
                "<text class=\"label\" x=\"{lx:.1}\" y=\"{ly:.1}\" text-anchor=\"{anchor}\"><title>{}</title>{}</text>",
                escape(label),
                escape(&short)
            );
        }
    }
    for n in &scope.nodes {
        let (x, y) = (ox + n.x, oy + n.y);
        match &n.what {
            What::Waypoint => {}
            What::Start | What::End => {
                let r = MARKER / 2.0;
                let fill = if matches!(n.what, What::End) {
                    "fill=\"none\" stroke=\"#1f2328\" stroke-width=\"3\""
                } else {
                    "class=\"marker\""
                };
                let _ = write!(
                    out,
                    "<circle {fill} cx=\"{:.1}\" cy=\"{:.1}\" r=\"{r:.1}\"/>",
                    x + r,
                    y + r
                );
            }
            What::State {
                name,
                type_name,
                children,
            } => {
                let marked = mark(name);
                let container = if children.is_empty() {
                    ""
                } else {
                    " container"
                };
                let status = marked
                    .as_ref()
                    .map(|m| format!(" data-status=\"{}\"", m.status))
                    .unwrap_or_default();
                let _ = write!(
                    out,
                    "<g class=\"state{container}\" data-state=\"{}\" data-type=\"{type_name}\"{status}>\
                     <rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"8\"/>",
                    escape(name),
                    n.width,
                    n.height
                );
                let (cx, top) = (x + n.width / 2.0, y);
                let name_y = if children.is_empty() {
                    top + 19.0
                } else {
                    top + 16.0
                };
                let _ = write!(
                    out,
                    "<text class=\"name\" x=\"{cx:.1}\" y=\"{name_y:.1}\" text-anchor=\"middle\">{}</text>\
                     <text class=\"type\" x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{type_name}</text>",
                    escape(name),
                    name_y + 13.0
                );
                if let Some(m) = marked.filter(|m| m.entered > 1) {
                    let _ = write!(
                        out,
                        "<text class=\"count\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">×{}</text>",
                        x + n.width - 8.0,
                        top + 14.0,
                        m.entered
                    );
                }
                out.push_str("</g>");
                // The processor or branches, side by side under the header.
                let inner: f64 = children.iter().map(|c| c.width).sum::<f64>()
                    + COLUMN_GAP * children.len().saturating_sub(1) as f64;
                let mut cx = x + (n.width - inner) / 2.0;
                for child in children {
                    let cy = y + HEADER + PADDING;
                    let _ = write!(
                        out,
                        "<rect class=\"scope\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"6\"/>",
                        cx - 6.0,
                        cy - 6.0,
                        child.width + 12.0,
                        child.height + 12.0
                    );
                    draw(out, child, cx, cy, mark);
                    cx += child.width + COLUMN_GAP;
                }
            }
        }
    }
}

fn scope_loops(scope: &Scope) -> bool {
    scope
        .edges
        .iter()
        .any(|e| scope.nodes[e.to].rank <= scope.nodes[e.from].rank)
}

/// Text for XML: `&`, `<`, `>`, quotes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
