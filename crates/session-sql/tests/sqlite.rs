//! SqlStore on SQLite: a file (one per test process, in the target's scratch directory)
//! and in-memory databases.
#![cfg(feature = "sqlite")]

mod common;

use session_core::testkit::SeedExt as _;
use std::sync::OnceLock;
use std::time::Duration;

use common::{
    assert_near, save_through_manager, sqlite_file, sqlite_memory, sqlite_text, stored, utc_in,
    LIFETIME,
};
use session_core::{SessionStore, SetupError};
use session_sql::sqlx::{self, Row};
use session_sql::{SqlPool, SqlStore};

/// The conformance kit's database file, removed once when the process first uses it.
fn conformance_file() -> &'static std::path::Path {
    static PATH: OnceLock<std::path::PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = common::sqlite_path("conformance");
        let _ = std::fs::remove_file(&path);
        path
    })
}

mod file {
    use super::*;

    session_core::store_conformance_tests!(
        common::sqlite_file(
            conformance_file(),
            SqlStore::builder().table("conformance_file")
        ),
        common::kit_options(None)
    );
}

mod memory {
    use super::*;

    // Each check gets its own in-memory database, held by the store's single connection.
    session_core::store_conformance_tests!(
        common::sqlite_memory(SqlStore::builder()),
        common::kit_options(None)
    );
}

fn lite(store: &SqlStore) -> &sqlx::SqlitePool {
    match store.pool() {
        SqlPool::Sqlite(pool) => pool,
        #[allow(unreachable_patterns)]
        other => panic!("not a SQLite pool: {other:?}"),
    }
}

async fn execute(store: &SqlStore, statement: &str) {
    sqlx::query(statement)
        .execute(lite(store))
        .await
        .unwrap_or_else(|error| panic!("{statement}: {error}"));
}

#[tokio::test]
async fn table_has_flask_session_layout() {
    let store = sqlite_memory(SqlStore::builder()).await;
    let sid = save_through_manager(store.clone()).await;

    let columns = sqlx::query(
        "SELECT name, type, \"notnull\", pk FROM pragma_table_info('sessions') ORDER BY cid",
    )
    .fetch_all(lite(&store))
    .await
    .expect("table info");
    let columns: Vec<(String, String, i64, i64)> = columns
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect();
    assert_eq!(
        columns,
        [
            ("id".to_owned(), "INTEGER".to_owned(), 1, 1),
            ("session_id".to_owned(), "VARCHAR(255)".to_owned(), 0, 0),
            ("data".to_owned(), "BLOB".to_owned(), 0, 0),
            ("expiry".to_owned(), "DATETIME".to_owned(), 0, 0),
        ]
    );
    let unique: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pragma_index_list('sessions') AS l \
         JOIN pragma_index_info(l.name) AS i WHERE l.\"unique\" = 1 AND i.name = 'session_id'",
    )
    .fetch_one(lite(&store))
    .await
    .expect("index list");
    assert_eq!(unique, 1, "session_id is not UNIQUE");

    let row = sqlx::query("SELECT session_id, data, expiry, typeof(expiry) FROM sessions")
        .fetch_one(lite(&store))
        .await
        .expect("the saved row");
    let session_id: String = row.get(0);
    let data: Vec<u8> = row.get(1);
    let expiry: String = row.get(2);
    let expiry_type: String = row.get(3);
    assert_eq!(session_id, format!("session:{sid}"));
    assert_eq!(data[0] & 0xf0, 0x80, "data is not a msgpack map: {data:?}");
    assert!(data.windows(5).any(|w| w == b"alice"), "{data:?}");
    assert_eq!(expiry_type, "text");
    // SQLAlchemy's storage format: "YYYY-MM-DD HH:MM:SS.ffffff".
    let shape: String = expiry
        .chars()
        .map(|c| if c.is_ascii_digit() { 'd' } else { c })
        .collect();
    assert_eq!(shape, "dddd-dd-dd dd:dd:dd.dddddd", "{expiry}");
    let expected = sqlite_text(utc_in(
        time::Duration::try_from(LIFETIME).expect("lifetime"),
    ));
    assert_eq!(expiry[..15], expected[..15], "{expiry} vs {expected}");
    let parsed = parse(&expiry);
    assert_near(
        parsed,
        utc_in(time::Duration::try_from(LIFETIME).expect("lifetime")),
        Duration::from_secs(5),
    );
}

fn parse(text: &str) -> time::PrimitiveDateTime {
    let number = |range: std::ops::Range<usize>| -> u32 { text[range].parse().expect("digits") };
    let date = time::Date::from_calendar_date(
        number(0..4) as i32,
        time::Month::try_from(number(5..7) as u8).expect("month"),
        number(8..10) as u8,
    )
    .expect("date");
    let clock = time::Time::from_hms_micro(
        number(11..13) as u8,
        number(14..16) as u8,
        number(17..19) as u8,
        number(20..26),
    )
    .expect("time");
    time::PrimitiveDateTime::new(date, clock)
}

#[tokio::test]
async fn rows_written_by_flask_are_read_and_expired_ones_are_misses() {
    let store = sqlite_memory(SqlStore::builder()).await;
    sqlx::query(
        "INSERT INTO sessions (session_id, data, expiry) VALUES (?1, ?2, ?3), (?4, ?5, ?6)",
    )
    .bind("session:live")
    .bind(&b"\x81\xa1k\x01"[..])
    .bind(sqlite_text(utc_in(time::Duration::hours(1))))
    .bind("session:old")
    .bind(&b"\x81\xa1k\x02"[..])
    .bind(sqlite_text(utc_in(-time::Duration::seconds(1))))
    .execute(lite(&store))
    .await
    .expect("insert like SQLAlchemy");
    let entry = store
        .load("session:live")
        .await
        .expect("load")
        .expect("live row");
    assert_eq!(entry.value, b"\x81\xa1k\x01");
    let remaining = entry
        .expires_at
        .expect("expiry parsed")
        .duration_since(std::time::SystemTime::now())
        .expect("in the future");
    assert!(remaining > Duration::from_secs(3_590), "{remaining:?}");
    assert_eq!(stored(&store, "session:old").await, None);
}

#[tokio::test]
async fn cleanup_removes_exactly_the_expired_rows_in_batches() {
    let path = common::sqlite_path("cleanup");
    let _ = std::fs::remove_file(&path);
    let store = sqlite_file(&path, SqlStore::builder().cleanup_batch_size(2)).await;
    for i in 0..7 {
        sqlx::query("INSERT INTO sessions (session_id, data, expiry) VALUES (?1, x'00', ?2)")
            .bind(format!("session:expired-{i}"))
            .bind(sqlite_text(utc_in(-time::Duration::seconds(i + 1))))
            .execute(lite(&store))
            .await
            .expect("insert expired");
    }
    execute(
        &store,
        "INSERT INTO sessions (session_id, data, expiry) VALUES ('session:null', x'00', NULL)",
    )
    .await;
    let live = common::save_live_and_clean_up(&store, 3, 7).await;
    let remaining: Vec<String> =
        sqlx::query_scalar("SELECT session_id FROM sessions ORDER BY session_id")
            .fetch_all(lite(&store))
            .await
            .expect("remaining");
    assert_eq!(remaining, live);
    store.pool().close().await;
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn identical_rewrites_still_count_as_written() {
    let store = sqlite_memory(SqlStore::builder()).await;
    common::assert_identical_rewrites_count_as_written(&store).await;
}

#[tokio::test]
async fn table_and_schema_options_on_an_attached_database() {
    let store = sqlite_memory(SqlStore::builder().table("web_sessions")).await;
    store
        .put("session:a", b"a", Duration::from_secs(60))
        .await
        .expect("save");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM web_sessions")
        .fetch_one(lite(&store))
        .await
        .expect("table web_sessions");
    assert_eq!(count, 1);

    // SQLite's "schema" is the name of a database (main, temp, attached ones).
    let in_main = SqlStore::builder()
        .schema("main")
        .table("web_sessions")
        .with_pool(lite(&store).clone())
        .await
        .expect("schema main");
    assert_eq!(
        stored(&in_main, "session:a").await.as_deref(),
        Some(&b"a"[..])
    );
}

#[tokio::test]
async fn sequence_option_is_ignored_like_sqlalchemy_does() {
    let store = sqlite_memory(SqlStore::builder().sequence("ignored_seq")).await;
    store
        .put("session:a", b"a", Duration::from_secs(60))
        .await
        .expect("save");
    store
        .put("session:b", b"b", Duration::from_secs(60))
        .await
        .expect("save");
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM sessions ORDER BY id")
        .fetch_all(lite(&store))
        .await
        .expect("ids");
    assert_eq!(ids, [1, 2]);
}

#[tokio::test]
async fn in_memory_database_is_shared_by_concurrent_users() {
    // One connection holds the database; concurrent users queue for it instead of each
    // opening a new, empty database.
    let store = sqlite_memory(SqlStore::builder()).await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .put(&format!("session:{i}"), b"v", Duration::from_secs(60))
                    .await
                    .expect("save");
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    for i in 0..20 {
        assert_eq!(
            stored(&store, &format!("session:{i}")).await.as_deref(),
            Some(&b"v"[..])
        );
    }
}

#[tokio::test]
async fn missing_file_without_create_mode_is_an_error_not_a_new_database() {
    let path = common::sqlite_path("never-created");
    let _ = std::fs::remove_file(&path);
    let error = SqlStore::builder()
        .acquire_timeout(Duration::from_millis(500))
        .url(format!("sqlite://{}", path.display()))
        .connect()
        .await
        .expect_err("opening a missing file without mode=rwc");
    assert!(matches!(error, SetupError::Store(_)), "{error}");
    assert!(!path.exists());
}

#[tokio::test]
async fn bad_names_are_rejected() {
    for (builder, option) in [
        (
            SqlStore::builder().table("sessions; DROP TABLE x"),
            "SESSION_SQLALCHEMY_TABLE",
        ),
        (SqlStore::builder().table(""), "SESSION_SQLALCHEMY_TABLE"),
        (
            SqlStore::builder().table("s".repeat(64)),
            "SESSION_SQLALCHEMY_TABLE",
        ),
        (
            SqlStore::builder().schema("main; DROP TABLE x"),
            "SESSION_SQLALCHEMY_SCHEMA",
        ),
    ] {
        let error = builder
            .url("sqlite::memory:")
            .connect()
            .await
            .expect_err("bad name accepted");
        assert!(
            matches!(&error, SetupError::Config(c) if c.option == option),
            "{error}"
        );
    }
}

/// A `SESSION_KEY_PREFIX` too long for the `session_id` column is refused when the manager
/// is built (naming the option), not on every write; a prefix that fits is accepted.
#[tokio::test]
async fn a_prefix_the_key_column_cannot_hold_is_refused_at_start_up() {
    use session_core::{SessionConfig, SessionManager};
    let store = sqlite_memory(SqlStore::builder()).await;
    let config = |prefix: &str| {
        SessionConfig::builder()
            .key_prefix(prefix)
            .build()
            .expect("config")
    };
    let error = SessionManager::try_new(store.clone(), config(&"p".repeat(240)))
        .expect_err("a 240-character prefix plus an id cannot fit 255 characters");
    assert_eq!(error.option, "SESSION_KEY_PREFIX", "{error}");
    assert!(error.to_string().contains("255"), "{error}");
    SessionManager::try_new(store, config("app:")).expect("a short prefix fits");
}
