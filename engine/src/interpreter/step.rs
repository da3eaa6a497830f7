//! Stepping: runs enter states one after the other until they block or end.

use serde_json::Value;
use stepstone_asl::StateKind;
use stepstone_asl::errors;
use stepstone_asl::growth::Extent;
use stepstone_asl::timestamp::Timestamp;

use super::{Command, Execution, Flow, Link, Run, RunId, STATES_PER_CALL, Status};
use crate::failure::Failure;
use crate::history::{EventData, EventKind};

impl<'m> Execution<'m> {
    /// Runs every ready run until all are finished or blocked.
    ///
    /// At most [`STATES_PER_CALL`] states are entered per call; past that, the runs still ready
    /// wait for [`Execution::resume`], so the driver regains control often (to check the
    /// execution's timeout, to pass events on) even in a loop of pure states.
    pub(super) fn advance(&mut self) {
        self.budget = STATES_PER_CALL;
        while let Some(id) = self.ready.pop_front() {
            if self.status != Status::Running {
                return;
            }
            if self.interrupted.get() {
                // The run stays ready for whatever comes next (a stop or the timeout freezes
                // it).
                self.ready.push_front(id);
                return;
            }
            if self.get(id).is_some_and(|r| !r.fallen) {
                let flow = self.enter_state(id);
                self.follow(id, flow);
            }
            if self.budget == 0 {
                return;
            }
        }
    }

    /// True when runs are ready but the last call ran out of budget: call
    /// [`Execution::resume`].
    pub fn has_ready_runs(&self) -> bool {
        self.status == Status::Running && !self.ready.is_empty()
    }

    /// Goes on with the ready runs; returns the next commands.
    pub fn resume(&mut self, now: Timestamp) -> Vec<Command> {
        self.now = now;
        self.advance();
        std::mem::take(&mut self.commands)
    }

    /// Carries a run through `flow` and the states after it, until it blocks or ends.
    pub(crate) fn follow(&mut self, id: RunId, mut flow: Flow) {
        loop {
            if self.status != Status::Running || self.get(id).is_none() {
                return;
            }
            if let Flow::Next(_, ref output) | Flow::End(ref output) = flow
                && let Err(failure) = self.check_output(id, output)
            {
                flow = Flow::Fail(failure);
            }
            flow = match flow {
                Flow::Next(next, input) => {
                    if self.probe.is_some() && self.probe_stops_before(id, next) {
                        return self.finish(id, Ok(input));
                    }
                    let run = self.run_mut(id);
                    run.state = next;
                    run.set_input(input);
                    run.clear_read_items();
                    run.attempts.clear();
                    run.retry_count = 0;
                    run.output_from_result = None;
                    run.assigned = None;
                    run.entered = false;
                    if self.budget == 0 {
                        // Out of budget: the run enters `next` on the next call.
                        self.ready.push_front(id);
                        return;
                    }
                    self.enter_state(id)
                }
                Flow::End(output) => return self.finish(id, Ok(output)),
                // An evaluation cut short (see `Execution::interrupted`): the run stays where it
                // is, in its state, for the stop or timeout that follows.
                Flow::Fail(_) if self.interrupted.get() => return,
                Flow::Fail(failure) => {
                    self.record_evaluation_failure(id, &failure);
                    match self.handle_error(id, failure) {
                        Ok(flow) => flow,
                        Err(failure) => return self.finish(id, Err(failure)),
                    }
                }
                Flow::Blocked => return,
            };
        }
    }

    /// States.DataLimitExceeded when `output`, what run `id`'s current state outputs, nests
    /// deeper than [`crate::limits::MAX_DEPTH`] or is larger than the payload limit (AWS: a
    /// state's output over 256 KiB fails it with States.DataLimitExceeded). The value is walked
    /// only when the run's known bound, grown by what the state can add (`State::growth`),
    /// could pass a limit: a loop of JSONPath states over a document walks it once every few
    /// states, not at each, and a loop that doubles its document fails within the limit.
    fn check_output(&self, id: RunId, output: &Value) -> Result<(), Failure> {
        use crate::limits::MAX_DEPTH;
        let (_, state) = self.current(id);
        let run = self.run(id);
        let limit = self.limits.max_payload_bytes;
        let within = |e: Extent| usize::from(e.depth) <= MAX_DEPTH && e.size <= limit as u64;
        let input = match state.kind {
            // A Map's or Parallel's bound is over its input and its children's outputs.
            StateKind::Map(_) | StateKind::Parallel(_) => run
                .extent
                .get()
                .zip(run.children_extent.get())
                .map(|(input, children)| input.with(children)),
            _ => run.extent.get(),
        };
        let extent = match (input, state.growth) {
            (Some(input), Some(growth)) => Some(growth.apply(input)).filter(|&e| within(e)),
            _ => None,
        };
        let extent = match extent {
            Some(bound) => {
                // Every test run checks that the bounds hold: one below the truth would let an
                // output past the limits.
                #[cfg(debug_assertions)]
                {
                    let real = crate::limits::measure(output, MAX_DEPTH, usize::MAX);
                    assert!(
                        real.depth <= bound.depth && real.size <= bound.size,
                        "the bound {bound:?} on the output of '{}' is below its extent {real:?}",
                        self.current(id).0
                    );
                }
                bound
            }
            None => {
                let measured = crate::limits::measure(output, MAX_DEPTH, limit);
                if usize::from(measured.depth) > MAX_DEPTH {
                    return Err(self.too_deep_failure(id));
                }
                if measured.size > limit as u64 {
                    return Err(self.too_large_failure(id, output));
                }
                measured
            }
        };
        run.extent.set(Some(extent));
        Ok(())
    }

    /// Enters the run's current state: counts it, records the entered event, runs its body.
    fn enter_state(&mut self, id: RunId) -> Flow {
        self.states_entered += 1;
        self.budget = self.budget.saturating_sub(1);
        let (name, state) = self.current(id);
        let recording = self.history.recording();
        let input = if recording {
            EventData::of(self.run(id).input())
        } else {
            EventData::null()
        };
        let minor = passes_through(&state.kind);
        let event = self.state_event(id, minor, || EventKind::StateEntered {
            state_type: state.kind.type_name().into(),
            name: name.to_owned(),
            input,
        });
        let now = self.now;
        let run = self.run_mut(id);
        run.entered_event = event;
        run.entered_time = now;
        run.entered = true;
        if let Some(limit) = self.limits.max_history_events
            && self.history.len() > limit
        {
            return Flow::Fail(Failure::new(
                errors::RUNTIME,
                format!(
                    "The execution reached the limit of {limit} history events (see --history-limit)."
                ),
            ));
        }
        self.run_state_body(id)
    }

    /// A state's work after its entered event (also where a retry starts over).
    pub(crate) fn run_state_body(&mut self, id: RunId) -> Flow {
        let (_, state) = self.current(id);
        match &state.kind {
            StateKind::Pass(s) => self.pass(id, s),
            StateKind::Choice(s) => self.choice(id, s),
            StateKind::Wait(s) => self.wait(id, s),
            StateKind::Succeed(s) => self.succeed(id, s),
            StateKind::Fail(s) => self.fail(id, s),
            StateKind::Task(s) => self.task(id, s),
            StateKind::Parallel(s) => self.parallel(id, s),
            StateKind::Map(s) => self.map(id, s),
        }
    }

    /// A run ended: the execution ends, or the parent hears of it.
    fn finish(&mut self, id: RunId, result: Result<Value, Failure>) {
        self.probe_keep_variables(id);
        struct Finished {
            parent: Option<Link>,
            last_event: u64,
            extent: Option<Extent>,
            /// The first run of a distributed Map's child execution: that execution ends.
            child: Option<(String, u64)>,
        }
        let finished = |r: &Run<'_>| Finished {
            parent: r.parent,
            last_event: r.last_event,
            extent: r.extent.get(),
            child: r.child_start().map(|c| (c.arn.clone(), c.events)),
        };
        let run = match &result {
            Ok(_) => self.remove(id).as_ref().map(finished),
            Err(_) => {
                // Kept, frozen at the state that failed, for a redrive.
                self.fall(id);
                self.get(id).map(finished)
            }
        };
        let Some(run) = run else { return };
        if let Some((arn, events)) = &run.child
            && self.keeps_child_histories()
        {
            // The child execution's last event, in its own history.
            let kind = match &result {
                Ok(output) => EventKind::ExecutionSucceeded {
                    output: EventData::of(output),
                },
                Err(failure) => EventKind::ExecutionFailed {
                    error: failure.error.clone(),
                    cause: failure.cause.clone(),
                },
            };
            let event = crate::history::Event {
                id: events + 1,
                previous_event_id: run.last_event,
                timestamp: self.now,
                kind,
            };
            // A failed child is kept for a redrive: its count goes on from here.
            if result.is_err() {
                self.number_child_event(id);
            }
            self.child_events.push(arn.clone(), event);
        }
        match run.parent {
            None => {
                let last = run.last_event;
                match result {
                    Ok(output) => {
                        let o = if self.history.recording() {
                            EventData::of(&output)
                        } else {
                            EventData::null()
                        };
                        self.history
                            .push(last, self.now, || EventKind::ExecutionSucceeded {
                                output: o,
                            });
                        self.status = Status::Succeeded(output);
                    }
                    Err(failure) => {
                        let (error, cause) = (failure.error.clone(), failure.cause.clone());
                        self.history
                            .push(last, self.now, || EventKind::ExecutionFailed {
                                error,
                                cause,
                            });
                        self.status = Status::Failed(failure);
                    }
                }
            }
            Some(link) => {
                if let Some(parent) = self.get(link.parent) {
                    let gathered = match (&result, run.extent) {
                        (Ok(_), Some(output)) => {
                            parent.children_extent.get().map(|c| c.with_item(output))
                        }
                        _ => None,
                    };
                    parent.children_extent.set(gathered);
                }
                if self.get(link.parent).is_some_and(|p| !p.fallen) {
                    let flow = self.child_done(link, result);
                    self.follow(link.parent, flow);
                }
            }
        }
    }
}

/// Whether a state's entering and leaving say nothing a person watching the run needs
/// (`HistoryMode::Notable` counts them without building them): Pass, Choice and Succeed
/// states, which only pass through, and Parallel states, whose branches' tasks and failures
/// are what is shown (a Map's start and end are shown: they tell how many items).
pub(crate) fn passes_through(kind: &StateKind) -> bool {
    matches!(
        kind,
        StateKind::Pass(_) | StateKind::Choice(_) | StateKind::Succeed(_) | StateKind::Parallel(_)
    )
}
