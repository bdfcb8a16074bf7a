//! SqlStore on a real PostgreSQL server (POSTGRES_URL, default
//! postgres://sessions:sessions@127.0.0.1:5432/sessions; `cargo xtask services up postgres`).
//! Every test uses its own table so that the tests can run in parallel.
#![cfg(feature = "postgres")]

mod common;

use session_core::testkit::SeedExt as _;
use std::time::Duration;

use common::{assert_near, postgres, save_through_manager, stored, utc_in, utc_now, LIFETIME};
use session_core::{SessionStore, SetupError, StoreError};
use session_sql::sqlx::{self, Row};
use session_sql::{SqlPool, SqlStore};
use time::PrimitiveDateTime;

session_core::store_conformance_tests!(
    common::postgres(SqlStore::builder().table("conformance_pg")),
    common::kit_options(None)
);

fn pg(store: &SqlStore) -> &sqlx::PgPool {
    match store.pool() {
        SqlPool::Postgres(pool) => pool,
        #[allow(unreachable_patterns)]
        other => panic!("not a PostgreSQL pool: {other:?}"),
    }
}

/// A store on a freshly created table `name` (dropped first, with its sequence `seq`).
async fn fresh(name: &str, builder: session_sql::SqlStoreBuilder) -> SqlStore {
    let admin = postgres(SqlStore::builder().table("conformance_pg")).await;
    sqlx::query(&format!("DROP TABLE IF EXISTS \"{name}\""))
        .execute(pg(&admin))
        .await
        .expect("drop table");
    postgres(builder.table(name)).await
}

async fn execute(store: &SqlStore, statement: &str) {
    sqlx::query(statement)
        .execute(pg(store))
        .await
        .unwrap_or_else(|error| panic!("{statement}: {error}"));
}

#[tokio::test]
async fn table_has_flask_session_layout() {
    let store = fresh("layout_pg", SqlStore::builder()).await;
    let sid = save_through_manager(store.clone()).await;

    let columns = sqlx::query(
        "SELECT column_name::text, data_type::text, character_maximum_length, \
                is_nullable::text, column_default::text \
         FROM information_schema.columns WHERE table_name = 'layout_pg' \
         ORDER BY ordinal_position",
    )
    .fetch_all(pg(&store))
    .await
    .expect("columns");
    type Column = (String, String, Option<i32>, String, Option<String>);
    let columns: Vec<Column> = columns
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4)))
        .collect();
    let names: Vec<&str> = columns.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(names, ["id", "session_id", "data", "expiry"]);
    assert_eq!(columns[0].1, "integer");
    assert_eq!(columns[0].3, "NO");
    assert!(
        columns[0]
            .4
            .as_deref()
            .is_some_and(|default| default.starts_with("nextval('layout_pg_id_seq'")),
        "id is not SERIAL: {:?}",
        columns[0].4
    );
    assert_eq!(
        (columns[1].1.as_str(), columns[1].2),
        ("character varying", Some(255))
    );
    assert_eq!(columns[2].1, "bytea");
    assert_eq!(columns[3].1, "timestamp without time zone");

    let unique: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.table_constraints tc \
         JOIN information_schema.constraint_column_usage ccu USING (constraint_name, table_name) \
         WHERE tc.table_name = 'layout_pg' AND tc.constraint_type = 'UNIQUE' \
         AND ccu.column_name = 'session_id'",
    )
    .fetch_one(pg(&store))
    .await
    .expect("constraints");
    assert_eq!(unique, 1, "session_id is not UNIQUE");

    let row = sqlx::query("SELECT session_id, data, expiry FROM layout_pg")
        .fetch_one(pg(&store))
        .await
        .expect("the saved row");
    let session_id: String = row.get(0);
    let data: Vec<u8> = row.get(1);
    let expiry: PrimitiveDateTime = row.get(2);
    assert_eq!(session_id, format!("session:{sid}"));
    assert_eq!(data[0] & 0xf0, 0x80, "data is not a msgpack map: {data:?}");
    assert!(data.windows(5).any(|w| w == b"alice"), "{data:?}");
    assert_near(
        expiry,
        utc_in(time::Duration::try_from(LIFETIME).expect("lifetime")),
        Duration::from_secs(5),
    );
    assert_ne!(expiry.microsecond(), 0, "microseconds are kept");
}

#[tokio::test]
async fn rows_written_by_flask_are_read_and_expired_ones_are_misses() {
    let store = fresh("flask_rows_pg", SqlStore::builder()).await;
    sqlx::query(
        "INSERT INTO flask_rows_pg (session_id, data, expiry) VALUES ($1, $2, $3), ($4, $5, $6)",
    )
    .bind("session:live")
    .bind(&b"\x81\xa1k\x01"[..])
    .bind(utc_in(time::Duration::hours(1)))
    .bind("session:old")
    .bind(&b"\x81\xa1k\x02"[..])
    .bind(utc_in(-time::Duration::seconds(1)))
    .execute(pg(&store))
    .await
    .expect("insert like SQLAlchemy");
    let entry = store
        .load("session:live")
        .await
        .expect("load")
        .expect("live row");
    assert_eq!(entry.value, b"\x81\xa1k\x01");
    let expires_at = entry.expires_at.expect("expiry reported");
    let remaining = expires_at
        .duration_since(std::time::SystemTime::now())
        .expect("expiry in the future");
    assert!(
        remaining > Duration::from_secs(3_590) && remaining <= Duration::from_secs(3_600),
        "{remaining:?}"
    );
    assert_eq!(stored(&store, "session:old").await, None);
    // An expired row does not block create, and is replaced in place.
    assert!(store
        .create("session:old", b"new", Duration::from_secs(60))
        .await
        .expect("create"));
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM flask_rows_pg")
        .fetch_one(pg(&store))
        .await
        .expect("count");
    assert_eq!(count, 2);
}

#[tokio::test]
async fn cleanup_removes_exactly_the_expired_rows_in_batches() {
    let store = fresh("cleanup_pg", SqlStore::builder().cleanup_batch_size(3)).await;
    assert_eq!(store.cleanup_batch_size(), 3);
    for i in 0..10 {
        sqlx::query("INSERT INTO cleanup_pg (session_id, data, expiry) VALUES ($1, 'x', $2)")
            .bind(format!("session:expired-{i}"))
            .bind(utc_in(-time::Duration::minutes(i + 1)))
            .execute(pg(&store))
            .await
            .expect("insert expired");
    }
    execute(
        &store,
        "INSERT INTO cleanup_pg (session_id, data, expiry) VALUES ('session:null', 'x', NULL)",
    )
    .await;
    let live = common::save_live_and_clean_up(&store, 4, 10).await;
    let remaining: Vec<String> =
        sqlx::query_scalar("SELECT session_id FROM cleanup_pg ORDER BY session_id")
            .fetch_all(pg(&store))
            .await
            .expect("remaining");
    assert_eq!(remaining, live);
}

#[tokio::test]
async fn ids_come_from_the_configured_sequence() {
    let admin = postgres(SqlStore::builder().table("conformance_pg")).await;
    execute(&admin, "DROP TABLE IF EXISTS seq_pg").await;
    execute(&admin, "DROP SEQUENCE IF EXISTS seq_pg_ids").await;
    let store = postgres(SqlStore::builder().table("seq_pg").sequence("seq_pg_ids")).await;
    let default: Option<String> = sqlx::query_scalar(
        "SELECT column_default::text FROM information_schema.columns \
         WHERE table_name = 'seq_pg' AND column_name = 'id'",
    )
    .fetch_one(pg(&store))
    .await
    .expect("id column");
    assert_eq!(
        default, None,
        "with a sequence, id has no default (like SQLAlchemy)"
    );
    execute(&store, "SELECT setval('seq_pg_ids', 500)").await;
    for key in ["session:a", "session:b", "session:c"] {
        store
            .put(key, b"v", Duration::from_secs(60))
            .await
            .expect("save");
    }
    assert!(store
        .create("session:d", b"v", Duration::from_secs(60))
        .await
        .expect("create"));
    let ids: Vec<i32> = sqlx::query_scalar("SELECT id FROM seq_pg ORDER BY id")
        .fetch_all(pg(&store))
        .await
        .expect("ids");
    assert_eq!(ids, [501, 502, 503, 504]);
    // A second store on the existing table and sequence keeps drawing from it.
    let again = postgres(SqlStore::builder().table("seq_pg").sequence("seq_pg_ids")).await;
    again
        .put("session:e", b"v", Duration::from_secs(60))
        .await
        .expect("save");
    let last: i32 = sqlx::query_scalar("SELECT id FROM seq_pg WHERE session_id = 'session:e'")
        .fetch_one(pg(&store))
        .await
        .expect("id");
    assert_eq!(last, 505);
}

#[tokio::test]
async fn schema_option_places_the_table_in_that_schema() {
    let admin = postgres(SqlStore::builder().table("conformance_pg")).await;
    execute(&admin, "CREATE SCHEMA IF NOT EXISTS session_test_schema").await;
    execute(&admin, "DROP TABLE IF EXISTS session_test_schema.schema_pg").await;
    let store = postgres(
        SqlStore::builder()
            .schema("session_test_schema")
            .table("schema_pg"),
    )
    .await;
    store
        .put("session:s", b"in schema", Duration::from_secs(60))
        .await
        .expect("save");
    let data: Vec<u8> = sqlx::query_scalar(
        "SELECT data FROM session_test_schema.schema_pg WHERE session_id = 'session:s'",
    )
    .fetch_one(pg(&store))
    .await
    .expect("row in the schema");
    assert_eq!(data, b"in schema");
    assert_eq!(
        stored(&store, "session:s").await.as_deref(),
        Some(&b"in schema"[..])
    );
}

#[tokio::test]
async fn table_exists_skips_creation_and_checks_the_table() {
    let admin = postgres(SqlStore::builder().table("conformance_pg")).await;
    execute(&admin, "DROP TABLE IF EXISTS missing_pg").await;
    let error = SqlStore::builder()
        .table("missing_pg")
        .table_exists(true)
        .url(common::postgres_url())
        .connect()
        .await
        .expect_err("a missing table must be reported");
    assert!(
        matches!(&error, SetupError::Store(StoreError::Backend(_))),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("session table \"missing_pg\" cannot be used"),
        "{error}"
    );
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('missing_pg') IS NOT NULL")
        .fetch_one(pg(&admin))
        .await
        .expect("regclass");
    assert!(!exists, "table_exists created the table");

    // Created by someone else (here: the DDL this crate publishes), it is used as is.
    let ddl = SqlStore::create_table_sql(
        session_sql::Backend::Postgres,
        &session_sql::TableOptions::new().table("missing_pg"),
    )
    .expect("ddl");
    for statement in &ddl {
        execute(&admin, statement).await;
    }
    let store = postgres(SqlStore::builder().table("missing_pg").table_exists(true)).await;
    store
        .put("session:x", b"x", Duration::from_secs(60))
        .await
        .expect("save");
    assert_eq!(
        stored(&store, "session:x").await.as_deref(),
        Some(&b"x"[..])
    );
}

#[tokio::test]
async fn injected_names_are_rejected_before_any_sql() {
    let admin = postgres(SqlStore::builder().table("conformance_pg")).await;
    execute(&admin, "CREATE TABLE IF NOT EXISTS x (i INTEGER)").await;
    let long = "t".repeat(64);
    let cases = [
        ("sessions; DROP TABLE x", "SESSION_SQLALCHEMY_TABLE"),
        ("", "SESSION_SQLALCHEMY_TABLE"),
        (long.as_str(), "SESSION_SQLALCHEMY_TABLE"),
    ];
    for (name, option) in cases {
        let error = SqlStore::builder()
            .table(name)
            .url(common::postgres_url())
            .connect()
            .await
            .expect_err("bad table name accepted");
        assert!(
            matches!(&error, SetupError::Config(c) if c.option == option),
            "{name:?}: {error}"
        );
    }
    let error = SqlStore::builder()
        .schema("public\"; DROP TABLE x; --")
        .url(common::postgres_url())
        .connect()
        .await
        .expect_err("bad schema accepted");
    assert!(
        error.to_string().contains("SESSION_SQLALCHEMY_SCHEMA"),
        "{error}"
    );
    let error = SqlStore::builder()
        .sequence("s'); DROP TABLE x; --")
        .url(common::postgres_url())
        .connect()
        .await
        .expect_err("bad sequence accepted");
    assert!(
        error.to_string().contains("SESSION_SQLALCHEMY_SEQUENCE"),
        "{error}"
    );
    let still_there: bool = sqlx::query_scalar("SELECT to_regclass('x') IS NOT NULL")
        .fetch_one(pg(&admin))
        .await
        .expect("regclass");
    assert!(still_there);
}

#[tokio::test]
async fn a_pool_owned_by_the_application_is_used() {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&common::postgres_url())
        .await
        .expect("pool (start PostgreSQL with `cargo xtask services up postgres`)");
    let store = SqlStore::builder()
        .table("app_pool_pg")
        .with_pool(pool.clone())
        .await
        .expect("store on the pool");
    assert_eq!(store.backend(), session_sql::Backend::Postgres);
    store
        .put("session:p", b"pooled", Duration::from_secs(60))
        .await
        .expect("save");
    let data: Vec<u8> =
        sqlx::query_scalar("SELECT data FROM app_pool_pg WHERE session_id = 'session:p'")
            .fetch_one(&pool)
            .await
            .expect("row");
    assert_eq!(data, b"pooled");
}

#[tokio::test]
async fn identical_rewrites_still_count_as_written() {
    let store = postgres(SqlStore::builder().table("conformance_pg")).await;
    common::assert_identical_rewrites_count_as_written(&store).await;
}

#[tokio::test]
async fn overlong_and_nul_keys_are_invalid_keys() {
    let store = postgres(SqlStore::builder().table("conformance_pg")).await;
    let long = format!("session:{}", "a".repeat(248));
    for key in [long.as_str(), "session:a\0b"] {
        match store.put(key, b"v", Duration::from_secs(60)).await {
            Err(StoreError::InvalidKey(_)) => {}
            other => panic!("{key:?}: {other:?}"),
        }
        assert!(matches!(
            store.load(key).await,
            Err(StoreError::InvalidKey(_))
        ));
    }
    let longest = format!("session:{}", "a".repeat(247));
    store
        .put(&longest, b"v", Duration::from_secs(60))
        .await
        .expect("255 characters fit");
    assert_eq!(stored(&store, &longest).await.as_deref(), Some(&b"v"[..]));
}

#[tokio::test]
async fn unreachable_server_is_unavailable() {
    let error = SqlStore::builder()
        .acquire_timeout(Duration::from_millis(500))
        .url("postgres://sessions:sessions@127.0.0.1:1/sessions")
        .connect()
        .await
        .expect_err("nothing listens on port 1");
    assert!(error.is_unavailable(), "{error}");
    assert!(!error.to_string().contains("sessions:sessions"), "{error}");

    let store = postgres(SqlStore::builder().table("conformance_pg")).await;
    store.pool().close().await;
    match store.load("session:any").await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("a closed pool gave {other:?}"),
    }
    match store.put("session:any", b"v", Duration::from_secs(1)).await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("a closed pool gave {other:?}"),
    }
}

#[tokio::test]
async fn expiry_is_stored_as_naive_utc_whatever_the_session_time_zone() {
    // The server's and the connection's time zone must not shift the stored value.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::query("SET TIME ZONE 'America/New_York'")
                    .execute(conn)
                    .await
                    .map(|_| ())
            })
        })
        .connect(&common::postgres_url())
        .await
        .expect("pool (start PostgreSQL with `cargo xtask services up postgres`)");
    let store = SqlStore::builder()
        .table("tz_pg")
        .with_pool(pool.clone())
        .await
        .expect("store");
    store
        .put("session:tz", b"v", Duration::from_secs(120))
        .await
        .expect("save");
    let expiry: PrimitiveDateTime =
        sqlx::query_scalar("SELECT expiry FROM tz_pg WHERE session_id = 'session:tz'")
            .fetch_one(&pool)
            .await
            .expect("row");
    assert_near(
        expiry,
        utc_in(time::Duration::seconds(120)),
        Duration::from_secs(5),
    );
    assert!(expiry > utc_now());
    assert_eq!(
        stored(&store, "session:tz").await.as_deref(),
        Some(&b"v"[..])
    );
}

#[tokio::test]
async fn a_write_behind_a_held_row_lock_fails_within_the_store_timeout() {
    let store = fresh(
        "row_lock_pg",
        SqlStore::builder().store_timeout(common::LOCK_TEST_STORE_TIMEOUT),
    )
    .await;
    let key = "session:locked";
    store.put(key, b"v1", LIFETIME).await.expect("seed");
    // Another client, without our timeouts, takes the row lock and keeps it.
    let holder = sqlx::PgPool::connect(&common::postgres_url())
        .await
        .expect("a second connection");
    let mut transaction = holder.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM row_lock_pg WHERE session_id = $1 FOR UPDATE")
        .bind(key)
        .fetch_one(&mut *transaction)
        .await
        .expect("lock the row");
    common::assert_lock_wait_is_bounded(store.compare_and_set(key, b"v1", b"v2", LIFETIME)).await;
    common::assert_lock_wait_is_bounded(store.delete(key)).await;
    transaction.rollback().await.expect("rollback");
    assert!(store
        .compare_and_set(key, b"v1", b"v2", LIFETIME)
        .await
        .expect("the lock is gone"));
}
