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

/// Where one task goes.
enum Route {
    Activity,
    Child,
    Routes,
}

impl ServeTasks {
    fn route(&self, request: &TaskRequest) -> Route {
        if activities::is_activity(&request.resource) {
            Route::Activity
        } else if children::is_start_execution(&request.resource)
            && !self.routes.has_route(&request.resource)
        {
            // A `--task` route for the resource wins, as everywhere else.
            Route::Child
        } else {
            Route::Routes
        }
    }
}

impl TaskDispatcher for ServeTasks {
    fn dispatch(&self, request: TaskRequest) -> TaskFuture {
        match self.route(&request) {
            Route::Activity => activities::dispatch(&self.queues, request),
            Route::Child => children::dispatch(&self.children, request),
            Route::Routes => self.routes.dispatch(request),
        }
    }

    fn answers_callbacks(&self, request: &TaskRequest) -> bool {
        match self.route(request) {
            // A worker answers, with the token.
            Route::Activity => false,
            Route::Child => children::answers(&request.resource),
            Route::Routes => self.routes.answers_callbacks(request),
        }
    }

    fn effect_free(&self, request: &TaskRequest) -> bool {
        // An activity's worker and a child execution are outside this dispatch.
        matches!(self.route(request), Route::Routes) && self.routes.effect_free(request)
    }
}
