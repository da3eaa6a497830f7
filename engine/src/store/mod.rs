//! Where executions live: a small trait, and one key layout (`keyed.rs`) over three
//! databases: sled and redb on disk, a map in memory for tests.

use serde_json::Value;
use stepstone_asl::timestamp::Timestamp;

use crate::history::Event;
use crate::model::{ExecutionInfo, Status};
use crate::record::{Changes, Checkpoint};

pub(crate) mod chain;
pub(crate) mod error;
mod group_commit;
mod keyed;
mod kv;
pub(crate) mod memory;
mod postgres_store;
mod redb_store;
mod sled_store;

pub use crate::model::{ExecutionRecord, MapRunRecord};
pub use error::{Error, Result};
pub use memory::MemStore;
pub use postgres_store::{PostgresStore, redacted as redacted_url};
pub use redb_store::{REDB_FILE, RedbStore};
pub use sled_store::SledStore;

/// A state machine as a service keeps it (CreateStateMachine; `stepstone serve`), or what the
/// service keeps beside its state machines under the same kind of ARN: their versions
/// (`…:stateMachine:name:3`) and aliases (`…:stateMachine:name:prod`, kind `ALIAS`), and
/// activities (kind `ACTIVITY`). The store keeps it as given; the service validates it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StateMachineRecord {
    /// Its ARN.
    pub arn: String,
    /// Its name.
    pub name: String,
    /// The definition text.
    pub definition: String,
    /// The role it was given (kept, never assumed).
    pub role_arn: String,
    /// `STANDARD` or `EXPRESS`.
    pub kind: String,
    /// When it was created, in Unix nanoseconds.
    pub created: i128,
    /// When its definition last changed, in Unix nanoseconds.
    pub updated: i128,
    /// Its tags, in order.
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    /// The revision of its definition and settings (`revisionId`), new with each update; for a
    /// version, the revision it published.
    #[serde(default)]
    pub revision_id: String,
    /// A version's or an alias's description.
    #[serde(default)]
    pub description: String,
    /// An alias's routing: the versions it starts, with their weights (percent).
    #[serde(default)]
    pub routing: Vec<(String, u32)>,
    /// A state machine's latest version number: versions are numbered from 1 and a number is
    /// never given twice, even after its version was deleted.
    #[serde(default)]
    pub versions: u64,
}

impl StateMachineRecord {
    /// A record of `kind` with nothing else set but its identity and dates.
    pub fn new(arn: String, name: String, kind: String, created: i128) -> StateMachineRecord {
        StateMachineRecord {
            arn,
            name,
            definition: String::new(),
            role_arn: String::new(),
            kind,
            created,
            updated: created,
            tags: Vec::new(),
            revision_id: String::new(),
            description: String::new(),
            routing: Vec::new(),
            versions: 0,
        }
    }
}

/// What a store keeps of one execution, besides its events.
pub struct Stored {
    /// The definition text it runs.
    pub definition: String,
    /// What its caller needs to resume it, kept verbatim (the CLI keeps its task routes and
    /// clock there).
    pub launch: Value,
    /// Its latest checkpoint.
    pub checkpoint: Checkpoint,
}

/// What DescribeExecution shows of an execution, read without its runs and results.
#[derive(Debug, Clone)]
pub struct Described {
    /// Identity, input, start time, redrives.
    pub info: ExecutionInfo,
    /// Where it stands (with its output or error).
    pub status: Status,
    /// Its clock when last saved: the stop date of an execution that ended.
    pub now: Timestamp,
}

/// How engines that share one store (`stepstone serve --shared` on PostgreSQL) divide its
/// executions. Each execution is driven by the engine that holds its lease; the engine renews
/// what it holds, and a lease that runs out (its engine died, or lost the database) is claimed
/// by another engine, which resumes the execution from its last checkpoint. Every write of an
/// execution is fenced by its lease's epoch, raised by each claim, so an engine that lost a
/// lease never writes that execution again (`Error::NotHeld`).
pub trait Leases: Send + Sync {
    /// This engine's name in the leases (its host, process and a random part).
    fn engine(&self) -> &str;

    /// How long a lease lasts unless renewed (engines renew every third of it).
    fn ttl(&self) -> std::time::Duration;

    /// Claims at most `limit` executions whose lease ran out: their ARNs, now this engine's.
    fn claim_expired(&self, limit: usize) -> Result<Vec<String>>;

    /// Takes the lease of one execution unless a live engine holds it (a redrive; an
    /// execution kept from before leases): whether this engine holds it now.
    fn acquire(&self, execution_arn: &str) -> Result<bool>;

    /// Lets go of an execution that ended here (its lease is deleted).
    fn release(&self, execution_arn: &str);

    /// Lets go of an execution this engine stops driving before its end: its lease runs out
    /// at once, for any engine to claim.
    fn abandon(&self, execution_arn: &str);

    /// Lets go of an execution this engine could not drive (its records cannot be read): its
    /// lease runs out only after `delay`, so that engines do not claim it again and again.
    fn postpone(&self, execution_arn: &str, delay: std::time::Duration);

    /// Whether this engine holds the lease of `execution_arn`, as far as its own clock tells
    /// (a lease not renewed in time is counted lost before it runs out in the database).
    fn holds(&self, execution_arn: &str) -> bool;

    /// The executions this engine holds.
    fn held(&self) -> Vec<String>;

    /// The executions whose lease this engine lost since it last asked (another engine took
    /// them over): their drivers must stop.
    fn lost(&self) -> Vec<String>;

    /// Gives the executions listed, which have no lease (kept from before leases, or left by
    /// a single-engine run), one that has run out, so that an engine claims them.
    fn adopt(&self, execution_arns: &[String]) -> Result<()>;

    /// Posts `request` (the control protocol's JSON) for the engine that drives
    /// `execution_arn`: its id, to read the answer with.
    fn post(&self, execution_arn: &str, request: &str) -> Result<i64>;

    /// The answer to request `id`, once there is one (the request is then forgotten).
    fn answer_of(&self, id: i64) -> Result<Option<String>>;

    /// Forgets request `id`, answered or not (its poster gave up waiting).
    fn withdraw(&self, id: i64);

    /// The requests waiting for executions this engine holds: id, execution ARN, request.
    fn pending(&self) -> Result<Vec<(i64, String, String)>>;

    /// Answers request `id`.
    fn answer(&self, id: i64, answer: &str) -> Result<()>;

    /// Notified when a request is posted for any engine, or a lease of this one's is lost.
    fn wakeup(&self) -> std::sync::Arc<tokio::sync::Notify>;

    /// Queues an activity task (its token and input, JSON text) where the workers of every
    /// engine find it.
    fn queue_activity(&self, activity: &str, token: &str, input: &str) -> Result<()>;

    /// Takes the oldest activity task of `activity`, queued by any engine: its token and input
    /// (no other worker gets it).
    fn take_activity(&self, activity: &str) -> Result<Option<(String, String)>>;
}

/// Stores executions: their records, and history events appended as they happen. Each method
/// is durable when it returns: a crash after it returns finds what it wrote.
pub trait CheckpointStore: Send + Sync {
    /// Records a new execution: its definition text, launch options, and first changes (an
    /// execution's first [`crate::Execution::take_changes`] holds every record). Fails with
    /// [`Error::AlreadyExists`], writing nothing, when the store has an execution with that
    /// ARN.
    fn create(&self, definition: &str, launch: &Value, changes: &Changes) -> Result<()>;

    /// Writes what changed in an execution since its last save (records, deletions, the new
    /// events), in one atomic write.
    fn save(&self, changes: &Changes) -> Result<()>;

    /// [`CheckpointStore::create`] as a future, which resolves to the history events `changes`
    /// carried once they are durable. The disk stores do not hold the calling thread while
    /// they commit, and commit the saves of executions that save at the same time together
    /// (one fsync for all). By default, `create` at once.
    fn create_async(&self, definition: &str, launch: &Value, changes: Changes) -> Saving {
        Saving::done(
            self.create(definition, launch, &changes)
                .map(|()| changes.into_events()),
        )
    }

    /// [`CheckpointStore::save`] as a future, as [`CheckpointStore::create_async`] is
    /// `create`'s.
    fn save_async(&self, changes: Changes) -> Saving {
        Saving::done(self.save(&changes).map(|()| changes.into_events()))
    }

    /// What the store has of an execution, to resume or redrive it.
    fn load(&self, execution_arn: &str) -> Result<Option<Stored>>;

    /// DescribeExecution's data, read without the execution's runs and results.
    fn describe(&self, execution_arn: &str) -> Result<Option<Described>>;

    /// The definition text an execution runs ([`Stored::definition`]), without its
    /// checkpoint. By default through [`CheckpointStore::load`].
    fn definition(&self, execution_arn: &str) -> Result<Option<String>> {
        Ok(self.load(execution_arn)?.map(|stored| stored.definition))
    }

    /// What the execution was launched with ([`Stored::launch`]), without its checkpoint.
    /// By default through [`CheckpointStore::load`].
    fn launch(&self, execution_arn: &str) -> Result<Option<Value>> {
        Ok(self.load(execution_arn)?.map(|stored| stored.launch))
    }

    /// An execution's history events, in order.
    fn events(&self, execution_arn: &str) -> Result<Vec<Event>>;

    /// One history event, by id (a redrive reads the inputs of the states it enters again).
    fn event(&self, execution_arn: &str, id: u64) -> Result<Option<Event>>;

    /// Hands an execution's history events to `f`, in order, until it answers false, without
    /// holding the whole history (a million-item Map records seven million events). By default
    /// through [`CheckpointStore::events`].
    fn each_event(&self, execution_arn: &str, f: &mut dyn FnMut(Event) -> bool) -> Result<()> {
        for event in self.events(execution_arn)? {
            if !f(event) {
                break;
            }
        }
        Ok(())
    }

    /// [`CheckpointStore::each_event`] from the event after id `after` (0: from the first),
    /// without reading the ones before where the store can: how a history is followed while it
    /// grows. By default through `each_event`.
    fn each_event_after(
        &self,
        execution_arn: &str,
        after: u64,
        f: &mut dyn FnMut(Event) -> bool,
    ) -> Result<()> {
        self.each_event(execution_arn, &mut |event| event.id <= after || f(event))
    }

    /// Every execution, in ARN order.
    fn list(&self) -> Result<Vec<ExecutionRecord>>;

    /// The key the store's executions sign their task tokens with: random, made with the
    /// store and kept in it (a resumed execution's tokens are the ones it gave out before).
    fn token_key(&self) -> Result<crate::TokenKey>;

    /// Creates or replaces a state machine (by ARN).
    fn put_state_machine(&self, machine: &StateMachineRecord) -> Result<()>;

    /// A state machine, by ARN.
    fn state_machine(&self, arn: &str) -> Result<Option<StateMachineRecord>>;

    /// Every state machine, in ARN order.
    fn state_machines(&self) -> Result<Vec<StateMachineRecord>>;

    /// Deletes a state machine; false when there was none. Its executions stay.
    fn delete_state_machine(&self, arn: &str) -> Result<bool>;

    /// A distributed Map's Map Run, by ARN (a store that keeps none has none).
    fn map_run(&self, arn: &str) -> Result<Option<MapRunRecord>> {
        let _ = arn;
        Ok(None)
    }

    /// The child executions of a Map Run (distributed Map), in ARN order.
    fn child_executions(&self, map_run_arn: &str) -> Result<Vec<ExecutionRecord>> {
        let _ = map_run_arn;
        Ok(Vec::new())
    }

    /// The Map Runs an execution started, in ARN order.
    fn map_runs(&self, execution_arn: &str) -> Result<Vec<MapRunRecord>> {
        let _ = execution_arn;
        Ok(Vec::new())
    }

    /// The Map Run a child execution belongs to (DescribeExecution's `mapRunArn`).
    fn map_run_of_child(&self, child_arn: &str) -> Result<Option<MapRunRecord>> {
        let _ = child_arn;
        Ok(None)
    }

    /// How this engine shares the store with others (`None`: it owns the store alone).
    fn leases(&self) -> Option<&dyn Leases> {
        None
    }
}

/// A shared store is a store: an engine and its caller (a test, a server) can hold one store.
impl<S: CheckpointStore + ?Sized> CheckpointStore for std::sync::Arc<S> {
    fn create(&self, definition: &str, launch: &Value, changes: &Changes) -> Result<()> {
        (**self).create(definition, launch, changes)
    }

    fn save(&self, changes: &Changes) -> Result<()> {
        (**self).save(changes)
    }

    fn create_async(&self, definition: &str, launch: &Value, changes: Changes) -> Saving {
        (**self).create_async(definition, launch, changes)
    }

    fn save_async(&self, changes: Changes) -> Saving {
        (**self).save_async(changes)
    }

    fn load(&self, execution_arn: &str) -> Result<Option<Stored>> {
        (**self).load(execution_arn)
    }

    fn describe(&self, execution_arn: &str) -> Result<Option<Described>> {
        (**self).describe(execution_arn)
    }

    fn launch(&self, execution_arn: &str) -> Result<Option<Value>> {
        (**self).launch(execution_arn)
    }

    fn definition(&self, execution_arn: &str) -> Result<Option<String>> {
        (**self).definition(execution_arn)
    }

    fn events(&self, execution_arn: &str) -> Result<Vec<Event>> {
        (**self).events(execution_arn)
    }

    fn event(&self, execution_arn: &str, id: u64) -> Result<Option<Event>> {
        (**self).event(execution_arn, id)
    }

    fn each_event(&self, execution_arn: &str, f: &mut dyn FnMut(Event) -> bool) -> Result<()> {
        (**self).each_event(execution_arn, f)
    }

    fn each_event_after(
        &self,
        execution_arn: &str,
        after: u64,
        f: &mut dyn FnMut(Event) -> bool,
    ) -> Result<()> {
        (**self).each_event_after(execution_arn, after, f)
    }

    fn list(&self) -> Result<Vec<ExecutionRecord>> {
        (**self).list()
    }

    fn token_key(&self) -> Result<crate::TokenKey> {
        (**self).token_key()
    }

    fn put_state_machine(&self, machine: &StateMachineRecord) -> Result<()> {
        (**self).put_state_machine(machine)
    }

    fn state_machine(&self, arn: &str) -> Result<Option<StateMachineRecord>> {
        (**self).state_machine(arn)
    }

    fn state_machines(&self) -> Result<Vec<StateMachineRecord>> {
        (**self).state_machines()
    }

    fn delete_state_machine(&self, arn: &str) -> Result<bool> {
        (**self).delete_state_machine(arn)
    }

    fn map_run(&self, arn: &str) -> Result<Option<MapRunRecord>> {
        (**self).map_run(arn)
    }

    fn map_runs(&self, execution_arn: &str) -> Result<Vec<MapRunRecord>> {
        (**self).map_runs(execution_arn)
    }

    fn child_executions(&self, map_run_arn: &str) -> Result<Vec<ExecutionRecord>> {
        (**self).child_executions(map_run_arn)
    }

    fn map_run_of_child(&self, child_arn: &str) -> Result<Option<MapRunRecord>> {
        (**self).map_run_of_child(child_arn)
    }

    fn leases(&self) -> Option<&dyn Leases> {
        (**self).leases()
    }
}

/// A save under way ([`CheckpointStore::save_async`], [`CheckpointStore::create_async`]): a
/// future of the history events the saved changes carried, ready once they are durable.
#[must_use = "changes are durable only once their save resolves"]
pub struct Saving(SavingState);

enum SavingState {
    Done(Option<Result<Vec<Event>>>),
    Queued {
        answer: tokio::sync::oneshot::Receiver<Result<()>>,
        /// Shared with the writer until it has encoded them (it lets go before it answers).
        events: Option<std::sync::Arc<Vec<Event>>>,
    },
}

impl Saving {
    /// A save that is over: `result` is what it resolves to.
    pub fn done(result: Result<Vec<Event>>) -> Saving {
        Saving(SavingState::Done(Some(result)))
    }

    /// Queues `changes` through `queue`, which returns what failed before anything was queued
    /// and hands the commit's result to the callback it is given.
    fn queue(
        changes: Changes,
        queue: impl FnOnce(&Changes, group_commit::Done) -> Result<()>,
    ) -> Saving {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let done = Box::new(move |result| {
            let _ = answer.send(result);
        });
        match queue(&changes, done) {
            Ok(()) => Saving(SavingState::Queued {
                answer: answered,
                events: Some(changes.events),
            }),
            Err(e) => Saving::done(Err(e)),
        }
    }
}

impl std::future::Future for Saving {
    type Output = Result<Vec<Event>>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        use std::task::Poll;
        match &mut self.get_mut().0 {
            SavingState::Done(result) => Poll::Ready(
                result
                    .take()
                    .expect("a save is not polled after it resolved"),
            ),
            SavingState::Queued { answer, events } => match std::pin::Pin::new(answer).poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(Ok(()))) => Poll::Ready(Ok(events
                    .take()
                    .map(crate::record::unshare)
                    .unwrap_or_default())),
                Poll::Ready(Ok(Err(e))) => Poll::Ready(Err(e)),
                Poll::Ready(Err(_)) => Poll::Ready(Err(group_commit::stopped())),
            },
        }
    }
}

/// Waits, holding the thread, for a write queued by `queue` (see [`Saving::queue`]).
fn wait(queue: impl FnOnce(group_commit::Done) -> Result<()>) -> Result<()> {
    let (answer, answered) = std::sync::mpsc::channel();
    queue(Box::new(move |result| {
        let _ = answer.send(result);
    }))?;
    answered
        .recv()
        .unwrap_or_else(|_| Err(group_commit::stopped()))
}
