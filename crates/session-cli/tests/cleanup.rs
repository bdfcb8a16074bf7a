//! Runs the built `session-cli` binary against SQLite files and a real PostgreSQL server
//! (POSTGRES_URL, default postgres://sessions:sessions@127.0.0.1:5432/sessions; start it
//! with `cargo xtask services up postgres`).

use session_core::testkit::SeedExt as _;
use session_core::SessionStore as _;
use std::process::{Command, Output};
use std::time::Duration;

use session_sql::sqlx::{self, Row};
use session_sql::{SqlPool, SqlStore};
use time::{OffsetDateTime, PrimitiveDateTime};

fn postgres_url() -> String {
    std::env::var("POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://sessions:sessions@127.0.0.1:5432/sessions".to_owned())
}

fn run(args: &[&str]) -> Output {
    run_with(args, &[], None)
}

/// Runs the binary with only the store variables in `env` (none of the caller's), in
/// `dir` when given.
fn run_with(args: &[&str], env: &[(&str, &str)], dir: Option<&std::path::Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_session-cli"));
    command.args(args).env("RUST_BACKTRACE", "1");
    for name in session_any::STORE_ENV_NAMES {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    command.output().expect("run session-cli")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts a failed run with exactly one line on stderr containing `needle`.
fn assert_fails_with(output: &Output, needle: &str) {
    let err = stderr(output);
    assert!(
        !output.status.success(),
        "succeeded: {}{err}",
        stdout(output)
    );
    assert_ne!(output.status.code(), Some(101), "panicked: {err}");
    assert!(err.contains(needle), "{needle:?} not in {err:?}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

fn utc_in(offset: time::Duration) -> PrimitiveDateTime {
    let now = OffsetDateTime::now_utc() + offset;
    PrimitiveDateTime::new(now.date(), now.time())
}

/// SQLAlchemy's text form of a timestamp in SQLite.
fn sqlite_text(at: PrimitiveDateTime) -> String {
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

/// A SQLite file with `expired` expired rows and `live` live ones in `table`.
async fn sqlite_with_rows(
    dir: &tempfile::TempDir,
    table: &str,
    expired: usize,
    live: usize,
) -> (String, SqlStore) {
    let url = format!("sqlite://{}", dir.path().join("sessions.db").display());
    let store = SqlStore::builder()
        .table(table)
        .url(format!("{url}?mode=rwc"))
        .connect()
        .await
        .expect("SQLite store");
    let SqlPool::Sqlite(pool) = store.pool() else {
        panic!("not SQLite")
    };
    for i in 0..expired {
        sqlx::query(&format!(
            "INSERT INTO {table} (session_id, data, expiry) VALUES (?1, x'81', ?2)"
        ))
        .bind(format!("session:expired-{i}"))
        .bind(sqlite_text(utc_in(-time::Duration::seconds(i as i64 + 1))))
        .execute(pool)
        .await
        .expect("insert");
    }
    for i in 0..live {
        store
            .put(
                &format!("session:live-{i}"),
                b"\x81",
                Duration::from_secs(600),
            )
            .await
            .expect("save");
    }
    (url, store)
}

async fn remaining(store: &SqlStore, table: &str) -> Vec<String> {
    match store.pool() {
        SqlPool::Sqlite(pool) => sqlx::query(&format!(
            "SELECT session_id FROM {table} ORDER BY session_id"
        ))
        .fetch_all(pool)
        .await
        .expect("select")
        .iter()
        .map(|row| row.get(0))
        .collect(),
        SqlPool::Postgres(pool) => sqlx::query(&format!(
            "SELECT session_id FROM {table} ORDER BY session_id"
        ))
        .fetch_all(pool)
        .await
        .expect("select")
        .iter()
        .map(|row| row.get(0))
        .collect(),
        other => panic!("unexpected pool {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_cleanup_removes_the_expired_rows_and_prints_the_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (url, store) = sqlite_with_rows(&dir, "sessions", 7, 3).await;

    let output = run(&["cleanup", "--url", &url, "--batch", "2"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "removed 7 expired sessions from sessions\n"
    );
    assert_eq!(
        remaining(&store, "sessions").await,
        ["session:live-0", "session:live-1", "session:live-2"]
    );

    let output = run(&["cleanup", "--url", &url]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "removed 0 expired sessions from sessions\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_cleanup_uses_the_table_option() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (url, store) = sqlite_with_rows(&dir, "web_sessions", 4, 1).await;
    let output = run(&["cleanup", "--url", &url, "--table", "web_sessions"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "removed 4 expired sessions from web_sessions\n"
    );
    assert_eq!(remaining(&store, "web_sessions").await, ["session:live-0"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_cleanup_removes_the_expired_rows() {
    let url = postgres_url();
    let store = SqlStore::builder()
        .table("cli_cleanup_pg")
        .url(&url)
        .connect()
        .await
        .unwrap_or_else(|error| {
            panic!(
                "PostgreSQL at {url} is not usable: {error}. \
                 Start it with `cargo xtask services up postgres`"
            )
        });
    let SqlPool::Postgres(pool) = store.pool() else {
        panic!("not PostgreSQL")
    };
    sqlx::query("DELETE FROM cli_cleanup_pg")
        .execute(pool)
        .await
        .expect("empty the table");
    for i in 0..12 {
        sqlx::query("INSERT INTO cli_cleanup_pg (session_id, data, expiry) VALUES ($1, 'x', $2)")
            .bind(format!("session:expired-{i}"))
            .bind(utc_in(-time::Duration::minutes(i + 1)))
            .execute(pool)
            .await
            .expect("insert");
    }
    for i in 0..2 {
        store
            .put(&format!("session:live-{i}"), b"x", Duration::from_secs(600))
            .await
            .expect("save");
    }
    let output = run(&[
        "cleanup",
        "--url",
        &url,
        "--table",
        "cli_cleanup_pg",
        "--schema",
        "public",
        "--batch",
        "5",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "removed 12 expired sessions from public.cli_cleanup_pg\n"
    );
    assert_eq!(
        remaining(&store, "cli_cleanup_pg").await,
        ["session:live-0", "session:live-1"]
    );
}

#[test]
fn bad_url_fails_with_one_line() {
    let output = run(&["cleanup", "--url", "nope://somewhere/db"]);
    assert_fails_with(&output, "invalid --url");
    let output = run(&["cleanup", "--url", "postgres://user:secret@[::1/db"]);
    assert_fails_with(&output, "invalid --url");
    assert!(!stderr(&output).contains("secret"), "{}", stderr(&output));
}

#[test]
fn unreachable_database_fails_with_one_line() {
    let output = run(&[
        "cleanup",
        "--url",
        "postgres://sessions:secret@127.0.0.1:1/sessions",
        "--connect-timeout",
        "1",
    ]);
    assert_fails_with(&output, "cannot reach the session store");
    assert!(!stderr(&output).contains("secret"), "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_table_name_fails_before_touching_the_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (url, store) = sqlite_with_rows(&dir, "sessions", 2, 0).await;
    for (args, needle) in [
        (
            vec!["--table", "sessions; DROP TABLE sessions"],
            "invalid --table",
        ),
        (vec!["--table", ""], "invalid --table"),
        (
            vec!["--schema", "main; DROP TABLE sessions"],
            "invalid --schema",
        ),
    ] {
        let mut full = vec!["cleanup", "--url", url.as_str()];
        full.extend(args);
        assert_fails_with(&run(&full), needle);
    }
    assert_eq!(
        remaining(&store, "sessions").await,
        ["session:expired-0", "session:expired-1"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_table_is_reported_not_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (url, store) = sqlite_with_rows(&dir, "sessions", 0, 0).await;
    let output = run(&["cleanup", "--url", &url, "--table", "no_such_table"]);
    assert_fails_with(&output, "no_such_table");
    let SqlPool::Sqlite(pool) = store.pool() else {
        panic!("not SQLite")
    };
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'no_such_table'",
    )
    .fetch_one(pool)
    .await
    .expect("sqlite_master");
    assert_eq!(tables, 0, "cleanup created the table");
}

#[test]
fn missing_sqlite_file_is_an_error_and_stays_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("absent.db");
    let url = format!("sqlite://{}", path.display());
    let output = run(&["cleanup", "--url", &url, "--connect-timeout", "1"]);
    assert_fails_with(&output, "session-cli: error:");
    assert!(!path.exists(), "cleanup created the database file");
}

#[test]
fn usage_errors_do_not_panic() {
    let output = run(&["cleanup", "--url", "sqlite::memory:", "--batch", "0"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--batch"), "{}", stderr(&output));
}

/// Without any configuration the store is the application's default, the filesystem
/// store in `./flask_session`; where there is none, that is an error, and none is created.
#[test]
fn no_configuration_means_the_default_directory_which_is_never_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = run_with(&["cleanup"], &[], Some(dir.path()));
    assert_fails_with(&output, "invalid SESSION_FILE_DIR");
    assert!(
        stderr(&output).contains("does not exist"),
        "{}",
        stderr(&output)
    );
    assert!(!dir.path().join("flask_session").exists());
}

/// The store the environment configures, as the application reads it: here the
/// filesystem store, where cleanup removes exactly the expired sessions.
#[tokio::test(flavor = "multi_thread")]
async fn the_environments_filesystem_store_is_cleaned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sessions = dir.path().join("sessions");
    let sessions_text = sessions.to_str().expect("UTF-8 path").to_owned();
    let env = [
        ("SESSION_TYPE", "filesystem"),
        ("SESSION_FILE_DIR", sessions_text.as_str()),
    ];
    let store = session_any::AnyStore::from_lookup(|name| {
        env.iter()
            .find(|(known, _)| *known == name)
            .map(|(_, value)| value.to_string())
    })
    .await
    .expect("a filesystem store");
    // A zero TTL is expired at once: no waiting needed.
    for i in 0..3 {
        store
            .put(&format!("session:expired-{i}"), b"\x80", Duration::ZERO)
            .await
            .expect("save");
    }
    for i in 0..2 {
        store
            .put(
                &format!("session:live-{i}"),
                b"\x80",
                Duration::from_secs(600),
            )
            .await
            .expect("save");
    }
    let output = run_with(&["cleanup"], &env, None);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        format!("removed 3 expired sessions from {sessions_text}\n")
    );
    for i in 0..2 {
        let key = format!("session:live-{i}");
        assert!(store.load(&key).await.expect("load").is_some(), "{key}");
    }
}

/// SQL through the variables alone (`SESSION_SQL_URL`, `SESSION_SQLALCHEMY_TABLE`), as
/// the application reads them, with no flag.
#[tokio::test(flavor = "multi_thread")]
async fn the_sql_variables_work_without_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (url, store) = sqlite_with_rows(&dir, "env_sessions", 2, 1).await;
    let env = [
        ("SESSION_TYPE", "sql"),
        ("SESSION_SQL_URL", url.as_str()),
        ("SESSION_SQLALCHEMY_TABLE", "env_sessions"),
    ];
    let output = run_with(&["cleanup"], &env, None);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "removed 2 expired sessions from env_sessions\n"
    );
    assert_eq!(remaining(&store, "env_sessions").await, ["session:live-0"]);
}

/// SQL flags with another store type are a mistake, said as such.
#[test]
fn sql_flags_with_another_type_are_refused() {
    let output = run_with(
        &["cleanup", "--table", "sessions"],
        &[("SESSION_TYPE", "redis")],
        None,
    );
    assert_fails_with(
        &output,
        "--table applies to SESSION_TYPE=sqlalchemy, not redis",
    );
    let output = run(&["cleanup", "--type", "bogus"]);
    assert_fails_with(&output, "invalid --type");
}
