//! The control socket: how `describe`, `history`, `executions` and `stop` reach the engine that
//! owns a store while it runs (only one process may open a store), and how a `run` on that
//! store hands its execution over (`start`, then `events` to follow it: `guests.rs`).
//!
//! The engine listens on `<store>/control.sock` (a Unix socket, owner-only). A request is one
//! JSON line, `{"op": "describe", "execution": "..."}`; the answer is one JSON line,
//! `{"ok": <AWS-shaped response>}` or `{"error": "..."}`. When nobody listens (no engine runs,
//! or one crashed and left the socket file behind), commands open the store themselves.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use stepstone::engine::Signals;
use stepstone::engine::store::CheckpointStore;

use super::guests::{Guest, Host};

/// The socket's file name in the store directory.
pub(crate) const SOCKET: &str = "control.sock";

/// Asks the engine that owns the store at `dir`. `None` when no engine answers there: none
/// listens, or the one that did went away before answering (killed, or ended just then); the
/// caller then reads the store itself, once the engine's lock is released.
#[cfg(unix)]
pub(crate) fn request(dir: &Path, request: &Value) -> Option<Result<Value, String>> {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    let mut stream = UnixStream::connect(dir.join(SOCKET)).ok()?;
    let mut exchange = || -> std::io::Result<String> {
        // A stop answers once the abort is durable: well within this, unless the disk hangs.
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.write_all(format!("{request}\n").as_bytes())?;
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line)?;
        Ok(line)
    };
    let answer = match exchange() {
        // Closed without a word: the engine is gone.
        Ok(line) if line.is_empty() => return None,
        Ok(line) => serde_json::from_str::<Value>(&line)
            .map_err(|e| format!("the engine's answer is not JSON ({e}): {line}")),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            return None;
        }
        Err(e) => Err(format!(
            "the engine at {} did not answer: {e}",
            dir.join(SOCKET).display()
        )),
    };
    Some(answer.and_then(|mut v| match v.get_mut("ok") {
        Some(ok) => Ok(ok.take()),
        None => Err(v["error"].as_str().unwrap_or("unknown error").to_owned()),
    }))
}

#[cfg(not(unix))]
pub(crate) fn request(_dir: &Path, _request: &Value) -> Option<Result<Value, String>> {
    None
}

/// Listens on the store's control socket while the engine runs; the socket file is removed
/// when this is dropped.
///
/// It answers on a thread of its own (with its own small runtime): the engine's thread may be
/// busy for seconds (a JSONata expression that loops until its budget ends), and a `stop` must
/// reach it meanwhile, through [`Signals`], which also interrupts the evaluation.
pub(crate) struct Server {
    path: PathBuf,
    /// Dropped, it ends the server's thread.
    _shutdown: tokio::sync::oneshot::Sender<()>,
    /// How many requests are being answered.
    busy: Arc<AtomicUsize>,
}

impl Server {
    /// Lets the requests being answered finish (a `stop` is answered as its execution ends,
    /// just before this process exits), for at most a second.
    pub(crate) async fn drain(&self) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
        while self.busy.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The most connections answered at once; more wait in the socket's backlog (and past it are
/// refused by the kernel), costing this process no file descriptor.
#[cfg(unix)]
const MAX_CONNECTIONS: usize = 32;

/// How long a client may take to send its request line: a connection that says nothing is
/// closed, so idle ones cannot hold the connections above.
#[cfg(unix)]
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Starts answering on `<dir>/control.sock`, on a thread of its own. The caller owns the store
/// (it is open), so a socket file left there belongs to an engine that died. Without a socket
/// (too long a path, a file system without them), the engine still runs: a warning says the
/// commands cannot reach it.
/// With a `host`, the engine takes the executions other `run`s hand over.
#[cfg(unix)]
pub(crate) fn serve(
    dir: &Path,
    store: Arc<dyn CheckpointStore>,
    signals: Signals,
    host: Option<Arc<Host>>,
) -> Option<Server> {
    let started = (|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // Bound inside the server's runtime: the listener belongs to its reactor.
        let listener = runtime.block_on(async { bind(dir) })?;
        let busy = Arc::new(AtomicUsize::new(0));
        let (shutdown, ended) = tokio::sync::oneshot::channel::<()>();
        let counted = busy.clone();
        std::thread::Builder::new()
            .name("control-socket".into())
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::select! {
                        () = accept(listener, store, signals, host, counted) => {}
                        _ = ended => {}
                    }
                });
            })?;
        std::io::Result::Ok(Server {
            path: dir.join(SOCKET),
            _shutdown: shutdown,
            busy,
        })
    })();
    match started {
        Ok(server) => Some(server),
        Err(e) => {
            eprintln!(
                "stepstone: warning: no control socket at {} ({e}): `stepstone describe`, \
                 `history` and `stop` cannot reach this engine while it runs",
                dir.join(SOCKET).display()
            );
            None
        }
    }
}

#[cfg(not(unix))]
pub(crate) fn serve(
    _dir: &Path,
    _store: Arc<dyn CheckpointStore>,
    _signals: Signals,
    _host: Option<Arc<Host>>,
) -> Option<Server> {
    None
}

/// Binds the socket owner-only with no moment where it is open to others: it is made in a
/// private directory (mode 0700), restricted to 0600, then renamed into place.
#[cfg(unix)]
fn bind(dir: &Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let private = dir.join(format!(".control-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&private);
    std::fs::DirBuilder::new().mode(0o700).create(&private)?;
    let bound = (|| {
        let staged = private.join(SOCKET);
        let listener = tokio::net::UnixListener::bind(&staged)?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&staged, dir.join(SOCKET))?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&private);
    bound
}

#[cfg(unix)]
async fn accept(
    listener: tokio::net::UnixListener,
    store: Arc<dyn CheckpointStore>,
    signals: Signals,
    host: Option<Arc<Host>>,
    busy: Arc<AtomicUsize>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        // A connection is taken only when one can be answered.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors (or another passing fault): wait, rather than spin
                // on an error that repeats at once.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let (store, signals, busy) = (store.clone(), signals.clone(), busy.clone());
        let host = host.clone();
        busy.fetch_add(1, Ordering::AcqRel);
        tokio::spawn(async move {
            // A client that goes away mid-request loses its answer; nothing else is affected.
            let _ = answer_one(stream, &*store, &signals, host.as_deref()).await;
            busy.fetch_sub(1, Ordering::AcqRel);
            drop(slot);
        });
    }
}

/// `start`: runs the execution another `run` hands over, answering once it is stored.
#[cfg(unix)]
async fn start(host: Option<&Host>, request: &Value) -> Result<Value, String> {
    let host = host.ok_or(
        "the engine that owns this store (a `stepstone resume` or `redrive`) takes no new \
         executions: wait for it to end, or use another --store",
    )?;
    let guest = Guest::from_json(&request["guest"])?;
    let Some(started) = host.start(guest) else {
        // Ending: the `run` that asked takes the store itself once it is free.
        return Ok(json!({"ending": true}));
    };
    let arn = started
        .await
        .map_err(|_| "the execution ended before it was stored".to_owned())??;
    Ok(json!({"executionArn": arn}))
}

/// The longest request line accepted: a `start` carries a definition (AWS takes up to 1 MB)
/// and an input (256 KiB, unless `--payload-limit` lifts it), escaped.
#[cfg(unix)]
const MAX_REQUEST: u64 = 16 << 20;

#[cfg(unix)]
async fn answer_one(
    stream: tokio::net::UnixStream,
    store: &dyn CheckpointStore,
    signals: &Signals,
    host: Option<&Host>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_REQUEST));
    tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let reply = match serde_json::from_str::<Value>(&line) {
        Err(_) if line.len() as u64 == MAX_REQUEST => {
            json!({"error": format!("the request is longer than {} MiB", MAX_REQUEST >> 20)})
        }
        Ok(request) => {
            let answered = match request["op"].as_str() {
                Some("start") => start(host, &request).await,
                _ => super::answers::answer(store, signals, &request).await,
            };
            match answered {
                Ok(value) => json!({"ok": value}),
                Err(e) => json!({"error": e}),
            }
        }
        Err(e) => json!({"error": format!("the request is not JSON: {e}")}),
    };
    write.write_all(format!("{reply}\n").as_bytes()).await?;
    write.shutdown().await
}
