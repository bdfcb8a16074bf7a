//! [`SqlStoreBuilder`]: table options, pool settings, connecting and preparing the table.

use std::time::Duration;

use session_core::{driver_timeout, ConfigError, SetupError, DEFAULT_STORE_TIMEOUT};

use crate::error::{map_error, TableUnusable};
use crate::pool::{on_pool, SqlPool};
use crate::queries::Queries;
use crate::schema::{Backend, TableOptions};
use crate::store::SqlStore;

/// Rows removed per `DELETE` by cleanup unless [`SqlStoreBuilder::cleanup_batch_size`]
/// says otherwise: large enough to clear a backlog quickly, small enough that no single
/// statement holds its locks for long on a busy table.
pub const DEFAULT_CLEANUP_BATCH_SIZE: u32 = 1_000;

/// Connections in a pool this crate opens, unless [`SqlStoreBuilder::max_connections`]
/// says otherwise (sqlx's default).
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;

/// How long an operation waits for a pooled connection (opening one included) before it
/// fails with [`StoreError::Unavailable`](session_core::StoreError::Unavailable), unless
/// [`SqlStoreBuilder::acquire_timeout`] or [`SqlStoreBuilder::store_timeout`] says
/// otherwise: [`driver_timeout`] of core's default `SESSION_STORE_TIMEOUT` (4 s). A session
/// query takes milliseconds; a request is better answered "unavailable" than left hanging
/// on a database that is down.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = driver_timeout(DEFAULT_STORE_TIMEOUT);

/// The environment name of the database URL, named by configuration errors.
const URL_OPTION: &str = "SESSION_SQL_URL";

/// Configures and builds a [`SqlStore`]. Start from [`SqlStore::builder`].
///
/// | Option | Default | Flask-Session |
/// |---|---|---|
/// | [`url`](Self::url) | none (required by [`connect`](Self::connect)) | `SQLALCHEMY_DATABASE_URI` (ours: `SESSION_SQL_URL`) |
/// | [`table`](Self::table) | `sessions` | `SESSION_SQLALCHEMY_TABLE` |
/// | [`schema`](Self::schema) | none | `SESSION_SQLALCHEMY_SCHEMA` |
/// | [`sequence`](Self::sequence) | none | `SESSION_SQLALCHEMY_SEQUENCE` |
/// | [`table_exists`](Self::table_exists) | `false` (create at start) | `SESSION_SQLALCHEMY_TABLE_EXISTS` |
/// | [`cleanup_batch_size`](Self::cleanup_batch_size) | 1000 | — |
/// | [`mysql_long_blob`](Self::mysql_long_blob) | `false` (`BLOB`) | — |
/// | [`max_connections`](Self::max_connections) | 10 | — |
/// | [`store_timeout`](Self::store_timeout) | 5 s | `SESSION_STORE_TIMEOUT` (core's, not Flask-Session's) |
/// | [`acquire_timeout`](Self::acquire_timeout) | 4/5 of `store_timeout` (4 s) | — |
///
/// ```no_run
/// # async fn example() -> Result<(), session_core::SetupError> {
/// use session_sql::SqlStore;
///
/// let store = SqlStore::builder()
///     .url("postgres://sessions:sessions@127.0.0.1:5432/sessions")
///     .table("flask_sessions")
///     .schema("web")
///     .cleanup_batch_size(500)
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
///
/// Its `Debug` output names the database the URL points at, never the URL (which may hold
/// a password).
#[derive(Clone)]
pub struct SqlStoreBuilder {
    url: Option<String>,
    table: TableOptions,
    table_exists: bool,
    cleanup_batch_size: u32,
    max_connections: u32,
    store_timeout: Duration,
    acquire_timeout: Option<Duration>,
}

impl Default for SqlStoreBuilder {
    fn default() -> Self {
        SqlStoreBuilder {
            url: None,
            table: TableOptions::default(),
            table_exists: false,
            cleanup_batch_size: DEFAULT_CLEANUP_BATCH_SIZE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            store_timeout: DEFAULT_STORE_TIMEOUT,
            acquire_timeout: None,
        }
    }
}

impl std::fmt::Debug for SqlStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let database = self.url.as_deref().map(Backend::from_url);
        f.debug_struct("SqlStoreBuilder")
            .field("database", &database)
            .field("table", &self.table)
            .field("table_exists", &self.table_exists)
            .field("cleanup_batch_size", &self.cleanup_batch_size)
            .field("max_connections", &self.max_connections)
            .field("store_timeout", &self.store_timeout)
            .field("acquire_timeout", &self.effective_acquire_timeout())
            .finish()
    }
}

impl SqlStoreBuilder {
    /// The database [`connect`](Self::connect) opens a pool for:
    /// `postgres://user:password@host:5432/db` (also `postgresql://`),
    /// `mysql://user:password@host:3306/db` (also `mariadb://`), `sqlite://path/file.db`
    /// (add `?mode=rwc` to create a missing file) and `sqlite::memory:`. PostgreSQL and
    /// MySQL URLs may carry an SQLAlchemy driver suffix (`postgresql+psycopg://`), which
    /// is ignored, so a Flask app's `SQLALCHEMY_DATABASE_URI` works as is. An in-memory
    /// SQLite database lives in one connection that the pool keeps open for the store's
    /// lifetime. Not used by [`with_pool`](Self::with_pool).
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// The table name (default `sessions`). See [`TableOptions::table`].
    pub fn table(mut self, name: impl Into<String>) -> Self {
        self.table = self.table.table(name);
        self
    }

    /// The schema (default none). See [`TableOptions::schema`].
    pub fn schema(mut self, name: impl Into<String>) -> Self {
        self.table = self.table.schema(name);
        self
    }

    /// The id sequence (default none). See [`TableOptions::sequence`].
    pub fn sequence(mut self, name: impl Into<String>) -> Self {
        self.table = self.table.sequence(name);
        self
    }

    /// `LONGBLOB` instead of `BLOB` for new MySQL/MariaDB tables. See
    /// [`TableOptions::mysql_long_blob`].
    pub fn mysql_long_blob(mut self, long_blob: bool) -> Self {
        self.table = self.table.mysql_long_blob(long_blob);
        self
    }

    /// Replaces table, schema, sequence and column options at once.
    pub fn table_options(mut self, options: TableOptions) -> Self {
        self.table = options;
        self
    }

    /// `true`: the table is managed elsewhere (migrations, or a Flask app created it), so
    /// no `CREATE` statement is sent; the store only checks at start that the table and
    /// its columns are there. Default `false`: create the table (and sequence and expiry
    /// index) if missing, like Flask-Session does at startup.
    pub fn table_exists(mut self, exists: bool) -> Self {
        self.table_exists = exists;
        self
    }

    /// Rows removed per statement by cleanup (default
    /// [`DEFAULT_CLEANUP_BATCH_SIZE`]); at least 1.
    pub fn cleanup_batch_size(mut self, rows: u32) -> Self {
        self.cleanup_batch_size = rows;
        self
    }

    /// Connections in the pool that [`connect`](Self::connect) opens (default
    /// [`DEFAULT_MAX_CONNECTIONS`]; in-memory SQLite always uses one). Ignored by
    /// [`with_pool`](Self::with_pool).
    pub fn max_connections(mut self, connections: u32) -> Self {
        self.max_connections = connections;
        self
    }

    /// How long to wait for a connection (default: [`driver_timeout`] of
    /// [`store_timeout`](Self::store_timeout), 4 s by default). Ignored by
    /// [`with_pool`](Self::with_pool).
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = Some(timeout);
        self
    }

    /// Core's per-call deadline, `SESSION_STORE_TIMEOUT` (default 5 s), which the database's
    /// own timeouts follow: every connection [`connect`](Self::connect) opens is told to
    /// give up on a statement, and on a row lock it waits for, after [`driver_timeout`] of
    /// it (four fifths), so that the database stops the work and frees its locks before
    /// core answers 503. PostgreSQL gets `statement_timeout` and `lock_timeout`; MariaDB
    /// `max_statement_time` and `innodb_lock_wait_timeout` (whole seconds, at least 1);
    /// MySQL `max_execution_time` (reads) and `innodb_lock_wait_timeout`. SQLite waits for
    /// its file lock as long (`busy_timeout`). A pool given to [`with_pool`](Self::with_pool)
    /// keeps its own settings.
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = timeout;
        self
    }

    /// The pool's acquire timeout: set, or derived from the store timeout.
    fn effective_acquire_timeout(&self) -> Duration {
        self.acquire_timeout
            .unwrap_or_else(|| driver_timeout(self.store_timeout))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.table.validate()?;
        if self.cleanup_batch_size == 0 {
            return Err(ConfigError {
                option: "cleanup_batch_size",
                message: "must be at least 1".to_owned(),
            });
        }
        if self.store_timeout.is_zero() {
            return Err(ConfigError {
                option: session_core::STORE_TIMEOUT_OPTION,
                message: "must be more than 0 seconds".to_owned(),
            });
        }
        if self.max_connections == 0 {
            return Err(ConfigError {
                option: "max_connections",
                message: "must be at least 1".to_owned(),
            });
        }
        Ok(())
    }

    /// Opens a pool for the [`url`](Self::url) and builds the store (see
    /// [`with_pool`](Self::with_pool)).
    ///
    /// Fails with [`SetupError::Config`] naming `SESSION_SQL_URL` for a missing URL, an
    /// unknown scheme, a malformed URL or a database whose cargo feature is off (the
    /// message never repeats the URL), naming the option for other invalid options, and
    /// with [`SetupError::Store`] ([`StoreError::Unavailable`](session_core::StoreError::Unavailable))
    /// when the server cannot be reached within the acquire timeout.
    pub async fn connect(self) -> Result<SqlStore, SetupError> {
        self.validate()?;
        let url = self.url.as_deref().ok_or_else(|| {
            ConfigError::new(
                URL_OPTION,
                "no database URL (postgres://, mysql://, sqlite://) was given",
            )
        })?;
        let backend = Backend::from_url(url).ok_or_else(|| {
            ConfigError::new(
                URL_OPTION,
                "unsupported scheme; expected postgres://, postgresql://, mysql://, \
                 mariadb:// or sqlite:",
            )
        })?;
        let url = without_driver_suffix(url);
        let pool = self.open_pool(backend, &url).await?;
        self.with_pool(pool).await
    }

    #[allow(unused_variables)]
    async fn open_pool(&self, backend: Backend, url: &str) -> Result<SqlPool, SetupError> {
        use std::str::FromStr;

        let invalid_url = |error: sqlx::Error| ConfigError::new(URL_OPTION, error.to_string());
        let opened = |error: sqlx::Error| SetupError::Store(map_error(error));
        match backend {
            #[cfg(feature = "postgres")]
            Backend::Postgres => {
                let timeout = postgres_millis(driver_timeout(self.store_timeout));
                let options = sqlx::postgres::PgConnectOptions::from_str(url)
                    .map_err(invalid_url)?
                    // Startup parameters: set with the connection, no extra round trip.
                    .options([("statement_timeout", &timeout), ("lock_timeout", &timeout)]);
                let pool = self
                    .pool_options()
                    .connect_with(options)
                    .await
                    .map_err(opened)?;
                Ok(SqlPool::Postgres(pool))
            }
            #[cfg(feature = "mysql")]
            Backend::MySql => {
                let options =
                    sqlx::mysql::MySqlConnectOptions::from_str(url).map_err(invalid_url)?;
                let timeout = driver_timeout(self.store_timeout);
                let pool = self
                    .pool_options::<sqlx::MySql>()
                    .after_connect(move |connection, _| {
                        Box::pin(async move { set_mysql_timeouts(connection, timeout).await })
                    })
                    .connect_with(options)
                    .await
                    .map_err(opened)?;
                Ok(SqlPool::MySql(pool))
            }
            #[cfg(feature = "sqlite")]
            Backend::Sqlite => {
                let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
                    .map_err(invalid_url)?
                    .busy_timeout(driver_timeout(self.store_timeout));
                let in_memory = url.contains(":memory:") || url.contains("mode=memory");
                let pool_options = if in_memory {
                    // Every connection to `:memory:` would be a database of its own, and the
                    // database vanishes with its last connection: keep exactly one, forever.
                    self.pool_options::<sqlx::Sqlite>()
                        .max_connections(1)
                        .min_connections(1)
                        .idle_timeout(None)
                        .max_lifetime(None)
                } else {
                    self.pool_options()
                };
                let pool = pool_options.connect_with(options).await.map_err(opened)?;
                Ok(SqlPool::Sqlite(pool))
            }
            #[allow(unreachable_patterns)]
            other => Err(ConfigError::new(
                URL_OPTION,
                format!(
                    "{other:?} support is not compiled in; enable the `{}` feature of session-sql",
                    other.cargo_feature()
                ),
            )
            .into()),
        }
    }

    #[allow(dead_code)]
    fn pool_options<DB: sqlx::Database>(&self) -> sqlx::pool::PoolOptions<DB> {
        // No test query before each use: it would double every operation's round trips.
        // A connection broken by a server restart fails one operation (Unavailable) and is
        // then replaced.
        sqlx::pool::PoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.effective_acquire_timeout())
            .test_before_acquire(false)
    }

    /// Builds the store on a pool you own (Flask-Session's `SESSION_SQLALCHEMY`): a
    /// `PgPool`, `MySqlPool` or `SqlitePool`, or a [`SqlPool`].
    ///
    /// Unless [`table_exists`](Self::table_exists) is set, creates the sequence, table and
    /// expiry index when missing ([`SqlStore::create_table_sql`]). Then checks that the
    /// table has Flask-Session's columns and, on MySQL/MariaDB, reads the size of the
    /// `data` column so that oversized values fail with [`StoreError::TooLarge`](session_core::StoreError::TooLarge).
    // `mut`: only the MySQL branch changes the options (no sequences there).
    #[cfg_attr(not(feature = "mysql"), allow(unused_mut))]
    pub async fn with_pool(mut self, pool: impl Into<SqlPool>) -> Result<SqlStore, SetupError> {
        self.validate()?;
        let pool = pool.into();
        let backend = pool.backend();
        #[cfg(feature = "mysql")]
        if let (SqlPool::MySql(typed), Some(sequence)) = (&pool, self.table.sequence_name()) {
            if !is_mariadb(typed).await? {
                // SQLAlchemy uses sequences on MariaDB only; on MySQL it keeps
                // AUTO_INCREMENT and ignores the option, and so do we.
                tracing::warn!(
                    sequence,
                    "MySQL has no sequences; SESSION_SQLALCHEMY_SEQUENCE is ignored"
                );
                self.table = self.table.without_sequence();
            }
        }
        if !self.table_exists {
            create_table(&pool, &self.table).await?;
        }
        let probe = Queries::new(backend, &self.table).probe;
        let missing = |source: sqlx::Error| {
            SetupError::Store(
                TableUnusable {
                    table: self.table.qualified_table(backend),
                    source,
                }
                .into_store_error(),
            )
        };
        on_pool!(&pool, typed, _stamp, _expiry => {
            sqlx::query(&probe).fetch_optional(typed).await.map_err(missing)?;
        });
        let max_value_bytes = match &pool {
            #[cfg(feature = "mysql")]
            SqlPool::MySql(typed) => Some(mysql_data_limit(typed, &self.table).await?),
            #[allow(unreachable_patterns)]
            _ => None,
        };
        let store = SqlStore::new(pool, self.table, self.cleanup_batch_size, max_value_bytes);
        store.probe_owner_index().await;
        Ok(store)
    }
}

/// `postgresql+psycopg://…` → `postgresql://…` (SQLAlchemy names the Python driver there).
fn without_driver_suffix(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) if scheme.contains('+') => {
            let base = scheme.split('+').next().unwrap_or(scheme);
            format!("{base}://{rest}")
        }
        _ => url.to_owned(),
    }
}

/// Runs the DDL. PostgreSQL's `CREATE TABLE IF NOT EXISTS` can still fail when two
/// processes run it at the same moment, so there it runs under an advisory lock; SQLite
/// runs it in one write transaction; MySQL's DDL is atomic on its own.
async fn create_table(pool: &SqlPool, options: &TableOptions) -> Result<(), SetupError> {
    let statements = options.ddl(pool.backend());
    let failed = |error: sqlx::Error| SetupError::Store(map_error(error));
    match pool {
        #[cfg(feature = "postgres")]
        SqlPool::Postgres(pool) => {
            let mut tx = pool.begin().await.map_err(failed)?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(lock_key(&options.qualified_table(Backend::Postgres)))
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
            for statement in &statements {
                sqlx::query(statement)
                    .execute(&mut *tx)
                    .await
                    .map_err(failed)?;
            }
            tx.commit().await.map_err(failed)?;
        }
        #[cfg(feature = "mysql")]
        SqlPool::MySql(pool) => {
            for statement in &statements {
                sqlx::query(statement).execute(pool).await.map_err(failed)?;
            }
        }
        #[cfg(feature = "sqlite")]
        SqlPool::Sqlite(pool) => {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(failed)?;
            for statement in &statements {
                sqlx::query(statement)
                    .execute(&mut *tx)
                    .await
                    .map_err(failed)?;
            }
            tx.commit().await.map_err(failed)?;
        }
    }
    Ok(())
}

/// A stable 64-bit key (FNV-1a) for the advisory lock that serialises table creation.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
fn lock_key(table: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in "session-sql:create:".bytes().chain(table.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// A PostgreSQL duration setting in whole milliseconds, at least 1 (0 would mean "none").
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
fn postgres_millis(timeout: Duration) -> String {
    format!("{}ms", timeout.as_millis().max(1))
}

/// The `SET SESSION` statement that bounds statements and row-lock waits on a new
/// MariaDB (`max_statement_time`, seconds) or MySQL (`max_execution_time`, milliseconds,
/// reads only) connection. InnoDB's lock wait is whole seconds, at least 1.
#[cfg_attr(not(feature = "mysql"), allow(dead_code))]
fn mysql_timeout_statement(mariadb: bool, timeout: Duration) -> String {
    let lock_wait = timeout.as_secs().max(1);
    if mariadb {
        format!(
            "SET SESSION innodb_lock_wait_timeout = {lock_wait}, max_statement_time = {:.3}",
            timeout.as_secs_f64().max(0.001)
        )
    } else {
        format!(
            "SET SESSION innodb_lock_wait_timeout = {lock_wait}, max_execution_time = {}",
            timeout.as_millis().max(1)
        )
    }
}

/// Runs [`mysql_timeout_statement`] on a connection the pool has just opened.
#[cfg(feature = "mysql")]
async fn set_mysql_timeouts(
    connection: &mut sqlx::MySqlConnection,
    timeout: Duration,
) -> Result<(), sqlx::Error> {
    let version: String = sqlx::query_scalar("SELECT VERSION()")
        .fetch_one(&mut *connection)
        .await?;
    let statement = mysql_timeout_statement(version_is_mariadb(&version), timeout);
    sqlx::query(&statement).execute(&mut *connection).await?;
    Ok(())
}

/// Whether the server is MariaDB (which has sequences) rather than MySQL.
#[cfg(feature = "mysql")]
async fn is_mariadb(pool: &sqlx::MySqlPool) -> Result<bool, SetupError> {
    let version: String = sqlx::query_scalar("SELECT VERSION()")
        .fetch_one(pool)
        .await
        .map_err(|error| SetupError::Store(map_error(error)))?;
    Ok(version_is_mariadb(&version))
}

/// MariaDB's `VERSION()` reads like `10.11.19-MariaDB-0+deb12u1`; MySQL's like `8.4.3`.
#[cfg_attr(not(feature = "mysql"), allow(dead_code))]
fn version_is_mariadb(version: &str) -> bool {
    version.to_ascii_lowercase().contains("mariadb")
}

/// The `data` column's capacity in bytes (BLOB 65 535, MEDIUMBLOB 16 MiB, LONGBLOB 4 GiB).
#[cfg(feature = "mysql")]
async fn mysql_data_limit(
    pool: &sqlx::MySqlPool,
    options: &TableOptions,
) -> Result<usize, SetupError> {
    use crate::schema::MYSQL_BLOB_MAX;
    use sqlx::Row;

    let query = Queries::new(Backend::MySql, options).data_column_type;
    let row = sqlx::query(&query)
        .bind(options.schema_name())
        .bind(options.table_name())
        .fetch_optional(pool)
        .await
        .map_err(|error| SetupError::Store(map_error(error)))?;
    let capacity = match row {
        Some(row) => row
            .try_get::<Option<i64>, _>(0)
            .map_err(|error| SetupError::Store(map_error(error)))?,
        None => None,
    };
    // Not found (e.g. no privilege on the metadata): assume Flask-Session's BLOB.
    let limit = capacity
        .and_then(|bytes| usize::try_from(bytes).ok())
        .unwrap_or(MYSQL_BLOB_MAX);
    Ok(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_suffixes_are_dropped() {
        assert_eq!(
            without_driver_suffix("postgresql+psycopg://u:p@h/db"),
            "postgresql://u:p@h/db"
        );
        assert_eq!(without_driver_suffix("mysql://h/db"), "mysql://h/db");
        assert_eq!(without_driver_suffix("sqlite::memory:"), "sqlite::memory:");
    }

    #[test]
    fn mariadb_is_told_apart_from_mysql() {
        assert!(version_is_mariadb("10.11.19-MariaDB-0+deb12u1"));
        assert!(version_is_mariadb("11.4.2-MariaDB"));
        assert!(!version_is_mariadb("8.4.3"));
        assert!(!version_is_mariadb("8.0.36-0ubuntu0.22.04.1"));
    }

    #[test]
    fn database_timeouts_follow_the_store_timeout() {
        let builder = SqlStore::builder().store_timeout(Duration::from_secs(2));
        assert_eq!(
            builder.effective_acquire_timeout(),
            Duration::from_millis(1_600)
        );
        let builder = builder.acquire_timeout(Duration::from_millis(300));
        assert_eq!(
            builder.effective_acquire_timeout(),
            Duration::from_millis(300)
        );
        assert_eq!(
            SqlStore::builder().effective_acquire_timeout(),
            DEFAULT_ACQUIRE_TIMEOUT
        );
        assert_eq!(postgres_millis(Duration::from_millis(1_600)), "1600ms");
        assert_eq!(postgres_millis(Duration::from_micros(10)), "1ms");
        assert_eq!(
            mysql_timeout_statement(true, Duration::from_millis(1_600)),
            "SET SESSION innodb_lock_wait_timeout = 1, max_statement_time = 1.600"
        );
        assert_eq!(
            mysql_timeout_statement(false, Duration::from_millis(4_000)),
            "SET SESSION innodb_lock_wait_timeout = 4, max_execution_time = 4000"
        );
    }

    #[test]
    fn lock_keys_differ_per_table() {
        assert_eq!(lock_key("\"sessions\""), lock_key("\"sessions\""));
        assert_ne!(lock_key("\"sessions\""), lock_key("\"web\".\"sessions\""));
    }

    #[tokio::test]
    async fn bad_options_fail_before_connecting() {
        let option_of = |error: SetupError| match error {
            SetupError::Config(config) => config.option,
            other => panic!("not a configuration error: {other}"),
        };
        let error = SqlStore::builder()
            .url("postgres://127.0.0.1:1/none")
            .table("sessions; DROP TABLE x")
            .connect()
            .await
            .unwrap_err();
        assert_eq!(option_of(error), "SESSION_SQLALCHEMY_TABLE");
        let error = SqlStore::builder()
            .url("sqlite::memory:")
            .cleanup_batch_size(0)
            .connect()
            .await
            .unwrap_err();
        assert_eq!(option_of(error), "cleanup_batch_size");
        for url in [
            "redis://127.0.0.1:6379",
            "no scheme",
            "postgres://user:hunter2@[::1/db",
        ] {
            let error = SqlStore::connect(url).await.unwrap_err();
            assert!(!error.to_string().contains("hunter2"), "{error}");
            assert_eq!(option_of(error), "SESSION_SQL_URL", "{url}");
        }
        let error = SqlStore::builder().connect().await.unwrap_err();
        assert_eq!(option_of(error), "SESSION_SQL_URL");
    }

    #[test]
    fn debug_output_names_the_database_not_the_url() {
        let builder = SqlStore::builder().url("postgresql+psycopg://u:hunter2@db/app");
        let debug = format!("{builder:?}");
        assert!(debug.contains("Postgres"), "{debug}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!debug.contains("db/app"), "{debug}");
    }
}
