//! Where the executions of `serve` send their tasks: activity tasks to the queues workers poll
//! (`activities.rs`), `states:startExecution` to child executions in this service
//! (`children.rs`), the rest to the routes `run` would use (commands, mocks, AWS).

use std::sync::Arc;

use stepstone::engine::{TaskDispatcher, TaskFuture, TaskRequest};
use stepstone::tasks::Router;

use super::activities::{self, Queues};
use super::children::{self, ChildRequest};

/// The task routes of one execution of the service.
pub(super) struct ServeTasks {
    pub(super) queues: Arc<Queues>,
    pub(super) children: tokio::sync::mpsc::UnboundedSender<ChildRequest>,
    pub(super) routes: Router,
}

impl TaskDispatcher for ServeTasks {
    fn dispatch(&self, request: TaskRequest) -> TaskFuture {
        if activities::is_activity(&request.resource) {
            activities::dispatch(&self.queues, request)
        } else if children::is_start_execution(&request.resource)
            && !self.routes.has_route(&request.resource)
        {
            children::dispatch(&self.children, request)
        } else {
            self.routes.dispatch(request)
        }
    }

    fn answers_callbacks(&self, request: &TaskRequest) -> bool {
        if activities::is_activity(&request.resource) {
            false
        } else if children::is_start_execution(&request.resource)
            && !self.routes.has_route(&request.resource)
        {
            children::answers(&request.resource)
        } else {
            self.routes.answers_callbacks(request)
        }
    }
}
