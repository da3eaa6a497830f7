//! Pass: the result is `Result`, or `Parameters` evaluated, or the effective input.

use stepstone_asl::states::Pass;

use crate::interpreter::probe::step;
use crate::interpreter::{Execution, Flow, RunId};

impl Execution<'_> {
    pub(crate) fn pass(&mut self, id: RunId, state: &Pass) -> Flow {
        let flow = &state.flow;
        let mut step = || -> Result<Flow, crate::Failure> {
            let result = match (&state.result, &flow.parameters) {
                (Some(result), _) => {
                    self.inspect(id, step::RESULT, || result.clone());
                    result.clone()
                }
                (None, Some(t)) => self.parameters(id, flow, t)?,
                (None, None) => self.effective_input(id, flow)?,
            };
            if state.result.is_none() {
                self.inspect(id, step::AFTER_PARAMETERS, || result.clone());
            }
            let output = self.finish_data_flow(id, flow, result)?;
            Ok(self.exit(id, state.transition.as_ref(), output))
        };
        step().unwrap_or_else(Flow::Fail)
    }
}
