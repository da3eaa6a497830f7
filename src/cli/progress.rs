//! What `run`, `resume` and `redrive` show on standard error while an execution runs.
//!
//! - Without a terminal (a log file, a pipe, CI): one line per notable event, each with the
//!   time and where in the execution it happened (`DeployWaves[1]/DeployRegions[0]
//!   ap-southeast-2: CreateStack: task ...`): tasks dispatched, succeeded and failed, retries,
//!   waits, Map states started and finished, Fail states, and the end. Never a line per Pass or
//!   Choice state.
//! - On a terminal: the lines that matter (Maps, retries, failures) scroll above a status line
//!   redrawn at most ten times a second: time elapsed, states entered, the tasks running and
//!   where, the latest wait, retries and failures so far.
//!
//! Its cost: the engine builds no event for a state that only passes through
//! (`HistoryMode::Notable`), and counts states for this display ten times a second.

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use stepstone::engine::history::{Event, EventKind};
use stepstone::engine::{Notice, Outcome, RunId, TimerReason};

/// How often the status line may be redrawn.
const REDRAW_EVERY: Duration = Duration::from_millis(100);

pub(crate) struct Progress {
    on: bool,
    /// A terminal: a status line, redrawn.
    live: bool,
    virtual_time: bool,
    started: Instant,
    states_entered: u64,
    /// The tasks running, oldest first: their run, and where and what they are.
    tasks: VecDeque<(RunId, String)>,
    /// The latest wait set, for the status line.
    waiting: Option<String>,
    retries: u64,
    failures: u64,
    /// The Map state entered last, which the next MapStateStarted is of.
    map: Option<String>,
    /// When the status line was last drawn (`None`: it is not on screen).
    drawn: Option<Instant>,
    out: std::io::Stderr,
}

impl Progress {
    pub(crate) fn new(on: bool, virtual_time: bool) -> Progress {
        let out = std::io::stderr();
        Progress {
            on,
            live: on && out.is_terminal() && std::env::var_os("TERM").is_some_and(|t| t != "dumb"),
            virtual_time,
            started: Instant::now(),
            states_entered: 0,
            tasks: VecDeque::new(),
            waiting: None,
            retries: 0,
            failures: 0,
            map: None,
            drawn: None,
            out,
        }
    }

    /// A line for the log: the time, then `text`. `notable`: also shown on a terminal (where
    /// the status line shows the rest).
    fn line(&mut self, notable: bool, text: &str) {
        if self.live && !notable {
            return;
        }
        self.clear();
        let _ = writeln!(self.out, "{} {text}", clock());
        if self.live {
            self.draw(true);
        }
    }

    /// Takes the status line off the screen.
    fn clear(&mut self) {
        if self.drawn.take().is_some() {
            let _ = write!(self.out, "\r\x1b[2K");
        }
    }

    /// Redraws the status line (unless it was drawn less than a tenth of a second ago and
    /// `now` is false).
    fn draw(&mut self, now: bool) {
        if !self.live || (!now && self.drawn.is_some_and(|d| d.elapsed() < REDRAW_EVERY)) {
            return;
        }
        let mut status = format!(
            "{:.1}s · {} states",
            self.started.elapsed().as_secs_f64(),
            self.states_entered
        );
        if !self.tasks.is_empty() {
            let shown: Vec<&str> = self.tasks.iter().take(2).map(|(_, t)| t.as_str()).collect();
            status.push_str(&format!(
                " · {} running: {}",
                self.tasks.len(),
                shown.join(", ")
            ));
            if self.tasks.len() > 2 {
                status.push_str(&format!(", +{}", self.tasks.len() - 2));
            }
        } else if let Some(waiting) = &self.waiting {
            status.push_str(&format!(" · {waiting}"));
        }
        if self.retries > 0 {
            status.push_str(&format!(" · {} retries", self.retries));
        }
        if self.failures > 0 {
            status.push_str(&format!(" · {} failed", self.failures));
        }
        let width = terminal_width().saturating_sub(1);
        let status: String = status.chars().take(width).collect();
        let _ = write!(self.out, "\r\x1b[2K{status}");
        let _ = self.out.flush();
        self.drawn = Some(Instant::now());
    }

    fn until(&self, until: impl std::fmt::Display) -> String {
        if self.virtual_time {
            format!("{until} (virtual time)")
        } else {
            until.to_string()
        }
    }

    pub(crate) fn notice(&mut self, notice: Notice<'_>) {
        if !self.on {
            return;
        }
        match notice {
            Notice::Event(event) => self.event(event),
            Notice::Dispatched { request, path } => {
                let region = request.region.as_deref().unwrap_or_default();
                let place = [path, region]
                    .iter()
                    .filter(|p| !p.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" ");
                let label = match place.is_empty() {
                    true => request.state_name.clone(),
                    false => format!("{place}: {}", request.state_name),
                };
                let resource = request
                    .resource
                    .strip_prefix("arn:aws:states:::")
                    .unwrap_or(&request.resource);
                self.line(
                    false,
                    &format!("{label}: task {resource} (attempt {})", request.attempt + 1),
                );
                self.tasks.push_back((request.run, label));
                self.draw(false);
            }
            Notice::TaskEnded { run, failure } => {
                let at = self.tasks.iter().position(|(r, _)| *r == run);
                let label = at
                    .and_then(|at| self.tasks.remove(at))
                    .map(|(_, label)| label)
                    .unwrap_or_default();
                match failure {
                    None => self.line(false, &format!("{label}: task succeeded")),
                    Some(f) => {
                        self.failures += 1;
                        self.line(
                            true,
                            &format!(
                                "{label}: task failed: {}: {}",
                                f.error,
                                first_line(&f.cause)
                            ),
                        );
                    }
                }
                self.draw(false);
            }
            Notice::Timer {
                until,
                reason,
                path,
            } => {
                let state = match reason {
                    TimerReason::Wait { state } | TimerReason::Retry { state, .. } => state,
                };
                let place = if path.is_empty() {
                    format!("{state}: ")
                } else {
                    format!("{path}: {state}: ")
                };
                match reason {
                    TimerReason::Wait { .. } => {
                        let text = format!("waiting until {}", self.until(until));
                        self.line(false, &format!("{place}{text}"));
                        self.waiting = Some(text);
                    }
                    TimerReason::Retry {
                        error,
                        attempt,
                        max_attempts,
                        ..
                    } => {
                        self.retries += 1;
                        let at = self.until(until);
                        self.line(
                            true,
                            &format!(
                                "{place}retry {attempt} of {max_attempts} after {error}, at {at}"
                            ),
                        );
                    }
                }
            }
            Notice::Progress { states_entered } => {
                self.states_entered = states_entered;
                self.draw(false);
            }
            _ => {}
        }
    }

    fn event(&mut self, event: &Event) {
        match &event.kind {
            EventKind::StateEntered {
                state_type, name, ..
            } => match state_type.as_ref() {
                "Map" => self.map = Some(name.clone()),
                "Fail" => self.line(true, &format!("{name}: Fail state")),
                _ => {}
            },
            EventKind::MapStateStarted { length } => {
                let name = self.map.clone().unwrap_or_default();
                let items = if *length == 1 { "item" } else { "items" };
                self.line(true, &format!("{name}: map over {length} {items}"));
            }
            EventKind::StateExited {
                state_type, name, ..
            } if state_type == "Map" => {
                self.line(true, &format!("{name}: map finished"));
            }
            EventKind::MapIterationFailed { name, index, .. } => {
                self.failures += 1;
                self.line(true, &format!("{name}[{index}]: iteration failed"));
            }
            // A distributed Map: its children are child executions, told by their Map Run.
            EventKind::MapRunStarted { map_run_arn } => {
                let name = self.map.clone().unwrap_or_default();
                self.line(true, &format!("{name}: Map Run {map_run_arn}"));
            }
            EventKind::MapRunRedriven {
                map_run_arn,
                redrive_count,
            } => {
                let name = self.map.clone().unwrap_or_default();
                let line = format!("{name}: Map Run {map_run_arn} redriven ({redrive_count})");
                self.line(true, &line);
            }
            EventKind::MapRunFailed { error, cause } => {
                let name = self.map.clone().unwrap_or_default();
                self.failures += 1;
                self.line(true, &format!("{name}: Map Run failed: {error}: {cause}"));
            }
            _ => {}
        }
    }

    /// An event of an execution followed from its history (one that runs in another
    /// process): tasks are told from their history events, where a run here tells them from
    /// its dispatches.
    pub(crate) fn followed(&mut self, event: &Event) {
        if !self.on {
            return;
        }
        if let EventKind::StateEntered { .. } = event.kind {
            self.states_entered += 1;
        }
        match &event.kind {
            EventKind::TaskScheduled {
                resource_type,
                resource,
                region,
                ..
            } => {
                let place = match region.as_str() {
                    "" => String::new(),
                    region => format!("{region}: "),
                };
                self.line(false, &format!("{place}task {resource_type}:{resource}"));
            }
            EventKind::TaskSucceeded {
                resource_type,
                resource,
                ..
            } => self.line(false, &format!("task {resource_type}:{resource} succeeded")),
            EventKind::TaskFailed {
                error,
                cause,
                resource_type,
                resource,
            }
            | EventKind::TaskTimedOut {
                error,
                cause,
                resource_type,
                resource,
            } => {
                self.failures += 1;
                self.line(
                    true,
                    &format!(
                        "task {resource_type}:{resource} failed: {error}: {}",
                        first_line(cause)
                    ),
                );
            }
            _ => self.event(event),
        }
        self.draw(false);
    }

    pub(crate) fn finish(&mut self, outcome: &Outcome, seconds: f64) {
        self.ended(
            outcome.status.as_str(),
            outcome.states_entered,
            &outcome.info.execution_arn,
            seconds,
        );
    }

    /// The last line: how the execution ended.
    pub(crate) fn ended(&mut self, status: &str, states_entered: u64, arn: &str, seconds: f64) {
        if self.on {
            self.clear();
            let _ = writeln!(
                self.out,
                "{} {status} after {states_entered} states in {seconds:.3}s: {arn}",
                clock()
            );
        }
    }
}

impl Drop for Progress {
    /// Never leaves a half-drawn status line behind (an error ends the run early).
    fn drop(&mut self) {
        if self.drawn.is_some() {
            let _ = writeln!(self.out);
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// The time of day (UTC), to the millisecond: `14:03:07.120`.
fn clock() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = now.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
        now.subsec_millis()
    )
}

/// The terminal's width in columns (80 when it cannot be told).
fn terminal_width() -> usize {
    #[cfg(unix)]
    {
        // SAFETY: TIOCGWINSZ writes a `winsize` into the struct it is given, nothing else.
        let mut size: libc::winsize = unsafe { std::mem::zeroed() };
        let read = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) };
        if read == 0 && size.ws_col > 0 {
            return usize::from(size.ws_col);
        }
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(80)
}
