//! The execution viewer: web pages `serve` answers to GET requests, rendered here from the
//! store, so that a page shows everything without its script (which only refreshes a running
//! execution's page and sends Stop and Redrive to the API the page comes from).
//!
//! - `/` lists the state machines and the executions (`?status=` filters them);
//! - `/execution?arn=ARN` shows one execution: its status, error and cause, input and output,
//!   its graph (`asl::graph::svg`, the drawing `stepstone graph --format svg` prints) with each
//!   state coloured by what the history says of it and how many times it was entered, and
//!   its distributed Maps' Map Runs (children succeeded, failed, running), and its events,
//!   each with its details to unfold (`&part=graph`: the summary, the graph and the Map Runs
//!   alone; `&part=events`: the events alone).
//!
//! Everything is embedded in the binary (no CDN: the pages work offline). The pages are
//! served only where the API needs no signature (no `--credentials`): a browser cannot sign
//! its requests, and what the pages show must not be open to whoever reaches the port.

use std::collections::HashMap;
use std::fmt::Write as _;

use hyper::StatusCode;
use serde_json::Value;
use stepstone::asl::graph::svg::{Mark, escape, svg};
use stepstone::asl::{Machine, Options, ScopeRef, validate_str};
use stepstone::engine::history::{Event, EventKind};
use stepstone::engine::store::CheckpointStore;

use super::Service;

const STYLE: &str = include_str!("viewer/viewer.css");
const SCRIPT: &str = include_str!("viewer/viewer.js");

/// The most events an execution's page lists (the latest; the statuses count them all).
const EVENTS_SHOWN: usize = 1000;

/// Up to how many events the state each belongs to is worked out.
const STEPS_TRACKED: usize = 100_000;

/// The most executions the index lists (the latest).
const EXECUTIONS_SHOWN: usize = 500;

/// A page: its status, content type and body.
pub(super) struct Page {
    pub(super) status: StatusCode,
    pub(super) content_type: &'static str,
    pub(super) body: String,
}

/// Answers a GET of `path` with `query`.
pub(super) fn page(service: &Service, path: &str, query: &str) -> Page {
    if service.credentials.is_some() {
        return text(
            StatusCode::FORBIDDEN,
            "The execution viewer is not served with --credentials: a browser cannot sign its \
             requests. Run a `stepstone serve` on 127.0.0.1 without --credentials to see it.",
        );
    }
    let answered = match path {
        "/" | "/index.html" => index(&*service.store, param(query, "status").as_deref()),
        "/execution" => match param(query, "arn") {
            Some(arn) => execution(&*service.store, &arn, param(query, "part").as_deref()),
            None => Err((
                StatusCode::BAD_REQUEST,
                "which execution? (?arn=...)".into(),
            )),
        },
        "/viewer.css" => {
            return Page {
                status: StatusCode::OK,
                content_type: "text/css; charset=utf-8",
                body: STYLE.to_owned(),
            };
        }
        "/viewer.js" => {
            return Page {
                status: StatusCode::OK,
                content_type: "text/javascript; charset=utf-8",
                body: SCRIPT.to_owned(),
            };
        }
        _ => Err((StatusCode::NOT_FOUND, format!("no page {path}"))),
    };
    match answered {
        Ok(body) => Page {
            status: StatusCode::OK,
            content_type: "text/html; charset=utf-8",
            body,
        },
        Err((status, message)) => Page {
            status,
            content_type: "text/html; charset=utf-8",
            body: layout(
                "Stepstone",
                &format!("<p class=\"error\">{}</p>", escape(&message)),
            ),
        },
    }
}

fn text(status: StatusCode, message: &str) -> Page {
    Page {
        status,
        content_type: "text/plain; charset=utf-8",
        body: message.to_owned(),
    }
}

type Answer = Result<String, (StatusCode, String)>;

fn failed(e: impl std::fmt::Display) -> (StatusCode, String) {
    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// A whole page around `main`.
fn layout(title: &str, main: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · Stepstone</title><link rel=\"stylesheet\" href=\"/viewer.css\"></head>\
         <body><header><a class=\"home\" href=\"/\">Stepstone</a></header>\
         <main id=\"main\">{main}</main><script src=\"/viewer.js\"></script></body></html>\n",
        escape(title)
    )
}

fn index(store: &dyn CheckpointStore, status: Option<&str>) -> Answer {
    let mut main = String::from("<h1>State machines</h1>");
    let machines = store.state_machines().map_err(failed)?;
    let machines: Vec<_> = machines
        .iter()
        .filter(|m| m.kind == "STANDARD" || m.kind == "EXPRESS")
        .collect();
    if machines.is_empty() {
        main.push_str("<p class=\"quiet\">None created through the API yet.</p>");
    } else {
        main.push_str(
            "<table><thead><tr><th>Name</th><th>Type</th><th>ARN</th></tr></thead><tbody>",
        );
        for m in machines {
            let _ = write!(
                main,
                "<tr><td>{}</td><td>{}</td><td class=\"arn\">{}</td></tr>",
                escape(&m.name),
                escape(&m.kind),
                escape(&m.arn)
            );
        }
        main.push_str("</tbody></table>");
    }
    let mut executions = store.list().map_err(failed)?;
    executions.retain(|e| status.is_none_or(|s| e.status.eq_ignore_ascii_case(s)));
    executions.sort_by_key(|e| std::cmp::Reverse(e.start_date));
    main.push_str("<h1>Executions</h1><nav class=\"filters\">");
    for (label, value) in [
        ("All", None),
        ("Running", Some("RUNNING")),
        ("Succeeded", Some("SUCCEEDED")),
        ("Failed", Some("FAILED")),
        ("Timed out", Some("TIMED_OUT")),
        ("Aborted", Some("ABORTED")),
    ] {
        let current = value.map(str::to_owned) == status.map(str::to_ascii_uppercase);
        let href = value.map_or("/".to_owned(), |v| format!("/?status={v}"));
        let _ = write!(
            main,
            "<a href=\"{href}\"{}>{label}</a>",
            if current { " class=\"current\"" } else { "" }
        );
    }
    main.push_str("</nav>");
    if executions.is_empty() {
        main.push_str("<p class=\"quiet\">No executions.</p>");
    } else {
        let _ = write!(
            main,
            "<table class=\"executions\"><thead><tr><th>Name</th><th>State machine</th><th>Status</th>\
             <th>Started</th><th>Stopped</th></tr></thead><tbody>"
        );
        for e in executions.iter().take(EXECUTIONS_SHOWN) {
            let stop = e.stop_date.map(|d| d.to_string()).unwrap_or_default();
            let _ = write!(
                main,
                "<tr><td><a href=\"/execution?arn={}\">{}</a></td><td>{}</td>\
                 <td><span class=\"status {}\">{}</span></td><td>{}</td><td>{}</td></tr>",
                encode(&e.execution_arn),
                escape(&e.name),
                escape(&e.state_machine_name),
                e.status.to_ascii_lowercase(),
                escape(&e.status),
                e.start_date,
                stop
            );
        }
        main.push_str("</tbody></table>");
        if executions.len() > EXECUTIONS_SHOWN {
            let _ = write!(
                main,
                "<p class=\"quiet\">The latest {EXECUTIONS_SHOWN} of {}.</p>",
                executions.len()
            );
        }
    }
    Ok(layout("Executions", &main))
}

/// An execution's page (`part=main`: only what goes inside `<main>`, for the refresh).
fn execution(store: &dyn CheckpointStore, arn: &str, part: Option<&str>) -> Answer {
    let described = store
        .describe(arn)
        .map_err(failed)?
        .ok_or_else(|| (StatusCode::NOT_FOUND, format!("no execution {arn}")))?;
    let definition = store
        .definition(arn)
        .map_err(failed)?
        .ok_or_else(|| (StatusCode::NOT_FOUND, format!("no definition for {arn}")))?;
    let machine = validate_str(&definition, Options::default())
        .machine
        .ok_or_else(|| failed("the execution's definition no longer validates"))?;
    let status = described.status.as_str();
    let mut tally = Tally::default();
    let mut shown: std::collections::VecDeque<(Event, Option<std::rc::Rc<str>>)> =
        std::collections::VecDeque::new();
    let mut total = 0usize;
    // The state each event belongs to: a state's own events name it, the others (a task's, a
    // Map's) follow `previousEventId` back to one. Worked out for histories of a size a page
    // shows; past that, only state events say their state.
    let mut steps: HashMap<u64, std::rc::Rc<str>> = HashMap::new();
    store
        .each_event(arn, &mut |event| {
            tally.count(&event);
            total += 1;
            let step = match step_of(&event.kind) {
                Some(name) => Some(std::rc::Rc::<str>::from(name)),
                None => steps.get(&event.previous_event_id).cloned(),
            };
            if total <= STEPS_TRACKED
                && let Some(step) = &step
            {
                steps.insert(event.id, step.clone());
            }
            if shown.len() == EVENTS_SHOWN {
                shown.pop_front();
            }
            shown.push_back((event, step));
            true
        })
        .map_err(failed)?;
    let marks = tally.marks(&machine, status);
    let info = &described.info;

    let mut main = String::new();
    let _ = write!(
        main,
        "<section class=\"summary\" data-execution-status=\"{status}\">\
         <h1>{}</h1><p class=\"arn\">{}</p><dl>\
         <dt>Status</dt><dd><span class=\"status {}\">{status}</span></dd>\
         <dt>State machine</dt><dd>{}</dd><dt>Started</dt><dd>{}</dd>",
        escape(&info.name),
        escape(&info.execution_arn),
        status.to_ascii_lowercase(),
        escape(&info.state_machine_name),
        info.start_time
    );
    if status != "RUNNING" {
        let _ = write!(main, "<dt>Stopped</dt><dd>{}</dd>", described.now);
    }
    if info.redrive_count > 0 {
        let _ = write!(
            main,
            "<dt>Redriven</dt><dd>{} times</dd>",
            info.redrive_count
        );
    }
    main.push_str("</dl>");
    use stepstone::engine::Status;
    match &described.status {
        Status::Failed(f) | Status::TimedOut(f) | Status::Aborted(f) => {
            let _ = write!(
                main,
                "<div class=\"failure\"><p><b>Error</b> <code>{}</code></p><p><b>Cause</b></p><pre>{}</pre></div>",
                escape(&f.error),
                escape(&f.cause)
            );
        }
        _ => {}
    }
    main.push_str("<div class=\"actions\">");
    if status == "RUNNING" {
        main.push_str("<button data-action=\"StopExecution\">Stop</button>");
    }
    if matches!(status, "FAILED" | "ABORTED" | "TIMED_OUT") {
        main.push_str("<button data-action=\"RedriveExecution\">Redrive</button>");
    }
    main.push_str("</div>");
    main.push_str("</section>");

    main.push_str(
        "<section class=\"graph\" id=\"graph\"><h2>Graph</h2><p class=\"legend\">\
         <span class=\"status succeeded\">succeeded</span> <span class=\"status caught\">caught</span> \
         <span class=\"status failed\">failed</span> <span class=\"status running\">running</span> \
         <span class=\"status not-reached\">not reached</span> ×N: times entered</p><div class=\"drawing\">",
    );
    main.push_str(&svg(&machine, &|name| marks.get(name).cloned()));
    main.push_str("</div></section>");
    map_runs(store, arn, &mut main)?;
    let graph_end = main.len();
    let _ = write!(
        main,
        "<section class=\"data\"><details><summary>Input</summary><pre>{}</pre></details>",
        escape(&pretty(&info.input))
    );
    if let Status::Succeeded(output) = &described.status {
        let _ = write!(
            main,
            "<details><summary>Output</summary><pre>{}</pre></details>",
            escape(&pretty(output))
        );
    }
    main.push_str("</section>");
    let data_end = main.len();

    let _ = write!(
        main,
        "<section class=\"events\" id=\"events\"><h2>Events</h2>{}<table><thead><tr><th>ID</th><th>Type</th>\
         <th>Step</th><th>Time</th><th>Details</th></tr></thead><tbody>",
        if total > shown.len() {
            format!(
                "<p class=\"quiet\">The latest {} of {total} events.</p>",
                shown.len()
            )
        } else {
            String::new()
        }
    );
    for (event, step) in &shown {
        let json = event.to_json();
        let kind = json["type"].as_str().unwrap_or_default();
        let step = step.as_deref().unwrap_or_default();
        let details = json
            .as_object()
            .and_then(|o| o.iter().find(|(k, _)| k.ends_with("EventDetails")))
            .map(|(_, v)| pretty(&expand(v)))
            .unwrap_or_default();
        let class = if kind.ends_with("Failed")
            || kind.ends_with("TimedOut")
            || kind.ends_with("Aborted")
        {
            " class=\"bad\""
        } else {
            ""
        };
        let _ = write!(
            main,
            "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            event.id,
            escape(kind),
            escape(step),
            event.timestamp,
            if details.is_empty() {
                String::new()
            } else {
                format!(
                    "<details><summary>show</summary><pre>{}</pre></details>",
                    escape(&details)
                )
            }
        );
    }
    main.push_str("</tbody></table></section>");
    // The whole of `<main>` (what the script refreshes), or a page of one part: the summary
    // with the graph, or the events (links to share, pictures to take).
    match part {
        Some("main") => Ok(main),
        Some("graph") => Ok(layout(&info.name, &main[..graph_end])),
        Some("events") => Ok(layout(&info.name, &main[data_end..])),
        _ => Ok(layout(&info.name, &main)),
    }
}

/// The state an event is about, for the events table.
/// The Map Runs of the execution's distributed Maps: their children are child executions,
/// whose states the graph does not colour; how many succeeded, failed and run is here.
fn map_runs(
    store: &dyn CheckpointStore,
    arn: &str,
    main: &mut String,
) -> Result<(), (StatusCode, String)> {
    let runs = store.map_runs(arn).map_err(failed)?;
    if runs.is_empty() {
        return Ok(());
    }
    main.push_str(
        "<section class=\"map-runs\" id=\"map-runs\"><h2>Map Runs</h2><table><thead><tr>\
         <th>Map Run</th><th>Status</th><th>Succeeded</th><th>Failed</th><th>Running</th>\
         <th>Children</th><th>Started</th><th>Stopped</th></tr></thead><tbody>",
    );
    for run in &runs {
        // `arn:...:mapRun:MACHINE/LABEL:ID`: the label and id say which.
        let name = run
            .map_run_arn
            .split_once(":mapRun:")
            .map_or(run.map_run_arn.as_str(), |(_, n)| n);
        let _ = write!(
            main,
            "<tr data-map-run-status=\"{status}\" title=\"{arn}\"><td>{}</td>\
             <td><span class=\"status {}\">{status}</span></td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(name),
            run.status.to_ascii_lowercase(),
            run.succeeded,
            run.failed,
            run.running,
            run.total,
            run.start_date,
            run.stop_date.map_or(String::new(), |d| d.to_string()),
            status = escape(&run.status),
            arn = escape(&run.map_run_arn),
        );
    }
    main.push_str("</tbody></table></section>");
    Ok(())
}

fn step_of(kind: &EventKind) -> Option<&str> {
    match kind {
        EventKind::StateEntered { name, .. } | EventKind::StateExited { name, .. } => Some(name),
        EventKind::MapIterationStarted { name, .. } => Some(name),
        _ => None,
    }
}

/// Details with the JSON text they carry (input, output, parameters) shown as JSON.
fn expand(details: &Value) -> Value {
    match details {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(text) if text.starts_with(['{', '[']) => {
                            serde_json::from_str(text).unwrap_or_else(|_| v.clone())
                        }
                        other => expand(other),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// What the history says of each state: times entered and left, and when last entered.
#[derive(Default)]
struct Tally {
    states: HashMap<String, Count>,
}

#[derive(Default, Clone, Copy)]
struct Count {
    entered: u64,
    exited: u64,
    last_entered: u64,
}

impl Tally {
    fn count(&mut self, event: &Event) {
        match &event.kind {
            EventKind::StateEntered { name, .. } => {
                let count = self.states.entry(name.clone()).or_default();
                count.entered += 1;
                count.last_entered = event.id;
            }
            EventKind::StateExited { name, .. } => {
                self.states.entry(name.clone()).or_default().exited += 1;
            }
            _ => {}
        }
    }

    /// Each state's status, for an execution whose status is `execution`:
    /// - not reached: never entered;
    /// - succeeded: left each time it was entered;
    /// - caught: entered and not left, and one of its Catch targets entered after it (its
    ///   failure was caught: the execution went on);
    /// - running: entered and not left, while the execution runs;
    /// - failed: entered and not left, in an execution that ended.
    fn marks(&self, machine: &Machine, execution: &str) -> HashMap<String, Mark> {
        let mut catches: HashMap<&str, Vec<&str>> = HashMap::new();
        let mut names = Vec::new();
        collect(machine.root(), &mut names, &mut catches);
        names
            .into_iter()
            .map(|name| {
                let count = self.states.get(name).copied().unwrap_or_default();
                let status = if count.entered == 0 {
                    "not-reached"
                } else if count.exited >= count.entered {
                    "succeeded"
                } else if catches.get(name).is_some_and(|targets| {
                    targets.iter().any(|t| {
                        self.states
                            .get(*t)
                            .is_some_and(|c| c.last_entered > count.last_entered)
                    })
                }) {
                    "caught"
                } else if execution == "RUNNING" {
                    "running"
                } else {
                    "failed"
                };
                (
                    name.to_owned(),
                    Mark {
                        status,
                        entered: count.entered,
                    },
                )
            })
            .collect()
    }
}

/// Every state's name, and the names its Catch rules lead to, in all scopes.
fn collect<'m>(
    scope: ScopeRef<'m>,
    names: &mut Vec<&'m str>,
    catches: &mut HashMap<&'m str, Vec<&'m str>>,
) {
    let by_id: Vec<&str> = scope.states().map(|(_, name, _, _)| name).collect();
    for (id, name, _, node) in scope.states() {
        names.push(name);
        let targets: Vec<&str> = node.catches.iter().map(|to| by_id[to.0 as usize]).collect();
        if !targets.is_empty() {
            catches.insert(name, targets);
        }
        for i in 0..node.children.len() {
            if let Some(child) = scope.child(id, i) {
                collect(child, names, catches);
            }
        }
    }
}

/// The value of `key` in a query string, percent-decoded.
fn param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| decode(v))
    })
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(text.get(i + 1..i + 3).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `text` for a query string.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_decoded_and_encoded_back() {
        let arn = "arn:aws:states:us-east-1:123456789012:execution:m:a b/ü%";
        let query = format!("x=1&arn={}&part=main", encode(arn));
        assert_eq!(param(&query, "arn").as_deref(), Some(arn));
        assert_eq!(param(&query, "part").as_deref(), Some("main"));
        assert_eq!(param(&query, "none"), None);
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%4"), "%zz%4");
    }
}
