//! SqlStore on a real MariaDB (or MySQL) server (MYSQL_URL, default
//! mysql://sessions:sessions@127.0.0.1:3306/sessions; `cargo xtask services up mariadb`).
//! Every test uses its own table so that the tests can run in parallel.
#![cfg(feature = "mysql")]

mod common;

use session_core::testkit::SeedExt as _;
use std::time::Duration;

use common::{assert_near, mysql, save_through_manager, stored, utc_in, LIFETIME};
use session_core::{SessionStore, SetupError, StoreError};
use session_sql::sqlx::{self, Row};
use session_sql::{SqlPool, SqlStore, MYSQL_BLOB_MAX};
use time::PrimitiveDateTime;

// Flask-Session's `data BLOB` holds at most 65 535 bytes.
session_core::store_conformance_tests!(
    common::mysql(SqlStore::builder().table("conformance_mysql")),
    common::kit_options(Some(session_sql::MYSQL_BLOB_MAX))
);

fn my(store: &SqlStore) -> &sqlx::MySqlPool {
    match store.pool() {
        SqlPool::MySql(pool) => pool,
        #[allow(unreachable_patterns)]
        other => panic!("not a MySQL pool: {other:?}"),
    }
}

async fn execute(store: &SqlStore, statement: &str) {
    sqlx::query(statement)
        .execute(my(store))
        .await
        .unwrap_or_else(|error| panic!("{statement}: {error}"));
}

/// A store on a freshly created table `name`.
async fn fresh(name: &str, builder: session_sql::SqlStoreBuilder) -> SqlStore {
    let admin = mysql(SqlStore::builder().table("conformance_mysql")).await;
    execute(&admin, &format!("DROP TABLE IF EXISTS `{name}`")).await;
    mysql(builder.table(name)).await
}

#[tokio::test]
async fn table_has_flask_session_layout() {
    let store = fresh("layout_mysql", SqlStore::builder()).await;
    let sid = save_through_manager(store.clone()).await;

    let rows = sqlx::query(
        "SELECT CAST(COLUMN_NAME AS CHAR), CAST(DATA_TYPE AS CHAR), \
                CAST(CHARACTER_MAXIMUM_LENGTH AS SIGNED), CAST(IS_NULLABLE AS CHAR), \
                CAST(COLUMN_KEY AS CHAR), CAST(EXTRA AS CHAR), CAST(COLLATION_NAME AS CHAR) \
         FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'layout_mysql' \
         ORDER BY ORDINAL_POSITION",
    )
    .fetch_all(my(&store))
    .await
    .expect("columns");
    type Column = (
        String,
        String,
        Option<i64>,
        String,
        String,
        String,
        Option<String>,
    );
    let columns: Vec<Column> = rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
            )
        })
        .collect();
    let names: Vec<&str> = columns.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(names, ["id", "session_id", "data", "expiry"]);
    let id = &columns[0];
    assert_eq!(
        (id.1.as_str(), id.3.as_str(), id.4.as_str()),
        ("int", "NO", "PRI")
    );
    assert!(id.5.contains("auto_increment"), "{:?}", id.5);
    let session_id = &columns[1];
    assert_eq!(
        (session_id.1.as_str(), session_id.2, session_id.4.as_str()),
        ("varchar", Some(255), "UNI")
    );
    assert_eq!(session_id.6.as_deref(), Some("utf8mb4_bin"));
    assert_eq!(
        (columns[2].1.as_str(), columns[2].2),
        ("blob", Some(MYSQL_BLOB_MAX as i64))
    );
    assert_eq!(columns[3].1, "datetime");
    assert_eq!(store.max_value_bytes(), Some(MYSQL_BLOB_MAX));

    let row = sqlx::query("SELECT CAST(session_id AS CHAR), data, expiry FROM layout_mysql")
        .fetch_one(my(&store))
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
}

#[tokio::test]
async fn rows_written_by_flask_are_read_and_expired_ones_are_misses() {
    let store = fresh("flask_rows_mysql", SqlStore::builder()).await;
    sqlx::query(
        "INSERT INTO flask_rows_mysql (session_id, data, expiry) VALUES (?, ?, ?), (?, ?, ?)",
    )
    .bind("session:live")
    .bind(&b"\x81\xa1k\x01"[..])
    .bind(utc_in(time::Duration::hours(1)))
    .bind("session:old")
    .bind(&b"\x81\xa1k\x02"[..])
    .bind(utc_in(-time::Duration::seconds(2)))
    .execute(my(&store))
    .await
    .expect("insert like SQLAlchemy");
    assert_eq!(
        stored(&store, "session:live").await.as_deref(),
        Some(&b"\x81\xa1k\x01"[..])
    );
    assert_eq!(stored(&store, "session:old").await, None);
    assert!(!store
        .create("session:live", b"x", Duration::from_secs(60))
        .await
        .expect("create over a live row"));
    assert!(store
        .create("session:old", b"new", Duration::from_secs(60))
        .await
        .expect("create over an expired row"));
    assert_eq!(
        stored(&store, "session:old").await.as_deref(),
        Some(&b"new"[..])
    );
}

#[tokio::test]
async fn cleanup_removes_exactly_the_expired_rows_in_batches() {
    let store = fresh("cleanup_mysql", SqlStore::builder().cleanup_batch_size(4)).await;
    for i in 0..9 {
        sqlx::query("INSERT INTO cleanup_mysql (session_id, data, expiry) VALUES (?, 'x', ?)")
            .bind(format!("session:expired-{i}"))
            .bind(utc_in(-time::Duration::minutes(i + 1)))
            .execute(my(&store))
            .await
            .expect("insert expired");
    }
    execute(
        &store,
        "INSERT INTO cleanup_mysql (session_id, data, expiry) VALUES ('session:null', 'x', NULL)",
    )
    .await;
    let live = common::save_live_and_clean_up(&store, 3, 9).await;
    let remaining: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(session_id AS CHAR) FROM cleanup_mysql ORDER BY session_id",
    )
    .fetch_all(my(&store))
    .await
    .expect("remaining");
    assert_eq!(remaining, live);
}

#[tokio::test]
async fn oversized_values_are_too_large_not_truncated() {
    let store = mysql(SqlStore::builder().table("conformance_mysql")).await;
    let key = format!("session:big-{}", std::process::id());
    let too_big = vec![7u8; MYSQL_BLOB_MAX + 1];
    for result in [
        store.put(&key, &too_big, Duration::from_secs(60)).await,
        store
            .create(&key, &too_big, Duration::from_secs(60))
            .await
            .map(|_| ()),
    ] {
        match result {
            Err(error @ StoreError::TooLarge { size, limit }) => {
                assert_eq!((size, limit), (MYSQL_BLOB_MAX + 1, MYSQL_BLOB_MAX));
                assert!(error.to_string().contains("65535"), "{error}");
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(stored(&store, &key).await, None);

    // A column narrowed after the store started: the server's "data too long" becomes
    // TooLarge too, never a truncated value.
    let narrowed = fresh("small_blob_mysql", SqlStore::builder()).await;
    assert_eq!(narrowed.max_value_bytes(), Some(MYSQL_BLOB_MAX));
    execute(
        &narrowed,
        "ALTER TABLE small_blob_mysql MODIFY data TINYBLOB",
    )
    .await;
    match narrowed
        .put("session:t", &[1u8; 256], Duration::from_secs(60))
        .await
    {
        Err(StoreError::TooLarge { size: 256, .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(stored(&narrowed, "session:t").await, None);
    // A store started on the narrow column knows its real limit.
    let small = SqlStore::builder()
        .table("small_blob_mysql")
        .table_exists(true)
        .url(common::mysql_url())
        .connect()
        .await
        .expect("store");
    assert_eq!(small.max_value_bytes(), Some(255));
}

#[tokio::test]
async fn long_blob_tables_take_large_values() {
    let store = fresh("longblob_mysql", SqlStore::builder().mysql_long_blob(true)).await;
    assert_eq!(
        store.max_value_bytes(),
        Some(session_sql::MYSQL_LONGBLOB_MAX)
    );
    let large: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    store
        .put("session:large", &large, Duration::from_secs(60))
        .await
        .expect("save");
    assert_eq!(stored(&store, "session:large").await, Some(large));
}

#[tokio::test]
async fn identical_rewrites_still_count_as_written() {
    let store = mysql(SqlStore::builder().table("conformance_mysql")).await;
    common::assert_identical_rewrites_count_as_written(&store).await;
}

#[tokio::test]
async fn ids_come_from_a_mariadb_sequence() {
    let admin = mysql(SqlStore::builder().table("conformance_mysql")).await;
    execute(&admin, "DROP TABLE IF EXISTS seq_mysql").await;
    execute(&admin, "DROP SEQUENCE IF EXISTS seq_mysql_ids").await;
    let store = mysql(
        SqlStore::builder()
            .table("seq_mysql")
            .sequence("seq_mysql_ids"),
    )
    .await;
    execute(&store, "SELECT SETVAL(seq_mysql_ids, 500)").await;
    for key in ["session:a", "session:b"] {
        store
            .put(key, b"v", Duration::from_secs(60))
            .await
            .expect("save");
    }
    assert!(store
        .create("session:c", b"v", Duration::from_secs(60))
        .await
        .expect("create"));
    let ids: Vec<i32> = sqlx::query_scalar("SELECT id FROM seq_mysql ORDER BY id")
        .fetch_all(my(&store))
        .await
        .expect("ids");
    assert_eq!(ids, [501, 502, 503]);
}

#[tokio::test]
async fn injected_names_are_rejected_before_any_sql() {
    for (builder, option) in [
        (
            SqlStore::builder().table("sessions; DROP TABLE x"),
            "SESSION_SQLALCHEMY_TABLE",
        ),
        (
            SqlStore::builder().schema("sessions`; DROP TABLE x"),
            "SESSION_SQLALCHEMY_SCHEMA",
        ),
    ] {
        let error = builder
            .url(common::mysql_url())
            .connect()
            .await
            .expect_err("bad name accepted");
        assert!(
            matches!(&error, SetupError::Config(c) if c.option == option),
            "{error}"
        );
    }
}

#[tokio::test]
async fn unreachable_server_is_unavailable() {
    let error = SqlStore::builder()
        .acquire_timeout(Duration::from_millis(500))
        .url("mysql://sessions:sessions@127.0.0.1:1/sessions")
        .connect()
        .await
        .expect_err("nothing listens on port 1");
    assert!(error.is_unavailable(), "{error}");
    let store = mysql(SqlStore::builder().table("conformance_mysql")).await;
    store.pool().close().await;
    assert!(matches!(
        store.touch("session:any", Duration::from_secs(1)).await,
        Err(StoreError::Unavailable(_))
    ));
}

#[tokio::test]
async fn a_write_behind_a_held_row_lock_fails_within_the_store_timeout() {
    let store = fresh(
        "row_lock_my",
        SqlStore::builder().store_timeout(common::LOCK_TEST_STORE_TIMEOUT),
    )
    .await;
    let key = "session:locked";
    store.put(key, b"v1", LIFETIME).await.expect("seed");
    // Another client, without our timeouts, takes the row lock and keeps it.
    let holder = sqlx::MySqlPool::connect(&common::mysql_url())
        .await
        .expect("a second connection");
    let mut transaction = holder.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM row_lock_my WHERE session_id = ? FOR UPDATE")
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
