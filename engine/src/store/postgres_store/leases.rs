//! Several engines on one PostgreSQL store (`stepstone serve --shared`): each execution is
//! driven by the engine that holds its lease, and every write of it is fenced by the lease's
//! epoch.
//!
//! - `stepstone_leases(execution, owner, epoch, expires)`: one row per execution that is
//!   running (or being created). Creating an execution inserts its row (the ARN's reservation:
//!   a second engine creating the same ARN finds it and answers ExecutionAlreadyExists); its
//!   engine renews what it holds every third of the lease's length; an execution that ends here
//!   has its row deleted. A row whose lease ran out (its engine died, or lost the database) is
//!   claimed by another engine (`FOR UPDATE SKIP LOCKED`: engines claiming at once take
//!   different rows), which raises its epoch and resumes the execution from its checkpoint.
//! - **Fencing:** a transaction that writes an execution first reads its row `FOR SHARE` (a
//!   claim, which locks it `FOR UPDATE`, waits for the write to end) and writes it only if the
//!   row is still this engine's, under the epoch it holds; the other executions' writes of
//!   the same transaction go on. On its own side, an engine counts a lease lost once a third
//!   of its length has passed without a renewal beyond the two thirds it already waited
//!   (`valid_until`), before the database lets anyone claim it: a partitioned engine stops
//!   writing before another can take over, and the database refuses it regardless.
//! - **Requests for another engine** (StopExecution, task callbacks) are rows of
//!   `stepstone_signals`, announced with `NOTIFY stepstone_signals`; the engine holding the
//!   execution answers them in the row, which the poster reads and deletes. A request for an
//!   execution whose engine died waits for whoever claims it next.
//!
//! Row locks and the ordering of their acquisition (by execution, in both the renewals and the
//! fences) keep renewals and writes from deadlocking each other; claims skip what is locked.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;

use super::{Connection, connect, pg_error};
use crate::store::kv::Fence;
use crate::store::{Error, Leases, Result};

/// The schema's third version: leases, requests between engines, the activity tasks waiting
/// for a worker of any engine, and execution numbers from a sequence (carried on from
/// `meta/next`, which the layout counted in before), in blocks of 64 (`NUMBER_BLOCK`: an
/// engine takes a block, then numbers its executions from it without asking).
pub(super) const MIGRATION: &str = r#"
    CREATE TABLE stepstone_leases (
        execution text COLLATE "C" PRIMARY KEY,
        owner text NOT NULL,
        epoch bigint NOT NULL,
        expires timestamptz NOT NULL
    );
    CREATE INDEX stepstone_leases_expires ON stepstone_leases (expires);
    CREATE TABLE stepstone_signals (
        id bigserial PRIMARY KEY,
        execution text COLLATE "C" NOT NULL,
        request text NOT NULL,
        answer text,
        posted timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX stepstone_signals_waiting ON stepstone_signals (execution)
        WHERE answer IS NULL;
    CREATE TABLE stepstone_activity_tasks (
        token text PRIMARY KEY,
        activity text COLLATE "C" NOT NULL,
        input text NOT NULL,
        queued timestamptz NOT NULL DEFAULT clock_timestamp()
    );
    CREATE INDEX stepstone_activity_tasks_queue ON stepstone_activity_tasks (activity, queued);
    CREATE SEQUENCE stepstone_execution_numbers INCREMENT BY 64;
    SELECT setval('stepstone_execution_numbers', convert_from(value, 'UTF8')::bigint, false)
        FROM stepstone_records
        WHERE key = 'meta/next' AND convert_from(value, 'UTF8') ~ '^[1-9][0-9]{0,17}$';"#;

/// The channel requests are announced on.
const CHANNEL: &str = "stepstone_signals";

/// A lease this engine holds: the epoch its writes are fenced by, and until when (by this
/// engine's clock) it counts as held without a renewal.
#[derive(Clone, Copy)]
struct Held {
    epoch: i64,
    valid_until: Instant,
}

/// What the lease threads and the store share.
struct State {
    held: Mutex<HashMap<String, Held>>,
    lost: Mutex<Vec<String>>,
    wakeup: Arc<tokio::sync::Notify>,
}

impl State {
    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `execution` is no longer this engine's: its driver must stop.
    fn lose(&self, execution: &str) {
        if self.held().remove(execution).is_some() {
            self.lost
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(execution.to_owned());
            self.wakeup.notify_one();
        }
    }
}

/// This engine's part in a store shared with other engines.
pub(crate) struct Shared {
    me: String,
    ttl: Duration,
    state: Arc<State>,
    /// A connection of its own, so that claims and renewals never wait behind a long scan.
    connection: Arc<Connection>,
    /// Dropped to stop the renewing thread.
    stop_renewing: Option<mpsc::Sender<()>>,
    stop_listening: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// How long before its end (by this engine's clock) a lease counts as lost: renewals come every
/// third of the lease, so one late renewal is forgiven, two are not.
fn valid_until(sent: Instant, ttl: Duration) -> Instant {
    sent + ttl * 2 / 3
}

/// `ttl` as the milliseconds SQL adds to `now()`.
fn millis(ttl: Duration) -> f64 {
    ttl.as_secs_f64() * 1000.0
}

impl Shared {
    /// Joins the engines of the database `url` as `me`, with leases of `ttl`: starts the
    /// renewing thread and the listener of requests.
    pub(super) fn start(url: &str, shown: &str, me: String, ttl: Duration) -> Result<Shared> {
        let connection = Arc::new(Connection::open(url, shown)?);
        let state = Arc::new(State {
            held: Mutex::default(),
            lost: Mutex::default(),
            wakeup: Arc::default(),
        });
        let (stop_renewing, stopped) = mpsc::channel::<()>();
        let renewing = {
            let (state, connection, me) = (state.clone(), connection.clone(), me.clone());
            std::thread::Builder::new()
                .name("stepstone-leases".into())
                .spawn(move || {
                    // Each renewal waits for a third of the lease; a drop of the sender ends it.
                    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(ttl / 3) {
                        renew(&state, &connection, &me, ttl);
                    }
                })
                .map_err(|e| Error::Io(format!("cannot start the lease thread: {e}")))?
        };
        let stop_listening = Arc::new(AtomicBool::new(false));
        let listening = {
            let (url, wakeup, stop) =
                (url.to_owned(), state.wakeup.clone(), stop_listening.clone());
            std::thread::Builder::new()
                .name("stepstone-listen".into())
                .spawn(move || listen(&url, &wakeup, &stop))
                .map_err(|e| Error::Io(format!("cannot start the listening thread: {e}")))?
        };
        Ok(Shared {
            me,
            ttl,
            state,
            connection,
            stop_renewing: Some(stop_renewing),
            stop_listening,
            threads: vec![renewing, listening],
        })
    }

    /// What a write of `execution` is fenced by: [`Error::NotHeld`] when this engine does not
    /// hold its lease (or not surely any more).
    pub(super) fn fence(&self, execution: &str) -> Result<Option<Fence>> {
        let held = self.state.held().get(execution).copied();
        match held {
            Some(held) if Instant::now() < held.valid_until => Ok(Some(Fence {
                execution: execution.to_owned(),
                epoch: held.epoch,
            })),
            Some(_) => {
                self.state.lose(execution);
                Err(Error::NotHeld(execution.to_owned()))
            }
            None => Err(Error::NotHeld(execution.to_owned())),
        }
    }

    /// Of `fences` (a write's index and its fence), the writes that may not be applied, with
    /// why; those that may are locked against claims until `txn` ends. Called in the writing
    /// transaction.
    pub(super) fn refused(
        &self,
        txn: &mut postgres::Transaction<'_>,
        check: &postgres::Statement,
        fences: &[(usize, Fence)],
    ) -> Result<Vec<(usize, Error)>> {
        let now = Instant::now();
        let mut executions: Vec<&str> = fences.iter().map(|(_, f)| f.execution.as_str()).collect();
        executions.sort_unstable();
        executions.dedup();
        let rows = txn
            .query(check, &[&executions, &self.me])
            .map_err(pg_error)?;
        let current: HashMap<String, i64> = rows
            .into_iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        let mut refused = Vec::new();
        for (index, fence) in fences {
            let still_valid = self
                .state
                .held()
                .get(&fence.execution)
                .is_some_and(|held| held.epoch == fence.epoch && now < held.valid_until);
            if current.get(&fence.execution) != Some(&fence.epoch) || !still_valid {
                self.state.lose(&fence.execution);
                refused.push((*index, Error::NotHeld(fence.execution.clone())));
            }
        }
        Ok(refused)
    }

    /// The statement [`Shared::refused`] runs: the rows of this engine among the executions
    /// given, locked in execution order.
    pub(super) const CHECK: &'static str = "SELECT execution, epoch FROM stepstone_leases
         WHERE execution = ANY($1) AND owner = $2 ORDER BY execution FOR SHARE";

    /// Takes `execution`'s lease when no live engine holds it: its epoch, or `None`.
    fn take(&self, execution: &str) -> Result<Option<i64>> {
        let sent = Instant::now();
        let (execution_owned, me, ttl) = (execution.to_owned(), self.me.clone(), millis(self.ttl));
        let epoch = self.connection.call(move |session| {
            let sql = session.statement(
                "INSERT INTO stepstone_leases AS l (execution, owner, epoch, expires)
                 VALUES ($1, $2, 1, now() + $3::float8 * interval '1 millisecond')
                 ON CONFLICT (execution) DO UPDATE
                     SET owner = EXCLUDED.owner, epoch = l.epoch + 1, expires = EXCLUDED.expires
                     WHERE l.expires < now()
                 RETURNING epoch",
            )?;
            let row = session
                .client
                .query_opt(&sql, &[&execution_owned, &me, &ttl])
                .map_err(pg_error)?;
            Ok(row.map(|row| row.get::<_, i64>(0)))
        })?;
        if let Some(epoch) = epoch {
            self.state.held().insert(
                execution.to_owned(),
                Held {
                    epoch,
                    valid_until: valid_until(sent, self.ttl),
                },
            );
        }
        Ok(epoch)
    }

    /// Reserves the ARN of an execution about to be created.
    pub(super) fn reserve(&self, execution: &str) -> Result<()> {
        match self.take(execution)? {
            Some(_) => Ok(()),
            None => Err(Error::AlreadyExists(execution.to_owned())),
        }
    }

    /// Forgets the lease of `execution`, and runs `sql` with it, this engine and the epoch it
    /// held it under, without waiting for it (the database's side is best effort: a lease not
    /// renewed runs out anyway; later calls on the connection come after it).
    fn let_go(&self, execution: &str, sql: &'static str) {
        let Some(held) = self.state.held().remove(execution) else {
            return;
        };
        let (execution, me) = (execution.to_owned(), self.me.clone());
        self.connection.send(move |session| {
            let sql = session.statement(sql)?;
            session
                .client
                .execute(&sql, &[&execution, &me, &held.epoch])
                .map_err(pg_error)
        });
    }

    /// Signals the listener and renewal threads to stop and waits for them.
    fn stop(&mut self) {
        self.stop_renewing.take();
        self.stop_listening.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Renews every lease this engine holds, in execution order; those the database no longer
/// has as this engine's are lost.
fn renew(state: &State, connection: &Connection, me: &str, ttl: Duration) {
    let held: Vec<(String, i64)> = state
        .held()
        .iter()
        .map(|(execution, held)| (execution.clone(), held.epoch))
        .collect();
    if held.is_empty() {
        return;
    }
    let sent = Instant::now();
    let executions: Vec<String> = held.iter().map(|(e, _)| e.clone()).collect();
    let me = me.to_owned();
    let renewed = connection.call(move |session| {
        let sql = session.statement(
            "UPDATE stepstone_leases l SET expires = now() + $3::float8 * interval '1 millisecond'
             FROM (SELECT execution FROM stepstone_leases
                   WHERE execution = ANY($1) AND owner = $2 ORDER BY execution FOR UPDATE) mine
             WHERE l.execution = mine.execution
             RETURNING l.execution, l.epoch",
        )?;
        let rows = session
            .client
            .query(&sql, &[&executions, &me, &millis(ttl)])
            .map_err(pg_error)?;
        Ok(rows
            .into_iter()
            .map(|row| (row.get::<_, String>(0), row.get::<_, i64>(1)))
            .collect::<HashMap<String, i64>>())
    });
    // Unreachable database: nothing is renewed, and the leases run out on this engine's clock.
    let Ok(renewed) = renewed else {
        return;
    };
    for (execution, epoch) in held {
        if renewed.get(&execution) == Some(&epoch) {
            if let Some(held) = state.held().get_mut(&execution)
                && held.epoch == epoch
            {
                held.valid_until = valid_until(sent, ttl);
            }
        } else {
            state.lose(&execution);
        }
    }
}

/// Listens for requests posted for any engine and wakes this one's (`LISTEN`); reconnects
/// after a failure, and ends when `stop` is set.
fn listen(url: &str, wakeup: &tokio::sync::Notify, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut client) = connect(url) else {
            std::thread::sleep(Duration::from_millis(500));
            continue;
        };
        if client.batch_execute(&format!("LISTEN {CHANNEL}")).is_err() {
            std::thread::sleep(Duration::from_millis(500));
            continue;
        }
        // Requests posted while this engine was not listening are found by its next look.
        wakeup.notify_one();
        while !stop.load(Ordering::Relaxed) {
            let mut woken = false;
            let mut failed = false;
            {
                let mut notifications = client.notifications();
                let mut iter = notifications.timeout_iter(Duration::from_millis(250));
                loop {
                    match iter.next() {
                        Ok(Some(_)) => woken = true,
                        Ok(None) => break,
                        Err(_) => {
                            failed = true;
                            break;
                        }
                    }
                }
            }
            if woken {
                wakeup.notify_one();
            }
            if failed || client.is_closed() {
                break;
            }
        }
    }
}

impl Leases for Shared {
    fn engine(&self) -> &str {
        &self.me
    }

    fn ttl(&self) -> Duration {
        self.ttl
    }

    fn claim_expired(&self, limit: usize) -> Result<Vec<String>> {
        let sent = Instant::now();
        let (me, ttl) = (self.me.clone(), millis(self.ttl));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let claimed = self.connection.call(move |session| {
            let sql = session.statement(
                "UPDATE stepstone_leases l
                 SET owner = $1, epoch = l.epoch + 1,
                     expires = now() + $2::float8 * interval '1 millisecond'
                 FROM (SELECT execution FROM stepstone_leases WHERE expires < now()
                       ORDER BY expires LIMIT $3 FOR UPDATE SKIP LOCKED) free
                 WHERE l.execution = free.execution
                 RETURNING l.execution, l.epoch",
            )?;
            let rows = session
                .client
                .query(&sql, &[&me, &ttl, &limit])
                .map_err(pg_error)?;
            Ok(rows
                .into_iter()
                .map(|row| (row.get::<_, String>(0), row.get::<_, i64>(1)))
                .collect::<Vec<_>>())
        })?;
        let mut held = self.state.held();
        Ok(claimed
            .into_iter()
            .map(|(execution, epoch)| {
                held.insert(
                    execution.clone(),
                    Held {
                        epoch,
                        valid_until: valid_until(sent, self.ttl),
                    },
                );
                execution
            })
            .collect())
    }

    fn acquire(&self, execution_arn: &str) -> Result<bool> {
        if self.holds(execution_arn) {
            return Ok(true);
        }
        Ok(self.take(execution_arn)?.is_some())
    }

    fn release(&self, execution_arn: &str) {
        self.let_go(
            execution_arn,
            "DELETE FROM stepstone_leases WHERE execution = $1 AND owner = $2 AND epoch = $3",
        );
    }

    fn abandon(&self, execution_arn: &str) {
        self.let_go(
            execution_arn,
            "UPDATE stepstone_leases SET expires = '-infinity'
             WHERE execution = $1 AND owner = $2 AND epoch = $3",
        );
    }

    fn postpone(&self, execution_arn: &str, delay: Duration) {
        let Some(held) = self.state.held().remove(execution_arn) else {
            return;
        };
        let (execution, me) = (execution_arn.to_owned(), self.me.clone());
        self.connection.send(move |session| {
            let sql = session.statement(
                "UPDATE stepstone_leases
                 SET expires = now() + $4::float8 * interval '1 millisecond'
                 WHERE execution = $1 AND owner = $2 AND epoch = $3",
            )?;
            session
                .client
                .execute(&sql, &[&execution, &me, &held.epoch, &millis(delay)])
                .map_err(pg_error)
        });
    }

    fn holds(&self, execution_arn: &str) -> bool {
        self.state
            .held()
            .get(execution_arn)
            .is_some_and(|held| Instant::now() < held.valid_until)
    }

    fn held(&self) -> Vec<String> {
        let mut held: Vec<String> = self.state.held().keys().cloned().collect();
        held.sort();
        held
    }

    fn lost(&self) -> Vec<String> {
        std::mem::take(
            &mut *self
                .state
                .lost
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    fn adopt(&self, execution_arns: &[String]) -> Result<()> {
        let executions = execution_arns.to_vec();
        self.connection.call(move |session| {
            let sql = session.statement(
                "INSERT INTO stepstone_leases (execution, owner, epoch, expires)
                 SELECT execution, '', 0, '-infinity' FROM unnest($1::text[]) AS execution
                 ON CONFLICT (execution) DO NOTHING",
            )?;
            session
                .client
                .execute(&sql, &[&executions])
                .map_err(pg_error)?;
            Ok(())
        })
    }

    fn post(&self, execution_arn: &str, request: &str) -> Result<i64> {
        let (execution, request) = (execution_arn.to_owned(), request.to_owned());
        self.connection.call(move |session| {
            let sql = session.statement(
                "INSERT INTO stepstone_signals (execution, request) VALUES ($1, $2) RETURNING id",
            )?;
            let id: i64 = session
                .client
                .query_one(&sql, &[&execution, &request])
                .map_err(pg_error)?
                .get(0);
            // Outside a transaction: delivered at once.
            let notify = session.statement("SELECT pg_notify($1, '')")?;
            session
                .client
                .execute(&notify, &[&CHANNEL])
                .map_err(pg_error)?;
            Ok(id)
        })
    }

    fn answer_of(&self, id: i64) -> Result<Option<String>> {
        self.connection.call(move |session| {
            let sql = session.statement(
                "DELETE FROM stepstone_signals WHERE id = $1 AND answer IS NOT NULL
                 RETURNING answer",
            )?;
            let row = session.client.query_opt(&sql, &[&id]).map_err(pg_error)?;
            Ok(row.map(|row| row.get(0)))
        })
    }

    fn withdraw(&self, id: i64) {
        let _ = self.connection.call(move |session| {
            let sql = session.statement("DELETE FROM stepstone_signals WHERE id = $1")?;
            session.client.execute(&sql, &[&id]).map_err(pg_error)
        });
    }

    fn pending(&self) -> Result<Vec<(i64, String, String)>> {
        let held = self.held();
        if held.is_empty() {
            return Ok(Vec::new());
        }
        self.connection.call(move |session| {
            let sql = session.statement(
                "SELECT id, execution, request FROM stepstone_signals
                 WHERE answer IS NULL AND execution = ANY($1) ORDER BY id",
            )?;
            let rows = session.client.query(&sql, &[&held]).map_err(pg_error)?;
            Ok(rows
                .into_iter()
                .map(|row| (row.get(0), row.get(1), row.get(2)))
                .collect())
        })
    }

    fn answer(&self, id: i64, answer: &str) -> Result<()> {
        let answer = answer.to_owned();
        self.connection.call(move |session| {
            let sql =
                session.statement("UPDATE stepstone_signals SET answer = $2 WHERE id = $1")?;
            session
                .client
                .execute(&sql, &[&id, &answer])
                .map_err(pg_error)?;
            Ok(())
        })
    }

    fn wakeup(&self) -> Arc<tokio::sync::Notify> {
        self.state.wakeup.clone()
    }

    fn queue_activity(&self, activity: &str, token: &str, input: &str) -> Result<()> {
        let (activity, token, input) = (activity.to_owned(), token.to_owned(), input.to_owned());
        self.connection.call(move |session| {
            // A task queued again (its execution resumed) keeps its place.
            let sql = session.statement(
                "INSERT INTO stepstone_activity_tasks (token, activity, input) VALUES ($1, $2, $3)
                 ON CONFLICT (token) DO NOTHING",
            )?;
            session
                .client
                .execute(&sql, &[&token, &activity, &input])
                .map_err(pg_error)?;
            Ok(())
        })
    }

    fn take_activity(&self, activity: &str) -> Result<Option<(String, String)>> {
        let activity = activity.to_owned();
        self.connection.call(move |session| {
            let sql = session.statement(
                "DELETE FROM stepstone_activity_tasks WHERE token = (
                     SELECT token FROM stepstone_activity_tasks WHERE activity = $1
                     ORDER BY queued LIMIT 1 FOR UPDATE SKIP LOCKED)
                 RETURNING token, input",
            )?;
            let row = session
                .client
                .query_opt(&sql, &[&activity])
                .map_err(pg_error)?;
            Ok(row.map(|row| (row.get(0), row.get(1))))
        })
    }
}
