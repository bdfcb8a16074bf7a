//! Every `SESSION_TYPE`, built from its variables against its real server: the store works,
//! the variables took effect (table, database, collection, directory), and bad values name
//! the variable.
//!
//! Servers: `cargo xtask services up`; the variables the other suites read (`REDIS_URL`,
//! `MEMCACHED_SERVERS`, `POSTGRES_URL`, `MONGODB_URL`, `DYNAMODB_ENDPOINT`, `AWS_REGION`)
//! point the tests elsewhere.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use session_any::{AnyStore, AnyStoreBuilder, SessionType};
use session_core::{testkit, SessionStore, SetupError, StoreError};

const TTL: Duration = Duration::from_secs(300);

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// A builder reading only `pairs`.
fn builder(pairs: &[(&str, String)]) -> AnyStoreBuilder {
    let vars: HashMap<String, String> = pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.clone()))
        .collect();
    AnyStoreBuilder::from_lookup(move |name| vars.get(name).cloned())
}

/// Connects, failing the test with how to start `service` when its server is down.
async fn connect(builder: AnyStoreBuilder, service: &str) -> AnyStore {
    builder.connect().await.unwrap_or_else(|error| {
        panic!("{error}; start the server with `cargo xtask services up {service}`")
    })
}

/// The option named by a setup error that must be a configuration error.
fn config_option(result: Result<AnyStore, SetupError>) -> (&'static str, String) {
    match result {
        Err(SetupError::Config(error)) => (error.option, error.message),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

/// Create, load, rotate, delete: every call reaches the chosen store.
async fn round_trip(store: &AnyStore, name: &str) -> String {
    let prefix = testkit::unique_prefix(name);
    let (old, new) = (format!("{prefix}old"), format!("{prefix}new"));
    assert!(store.create(&old, b"\x81\xa1k\x01", TTL).await.unwrap());
    assert_eq!(
        store.load(&old).await.unwrap().unwrap().value,
        b"\x81\xa1k\x01"
    );
    assert!(store
        .rotate(&old, b"\x81\xa1k\x01", &new, b"\x81\xa1k\x02", TTL)
        .await
        .unwrap());
    assert_eq!(store.load(&old).await.unwrap(), None);
    assert_eq!(
        store.load(&new).await.unwrap().unwrap().value,
        b"\x81\xa1k\x02"
    );
    new
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = tempfile::Builder::new()
        .prefix(name)
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("scratch directory");
    dir.keep()
}

#[tokio::test]
async fn memory_is_built_without_any_server() {
    let store = connect(builder(&[("SESSION_TYPE", " Memory ".into())]), "-").await;
    assert_eq!(store.session_type(), SessionType::Memory);
    round_trip(&store, "any-memory").await;
}

#[tokio::test]
async fn filesystem_is_the_default_and_uses_session_file_dir() {
    let dir = scratch_dir("any-filesystem").join("sessions");
    let dir_text = dir.to_str().expect("UTF-8 path").to_owned();
    for session_type in [None, Some("filesystem")] {
        let mut vars = vec![("SESSION_FILE_DIR", dir_text.clone())];
        if let Some(session_type) = session_type {
            vars.push(("SESSION_TYPE", session_type.to_owned()));
        }
        let store = connect(builder(&vars), "-").await;
        assert_eq!(store.session_type(), SessionType::Filesystem);
        let key = round_trip(&store, "any-filesystem").await;
        assert!(
            dir.join("index-v5").is_dir(),
            "nothing written in {dir_text}"
        );
        store.delete(&key).await.unwrap();
    }
}

#[tokio::test]
async fn cachelib_reads_flask_sessions_file_variables() {
    let dir = scratch_dir("any-cachelib-store");
    let vars = [
        ("SESSION_TYPE", "cachelib".to_owned()),
        ("SESSION_FILE_DIR", dir.to_str().unwrap().to_owned()),
        ("SESSION_FILE_MODE", "0o640".to_owned()),
    ];
    let store = connect(builder(&vars), "-").await;
    assert_eq!(store.session_type(), SessionType::Cachelib);
    let key = round_trip(&store, "any-cachelib").await;
    // cachelib's layout: files named by the hex SHA-256 of the key, with the mode asked.
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.file_name().unwrap().len() == 64)
        .collect();
    assert!(!files.is_empty(), "no cachelib file in {}", dir.display());
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    store.delete(&key).await.unwrap();
    let (option, _) = config_option(
        builder(&[
            ("SESSION_TYPE", "cachelib".to_owned()),
            ("SESSION_FILE_THRESHOLD", "many".to_owned()),
        ])
        .connect()
        .await,
    );
    assert_eq!(option, "SESSION_FILE_THRESHOLD");
}

#[tokio::test]
async fn a_cachelib_directory_names_session_file_dir() {
    let dir = scratch_dir("any-cachelib");
    // cachelib's name for "session:abc" (md5, cachelib up to 0.15).
    std::fs::write(dir.join("32607b0dcb9d5a58fbe913b473137833"), b"\0\0\0\0").unwrap();
    let (option, message) = config_option(
        builder(&[("SESSION_FILE_DIR", dir.to_str().unwrap().to_owned())])
            .connect()
            .await,
    );
    assert_eq!(option, "SESSION_FILE_DIR");
    assert!(message.contains("SESSION_TYPE=cachelib"), "{message}");
}

#[tokio::test]
async fn unknown_types_name_session_type() {
    for value in ["bogus", "pickle", "null"] {
        let (option, message) =
            config_option(builder(&[("SESSION_TYPE", value.into())]).connect().await);
        assert_eq!(option, "SESSION_TYPE");
        assert!(message.contains(value), "{message}");
    }
}

#[tokio::test]
async fn redis_uses_session_redis_url() {
    let url = env_or("REDIS_URL", "redis://127.0.0.1:6379");
    let store = connect(
        builder(&[
            ("SESSION_TYPE", "redis".into()),
            ("SESSION_REDIS_URL", url.clone()),
        ]),
        "redis",
    )
    .await;
    assert_eq!(store.session_type(), SessionType::Redis);
    let key = round_trip(&store, "any-redis").await;

    // The entry is where a client of that URL finds it.
    let direct = session_redis::RedisStore::connect(&url).await.unwrap();
    assert!(direct.load(&key).await.unwrap().is_some());
    store.delete(&key).await.unwrap();
}

#[tokio::test]
async fn redis_errors_name_the_variable_or_say_unavailable() {
    let (option, message) = config_option(
        builder(&[
            ("SESSION_TYPE", "redis".into()),
            ("SESSION_REDIS_URL", "http://user:hunter2@cache".into()),
        ])
        .connect()
        .await,
    );
    assert_eq!(option, "SESSION_REDIS_URL");
    assert!(!message.contains("hunter2"), "{message}");

    let result = builder(&[
        ("SESSION_TYPE", "redis".into()),
        ("SESSION_REDIS_URL", "redis://127.0.0.1:1".into()),
    ])
    .redis(|redis| redis.connect_timeout(Duration::from_millis(500)))
    .connect()
    .await;
    match result {
        Err(error @ SetupError::Store(StoreError::Unavailable(_))) => {
            assert!(error.to_string().contains("(SESSION_REDIS_URL)"), "{error}")
        }
        other => panic!("an unreachable Redis gave {other:?}"),
    }
}

/// Adjustments reach the chosen backend's builder, after the variables; those for other
/// backends are ignored.
#[tokio::test]
async fn adjustments_apply_to_the_chosen_backend_only() {
    let url = env_or("REDIS_URL", "redis://127.0.0.1:6379");
    let result = builder(&[("SESSION_TYPE", "redis".into()), ("SESSION_REDIS_URL", url)])
        .redis(|redis| {
            redis
                .url("redis://127.0.0.1:1")
                .connect_timeout(Duration::from_millis(500))
        })
        .memcached(|_| panic!("the memcached adjustment ran for SESSION_TYPE=redis"))
        .connect()
        .await;
    assert!(
        matches!(&result, Err(error) if error.is_unavailable()),
        "the Redis adjustment did not replace the URL: {result:?}"
    );
}

#[tokio::test]
async fn memcached_uses_session_memcached_servers() {
    let servers = env_or("MEMCACHED_SERVERS", "127.0.0.1:11211");
    let store = connect(
        builder(&[
            ("SESSION_TYPE", "memcached".into()),
            ("SESSION_MEMCACHED_SERVERS", servers),
        ]),
        "memcached",
    )
    .await;
    assert_eq!(store.session_type(), SessionType::Memcached);
    let key = round_trip(&store, "any-memcached").await;
    store.delete(&key).await.unwrap();

    let (option, _) = config_option(
        builder(&[
            ("SESSION_TYPE", "memcached".into()),
            ("SESSION_MEMCACHED_SERVERS", "a:11211,,b".into()),
        ])
        .connect()
        .await,
    );
    assert_eq!(option, "SESSION_MEMCACHED_SERVERS");
}

#[tokio::test]
async fn sql_uses_the_url_and_the_table_options() {
    let path = scratch_dir("any-sql").join("sessions.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    // SQLAlchemy's spelling of the same absolute path: four slashes.
    let sqlalchemy_url = format!("sqlite:///{}", path.display());
    for (url_variable, session_type, value) in [
        ("SESSION_SQL_URL", "sqlalchemy", &url),
        ("SQLALCHEMY_DATABASE_URI", "sql", &sqlalchemy_url),
        ("SESSION_SQLALCHEMY", "sql", &sqlalchemy_url),
    ] {
        let store = connect(
            builder(&[
                ("SESSION_TYPE", session_type.into()),
                (url_variable, value.clone()),
                ("SESSION_SQLALCHEMY_TABLE", "any_sessions".into()),
            ]),
            "-",
        )
        .await;
        assert_eq!(store.session_type(), SessionType::Sql);
        let key = round_trip(&store, "any-sql").await;
        // The row is in the named table: a store on it, that creates nothing, finds it.
        let direct = session_sql::SqlStore::builder()
            .url(&url)
            .table("any_sessions")
            .table_exists(true)
            .connect()
            .await
            .expect("the table any_sessions exists");
        assert!(direct.load(&key).await.unwrap().is_some());
        store.delete(&key).await.unwrap();
    }
}

#[tokio::test]
async fn sql_errors_name_the_variable_that_held_the_value() {
    let sql = |pairs: &[(&str, &str)]| {
        let mut vars = vec![("SESSION_TYPE", "sqlalchemy".to_owned())];
        vars.extend(pairs.iter().map(|(name, value)| (*name, value.to_string())));
        builder(&vars)
    };
    let (option, message) = config_option(sql(&[]).connect().await);
    assert_eq!(option, "SESSION_SQL_URL");
    assert!(message.contains("SQLALCHEMY_DATABASE_URI"), "{message}");

    let (option, _) = config_option(
        sql(&[("SQLALCHEMY_DATABASE_URI", "oracle://u:hunter2@db/x")])
            .connect()
            .await,
    );
    assert_eq!(option, "SQLALCHEMY_DATABASE_URI");
    let (option, _) = config_option(
        sql(&[("SESSION_SQL_URL", "oracle://u:hunter2@db/x")])
            .connect()
            .await,
    );
    assert_eq!(option, "SESSION_SQL_URL");
    for (name, value) in [
        ("SESSION_SQLALCHEMY_TABLE", "a; DROP TABLE b"),
        ("SESSION_SQLALCHEMY_SCHEMA", "x y"),
        ("SESSION_SQLALCHEMY_SEQUENCE", "1seq"),
        ("SESSION_SQLALCHEMY_TABLE_EXISTS", "perhaps"),
    ] {
        let (option, _) = config_option(
            sql(&[("SESSION_SQL_URL", "sqlite::memory:"), (name, value)])
                .connect()
                .await,
        );
        assert_eq!(option, name);
    }
}

#[tokio::test]
async fn sql_on_postgres_with_an_existing_table() {
    let url = env_or(
        "POSTGRES_URL",
        "postgres://sessions:sessions@127.0.0.1:5432/sessions",
    );
    // Created first by a store of its own; then session-any must only use it.
    let table = "any_existing_pg";
    session_sql::SqlStore::builder()
        .url(&url)
        .table(table)
        .connect()
        .await
        .unwrap_or_else(|error| {
            panic!("PostgreSQL: {error}; start it with `cargo xtask services up postgres`")
        });
    let store = connect(
        builder(&[
            ("SESSION_TYPE", "sqlalchemy".into()),
            ("SESSION_SQL_URL", url.clone()),
            ("SESSION_SQLALCHEMY_TABLE", table.into()),
            ("SESSION_SQLALCHEMY_TABLE_EXISTS", "true".into()),
        ]),
        "postgres",
    )
    .await;
    let key = round_trip(&store, "any-postgres").await;
    store.delete(&key).await.unwrap();

    // With TABLE_EXISTS, a missing table is reported, not created.
    let result = builder(&[
        ("SESSION_TYPE", "sqlalchemy".into()),
        ("SESSION_SQL_URL", url),
        ("SESSION_SQLALCHEMY_TABLE", "any_never_created".into()),
        ("SESSION_SQLALCHEMY_TABLE_EXISTS", "yes".into()),
    ])
    .connect()
    .await;
    match result {
        Err(SetupError::Store(StoreError::Backend(error))) => {
            assert!(error.to_string().contains("any_never_created"), "{error}")
        }
        other => panic!("a missing table gave {other:?}"),
    }
}

#[tokio::test]
async fn mongodb_uses_the_url_database_and_collection() {
    use session_mongodb::mongodb::bson::{doc, Document};

    let url = env_or(
        "MONGODB_URL",
        "mongodb://127.0.0.1:27017/?directConnection=true",
    );
    let database = format!("any_{}", std::process::id());
    let store = connect(
        builder(&[
            ("SESSION_TYPE", "mongodb".into()),
            ("SESSION_MONGODB_URL", url.clone()),
            ("SESSION_MONGODB_DB", database.clone()),
            ("SESSION_MONGODB_COLLECT", "any_sessions".into()),
        ]),
        "mongodb",
    )
    .await;
    assert_eq!(store.session_type(), SessionType::MongoDb);
    let key = round_trip(&store, "any-mongodb").await;

    let direct = session_mongodb::MongoStore::connect(&url).await.unwrap();
    let found = direct
        .client()
        .database(&database)
        .collection::<Document>("any_sessions")
        .find_one(doc! { "id": &key })
        .await
        .unwrap();
    assert!(found.is_some(), "{key} is not in {database}.any_sessions");
    direct.client().database(&database).drop().await.unwrap();

    let (option, _) = config_option(
        builder(&[
            ("SESSION_TYPE", "mongodb".into()),
            ("SESSION_MONGODB_URL", url),
            ("SESSION_MONGODB_DB", "a.b".into()),
        ])
        .connect()
        .await,
    );
    assert_eq!(option, "SESSION_MONGODB_DB");
}

/// The DynamoDB variables, on the emulator at `DYNAMODB_ENDPOINT`.
fn dynamodb(table: &str, extra: &[(&str, &str)]) -> AnyStoreBuilder {
    let mut vars = vec![
        ("SESSION_TYPE", "dynamodb".to_owned()),
        (
            "SESSION_DYNAMODB_ENDPOINT",
            env_or("DYNAMODB_ENDPOINT", "http://127.0.0.1:8000"),
        ),
        ("SESSION_DYNAMODB_TABLE", table.to_owned()),
        ("AWS_REGION", env_or("AWS_REGION", "us-east-1")),
    ];
    vars.extend(extra.iter().map(|(name, value)| (*name, value.to_string())));
    let builder = builder(&vars);
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        builder
    } else {
        // The emulator accepts any key; the SDK needs one.
        builder.dynamodb(|dynamo| dynamo.credentials("dummy", "dummy"))
    }
}

#[tokio::test]
async fn dynamodb_uses_the_endpoint_table_and_region() {
    let table = format!("session-any-{}", std::process::id());
    let store = connect(dynamodb(&table, &[]), "dynamodb").await;
    assert_eq!(store.session_type(), SessionType::DynamoDb);
    let key = round_trip(&store, "any-dynamodb").await;

    // TABLE_EXISTS on the table just created: connects with one read, sees the entry.
    let existing = connect(
        dynamodb(&table, &[("SESSION_DYNAMODB_TABLE_EXISTS", "true")]),
        "dynamodb",
    )
    .await;
    assert!(existing.load(&key).await.unwrap().is_some());
    store.delete(&key).await.unwrap();

    // The table has the name given, where the variables said: a store of its own there
    // (which creates nothing) finds it, and removes it.
    let mut direct = session_dynamo::DynamoStore::builder()
        .endpoint_url(env_or("DYNAMODB_ENDPOINT", "http://127.0.0.1:8000"))
        .region(env_or("AWS_REGION", "us-east-1"))
        .table_name(&table)
        .table_exists(true);
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        direct = direct.credentials("dummy", "dummy");
    }
    let direct = direct.connect().await.expect("the table exists");
    direct
        .client()
        .delete_table()
        .table_name(&table)
        .send()
        .await
        .expect("delete the test table");

    // A missing table with TABLE_EXISTS fails start-up naming it.
    let missing = format!("session-any-missing-{}", std::process::id());
    match dynamodb(&missing, &[("SESSION_DYNAMODB_TABLE_EXISTS", "1")])
        .connect()
        .await
    {
        Err(SetupError::Store(StoreError::Backend(error))) => {
            assert!(error.to_string().contains(&missing), "{error}")
        }
        other => panic!("a missing table gave {other:?}"),
    }

    let (option, _) = config_option(dynamodb("ab", &[]).connect().await);
    assert_eq!(option, "SESSION_DYNAMODB_TABLE");
    let (option, _) = config_option(
        dynamodb(&table, &[("SESSION_DYNAMODB_ENDPOINT", "localhost:8000")])
            .connect()
            .await,
    );
    assert_eq!(option, "SESSION_DYNAMODB_ENDPOINT");
}

/// The path of `absolute` relative to the working directory, through `..` up to `/`.
fn relative_to_working_dir(absolute: &std::path::Path) -> String {
    let cwd = std::env::current_dir().expect("working directory");
    let ups = cwd.components().count() - 1;
    let below = absolute.strip_prefix("/").expect("an absolute path");
    format!("{}{}", "../".repeat(ups), below.display())
}

/// A store on `url_variable`'s SQLite URL; the row it writes is in `path` (a store of our
/// own on that file finds it).
async fn sqlite_row_lands_in(pairs: &[(&str, String)], path: &std::path::Path) {
    let mut vars = vec![
        ("SESSION_TYPE", "sqlalchemy".to_owned()),
        ("SESSION_SQLALCHEMY_TABLE", "any_sa_sessions".to_owned()),
    ];
    vars.extend(pairs.iter().cloned());
    let store = connect(builder(&vars), "-").await;
    let key = round_trip(&store, "any-sqlalchemy").await;
    assert!(path.exists(), "{} was not created", path.display());
    let direct = session_sql::SqlStore::builder()
        .url(format!("sqlite://{}", path.display()))
        .table("any_sa_sessions")
        .table_exists(true)
        .connect()
        .await
        .expect("the table is in the file the URL names");
    assert!(direct.load(&key).await.unwrap().is_some());
}

#[tokio::test]
async fn sqlalchemy_sqlite_urls_are_relative_with_three_slashes_and_absolute_with_four() {
    let dir = scratch_dir("any-sqlalchemy");
    // sqlite:///relative.db: relative to the working directory, as SQLAlchemy reads it.
    let relative = dir.join("relative.db");
    let url = format!("sqlite:///{}", relative_to_working_dir(&relative));
    sqlite_row_lands_in(&[("SQLALCHEMY_DATABASE_URI", url)], &relative).await;
    // sqlite:////absolute.db, with a driver suffix.
    let absolute = dir.join("absolute.db");
    let url = format!("sqlite+pysqlite:///{}", absolute.display());
    sqlite_row_lands_in(&[("SQLALCHEMY_DATABASE_URI", url)], &absolute).await;
    // An SQLAlchemy dialect we have no driver for names the variable.
    let (option, message) = config_option(
        builder(&[
            ("SESSION_TYPE", "sql".into()),
            (
                "SQLALCHEMY_DATABASE_URI",
                "oracle+cx_oracle://u:hunter2@h/db".into(),
            ),
        ])
        .connect()
        .await,
    );
    assert_eq!(option, "SQLALCHEMY_DATABASE_URI");
    assert!(!message.contains("hunter2"), "{message}");
}

#[tokio::test]
async fn the_bind_key_chooses_the_url_from_sqlalchemy_binds() {
    let dir = scratch_dir("any-binds");
    let (main, sessions) = (dir.join("main.db"), dir.join("sessions.db"));
    let main_url = format!("sqlite:///{}", main.display());
    let sessions_url = format!("sqlite:///{}", sessions.display());
    // JSON (Flask-SQLAlchemy's dict), a value being a URL or {"url": …}.
    let json = format!(r#"{{"users": "{main_url}", "sessions": {{"url": "{sessions_url}"}}}}"#);
    sqlite_row_lands_in(
        &[
            ("SQLALCHEMY_DATABASE_URI", main_url.clone()),
            ("SESSION_SQLALCHEMY_BIND_KEY", "sessions".into()),
            ("SQLALCHEMY_BINDS", json),
        ],
        &sessions,
    )
    .await;
    assert!(
        !main.exists(),
        "the default database was used despite the bind"
    );
    // key=url pairs.
    let pairs = format!("users={main_url},sessions={sessions_url}");
    sqlite_row_lands_in(
        &[
            ("SESSION_SQLALCHEMY_BIND_KEY", "sessions".into()),
            ("SQLALCHEMY_BINDS", pairs.clone()),
        ],
        &sessions,
    )
    .await;
    // A bind that is not there, or no binds at all, names the key.
    for binds in [Some(pairs), None] {
        let mut vars = vec![
            ("SESSION_TYPE", "sql".to_owned()),
            ("SQLALCHEMY_DATABASE_URI", main_url.clone()),
            ("SESSION_SQLALCHEMY_BIND_KEY", "audit".to_owned()),
        ];
        vars.extend(binds.map(|binds| ("SQLALCHEMY_BINDS", binds)));
        let (option, message) = config_option(builder(&vars).connect().await);
        assert_eq!(option, "SESSION_SQLALCHEMY_BIND_KEY");
        assert!(message.contains("audit"), "{message}");
    }
    let (option, _) = config_option(
        builder(&[
            ("SESSION_TYPE", "sql".into()),
            ("SESSION_SQLALCHEMY_BIND_KEY", "sessions".into()),
            ("SQLALCHEMY_BINDS", "{not json".into()),
        ])
        .connect()
        .await,
    );
    assert_eq!(option, "SQLALCHEMY_BINDS");
}

#[tokio::test]
async fn sqlalchemy_postgres_urls_with_a_driver_suffix_reach_postgres() {
    let url = env_or(
        "POSTGRES_URL",
        "postgres://sessions:sessions@127.0.0.1:5432/sessions",
    );
    let flask_url = url.replacen("postgres://", "postgresql+psycopg2://", 1);
    let store = connect(
        builder(&[
            ("SESSION_TYPE", "sqlalchemy".into()),
            ("SQLALCHEMY_DATABASE_URI", flask_url),
        ]),
        "postgres",
    )
    .await;
    let key = round_trip(&store, "any-pg-sqlalchemy").await;
    store.delete(&key).await.unwrap();
}

#[tokio::test]
async fn dynamodb_table_name_is_another_name_of_the_table() {
    let table = format!("session-any-alias-{}", std::process::id());
    let mut vars = vec![
        ("SESSION_TYPE", "dynamodb".to_owned()),
        (
            "SESSION_DYNAMODB_ENDPOINT",
            env_or("DYNAMODB_ENDPOINT", "http://127.0.0.1:8000"),
        ),
        ("SESSION_DYNAMODB_TABLE_NAME", table.clone()),
        ("AWS_REGION", env_or("AWS_REGION", "us-east-1")),
    ];
    let with_credentials = |builder: AnyStoreBuilder| {
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
            builder
        } else {
            builder.dynamodb(|dynamo| dynamo.credentials("dummy", "dummy"))
        }
    };
    let store = connect(with_credentials(builder(&vars)), "dynamodb").await;
    let key = round_trip(&store, "any-dynamodb-alias").await;
    // The session is in the table SESSION_DYNAMODB_TABLE_NAME named.
    let existing = connect(
        dynamodb(&table, &[("SESSION_DYNAMODB_TABLE_EXISTS", "true")]),
        "dynamodb",
    )
    .await;
    assert!(existing.load(&key).await.unwrap().is_some());
    store.delete(&key).await.unwrap();

    // The same table under both names is fine; two tables are an error naming the alias.
    let (option, message) = config_option(
        dynamodb(
            "Sessions",
            &[("SESSION_DYNAMODB_TABLE_NAME", table.as_str())],
        )
        .connect()
        .await,
    );
    assert_eq!(option, "SESSION_DYNAMODB_TABLE_NAME");
    assert!(message.contains("Sessions"), "{message}");
    // A bad name given by the alias names the alias.
    vars[2].1 = "ab".to_owned();
    let (option, _) = config_option(with_credentials(builder(&vars)).connect().await);
    assert_eq!(option, "SESSION_DYNAMODB_TABLE_NAME");

    let mut cleanup = session_dynamo::DynamoStore::builder()
        .endpoint_url(env_or("DYNAMODB_ENDPOINT", "http://127.0.0.1:8000"))
        .region(env_or("AWS_REGION", "us-east-1"))
        .table_name(&table)
        .table_exists(true);
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        cleanup = cleanup.credentials("dummy", "dummy");
    }
    let cleanup = cleanup.connect().await.expect("the table exists");
    cleanup
        .client()
        .delete_table()
        .table_name(&table)
        .send()
        .await
        .expect("delete the test table");
}
