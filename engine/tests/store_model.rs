//! Both stores against a model: random sequences of creates, saves (with events), loads,
//! listings and (for sled) reopenings must read back exactly what the model holds.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::json;
use stepstone_engine::asl::timestamp::Timestamp;
use stepstone_engine::asl::{Options, validate};
use stepstone_engine::history::{Event, EventKind, HistoryMode};
use stepstone_engine::store::{CheckpointStore, MemStore, RedbStore, SledStore};
use stepstone_engine::{Checkpoint, Execution, ExecutionInfo, Limits};

#[derive(Debug, Clone)]
enum Op {
    Create(usize),
    Save {
        execution: usize,
        done: bool,
        events: usize,
    },
    Load(usize),
    List,
    Reopen,
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            (0usize..4).prop_map(Op::Create),
            (0usize..4, any::<bool>(), 0usize..4).prop_map(|(execution, done, events)| Op::Save {
                execution,
                done,
                events
            }),
            (0usize..4).prop_map(Op::Load),
            Just(Op::List),
            Just(Op::Reopen),
        ],
        1..24,
    )
}

/// What the model keeps of an execution: its status and its events' ids.
#[derive(Debug, Clone, PartialEq)]
struct Model {
    status: String,
    events: Vec<u64>,
}

fn checkpoint(
    machine: &stepstone_engine::asl::Machine,
    execution: usize,
    done: bool,
) -> Checkpoint {
    let info = ExecutionInfo::new(
        "model",
        &format!("ex-{execution}"),
        json!({"n": execution}),
        Timestamp { unix_nanos: 0 },
        false,
    );
    let mut exec = Execution::new(machine, info, Limits::default(), HistoryMode::Off);
    if done {
        exec.abort("Done", "by the model", Timestamp { unix_nanos: 1 });
    }
    exec.checkpoint()
}

fn event(id: u64) -> Event {
    Event {
        id,
        previous_event_id: id - 1,
        timestamp: Timestamp {
            unix_nanos: id as i128,
        },
        kind: EventKind::MapStateSucceeded,
    }
}

fn arn(execution: usize) -> String {
    format!("arn:aws:states:us-east-1:123456789012:execution:model:ex-{execution}")
}

fn check(
    ops: Vec<Op>,
    mut open: impl FnMut() -> Box<dyn CheckpointStore>,
) -> Result<(), TestCaseError> {
    let machine = validate(
        &json!({"StartAt": "S", "States": {"S": {"Type": "Succeed"}}}),
        Options::default(),
    )
    .machine
    .unwrap();
    let mut store = open();
    let mut model: BTreeMap<usize, Model> = BTreeMap::new();
    for op in ops {
        match op {
            Op::Create(e) => {
                let first = [event(1)];
                if model.contains_key(&e) {
                    // Names are unique: a second create is refused and changes nothing.
                    let again =
                        store.create("{}", &json!(null), &checkpoint(&machine, e, false), &first);
                    prop_assert!(matches!(
                        again,
                        Err(stepstone_engine::store::Error::AlreadyExists(_))
                    ));
                    continue;
                }
                store
                    .create(
                        "{\"StartAt\": \"S\"}",
                        &json!({"e": e}),
                        &checkpoint(&machine, e, false),
                        &first,
                    )
                    .unwrap();
                model.insert(
                    e,
                    Model {
                        status: "RUNNING".into(),
                        events: vec![1],
                    },
                );
            }
            Op::Save {
                execution,
                done,
                events,
            } => {
                let Some(m) = model.get_mut(&execution) else {
                    continue;
                };
                let next = m.events.last().copied().unwrap_or(0);
                let new: Vec<Event> = (1..=events as u64).map(|i| event(next + i)).collect();
                store
                    .save(&checkpoint(&machine, execution, done), &new)
                    .unwrap();
                m.events.extend(new.iter().map(|e| e.id));
                m.status = if done {
                    "ABORTED".into()
                } else {
                    "RUNNING".into()
                };
            }
            Op::Load(e) => {
                let loaded = store.load(&arn(e)).unwrap();
                match model.get(&e) {
                    None => prop_assert!(loaded.is_none()),
                    Some(m) => {
                        let stored = loaded.expect("stored");
                        prop_assert_eq!(stored.launch, json!({"e": e}));
                        prop_assert_eq!(stored.checkpoint.status.as_str(), m.status.as_str());
                        prop_assert_eq!(stored.checkpoint.info.input, json!({"n": e}));
                        let ids: Vec<u64> = store
                            .events(&arn(e))
                            .unwrap()
                            .iter()
                            .map(|ev| ev.id)
                            .collect();
                        prop_assert_eq!(&ids, &m.events);
                    }
                }
            }
            Op::List => {
                let listed: Vec<(String, String)> = store
                    .list()
                    .unwrap()
                    .into_iter()
                    .map(|r| (r.execution_arn, r.status))
                    .collect();
                let expected: Vec<(String, String)> = model
                    .iter()
                    .map(|(e, m)| (arn(*e), m.status.clone()))
                    .collect();
                prop_assert_eq!(listed, expected);
            }
            Op::Reopen => {
                drop(store);
                store = open();
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn mem_store_matches_the_model(ops in ops()) {
        // A MemStore forgets on "reopen" only if recreated; keep one instance, as a process would.
        let store = std::sync::Arc::new(MemStore::new());
        check(ops, || Box::new(Shared(store.clone())))?;
    }

    #[test]
    fn redb_store_matches_the_model(ops in ops()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        check(ops, || Box::new(RedbStore::open(&path).unwrap()))?;
    }

    #[test]
    fn sled_store_matches_the_model(ops in ops()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        check(ops, || Box::new(SledStore::open(&path).unwrap()))?;
    }
}

/// A MemStore shared across "reopens".
struct Shared(std::sync::Arc<MemStore>);

impl CheckpointStore for Shared {
    fn create(
        &self,
        d: &str,
        l: &serde_json::Value,
        c: &Checkpoint,
        e: &[Event],
    ) -> stepstone_engine::store::Result<()> {
        self.0.create(d, l, c, e)
    }
    fn save(&self, c: &Checkpoint, e: &[Event]) -> stepstone_engine::store::Result<()> {
        self.0.save(c, e)
    }
    fn load(
        &self,
        a: &str,
    ) -> stepstone_engine::store::Result<Option<stepstone_engine::store::Stored>> {
        self.0.load(a)
    }
    fn events(&self, a: &str) -> stepstone_engine::store::Result<Vec<Event>> {
        self.0.events(a)
    }
    fn list(
        &self,
    ) -> stepstone_engine::store::Result<Vec<stepstone_engine::store::ExecutionRecord>> {
        self.0.list()
    }
}
