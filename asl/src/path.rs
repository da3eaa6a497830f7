//! JSONPath as Step Functions reads it, parsed once when a definition loads.
//!
//! A [`Path`] starts at one of three roots: `$` (the state's input), `$$` (the context object)
//! or `$name` (a variable set by `Assign`). Paths made only of names and indices (`$.a.b[0]`,
//! `$['x y']`) are kept as [`Step`]s, which both reads and writes use directly; everything else
//! (wildcards, slices, filters, `..`) is compiled by jsonpath-rust.
//!
//! AWS accepts two spellings that RFC 9535 does not, and we rewrite them before parsing:
//! `$.a.['b c']` (a dot before a bracket) and dot-names with characters such as `-`
//! (`$.detail-type`), which the Jayway library behind AWS accepts.

use std::fmt::{self, Write as _};

use jsonpath_rust::parser::model::{
    Comparable, Comparison, Filter, FilterAtom, FnArg, JpQuery, Literal, Segment, Selector,
    SingularQuery, SingularQuerySegment, Test, TestFunction,
};
use jsonpath_rust::parser::parse_json_path;
use jsonpath_rust::query::js_path_process;
use serde_json::Value;

/// Where a path starts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Root {
    /// `$`: the state's (effective) input.
    Input,
    /// `$$`: the context object.
    Context,
    /// `$name`: a workflow variable.
    Variable(String),
}

/// One step of a singular path: a member name or an array index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Step {
    /// `.name` or `['name']`
    Field(String),
    /// `[3]`
    Index(usize),
}

#[derive(Debug, Clone, PartialEq)]
enum Body {
    /// Names and non-negative indices only: a Reference Path.
    Steps(Vec<Step>),
    /// Anything else, compiled by jsonpath-rust (relative to the root value).
    Query(JpQuery),
}

/// A compiled JSONPath. Equality ignores the original spelling.
#[derive(Debug, Clone)]
pub struct Path {
    text: String,
    root: Root,
    body: Body,
}

impl PartialEq for Path {
    fn eq(&self, other: &Self) -> bool {
        self.root == other.root && self.body == other.body
    }
}

/// Why a string is not a path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `"a.b"`: every path starts with `$`.
    #[error("a path must start with '$'")]
    NoRoot,
    /// `"$.a[?"`: not valid JSONPath.
    #[error("invalid JSONPath: {0}")]
    Syntax(String),
    /// `"$.a[*]"` where only a Reference Path (names and indices) is allowed.
    #[error("a reference path may only contain field names and array indices")]
    NotAReference,
}

impl Path {
    /// Parses any JSONPath AWS accepts in a `Path` field or a `.$` value.
    pub fn parse(text: &str) -> Result<Path, Error> {
        let (root, rest) = split_root(text)?;
        let body = match parse_steps(rest) {
            Some(steps) => Body::Steps(steps),
            None => {
                let rfc = to_rfc9535(rest).ok_or_else(|| Error::Syntax(text.to_owned()))?;
                let query = parse_json_path(&rfc)
                    .map_err(|e| Error::Syntax(short_error(&e.to_string())))?;
                Body::Query(query)
            }
        };
        Ok(Path {
            text: text.to_owned(),
            root,
            body,
        })
    }

    /// Parses a Reference Path: a path that names exactly one value by field names and indices.
    pub fn parse_reference(text: &str) -> Result<Path, Error> {
        let path = Path::parse(text)?;
        match path.body {
            Body::Steps(_) => Ok(path),
            Body::Query(_) => Err(Error::NotAReference),
        }
    }

    /// `$`
    pub fn root_input() -> Path {
        Path {
            text: "$".to_owned(),
            root: Root::Input,
            body: Body::Steps(Vec::new()),
        }
    }

    /// The text as written in the definition.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Where the path starts.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// The steps of a Reference Path; `None` for a query (wildcards, slices, filters...).
    pub fn steps(&self) -> Option<&[Step]> {
        match &self.body {
            Body::Steps(steps) => Some(steps),
            Body::Query(_) => None,
        }
    }

    /// True when the path can only ever select one value. Step Functions returns a query's
    /// matches as an array, and a singular path's match as the value itself.
    pub fn is_singular(&self) -> bool {
        matches!(self.body, Body::Steps(_))
    }

    /// Selects from `root`, the value this path's [`Root`] names. A singular path yields at most
    /// one value; a query yields every match in document order.
    pub fn select<'v>(&self, root: &'v Value) -> Vec<&'v Value> {
        match &self.body {
            Body::Steps(steps) => get(root, steps).into_iter().collect(),
            Body::Query(query) => {
                select_simple(root, &query.segments).unwrap_or_else(|| select_general(query, root))
            }
        }
    }
}

/// jsonpath-rust's evaluation, for every query.
fn select_general<'v>(query: &JpQuery, root: &'v Value) -> Vec<&'v Value> {
    js_path_process(query, root)
        .map(|refs| refs.into_iter().map(|r| r.val()).collect())
        .unwrap_or_default()
}

/// Queries made of names, indices, wildcards and slices (no filters, no `..`), evaluated
/// directly: an order of magnitude faster than the general engine, which builds a path string
/// for every node it visits. `None` for any other query. Same results (RFC 9535 semantics).
fn select_simple<'v>(root: &'v Value, segments: &[Segment]) -> Option<Vec<&'v Value>> {
    let mut current = vec![root];
    for segment in segments {
        let Segment::Selector(selector) = segment else {
            return None;
        };
        let mut next = Vec::with_capacity(current.len());
        for v in current {
            match (selector, v) {
                (Selector::Name(name), Value::Object(map)) => next.extend(map.get(name)),
                (Selector::Index(i), Value::Array(items)) => {
                    let len = items.len() as i64;
                    let i = if *i < 0 { len + i } else { *i };
                    if (0..len).contains(&i) {
                        next.push(&items[i as usize]);
                    }
                }
                (Selector::Wildcard, Value::Array(items)) => next.extend(items),
                (Selector::Wildcard, Value::Object(map)) => next.extend(map.values()),
                (Selector::Slice(start, end, step), Value::Array(items)) => {
                    slice(items, *start, *end, *step, &mut next)
                }
                (Selector::Filter(_), _) => return None,
                _ => {}
            }
        }
        current = next;
    }
    Some(current)
}

/// RFC 9535 array slice.
fn slice<'v>(
    items: &'v [Value],
    start: Option<i64>,
    end: Option<i64>,
    step: Option<i64>,
    out: &mut Vec<&'v Value>,
) {
    let len = items.len() as i64;
    let step = step.unwrap_or(1);
    let norm = |i: i64| if i >= 0 { i } else { len + i };
    if step > 0 {
        let lower = norm(start.unwrap_or(0)).clamp(0, len);
        let upper = norm(end.unwrap_or(len)).clamp(0, len);
        let mut i = lower;
        while i < upper {
            out.push(&items[i as usize]);
            i += step;
        }
    } else if step < 0 {
        let upper = norm(start.unwrap_or(len - 1)).clamp(-1, len - 1);
        let lower = norm(end.unwrap_or(-len - 1)).clamp(-1, len - 1);
        let mut i = upper;
        while lower < i {
            out.push(&items[i as usize]);
            i += step;
        }
    }
}

#[cfg(test)]
pub(crate) fn select_with_general_engine<'v>(path: &Path, root: &'v Value) -> Vec<&'v Value> {
    match &path.body {
        Body::Steps(steps) => get(root, steps).into_iter().collect(),
        Body::Query(query) => select_general(query, root),
    }
}

/// Follows `steps` from `value`; `None` when a step is missing.
pub fn get<'v>(mut value: &'v Value, steps: &[Step]) -> Option<&'v Value> {
    for step in steps {
        value = match (step, value) {
            (Step::Field(name), Value::Object(map)) => map.get(name)?,
            (Step::Index(i), Value::Array(items)) => items.get(*i)?,
            _ => return None,
        };
    }
    Some(value)
}

impl fmt::Display for Path {
    /// The canonical spelling: `Path::parse(&p.to_string()) == p` for every path.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.root {
            Root::Input => f.write_str("$")?,
            Root::Context => f.write_str("$$")?,
            Root::Variable(name) => write!(f, "${name}")?,
        }
        match &self.body {
            Body::Steps(steps) => {
                for step in steps {
                    match step {
                        Step::Field(name) if is_shorthand(name) => write!(f, ".{name}")?,
                        Step::Field(name) => {
                            f.write_char('[')?;
                            write_quoted(f, name)?;
                            f.write_char(']')?;
                        }
                        Step::Index(i) => write!(f, "[{i}]")?,
                    }
                }
                Ok(())
            }
            Body::Query(query) => write_segments(f, &query.segments),
        }
    }
}

/// Splits `$$...`, `$name...` and `$...` into a root and the body after it.
fn split_root(text: &str) -> Result<(Root, &str), Error> {
    if let Some(body) = text.strip_prefix("$$") {
        return Ok((Root::Context, body));
    }
    let after = text.strip_prefix('$').ok_or(Error::NoRoot)?;
    let name_len = after
        .char_indices()
        .find(|&(_, c)| !(c.is_alphanumeric() || c == '_'))
        .map_or(after.len(), |(i, _)| i);
    if name_len == 0 {
        return Ok((Root::Input, after));
    }
    let name = &after[..name_len];
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(Error::Syntax(text.to_owned()));
    }
    Ok((Root::Variable(name.to_owned()), &after[name_len..]))
}

/// Parses names and non-negative indices: `.a`, `['a']`, `["a"]`, `.['a']`, `[0]`.
/// `None` when the path needs the general query engine (or is malformed).
fn parse_steps(s: &str) -> Option<Vec<Step>> {
    let b = s.as_bytes();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'.' => {
                i += 1;
                if i < b.len() && b[i] == b'[' {
                    continue; // AWS's `.['name']`
                }
                let start = i;
                while i < b.len() && !matches!(b[i], b'.' | b'[') {
                    i += 1;
                }
                let name = &s[start..i];
                if name.is_empty() || name.chars().any(is_not_in_dot_name) {
                    return None;
                }
                steps.push(Step::Field(name.to_owned()));
            }
            b'[' => {
                i += 1;
                match b.get(i)? {
                    q @ (b'\'' | b'"') => {
                        let (name, used) = read_quoted(&s[i..], *q as char)?;
                        i += used;
                        if b.get(i) != Some(&b']') {
                            return None;
                        }
                        i += 1;
                        steps.push(Step::Field(name));
                    }
                    b'0'..=b'9' => {
                        let start = i;
                        while i < b.len() && b[i].is_ascii_digit() {
                            i += 1;
                        }
                        if b.get(i) != Some(&b']') || (i - start > 1 && b[start] == b'0') {
                            return None;
                        }
                        let index = s[start..i].parse().ok()?;
                        i += 1;
                        steps.push(Step::Index(index));
                    }
                    _ => return None,
                }
            }
            _ => return None,
        }
    }
    Some(steps)
}

/// Characters a dot-name (`$.name`) cannot hold: they belong to query syntax, so such a name is
/// either a query (`$.*`) or an error. Others, such as `-` and `:`, are allowed as Jayway (the
/// library behind AWS) allows them: `$.detail-type`, `$.aws:region`.
fn is_not_in_dot_name(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '*' | '(' | ')' | '?' | '@' | ',' | '\'' | '"' | ']' | '$'
        )
}

/// Reads a quoted name starting at its opening quote; returns it and the bytes used. As in
/// Jayway, only the quote itself and the backslash are escaped (`\'`, `\\`); any other
/// backslash is part of the name (the corpus's `$['Test\""Name"']` names a key holding `\"`).
fn read_quoted(s: &str, quote: char) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1).peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c == quote => return Some((out, i + 1)),
            '\\' => match chars.peek() {
                Some(&(_, e)) if e == quote || e == '\\' => {
                    out.push(e);
                    chars.next();
                }
                _ => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    None
}

/// Rewrites AWS's spellings into RFC 9535: `.[` becomes `[`, and a dot-name that RFC 9535's
/// shorthand does not allow becomes `['name']`. Quoted strings and filters are copied as they are.
fn to_rfc9535(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len() + 8);
    out.push('$');
    let b = s.as_bytes();
    let mut i = 0;
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    while i < b.len() {
        let c = b[i];
        if let Some(q) = quote {
            // Copy whole characters: quoted names may hold any Unicode.
            let ch = s[i..].chars().next()?;
            out.push(ch);
            i += ch.len_utf8();
            if c == b'\\' {
                let escaped = s[i..].chars().next()?;
                out.push(escaped);
                i += escaped.len_utf8();
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            b'\'' | b'"' => {
                quote = Some(c);
                out.push(c as char);
                i += 1;
            }
            b'[' | b'(' => {
                depth += 1;
                out.push(c as char);
                i += 1;
            }
            b']' | b')' => {
                depth = depth.checked_sub(1)?;
                out.push(c as char);
                i += 1;
            }
            b'.' if depth == 0 => {
                let dots = if b.get(i + 1) == Some(&b'.') { 2 } else { 1 };
                i += dots;
                if dots == 1 && b.get(i) == Some(&b'[') {
                    continue; // `.[` -> `[`
                }
                let start = i;
                while i < b.len() && !matches!(b[i], b'.' | b'[') {
                    i += 1;
                }
                let name = &s[start..i];
                if name != "*" && name.chars().any(is_not_in_dot_name) {
                    return None;
                }
                out.push_str(if dots == 2 { ".." } else { "." });
                if name == "*" || name.is_empty() || is_shorthand(name) {
                    out.push_str(name);
                } else {
                    if dots == 2 {
                        out.pop();
                        out.pop();
                        out.push_str("..");
                    } else {
                        out.pop();
                    }
                    out.push('[');
                    let mut quoted = String::new();
                    write_string(&mut quoted, name).ok()?;
                    out.push_str(&quoted);
                    out.push(']');
                }
            }
            _ => {
                // Multi-byte characters are copied whole.
                let ch = s[i..].chars().next()?;
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    Some(out)
}

/// RFC 9535 member-name-shorthand: `name-first *name-char`.
fn is_shorthand(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c as u32 >= 0x80);
    first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c as u32 >= 0x80)
}

/// Writes a name as [`read_quoted`] reads it back: only the quote and the backslash escaped.
fn write_quoted(f: &mut impl fmt::Write, s: &str) -> fmt::Result {
    f.write_char('\'')?;
    for c in s.chars() {
        if c == '\'' || c == '\\' {
            f.write_char('\\')?;
        }
        f.write_char(c)?;
    }
    f.write_char('\'')
}

/// Writes `s` as a single-quoted RFC 9535 string literal (queries are parsed by jsonpath-rust).
fn write_string(f: &mut impl fmt::Write, s: &str) -> fmt::Result {
    f.write_char('\'')?;
    for c in s.chars() {
        match c {
            '\'' => f.write_str("\\'")?,
            '\\' => f.write_str("\\\\")?,
            '\u{8}' => f.write_str("\\b")?,
            '\u{c}' => f.write_str("\\f")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if (c as u32) < 0x20 => write!(f, "\\u{:04x}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('\'')
}

fn short_error(e: &str) -> String {
    e.lines().next().unwrap_or(e).to_owned()
}

// Canonical printing of jsonpath-rust's syntax tree, in bracket form, which RFC 9535 parses back
// to the same tree.

fn write_segments(f: &mut impl fmt::Write, segments: &[Segment]) -> fmt::Result {
    segments.iter().try_for_each(|s| write_segment(f, s))
}

fn write_segment(f: &mut impl fmt::Write, segment: &Segment) -> fmt::Result {
    match segment {
        Segment::Descendant(inner) => {
            f.write_str("..")?;
            write_segment(f, inner)
        }
        Segment::Selector(selector) => {
            f.write_char('[')?;
            write_selector(f, selector)?;
            f.write_char(']')
        }
        Segment::Selectors(selectors) => {
            f.write_char('[')?;
            for (i, selector) in selectors.iter().enumerate() {
                if i > 0 {
                    f.write_char(',')?;
                }
                write_selector(f, selector)?;
            }
            f.write_char(']')
        }
    }
}

fn write_selector(f: &mut impl fmt::Write, selector: &Selector) -> fmt::Result {
    match selector {
        Selector::Name(name) => write_string(f, name),
        Selector::Wildcard => f.write_char('*'),
        Selector::Index(i) => write!(f, "{i}"),
        Selector::Slice(start, end, step) => {
            if let Some(start) = start {
                write!(f, "{start}")?;
            }
            f.write_char(':')?;
            if let Some(end) = end {
                write!(f, "{end}")?;
            }
            if let Some(step) = step {
                write!(f, ":{step}")?;
            }
            Ok(())
        }
        Selector::Filter(filter) => {
            f.write_char('?')?;
            write_filter(f, filter)
        }
    }
}

fn write_filter(f: &mut impl fmt::Write, filter: &Filter) -> fmt::Result {
    match filter {
        Filter::Or(items) => write_joined(f, items, " || "),
        Filter::And(items) => write_joined(f, items, " && "),
        Filter::Atom(atom) => match atom {
            FilterAtom::Filter { expr, not } => {
                if *not {
                    f.write_char('!')?;
                }
                f.write_char('(')?;
                write_filter(f, expr)?;
                f.write_char(')')
            }
            FilterAtom::Test { expr, not } => {
                if *not {
                    f.write_char('!')?;
                }
                write_test(f, expr)
            }
            FilterAtom::Comparison(cmp) => write_comparison(f, cmp),
        },
    }
}

/// No added parentheses: the tree holds the source's own as `FilterAtom::Filter` nodes, and
/// `&&` binds tighter than `||`, so operands print as they are.
fn write_joined(f: &mut impl fmt::Write, items: &[Filter], separator: &str) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(separator)?;
        }
        write_filter(f, item)?;
    }
    Ok(())
}

fn write_comparison(f: &mut impl fmt::Write, cmp: &Comparison) -> fmt::Result {
    let (op, (l, r)) = match cmp {
        Comparison::Eq(..) => ("==", cmp.vals()),
        Comparison::Ne(..) => ("!=", cmp.vals()),
        Comparison::Gt(..) => (">", cmp.vals()),
        Comparison::Gte(..) => (">=", cmp.vals()),
        Comparison::Lt(..) => ("<", cmp.vals()),
        Comparison::Lte(..) => ("<=", cmp.vals()),
    };
    write_comparable(f, l)?;
    write!(f, " {op} ")?;
    write_comparable(f, r)
}

fn write_comparable(f: &mut impl fmt::Write, c: &Comparable) -> fmt::Result {
    match c {
        Comparable::Literal(lit) => write_literal(f, lit),
        Comparable::Function(func) => write_function(f, func),
        Comparable::SingularQuery(q) => {
            let segments = match q {
                SingularQuery::Current(s) => {
                    f.write_char('@')?;
                    s
                }
                SingularQuery::Root(s) => {
                    f.write_char('$')?;
                    s
                }
            };
            for segment in segments {
                match segment {
                    SingularQuerySegment::Index(i) => write!(f, "[{i}]")?,
                    SingularQuerySegment::Name(n) => {
                        f.write_char('[')?;
                        write_string(f, n)?;
                        f.write_char(']')?;
                    }
                }
            }
            Ok(())
        }
    }
}

fn write_literal(f: &mut impl fmt::Write, lit: &Literal) -> fmt::Result {
    match lit {
        Literal::Int(i) => write!(f, "{i}"),
        Literal::Float(x) => write!(f, "{x:?}"),
        Literal::String(s) => write_string(f, s),
        Literal::Bool(b) => write!(f, "{b}"),
        Literal::Null => f.write_str("null"),
    }
}

fn write_test(f: &mut impl fmt::Write, test: &Test) -> fmt::Result {
    match test {
        Test::RelQuery(segments) => {
            f.write_char('@')?;
            write_segments(f, segments)
        }
        Test::AbsQuery(query) => {
            f.write_char('$')?;
            write_segments(f, &query.segments)
        }
        Test::Function(func) => write_function(f, func),
    }
}

fn write_function(f: &mut impl fmt::Write, func: &TestFunction) -> fmt::Result {
    let (name, args): (&str, Vec<&FnArg>) = match func {
        TestFunction::Custom(name, args) => (name, args.iter().collect()),
        TestFunction::Length(a) => ("length", vec![a]),
        TestFunction::Value(a) => ("value", vec![a]),
        TestFunction::Count(a) => ("count", vec![a]),
        TestFunction::Search(a, b) => ("search", vec![a, b]),
        TestFunction::Match(a, b) => ("match", vec![a, b]),
    };
    write!(f, "{name}(")?;
    for (i, arg) in args.into_iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        match arg {
            FnArg::Literal(lit) => write_literal(f, lit)?,
            FnArg::Test(test) => write_test(f, test)?,
            FnArg::Filter(filter) => write_filter(f, filter)?,
        }
    }
    f.write_char(')')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn steps(text: &str) -> Vec<Step> {
        Path::parse(text)
            .unwrap()
            .steps()
            .expect("singular")
            .to_vec()
    }

    fn field(s: &str) -> Step {
        Step::Field(s.to_owned())
    }

    #[test]
    fn singular_forms() {
        assert_eq!(steps("$"), vec![]);
        assert_eq!(steps("$.a.b"), vec![field("a"), field("b")]);
        assert_eq!(steps("$.a[0]"), vec![field("a"), Step::Index(0)]);
        assert_eq!(steps("$['a b']"), vec![field("a b")]);
        assert_eq!(steps("$[\"a\"]"), vec![field("a")]);
        assert_eq!(steps("$.a.['b c']"), vec![field("a"), field("b c")]);
        assert_eq!(steps("$.detail-type"), vec![field("detail-type")]);
        assert_eq!(steps("$.aws:region"), vec![field("aws:region")]);
        assert_eq!(
            steps("$.items[12].itemValue"),
            vec![field("items"), Step::Index(12), field("itemValue")]
        );
        assert_eq!(steps("$['it\\'s']"), vec![field("it's")]);
    }

    #[test]
    fn roots() {
        assert_eq!(Path::parse("$").unwrap().root(), &Root::Input);
        assert_eq!(
            Path::parse("$$.Execution.Id").unwrap().root(),
            &Root::Context
        );
        assert_eq!(
            steps("$$.Execution.Id"),
            vec![field("Execution"), field("Id")]
        );
        let var = Path::parse("$counter.value").unwrap();
        assert_eq!(var.root(), &Root::Variable("counter".into()));
        assert_eq!(var.steps().unwrap(), &[field("value")]);
        assert_eq!(
            Path::parse("$x").unwrap().root(),
            &Root::Variable("x".into())
        );
        assert_eq!(Path::parse("$x").unwrap().steps().unwrap(), &[] as &[Step]);
        assert_eq!(
            Path::parse("$x[1]").unwrap().steps().unwrap(),
            &[Step::Index(1)]
        );
    }

    #[test]
    fn queries() {
        for q in [
            "$.items[*]",
            "$.items[1:5]",
            "$.items[1:]",
            "$..itemValue",
            "$.items[-1]",
            "$.a[?(@.x > 1)]",
            "$.a[?(@.name == 'b')].c",
            "$.a[0,1]",
            "$.item.items[*].itemValue",
        ] {
            let p = Path::parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
            assert!(!p.is_singular(), "{q}");
        }
    }

    #[test]
    fn invalid() {
        assert_eq!(Path::parse("a.b"), Err(Error::NoRoot));
        assert_eq!(Path::parse(""), Err(Error::NoRoot));
        for bad in [
            "$.", "$[", "$.a[?", "$..", "$['a'", "$[01]", "$1a", "$.a]", "$.a b", "$.a'b", "$.(a)",
        ] {
            assert!(Path::parse(bad).is_err(), "{bad} should fail");
        }
        assert_eq!(Path::parse_reference("$.a[*]"), Err(Error::NotAReference));
        assert_eq!(Path::parse_reference("$..a"), Err(Error::NotAReference));
        assert!(Path::parse_reference("$.a['b'][2]").is_ok());
    }

    #[test]
    fn printing_is_canonical() {
        for (text, printed) in [
            ("$", "$"),
            ("$.a.b", "$.a.b"),
            ("$['a']", "$.a"),
            ("$.a.['b c']", "$.a['b c']"),
            ("$.detail-type", "$['detail-type']"),
            ("$$.Map.Item.Value", "$$.Map.Item.Value"),
            ("$v.x[2]", "$v.x[2]"),
            ("$.items[*].id", "$['items'][*]['id']"),
            ("$.a[1:3]", "$['a'][1:3]"),
        ] {
            let p = Path::parse(text).unwrap();
            assert_eq!(p.to_string(), printed, "{text}");
            assert_eq!(Path::parse(printed).unwrap(), p, "{text}");
        }
    }

    #[test]
    fn simple_queries_agree_with_the_general_engine() {
        let doc =
            json!({"a": [0, 1, 2, 3, 4, 5, {"b": 1}], "o": {"x": 1, "y": [7, 8]}, "s": "str"});
        for q in [
            "$.a[*]",
            "$.a[1:3]",
            "$.a[:2]",
            "$.a[4:]",
            "$.a[-2:]",
            "$.a[::2]",
            "$.a[::-1]",
            "$.a[5:1:-2]",
            "$.a[-1]",
            "$.a[-10]",
            "$.a[0:0]",
            "$.a[1:3:0]",
            "$.o[*]",
            "$.o.*",
            "$.*",
            "$.a[*].b",
            "$.s[*]",
            "$.o.y[*]",
            "$.nope[*]",
            "$[*][*]",
            "$.a[10:20]",
            "$.a[-20:2]",
        ] {
            let p = Path::parse(q).unwrap();
            assert_eq!(p.select(&doc), select_with_general_engine(&p, &doc), "{q}");
        }
    }

    use proptest::prelude::*;

    proptest::proptest! {
        #[test]
        fn simple_query_engine_matches_the_general_one(
            segments in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(vec!["a", "b", "c"]).prop_map(|n| format!(".{n}")),
                    (-4i64..6).prop_map(|i| format!("[{i}]")),
                    proptest::strategy::Just("[*]".to_owned()),
                    (proptest::option::of(-5i64..6), proptest::option::of(-5i64..6), proptest::option::of(-3i64..4))
                        .prop_map(|(a, b, s)| format!("[{}:{}{}]", a.map_or(String::new(), |x| x.to_string()), b.map_or(String::new(), |x| x.to_string()), s.map_or(String::new(), |x| format!(":{x}")))),
                ],
                1..4,
            ),
            width in 0usize..6,
        ) {
            let leaf = |i: usize| json!({"a": i, "b": [i, i + 1], "c": {"a": i}});
            let doc = json!({"a": (0..width).map(leaf).collect::<Vec<_>>(), "b": leaf(7), "c": [[1, 2], [3], []]});
            let text = format!("${}", segments.concat());
            if let Ok(p) = Path::parse(&text) {
                prop_assert_eq!(p.select(&doc), select_with_general_engine(&p, &doc), "{}", text);
            }
        }
    }

    #[test]
    fn select() {
        let doc =
            json!({"a": {"b c": [1, 2, 3]}, "items": [{"v": 1}, {"v": 2}], "detail-type": "x"});
        let sel = |p: &str| {
            Path::parse(p)
                .unwrap()
                .select(&doc)
                .into_iter()
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(sel("$.a.['b c'][1]"), vec![json!(2)]);
        assert_eq!(sel("$.items[*].v"), vec![json!(1), json!(2)]);
        assert_eq!(sel("$.items[?(@.v > 1)].v"), vec![json!(2)]);
        assert_eq!(sel("$.detail-type"), vec![json!("x")]);
        assert_eq!(sel("$.missing"), Vec::<Value>::new());
    }
}
