//! Pass: the result is `Result`, or `Parameters` evaluated, or the effective input.

use stepstone_asl::states::Pass;

use crate::interpreter::{Execution, Flow, RunId};

impl Execution<'_> {
    pub(crate) fn pass(&mut self, id: RunId, state: &Pass) -> Flow {
        let flow = &state.flow;
        let mut step = || -> Result<Flow, crate::Failure> {
            let result = match (&state.result, &flow.parameters) {
                (Some(result), _) => result.clone(),
                (None, Some(t)) => self.parameters(id, flow, t)?,
                (None, None) => self.effective_input(id, flow)?,
            };
            let output = self.finish_data_flow(id, flow, result)?;
            Ok(self.exit(id, state.transition.as_ref(), output))
        };
        step().unwrap_or_else(Flow::Fail)
    }
}
