//! Executions handed to the process that owns a store.
//!
//! One process owns a store (sled and redb lock it). A `stepstone run` on a store that a
//! `serve`, or another `run` (detached or not), holds does not fail: it hands its execution to
//! that process over the control socket (`start`), which runs it here, on a thread of its own
//! beside what it already runs; the `run` then follows it from the store's history (`events`;
//! `run::hand_over`), printing what a run in its own process prints and ending with the same
//! output and exit code.
//!
//! A guest runs in the owner's process: its `--task` commands run in the directory `run` was
//! called from (kept in the launch record, as for `resume`), with the owner's environment. The
//! owner waits for its guests before it exits; if it is killed, they are RUNNING in the store
//! and `stepstone resume` (or the restarted `serve`) finishes them.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde_json::{Value, json};
use stepstone::asl::timestamp::Timestamp;
use stepstone::asl::{Options, validate_str};
use stepstone::engine::store::CheckpointStore;
use stepstone::engine::{ExecutionInfo, Notice, Persistence, Signals, run_durable};

use super::launch::{AwsArgs, launch_options, runtime};

/// An execution as `run` hands it over, read and checked by the `run` that hands it.
pub(crate) struct Guest {
    /// The definition text.
    pub(crate) definition: String,
    pub(crate) input: Value,
    /// The execution's name (`run` makes one up when `--name` is not given: the owner must
    /// not, or the ARN `run` follows would not be known before it starts).
    pub(crate) name: String,
    pub(crate) state_machine_name: String,
    /// The launch record, as `run` keeps it (`run::launch_record`).
    pub(crate) launch: Value,
}

impl Guest {
    /// As the control protocol carries it.
    pub(crate) fn to_json(&self) -> Value {
        json!({"definition": self.definition, "input": self.input, "name": self.name,
            "stateMachineName": self.state_machine_name, "launch": self.launch})
    }

    /// From the control protocol.
    pub(crate) fn from_json(v: &Value) -> Result<Guest, String> {
        let text = |k: &str| {
            v[k].as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("the execution handed over has no '{k}'"))
        };
        Ok(Guest {
            definition: text("definition")?,
            input: v["input"].clone(),
            name: text("name")?,
            state_machine_name: text("stateMachineName")?,
            launch: v["launch"].clone(),
        })
    }
}

/// Runs the guests of the process that owns a store, each on a thread of its own with its own
/// runtime: a guest neither waits for nor slows the owner's own executions' thread.
pub(crate) struct Host {
    store: Arc<dyn CheckpointStore>,
    signals: Signals,
    threads: Mutex<Guests>,
}

/// The guests' threads, and whether the host takes more.
#[derive(Default)]
struct Guests {
    threads: Vec<JoinHandle<()>>,
    /// The owner is ending: every guest has ended and no more are taken (one started now
    /// would die with the process).
    ended: bool,
}

impl Host {
    /// A host running guests on `store`, reachable through `signals` (stops, callbacks).
    pub(crate) fn new(store: Arc<dyn CheckpointStore>, signals: Signals) -> Arc<Host> {
        Arc::new(Host {
            store,
            signals,
            threads: Mutex::default(),
        })
    }

    /// Starts `guest`. The answer is its ARN once it is stored (durable), or why it did not
    /// start (an invalid definition, a name the store has, a mock file that cannot be read).
    /// `None`: the owner is ending and takes no more (the store is about to be free).
    pub(crate) fn start(
        &self,
        guest: Guest,
    ) -> Option<tokio::sync::oneshot::Receiver<Result<String, String>>> {
        let mut guests = self.threads.lock().expect("not poisoned");
        if guests.ended {
            return None;
        }
        guests.threads.retain(|t| !t.is_finished());
        let (answer, answered) = tokio::sync::oneshot::channel();
        let (store, signals) = (self.store.clone(), self.signals.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("guest {}", guest.name))
            .spawn(move || run_guest(guest, &*store, signals, answer));
        match spawned {
            Ok(thread) => guests.threads.push(thread),
            Err(e) => {
                let (answer, failed) = tokio::sync::oneshot::channel();
                let _ = answer.send(Err(format!("cannot start a thread for the execution: {e}")));
                return Some(failed);
            }
        }
        Some(answered)
    }

    /// How many guests are still running.
    pub(crate) fn running(&self) -> usize {
        let guests = self.threads.lock().expect("not poisoned");
        guests.threads.iter().filter(|t| !t.is_finished()).count()
    }

    /// Waits for every guest to end (including any started meanwhile), then takes no more:
    /// the owner can end without leaving one half-started.
    pub(crate) fn wait(&self) {
        loop {
            let thread = {
                let mut guests = self.threads.lock().expect("not poisoned");
                match guests.threads.pop() {
                    Some(thread) => thread,
                    None => {
                        guests.ended = true;
                        return;
                    }
                }
            };
            let _ = thread.join();
        }
    }
}

/// A guest's thread: runs it to its end, answering `answer` once it is stored.
fn run_guest(
    guest: Guest,
    store: &dyn CheckpointStore,
    signals: Signals,
    answer: tokio::sync::oneshot::Sender<Result<String, String>>,
) {
    let mut answer = Some(answer);
    let prepared = (|| {
        let validation = validate_str(&guest.definition, Options::default());
        let machine = validation.machine.ok_or_else(|| {
            let errors: Vec<String> = validation
                .diagnostics
                .iter()
                .filter(|d| d.is_error())
                .map(ToString::to_string)
                .collect();
            format!("the definition is invalid: {}", errors.join("; "))
        })?;
        let (routes, mut options) = launch_options(
            &guest.launch,
            &guest.state_machine_name,
            &[],
            &AwsArgs::default(),
        )?;
        options.name = Some(guest.name.clone());
        options.machine_name = guest.state_machine_name.clone();
        options.signals = Some(signals);
        Ok::<_, String>((machine, routes, options, runtime()?))
    })();
    let (machine, routes, options, runtime) = match prepared {
        Ok(prepared) => prepared,
        Err(e) => {
            if let Some(answer) = answer.take() {
                let _ = answer.send(Err(e));
            }
            return;
        }
    };
    let arn = ExecutionInfo::new(
        &guest.state_machine_name,
        &guest.name,
        Value::Null,
        Timestamp { unix_nanos: 0 },
        false,
    )
    .execution_arn;
    // The first event is passed on once the execution's creation is durable.
    let mut observer = |notice: Notice<'_>| {
        if let Notice::Event(_) = notice
            && let Some(answer) = answer.take()
        {
            let _ = answer.send(Ok(arn.clone()));
        }
    };
    let persistence = Persistence {
        store,
        definition: &guest.definition,
        launch: &guest.launch,
    };
    let ended = runtime.block_on(run_durable(
        &machine,
        guest.input,
        &options,
        &routes,
        persistence,
        Some(&mut observer),
    ));
    if let Err(e) = ended
        && let Some(answer) = answer.take()
    {
        let _ = answer.send(Err(e.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest(name: &str) -> Guest {
        Guest {
            definition: r#"{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}"#
                .into(),
            input: json!({"n": 1}),
            name: name.into(),
            state_machine_name: "m".into(),
            launch: json!({}),
        }
    }

    #[test]
    fn a_guest_runs_to_its_end_and_an_ending_host_takes_no_more() {
        let store: Arc<dyn CheckpointStore> = Arc::new(stepstone::engine::store::MemStore::new());
        let host = Host::new(store.clone(), Signals::default());
        let answered = host.start(guest("one")).expect("taken");
        let arn = answered.blocking_recv().unwrap().unwrap();
        assert_eq!(arn, "arn:aws:states:us-east-1:123456789012:execution:m:one");
        host.wait();
        let stored = store.describe(&arn).unwrap().expect("stored");
        assert_eq!(stored.status.as_str(), "SUCCEEDED");
        // Once the host has waited for its guests, it is ending: none is taken.
        assert!(host.start(guest("two")).is_none());
        assert!(
            store
                .describe(&arn.replace(":one", ":two"))
                .unwrap()
                .is_none()
        );
    }
}
