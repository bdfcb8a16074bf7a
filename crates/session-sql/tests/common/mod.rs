//! Shared helpers for the integration tests: servers, stores, timestamps.
#![allow(dead_code)]

use session_core::testkit::SeedExt as _;
use std::time::Duration;

use session_core::testkit::Options;
use session_core::{SessionConfig, SessionManager, SessionStore};
use session_sql::{SqlStore, SqlStoreBuilder};
use time::{OffsetDateTime, PrimitiveDateTime};

/// The session lifetime used by the layout tests.
pub const LIFETIME: Duration = Duration::from_secs(3_600);

pub fn postgres_url() -> String {
    std::env::var("POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://sessions:sessions@127.0.0.1:5432/sessions".to_owned())
}

pub fn mysql_url() -> String {
    std::env::var("MYSQL_URL")
        .unwrap_or_else(|_| "mysql://sessions:sessions@127.0.0.1:3306/sessions".to_owned())
}

/// A store on the test PostgreSQL server; fails the test with how to start the server.
pub async fn postgres(builder: SqlStoreBuilder) -> SqlStore {
    let url = postgres_url();
    builder.url(&url).connect().await.unwrap_or_else(|error| {
        panic!(
            "PostgreSQL at {url} is not usable: {error}. \
             Start it with `cargo xtask services up postgres`"
        )
    })
}

/// A store on the test MariaDB/MySQL server; fails the test with how to start the server.
pub async fn mysql(builder: SqlStoreBuilder) -> SqlStore {
    let url = mysql_url();
    builder.url(&url).connect().await.unwrap_or_else(|error| {
        panic!(
            "MariaDB/MySQL at {url} is not usable: {error}. \
             Start it with `cargo xtask services up mariadb`"
        )
    })
}

/// A store on a fresh in-memory SQLite database.
pub async fn sqlite_memory(builder: SqlStoreBuilder) -> SqlStore {
    builder
        .url("sqlite::memory:")
        .connect()
        .await
        .unwrap_or_else(|error| panic!("in-memory SQLite: {error}"))
}

/// A SQLite file in the target's scratch directory, unique to this test process and
/// removed when the process starts using it.
pub fn sqlite_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("session-sql-{name}-{}.db", std::process::id()))
}

/// A store on a SQLite file (created when missing).
pub async fn sqlite_file(path: &std::path::Path, builder: SqlStoreBuilder) -> SqlStore {
    let url = format!("sqlite://{}?mode=rwc", path.display());
    builder
        .url(&url)
        .connect()
        .await
        .unwrap_or_else(|error| panic!("SQLite file {}: {error}", path.display()))
}

/// The conformance options for a SQL table: cleanup must remove expired rows.
pub fn kit_options(max_value_bytes: Option<usize>) -> Options {
    Options {
        max_value_bytes,
        cleanup_removes_expired: true,
        ..Options::default()
    }
}

/// The current time as a naive UTC timestamp (what Flask's `datetime.utcnow()` gives).
pub fn utc_now() -> PrimitiveDateTime {
    let now = OffsetDateTime::now_utc();
    PrimitiveDateTime::new(now.date(), now.time())
}

/// `now + offset` (negative offsets in the past), as a naive UTC timestamp.
pub fn utc_in(offset: time::Duration) -> PrimitiveDateTime {
    utc_now() + offset
}

/// SQLAlchemy's text form of a timestamp in SQLite.
pub fn sqlite_text(at: PrimitiveDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.microsecond()
    )
}

/// Asserts that `actual` is within `tolerance` of `expected`.
pub fn assert_near(actual: PrimitiveDateTime, expected: PrimitiveDateTime, tolerance: Duration) {
    let difference = (actual - expected).abs();
    assert!(
        difference <= tolerance,
        "{actual} is {difference} away from {expected} (tolerance {tolerance:?})"
    );
}

/// Runs one request through the session lifecycle that stores `{"user": "alice"}` and
/// returns the new session's id.
pub async fn save_through_manager(store: SqlStore) -> String {
    let config = SessionConfig::builder()
        .lifetime(LIFETIME)
        .build()
        .expect("config");
    let manager = SessionManager::new(store, config);
    let session = manager.open(None);
    session.insert("user", "alice").await.expect("insert");
    let outcome = manager.finish(&session).await.expect("finish");
    assert!(outcome.set_cookie.is_some(), "no cookie for a new session");
    session
        .id()
        .await
        .expect("id")
        .expect("a saved session has an id")
}

/// The store's view of a key, for assertions.
pub async fn stored(store: &SqlStore, key: &str) -> Option<Vec<u8>> {
    store
        .load(key)
        .await
        .unwrap_or_else(|error| panic!("load({key}): {error}"))
        .map(|entry| entry.value)
}

/// Compare-and-set and touch of a row whose bytes do not change still report success: MySQL
/// counts 0 changed rows for such an UPDATE unless the client asks for found rows, and
/// that must not read as "missing".
pub async fn assert_identical_rewrites_count_as_written(store: &SqlStore) {
    let key = format!("session:same-{}", std::process::id());
    store
        .put(&key, b"same", Duration::from_secs(60))
        .await
        .expect("save");
    for _ in 0..3 {
        assert!(store
            .compare_and_set(&key, b"same", b"same", Duration::from_secs(60))
            .await
            .expect("cas"));
        assert!(store
            .touch(&key, Duration::from_secs(60))
            .await
            .expect("touch"));
    }
}

/// The second half of the cleanup tests: with `expired` expired rows (and one without
/// expiry) already inserted, saves `live` live sessions, checks that one cleanup removes
/// exactly the `expired` + 1 others and a second removes nothing, and returns the keys the
/// table must still hold.
pub async fn save_live_and_clean_up(store: &SqlStore, live: usize, expired: u64) -> Vec<String> {
    let keys: Vec<String> = (0..live).map(|i| format!("session:live-{i}")).collect();
    for key in &keys {
        store
            .put(key, b"live", Duration::from_secs(600))
            .await
            .expect("save");
    }
    assert_eq!(store.cleanup().await.expect("cleanup"), expired + 1);
    assert_eq!(store.cleanup().await.expect("second cleanup"), 0);
    keys
}

/// The `SESSION_STORE_TIMEOUT` of the row-lock tests: the database's own timeouts, derived
/// from it, must end a write that waits for a lock before core's deadline would.
pub const LOCK_TEST_STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs `write` while another connection holds the row's lock, and checks that the
/// database ended it with `Unavailable` after waiting, but before `LOCK_TEST_STORE_TIMEOUT`
/// (so core's deadline was not what stopped it). A write still waiting after 30 s fails
/// the test as a hang.
pub async fn assert_lock_wait_is_bounded<T: std::fmt::Debug>(
    write: impl std::future::Future<Output = Result<T, session_core::StoreError>>,
) {
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(30), write)
        .await
        .expect("the write hung behind another connection's row lock");
    let waited = started.elapsed();
    assert!(
        matches!(result, Err(session_core::StoreError::Unavailable(_))),
        "a write behind a held row lock gave {result:?}"
    );
    assert!(
        waited < LOCK_TEST_STORE_TIMEOUT,
        "the database gave up after {waited:?}, not before SESSION_STORE_TIMEOUT ({LOCK_TEST_STORE_TIMEOUT:?})"
    );
    assert!(
        waited >= Duration::from_millis(500),
        "the write failed after {waited:?}, before any lock timeout could have ended it: {result:?}"
    );
}
