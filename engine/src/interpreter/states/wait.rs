//! Wait: until a number of seconds has passed or a timestamp is reached, with AWS's runtime
//! checks on values read through paths (texts from the conformance corpus).

use serde_json::Value;
use stepstone_asl::eval;
use stepstone_asl::states::{NumberOrExpr, Wait, WaitFor};
use stepstone_asl::timestamp::Timestamp;

use crate::Failure;
use crate::interpreter::{Execution, Flow, RunId, TimerReason};

/// AWS refuses to wait past 2038-01-19T03:14:07Z, the last second a signed 32-bit count of
/// seconds since 1970 can hold (the corpus's "boundary 24856": days since the epoch).
const LAST_WAIT_SECOND: i128 = i32::MAX as i128;

impl Execution<'_> {
    pub(crate) fn wait(&mut self, id: RunId, state: &Wait) -> Flow {
        let mut step = || -> Result<Flow, Failure> {
            let effective = self.effective_input(id, &state.flow)?;
            let runtime = |m: String| self.state_failure(id, eval::Error::runtime(m));
            let read =
                |p: &stepstone_asl::Path| self.with_env(id, &effective, None, |env| env.read(p));
            let now = self.now.unix_nanos;
            let until = match state.wait.as_ref().expect("validated") {
                WaitFor::Seconds(NumberOrExpr::Value(s)) => now + i128::from(*s) * 1_000_000_000,
                WaitFor::SecondsPath(p) => {
                    let v = read(p).ok_or_else(|| {
                        runtime(format!(
                            "The SecondsPath parameter does not reference an input value: {}",
                            p.as_str()
                        ))
                    })?;
                    let seconds = match &v {
                        Value::Number(n) if n.is_i64() => n.as_i64().expect("i64"),
                        Value::Number(n) if n.is_u64() => i64::MAX,
                        _ => {
                            return Err(runtime(format!(
                                "The SecondsPath parameter cannot be parsed as a long value: {} == {}",
                                p.as_str(),
                                raw(&v)
                            )));
                        }
                    };
                    if seconds < 0 {
                        return Err(runtime(format!(
                            "The SecondsPath parameter references a negative value: {} == {seconds}",
                            p.as_str()
                        )));
                    }
                    now + i128::from(seconds) * 1_000_000_000
                }
                WaitFor::Timestamp(t) => t.unix_nanos,
                WaitFor::TimestampPath(p) => {
                    let v = read(p);
                    let parsed = v
                        .as_ref()
                        .and_then(Value::as_str)
                        .and_then(|s| Timestamp::parse(s).ok());
                    match parsed {
                        Some(t) => t.unix_nanos,
                        None => {
                            return Err(runtime(format!(
                                "The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: {} == {}",
                                p.as_str(),
                                v.as_ref().map_or_else(|| "null".to_owned(), raw)
                            )));
                        }
                    }
                }
                WaitFor::Seconds(NumberOrExpr::Expr(e)) => {
                    let seconds = self.jsonata_number(id, "Seconds", e, &effective, true)?;
                    if seconds < 0.0 {
                        return Err(self.jsonata_type_failure(
                            id,
                            "Seconds",
                            &e.0,
                            "integer",
                            &serde_json::json!(seconds as i64),
                        ));
                    }
                    now + (seconds as i128) * 1_000_000_000
                }
                WaitFor::TimestampExpr(e) => {
                    let scope = self.jsonata_scope(id, &effective, None, None, None);
                    let v = self.jsonata_expression(id, "Timestamp", e, &scope)?;
                    match v.as_str().and_then(|s| Timestamp::parse(s).ok()) {
                        Some(t) => t.unix_nanos,
                        None => {
                            return Err(self.state_failure(
                                id,
                                crate::interpreter::jsonata::query_error(format!(
                                    "The Timestamp field cannot be parsed as an ISO-8601 extended offset date-time format string: {}",
                                    raw(&v)
                                )),
                            ));
                        }
                    }
                }
            };
            if until > LAST_WAIT_SECOND * 1_000_000_000 {
                return Err(runtime("Wait state delay is too long.".into()));
            }
            let state_name = self.current(id).0.to_owned();
            let (until, reason) = (
                Timestamp { unix_nanos: until },
                TimerReason::Wait { state: state_name },
            );
            self.run_mut(id).set_input(effective);
            self.wait_until(id, until, reason);
            Ok(Flow::Blocked)
        };
        step().unwrap_or_else(Flow::Fail)
    }

    /// The timer fired: OutputPath, Assign, and on.
    pub(crate) fn wait_done(&mut self, id: RunId) -> Flow {
        let (_, state) = self.current(id);
        let stepstone_asl::StateKind::Wait(wait) = &state.kind else {
            unreachable!("waiting in a Wait state")
        };
        let mut step = || -> Result<Flow, Failure> {
            if self.is_jsonata(id) {
                let input = self.run(id).input().clone();
                let output = self.jsonata_finish(
                    id,
                    wait.flow.output.as_ref(),
                    wait.flow.assign.as_ref(),
                    input,
                )?;
                return Ok(self.exit(id, wait.transition.as_ref(), output));
            }
            let effective = self.run_mut(id).take_input();
            let assigned = match &wait.flow.assign {
                Some(a) => Some(
                    self.evaluate_assign(id, a, &effective)
                        .map_err(|e| self.state_failure(id, e))?,
                ),
                None => None,
            };
            let output = self.select(id, effective, wait.flow.output_path.as_ref())?;
            if let Some(values) = assigned {
                self.apply_assign(id, values);
            }
            Ok(self.exit(id, wait.transition.as_ref(), output))
        };
        step().unwrap_or_else(Flow::Fail)
    }
}

/// A value as AWS quotes it in these causes: strings bare, the rest as JSON.
fn raw(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
