//! `stepstone serve --shared`: one of several nodes on one PostgreSQL store. Any node answers
//! any API call; each execution is driven by the node that holds its lease
//! (`stepstone::engine::store::Leases`):
//!
//! - **Claims:** every third of a lease (at most a second), a node claims the executions whose
//!   lease ran out (their node died or lost the database) and resumes them from their last
//!   checkpoint, with the same task tokens and idempotency tokens.
//! - **Requests for another node:** StopExecution and task callbacks for an execution driven
//!   elsewhere are posted in the database; the node driving it answers them (woken by
//!   `LISTEN/NOTIFY`), and the node that was asked waits for that answer.
//! - **Lost leases:** a node that loses a lease (another node claimed it) stops its driver at
//!   once, without writing (the database would refuse it anyway).
//! - **Held, not driven:** an execution whose driver is gone (it ended, or failed) has its lease
//!   let go: deleted once it ended, run out at once otherwise, for a node to claim.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stepstone::engine::store::Leases;
use stepstone::engine::{Status, load_stored};

use super::super::answers;
use super::{Service, activities};

/// How many executions whose lease ran out one look claims: the rest wait for the next look
/// (or another node), so a node that starts among many orphans takes its share, not all.
const CLAIM_AT_ONCE: usize = 16;

/// How long an execution whose records cannot be read is left before a node claims it again.
const UNREADABLE_DELAY: Duration = Duration::from_secs(60);

/// How often a worker's GetActivityTask looks in the shared store for a task.
const ACTIVITY_POLL: Duration = Duration::from_millis(100);

/// How many looks an execution may be held here without a driver before its lease is let go
/// (a driver registers just after its lease is taken: one look may fall between).
const IDLE_LOOKS: u32 = 2;

/// The leases of the service's store, when it is shared.
fn leases(service: &Service) -> Option<&dyn Leases> {
    service.store.leases()
}

/// The nodes' coordination, for as long as the service runs: claims, requests, lost and idle
/// leases. Executions kept from before leases (RUNNING, without one) are given one first, for
/// any node to claim.
pub(super) async fn coordinate(service: Rc<Service>) {
    let Some(leases) = leases(&service) else {
        return;
    };
    match service.store.list() {
        Ok(all) => {
            let running: Vec<String> = all
                .into_iter()
                .filter(|r| r.status == "RUNNING")
                .map(|r| r.execution_arn)
                .collect();
            if let Err(e) = leases.adopt(&running) {
                eprintln!("stepstone serve: cannot adopt the running executions: {e}");
            }
        }
        Err(e) => eprintln!("stepstone serve: cannot list the executions to adopt: {e}"),
    }
    let wakeup = leases.wakeup();
    let period = (leases.ttl() / 3).min(Duration::from_secs(1));
    let mut idle: HashMap<String, u32> = HashMap::new();
    loop {
        let Some(leases) = self::leases(&service) else {
            return;
        };
        for arn in leases.lost() {
            if service.signals.abandon(&arn) {
                eprintln!("stepstone serve: lost the lease of {arn} to another node: stopped here");
            }
        }
        match leases.claim_expired(CLAIM_AT_ONCE) {
            Ok(claimed) => {
                for arn in claimed {
                    drive_claimed(&service, arn);
                }
            }
            Err(e) => eprintln!("stepstone serve: cannot claim executions: {e}"),
        }
        answer_pending(&service).await;
        let_go_idle(&service, &mut idle);
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            () = wakeup.notified() => {}
        }
    }
}

/// Resumes an execution this node just claimed (one that ended meanwhile is let go).
fn drive_claimed(service: &Rc<Service>, arn: String) {
    let service = service.clone();
    tokio::task::spawn_local(async move {
        let Some(leases) = leases(&service) else {
            return;
        };
        let loaded = load_stored(&*service.store, &arn);
        let (stored, machine) = match loaded {
            Ok(loaded) => loaded,
            Err(stepstone::engine::Error::NotFound(_)) => {
                // A creation that never committed.
                leases.release(&arn);
                return;
            }
            Err(e) => {
                // Claimed again after a while, not at every look (by any node).
                eprintln!(
                    "stepstone serve: cannot resume {arn}: {e} (left for {} s)",
                    UNREADABLE_DELAY.as_secs()
                );
                leases.postpone(&arn, UNREADABLE_DELAY);
                return;
            }
        };
        if stored.checkpoint.status != Status::Running {
            leases.release(&arn);
            return;
        }
        eprintln!("stepstone serve: took over {arn}");
        match super::resume_stored(&service, stored, &machine).await {
            Ok(_) => {
                service.endings.ended(&arn);
                leases.release(&arn);
            }
            Err(e) => {
                eprintln!("stepstone serve: {arn} stopped here: {e}");
                leases.abandon(&arn);
            }
        }
    });
}

/// Answers the requests other nodes posted for the executions this node drives.
async fn answer_pending(service: &Service) {
    let Some(leases) = leases(service) else {
        return;
    };
    let pending = match leases.pending() {
        Ok(pending) => pending,
        Err(e) => {
            eprintln!("stepstone serve: cannot read the requests for this node: {e}");
            return;
        }
    };
    for (id, arn, request) in pending {
        let driven_here = service.signals.is_running(&arn);
        // Held but not yet driven (being resumed): answered at the next look, by its driver.
        // Held after its end: answered from the store, as an ended execution is.
        if !driven_here && running_in_store(service, &arn) != Some(false) {
            continue;
        }
        let answered = match serde_json::from_str::<Value>(&request) {
            // A worker of another node took an activity task of this node's.
            Ok(request) if request["op"] == "task-started" => {
                let (token, worker) = (&request["token"], &request["worker"]);
                let token = token.as_str().unwrap_or_default();
                let worker = worker.as_str().unwrap_or_default();
                activities::started(service, token, worker)
                    .await
                    .map(|()| json!({}))
            }
            Ok(request) => answers::answer(&*service.store, &service.signals, &request).await,
            Err(e) => Err(format!("a request that is not JSON: {e}")),
        };
        let reply = match answered {
            Ok(value) => json!({"ok": value}),
            Err(message) => json!({"error": message}),
        };
        if let Err(e) = leases.answer(id, &reply.to_string()) {
            eprintln!("stepstone serve: cannot answer a request for {arn}: {e}");
        }
    }
}

/// Whether `arn` is RUNNING in the store (`None`: it cannot be told).
fn running_in_store(service: &Service, arn: &str) -> Option<bool> {
    let described = service.store.describe(arn).ok()?;
    Some(described.is_some_and(|d| d.status == Status::Running))
}

/// Lets go of the executions held here whose driver is gone: deleted once they ended, run
/// out at once otherwise (a node claims it and goes on).
fn let_go_idle(service: &Service, idle: &mut HashMap<String, u32>) {
    let Some(leases) = leases(service) else {
        return;
    };
    let held = leases.held();
    idle.retain(|arn, _| held.contains(arn));
    for arn in held {
        if service.signals.is_running(&arn) {
            idle.remove(&arn);
            continue;
        }
        let looks = idle.entry(arn.clone()).or_default();
        *looks += 1;
        if *looks <= IDLE_LOOKS {
            continue;
        }
        idle.remove(&arn);
        match running_in_store(service, &arn) {
            Some(false) => leases.release(&arn),
            Some(true) => leases.abandon(&arn),
            None => {}
        }
    }
}

/// Answers a request (StopExecution, a task callback) for execution `arn`: here when this
/// node drives it, or when it is not running (the store answers for it); otherwise by the node
/// that drives it, through the database.
pub(super) async fn answer(service: &Service, arn: &str, request: &Value) -> Result<Value, String> {
    let Some(leases) = leases(service) else {
        return answers::answer(&*service.store, &service.signals, request).await;
    };
    let here = leases.holds(arn) && service.signals.is_running(arn);
    if request["op"] == "task-started" {
        if here {
            let token = request["token"].as_str().unwrap_or_default();
            let worker = request["worker"].as_str().unwrap_or_default();
            return activities::started(service, token, worker)
                .await
                .map(|()| json!({}));
        }
        if running_in_store(service, arn) == Some(false) {
            return Err("TaskDoesNotExist: the execution ended".into());
        }
    } else if here || running_in_store(service, arn) == Some(false) {
        return answers::answer(&*service.store, &service.signals, request).await;
    }
    let id = leases
        .post(arn, &request.to_string())
        .map_err(|e| e.to_string())?;
    // Its node answers within a look; a node that died leaves it to the node that claims the
    // execution once its lease runs out.
    let give_up = Instant::now() + leases.ttl() * 2 + Duration::from_secs(10);
    let mut pause = Duration::from_millis(5);
    loop {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
        let Some(leases) = self::leases(service) else {
            return Err("the store is no longer shared".into());
        };
        match leases.answer_of(id) {
            Ok(Some(reply)) => {
                let reply: Value = serde_json::from_str(&reply)
                    .map_err(|e| format!("an answer that is not JSON: {e}"))?;
                return match reply.get("error").and_then(Value::as_str) {
                    Some(message) => Err(message.to_owned()),
                    None => Ok(reply["ok"].clone()),
                };
            }
            Ok(None) if Instant::now() < give_up => {}
            Ok(None) => {
                leases.withdraw(id);
                return Err(format!(
                    "no engine answered for {arn} in time (the node driving it may have died; \
                     try again)"
                ));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// The execution a task token belongs to (`None`: not a Stepstone token).
pub(super) fn execution_of_token(token: &str) -> Option<String> {
    let names = stepstone::engine::token_names(token)?;
    // `<execution ARN>/<state>/<event>/<attempt>`: execution names have no `/`.
    names.split_once('/').map(|(arn, _)| arn.to_owned())
}

/// GetActivityTask when nodes share the store: the oldest task any node queued, which
/// the node driving its execution is told a worker took (a task whose execution no longer
/// waits for it is passed over).
pub(super) async fn get_activity_task(
    service: &Service,
    input: &Value,
) -> Result<Value, super::ApiError> {
    let arn = activities::activity(service, input)?.arn;
    let worker = input["workerName"].as_str().unwrap_or_default();
    let deadline = tokio::time::Instant::now() + activities::POLL;
    let Some(leases) = leases(service) else {
        return Err(super::api_error(
            "InternalFailure",
            "the store is not shared",
        ));
    };
    loop {
        match leases.take_activity(&arn).map_err(super::store_error)? {
            Some((token, input)) => {
                let Some(execution) = execution_of_token(&token) else {
                    continue;
                };
                let request = json!({"op": "task-started", "token": token, "worker": worker});
                if answer(service, &execution, &request).await.is_ok() {
                    return Ok(json!({"taskToken": token, "input": input}));
                }
            }
            None if tokio::time::Instant::now() >= deadline => return Ok(json!({})),
            None => tokio::time::sleep(ACTIVITY_POLL).await,
        }
    }
}
