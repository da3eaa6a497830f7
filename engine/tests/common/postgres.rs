//! A database of its own for a test, on the PostgreSQL server `scripts/test` starts
//! (`STEPSTONE_TEST_POSTGRES`; `postgres://postgres@127.0.0.1:54329/postgres` without it).
//! These tests never skip: without a server they fail, saying how to start one.

/// The server's URL (its maintenance database).
pub fn server() -> String {
    std::env::var("STEPSTONE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:54329/postgres".into())
}

/// Creates an empty database named after `label` (and this process and a counter, so tests
/// running at once and reruns never share one) and gives its URL.
pub fn fresh_database(label: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let server = server();
    let mut client = postgres::Client::connect(&server, postgres::NoTls).unwrap_or_else(|e| {
        panic!(
            "no PostgreSQL at {server} ({e}): run the tests with scripts/test, which starts \
             one, or point STEPSTONE_TEST_POSTGRES at a server where this user may create \
             databases"
        )
    });
    let name = format!(
        "stepstone_{label}_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap_or_else(|e| panic!("cannot create database {name} on {server}: {e}"));
    match server.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("{server}: expected a URL ending in /database"),
    }
}
