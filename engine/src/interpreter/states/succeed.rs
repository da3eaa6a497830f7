//! Succeed: ends its run (the execution, a branch or an iteration) successfully.

use stepstone_asl::states::Succeed;

use crate::interpreter::{Execution, Flow, RunId};

impl Execution<'_> {
    pub(crate) fn succeed(&mut self, id: RunId, state: &Succeed) -> Flow {
        let mut step = || -> Result<Flow, crate::Failure> {
            let effective = self.effective_input(id, &state.flow)?;
            let output = if self.is_jsonata(id) {
                match &state.flow.output {
                    Some(o) => {
                        let scope = self.jsonata_scope(id, &effective, None, None, None);
                        self.jsonata_value(id, "Output", o, &scope)?
                    }
                    None => effective,
                }
            } else {
                self.select(id, effective, state.flow.output_path.as_ref())?
            };
            Ok(self.exit(id, None, output))
        };
        step().unwrap_or_else(Flow::Fail)
    }
}
