//! Choice: the first rule that holds picks the next state, else `Default`, else
//! States.NoChoiceMatched. The matched rule's `Assign` applies, or the state's own when `Default`
//! is taken (checked against the conformance corpus).

use serde_json::Value;
use stepstone_asl::errors;
use stepstone_asl::states::{Choice, Rule};

use crate::Failure;
use crate::interpreter::{Execution, Flow, RunId};

impl Execution<'_> {
    pub(crate) fn choice(&mut self, id: RunId, state: &Choice) -> Flow {
        let mut step = || -> Result<Flow, Failure> {
            let effective = self.effective_input(id, &state.flow)?;
            let mut chosen = None;
            let jsonata = self
                .is_jsonata(id)
                .then(|| self.jsonata_scope(id, &effective, None, None, None));
            for (i, rule) in state.choices.iter().enumerate() {
                let holds = match (&rule.rule, &jsonata) {
                    (Rule::Constant(b), _) => *b,
                    // AWS names a rule's fields under its index: `Choices[1]/Condition`.
                    (Rule::Condition(e), Some(scope)) => {
                        let field = format_args!("Choices[{i}]/Condition");
                        match self.jsonata_expression(id, field, e, scope)? {
                            Value::Bool(b) => b,
                            other => {
                                return Err(
                                    self.jsonata_type_failure(id, field, &e.0, "boolean", &other)
                                );
                            }
                        }
                    }
                    _ => self
                        .with_env(id, &effective, None, |env| rule.rule.evaluate(env))
                        .map_err(|e| self.state_failure(id, e))?,
                };
                if holds {
                    chosen = Some(i);
                    break;
                }
            }
            let scope = self.run(id).scope;
            let (next, assign, jsonata_output) = match chosen {
                Some(i) => (
                    scope.id(&state.choices[i].next),
                    state.choices[i].assign.as_ref(),
                    state.choices[i].output.as_ref(),
                ),
                None => match &state.default {
                    Some(default) => (
                        scope.id(default),
                        state.flow.assign.as_ref(),
                        state.flow.output.as_ref(),
                    ),
                    None => {
                        let (name, _) = self.current(id);
                        let event = self.run(id).entered_event;
                        return Err(Failure::new(
                            errors::NO_CHOICE_MATCHED,
                            format!(
                                "An error occurred while executing the state '{name}' (entered at the event id #{event}). No Choice Rule matched and no Default was specified."
                            ),
                        ));
                    }
                },
            };
            let (assigned, output) = match &jsonata {
                Some(scope) => {
                    let assigned = match (assign, chosen) {
                        (Some(a), Some(i)) => Some(self.jsonata_assign(
                            id,
                            format_args!("Choices[{i}]/Assign"),
                            a,
                            scope,
                        )?),
                        (Some(a), None) => Some(self.jsonata_assign(id, "Assign", a, scope)?),
                        (None, _) => None,
                    };
                    let output = match (jsonata_output, chosen) {
                        (Some(o), Some(i)) => {
                            self.jsonata_value(id, format_args!("Choices[{i}]/Output"), o, scope)?
                        }
                        _ => match &state.flow.output {
                            Some(o) => self.jsonata_value(id, "Output", o, scope)?,
                            None => effective,
                        },
                    };
                    (assigned, output)
                }
                None => {
                    let assigned = match assign {
                        Some(a) => Some(
                            self.evaluate_assign(id, a, &effective)
                                .map_err(|e| self.state_failure(id, e))?,
                        ),
                        None => None,
                    };
                    (
                        assigned,
                        self.select(id, effective, state.flow.output_path.as_ref())?,
                    )
                }
            };
            if let Some(values) = assigned {
                self.apply_assign(id, values);
            }
            self.record_exit(id, &output);
            Ok(Flow::Next(next.expect("validated target"), output))
        };
        step().unwrap_or_else(Flow::Fail)
    }
}
