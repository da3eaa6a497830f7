//! Routing tasks by resource.

use std::collections::HashMap;
use std::sync::Arc;

use stepstone_engine::{NoTasks, TaskDispatcher, TaskFuture, TaskRequest};

/// Sends each task to the handler registered for its resource (the ARN exactly as written in
/// the definition), or to the fallback.
#[derive(Clone)]
pub struct Router {
    routes: HashMap<String, Arc<dyn TaskDispatcher>>,
    fallback: Arc<dyn TaskDispatcher>,
}

impl Default for Router {
    fn default() -> Self {
        Router {
            routes: HashMap::new(),
            fallback: Arc::new(NoTasks),
        }
    }
}

impl Router {
    /// A router with no routes; unrouted tasks fail naming their resource.
    pub fn new() -> Router {
        Router::default()
    }

    /// Sends tasks for `resource` to `handler`; a later route for the same resource replaces it.
    pub fn route(
        mut self,
        resource: impl Into<String>,
        handler: impl TaskDispatcher + 'static,
    ) -> Router {
        self.routes.insert(resource.into(), Arc::new(handler));
        self
    }

    /// Where tasks without a route go.
    pub fn fallback(mut self, handler: impl TaskDispatcher + 'static) -> Router {
        self.fallback = Arc::new(handler);
        self
    }

    /// True when `resource` has a route.
    pub fn has_route(&self, resource: &str) -> bool {
        self.routes.contains_key(resource)
    }
}

impl Router {
    fn handler(&self, request: &TaskRequest) -> &Arc<dyn TaskDispatcher> {
        self.routes.get(&request.resource).unwrap_or(&self.fallback)
    }

    /// A Map's ItemReader or ResultWriter on local files (a Stepstone extension), done by the
    /// router itself unless a route takes the resource.
    fn on_local_files(&self, request: &TaskRequest) -> bool {
        request.resource.starts_with("file://") && !self.has_route(&request.resource)
    }
}

impl TaskDispatcher for Router {
    fn dispatch(&self, request: TaskRequest) -> TaskFuture {
        if self.on_local_files(&request) {
            // Done here, so that a dry run with mocked tasks needs no S3.
            return Box::pin(async move {
                if crate::result_writer::is_writer_request(&request.input) {
                    crate::result_writer::write_files(&request.resource, request.input).await
                } else {
                    crate::item_reader::read_file(&request.resource, &request.input).await
                }
            });
        }
        self.handler(&request).clone().dispatch(request)
    }

    fn answers_callbacks(&self, request: &TaskRequest) -> bool {
        self.handler(request).answers_callbacks(request)
    }

    fn effect_free(&self, request: &TaskRequest) -> bool {
        // A local ItemReader or ResultWriter reads or writes files: not effect-free.
        !self.on_local_files(request) && self.handler(request).effect_free(request)
    }
}
