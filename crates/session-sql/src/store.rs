//! [`SqlStore`]: the [`SessionStore`] on Flask-Session's SQL table.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use session_core::{
    ConfigError, IndexEntry, ScanPage, SessionStore, SetupError, StoreError, StoredEntry,
};
use sqlx::Row;

use crate::builder::SqlStoreBuilder;
use crate::clock;
use crate::error::{is_data_too_long, is_retryable, is_unique_violation, map_error};
use crate::pool::{on_pool, SqlPool};
use crate::queries::Queries;
use crate::schema::{Backend, TableOptions, MAX_KEY_CHARS, MAX_OWNER_INDEX_CHARS};

/// How often a rotation is attempted when the database reports a deadlock or a
/// serialization failure (possible with concurrent rotations on MySQL/MariaDB).
const ROTATE_ATTEMPTS: u32 = 3;

/// Create-if-absent on `$exec` (a pool or `&mut *transaction`), as `Result<bool, sqlx::Error>`.
///
/// PostgreSQL and SQLite: one upsert whose update only applies to an expired row.
/// MySQL/MariaDB (no conditional upsert that reports what it did): insert; on a duplicate
/// key remove the row only if it has expired, then insert once more. Concurrent creators
/// still end with exactly one winner: a live row is never removed, and of the inserts that
/// follow a removal only one can succeed.
macro_rules! create_with {
    ($backend:expr, $queries:expr, $exec:expr, $key:expr, $value:expr, $expiry:expr, $now:expr) => {{
        if $backend == Backend::MySql {
            let insert = || {
                sqlx::query(&$queries.create)
                    .bind($key)
                    .bind($value)
                    .bind($expiry)
            };
            match insert().execute($exec).await {
                Ok(_) => Ok(true),
                Err(error) if is_unique_violation(&error) => {
                    match sqlx::query(&$queries.delete_expired_key)
                        .bind($key)
                        .bind($now)
                        .execute($exec)
                        .await
                    {
                        Ok(done) if done.rows_affected() == 0 => Ok(false),
                        Ok(_) => match insert().execute($exec).await {
                            Ok(_) => Ok(true),
                            Err(error) if is_unique_violation(&error) => Ok(false),
                            Err(error) => Err(error),
                        },
                        Err(error) => Err(error),
                    }
                }
                Err(error) => Err(error),
            }
        } else {
            sqlx::query(&$queries.create)
                .bind($key)
                .bind($value)
                .bind($expiry)
                .bind($now)
                .execute($exec)
                .await
                .map(|done| done.rows_affected() == 1)
        }
    }};
}

/// A session store on a SQL table laid out like Flask-Session's SQLAlchemy backend
/// (`id`, `session_id`, `data`, `expiry`), so a Flask app and a Rust service can share it.
///
/// Cheap to clone: clones share one pool. Build it with [`SqlStore::connect`],
/// [`SqlStore::from_pool`] or [`SqlStore::builder`].
#[derive(Clone, Debug)]
pub struct SqlStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: SqlPool,
    backend: Backend,
    table: TableOptions,
    queries: Queries,
    cleanup_batch_size: u32,
    max_value_bytes: Option<usize>,
    /// Whether the owners table exists (it is created with the table; a schema managed
    /// elsewhere may lack it, and then the store keeps no owner index).
    owner_index: std::sync::atomic::AtomicBool,
}

impl SqlStore {
    /// A builder with Flask-Session's defaults (table `sessions`, created when missing).
    pub fn builder() -> SqlStoreBuilder {
        SqlStoreBuilder::default()
    }

    /// Connects to `url` (`postgres://`, `mysql://`, `mariadb://`, `sqlite:`; see
    /// [`SqlStoreBuilder::url`]) with the default options and creates the table if it does
    /// not exist. Shorthand for `SqlStore::builder().url(url).connect()`.
    pub async fn connect(url: &str) -> Result<SqlStore, SetupError> {
        SqlStore::builder().url(url).connect().await
    }

    /// Uses a pool you own, with the default options, and creates the table if it does not
    /// exist.
    pub async fn from_pool(pool: impl Into<SqlPool>) -> Result<SqlStore, SetupError> {
        SqlStore::builder().with_pool(pool).await
    }

    /// The statements that create the table, for teams that manage their schema
    /// themselves (migrations): run them in order, then build the store with
    /// [`SqlStoreBuilder::table_exists`]. Every statement is idempotent
    /// (`IF NOT EXISTS`).
    ///
    /// The columns are Flask-Session's; additionally there is an index on `expiry` (for
    /// cleanup) and, on MySQL/MariaDB, `session_id` uses the binary collation
    /// `utf8mb4_bin` so that ids differing only in case stay distinct.
    ///
    /// ```
    /// use session_sql::{Backend, SqlStore, TableOptions};
    ///
    /// let statements = SqlStore::create_table_sql(Backend::Postgres, &TableOptions::new())?;
    /// assert!(statements[0].contains("session_id VARCHAR(255)"));
    /// # Ok::<(), session_core::ConfigError>(())
    /// ```
    pub fn create_table_sql(
        backend: Backend,
        options: &TableOptions,
    ) -> Result<Vec<String>, ConfigError> {
        options.validate()?;
        Ok(options.ddl(backend))
    }

    pub(crate) fn new(
        pool: SqlPool,
        table: TableOptions,
        cleanup_batch_size: u32,
        max_value_bytes: Option<usize>,
    ) -> SqlStore {
        let backend = pool.backend();
        let queries = Queries::new(backend, &table);
        SqlStore {
            inner: Arc::new(Inner {
                pool,
                backend,
                table,
                queries,
                cleanup_batch_size,
                max_value_bytes,
                owner_index: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Looks for the owners table (`<table>_owners`) and keeps the owner index only when
    /// it is there; a schema created before it, with [`SqlStoreBuilder::table_exists`],
    /// may lack it (create it with [`SqlStore::create_table_sql`]'s last statement).
    pub(crate) async fn probe_owner_index(&self) {
        let query = &self.inner.queries.index_probe;
        let found = on_pool!(&self.inner.pool, pool, _stamp, _expiry => {
            sqlx::query(query).fetch_optional(pool).await.map(|_| ())
        });
        if let Err(error) = &found {
            tracing::warn!(
                %error,
                table = self.inner.table.owners_table_name(),
                "no owner index table: sessions cannot be listed or revoked per owner"
            );
        }
        self.inner
            .owner_index
            .store(found.is_ok(), std::sync::atomic::Ordering::Relaxed);
    }

    fn check_owner(&self, index: &str) -> Result<(), StoreError> {
        if !self
            .inner
            .owner_index
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Err(StoreError::Unsupported(format!(
                "the owner index table {} is missing or lacks the expected columns \
                 (SqlStore::create_table_sql lists its statement)",
                self.inner.table.owners_table_name()
            )));
        }
        let chars = index.chars().count();
        if index.contains('\0') || chars > MAX_OWNER_INDEX_CHARS {
            return Err(StoreError::InvalidKey(format!(
                "the owner index name ({chars} characters) does not fit the owner column \
                 ({MAX_OWNER_INDEX_CHARS}, no NUL)"
            )));
        }
        Ok(())
    }

    /// The database behind this store.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// The pool (shared with the store).
    pub fn pool(&self) -> &SqlPool {
        &self.inner.pool
    }

    /// Table, schema and sequence in use.
    pub fn table_options(&self) -> &TableOptions {
        &self.inner.table
    }

    /// Rows removed per statement by [`cleanup`](SessionStore::cleanup).
    pub fn cleanup_batch_size(&self) -> u32 {
        self.inner.cleanup_batch_size
    }

    /// The largest value the `data` column holds, when the database limits it (MySQL's
    /// `BLOB`: 65 535 bytes). Larger values fail with [`StoreError::TooLarge`].
    pub fn max_value_bytes(&self) -> Option<usize> {
        self.inner.max_value_bytes
    }

    /// When an entry written now with `ttl` expires, in the precision the column keeps.
    fn expiry_after(&self, now: time::PrimitiveDateTime, ttl: Duration) -> time::PrimitiveDateTime {
        let expiry = clock::expiry_after(now, ttl);
        if self.inner.backend == Backend::MySql {
            clock::ceil_to_second(expiry)
        } else {
            expiry
        }
    }

    fn check_key(&self, key: &str) -> Result<(), StoreError> {
        if key.contains('\0') {
            return Err(StoreError::InvalidKey(
                "the key contains a NUL character".to_owned(),
            ));
        }
        let chars = key.chars().count();
        if chars > MAX_KEY_CHARS {
            return Err(StoreError::InvalidKey(format!(
                "the key is {chars} characters long; the session_id column holds {MAX_KEY_CHARS}"
            )));
        }
        Ok(())
    }

    fn check_size(&self, value: &[u8]) -> Result<(), StoreError> {
        match self.inner.max_value_bytes {
            Some(limit) if value.len() > limit => Err(self.too_large(value.len())),
            _ => Ok(()),
        }
    }

    fn too_large(&self, size: usize) -> StoreError {
        StoreError::TooLarge {
            size,
            limit: self.inner.max_value_bytes.unwrap_or(size.saturating_sub(1)),
        }
    }

    /// A failed write: "data too long" is the value's fault, not the database's.
    fn write_error(&self, error: sqlx::Error, size: usize) -> StoreError {
        if is_data_too_long(&error) {
            self.too_large(size)
        } else {
            map_error(error)
        }
    }

    /// One rotation attempt inside a transaction; `Ok(false)` rolls back.
    async fn rotate_once(
        &self,
        old_key: &str,
        expected: &[u8],
        new_key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, sqlx::Error> {
        let queries = &self.inner.queries;
        let backend = self.inner.backend;
        let now = clock::now_utc();
        let expiry = self.expiry_after(now, ttl);
        on_pool!(&self.inner.pool, pool, stamp, _expiry => {
            // SQLite: take the write lock up front, so the busy timeout applies instead of
            // an immediate "database is locked" on upgrading a read lock.
            let mut tx = if backend == Backend::Sqlite {
                pool.begin_with("BEGIN IMMEDIATE").await?
            } else {
                pool.begin().await?
            };
            // Deleting first both checks the old entry and locks it against a concurrent
            // rotation or write until the commit.
            let removed = sqlx::query(&queries.delete_if_matches)
                .bind(old_key)
                .bind(expected)
                .bind(stamp(now))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if removed != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
            let created = create_with!(backend, queries, &mut *tx, new_key, value, stamp(expiry), stamp(now))?;
            if created {
                tx.commit().await?;
            } else {
                tx.rollback().await?;
            }
            Ok(created)
        })
    }
}

#[async_trait]
impl SessionStore for SqlStore {
    fn check_key(&self, key: &str) -> Result<(), StoreError> {
        SqlStore::check_key(self, key)
    }

    async fn load(&self, key: &str) -> Result<Option<StoredEntry>, StoreError> {
        self.check_key(key)?;
        let now = clock::now_utc();
        let query = &self.inner.queries.load;
        on_pool!(&self.inner.pool, pool, stamp, expiry_of => {
            let row = sqlx::query(query)
                .bind(key)
                .bind(stamp(now))
                .fetch_optional(pool)
                .await
                .map_err(map_error)?;
            let Some(row) = row else {
                return Ok(None);
            };
            // A NULL `data` (possible in Flask's nullable column) holds no session.
            let value: Option<Vec<u8>> = row.try_get(0).map_err(map_error)?;
            let expires_at = expiry_of(row.try_get(1).map_err(map_error)?);
            Ok(value.map(|value| StoredEntry { value, expires_at }))
        })
    }

    async fn create(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        self.check_key(key)?;
        self.check_size(value)?;
        let now = clock::now_utc();
        let expiry = self.expiry_after(now, ttl);
        let (backend, queries) = (self.inner.backend, &self.inner.queries);
        on_pool!(&self.inner.pool, pool, stamp, _expiry => {
            create_with!(backend, queries, pool, key, value, stamp(expiry), stamp(now))
                .map_err(|error| self.write_error(error, value.len()))
        })
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.check_key(key)?;
        self.check_size(value)?;
        let now = clock::now_utc();
        let expiry = self.expiry_after(now, ttl);
        let query = &self.inner.queries.compare_and_set;
        on_pool!(&self.inner.pool, pool, stamp, _expiry => {
            let done = sqlx::query(query)
                .bind(value)
                .bind(stamp(expiry))
                .bind(key)
                .bind(expected)
                .bind(stamp(now))
                .execute(pool)
                .await
                .map_err(|error| self.write_error(error, value.len()))?;
            Ok(done.rows_affected() == 1)
        })
    }

    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.check_key(key)?;
        let now = clock::now_utc();
        let expiry = self.expiry_after(now, ttl);
        let query = &self.inner.queries.touch;
        on_pool!(&self.inner.pool, pool, stamp, _expiry => {
            let done = sqlx::query(query)
                .bind(stamp(expiry))
                .bind(key)
                .bind(stamp(now))
                .execute(pool)
                .await
                .map_err(map_error)?;
            Ok(done.rows_affected() == 1)
        })
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.check_key(key)?;
        let query = &self.inner.queries.delete;
        on_pool!(&self.inner.pool, pool, _stamp, _expiry => {
            sqlx::query(query)
                .bind(key)
                .execute(pool)
                .await
                .map_err(map_error)?;
        });
        Ok(())
    }

    /// `DELETE … WHERE session_id = ? AND data = ? AND expiry > now`: one statement.
    async fn compare_and_delete(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        self.check_key(key)?;
        let now = clock::now_utc();
        let query = &self.inner.queries.delete_if_matches;
        on_pool!(&self.inner.pool, pool, stamp, _expiry => {
            let done = sqlx::query(query)
                .bind(key)
                .bind(expected)
                .bind(stamp(now))
                .execute(pool)
                .await
                .map_err(map_error)?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// One transaction: remove the old row if it still holds `expected`, insert the new
    /// one if its key is free (or holds an expired row), commit; otherwise roll back.
    async fn rotate(
        &self,
        old_key: &str,
        expected: &[u8],
        new_key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.check_key(old_key)?;
        self.check_key(new_key)?;
        self.check_size(value)?;
        let mut attempt = 1;
        loop {
            match self
                .rotate_once(old_key, expected, new_key, value, ttl)
                .await
            {
                Err(error) if is_retryable(&error) && attempt < ROTATE_ATTEMPTS => {
                    tracing::debug!(%error, attempt, "session id rotation retried");
                    attempt += 1;
                }
                result => return result.map_err(|error| self.write_error(error, value.len())),
            }
        }
    }

    /// Removes rows whose expiry has passed (or is NULL, which Flask-Session also treats
    /// as expired), [`cleanup_batch_size`](SqlStore::cleanup_batch_size) rows per
    /// statement so that no statement holds locks for long, and returns how many.
    async fn cleanup(&self) -> Result<u64, StoreError> {
        let now = clock::now_utc();
        let batch = self.inner.cleanup_batch_size;
        let query = &self.inner.queries.cleanup;
        let mut total = 0u64;
        loop {
            let removed = on_pool!(&self.inner.pool, pool, stamp, _expiry => {
                sqlx::query(query)
                    .bind(stamp(now))
                    .bind(i64::from(batch))
                    .execute(pool)
                    .await
                    .map_err(map_error)?
                    .rows_affected()
            });
            total += removed;
            if removed < u64::from(batch) {
                return Ok(total);
            }
        }
    }

    /// Live rows whose `session_id` starts with `prefix`, in the database's order of
    /// `session_id`, after the cursor (the last key of the previous page).
    async fn scan(
        &self,
        prefix: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        self.check_key(prefix)?;
        let after = cursor.unwrap_or_default();
        self.check_key(&after)?;
        let limit = limit.clamp(1, 100_000);
        let pattern = like_prefix(prefix);
        let now = clock::now_utc();
        let query = &self.inner.queries.scan;
        let keys: Vec<String> = on_pool!(&self.inner.pool, pool, stamp, _expiry => {
            sqlx::query_scalar(query)
                .bind(&pattern)
                .bind(&after)
                .bind(stamp(now))
                .bind(limit as i64)
                .fetch_all(pool)
                .await
                .map_err(map_error)?
        });
        let next = (keys.len() == limit)
            .then(|| keys.last().cloned())
            .flatten();
        // SQLite's and MySQL's LIKE ignore ASCII case: keep the exact prefix only.
        let keys = keys
            .into_iter()
            .filter(|key| key.starts_with(prefix))
            .collect();
        Ok(ScanPage { keys, next })
    }

    fn owner_index(&self) -> bool {
        self.inner
            .owner_index
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// An upsert into `<table>_owners`.
    async fn index_put(&self, index: &str, entry: &IndexEntry) -> Result<(), StoreError> {
        self.check_owner(index)?;
        self.check_key(&entry.key)?;
        let query = &self.inner.queries.index_put;
        let number = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        on_pool!(&self.inner.pool, pool, _stamp, _expiry => {
            sqlx::query(query)
                .bind(index)
                .bind(entry.key.as_str())
                .bind(number(entry.created))
                .bind(number(entry.last_seen))
                .bind(number(entry.expires_at))
                .execute(pool)
                .await
                .map_err(map_error)?;
        });
        Ok(())
    }

    async fn index_remove(&self, index: &str, key: &str) -> Result<(), StoreError> {
        self.check_owner(index)?;
        let query = &self.inner.queries.index_remove;
        on_pool!(&self.inner.pool, pool, _stamp, _expiry => {
            sqlx::query(query)
                .bind(index)
                .bind(key)
                .execute(pool)
                .await
                .map_err(map_error)?;
        });
        Ok(())
    }

    /// Removes the owner's expired rows, then lists the rest.
    async fn index_list(&self, index: &str) -> Result<Vec<IndexEntry>, StoreError> {
        self.check_owner(index)?;
        let now = i64::try_from(session_core_unix_now()).unwrap_or(i64::MAX);
        let (prune, list) = (
            &self.inner.queries.index_prune,
            &self.inner.queries.index_list,
        );
        let number = |n: i64| u64::try_from(n).unwrap_or(0);
        on_pool!(&self.inner.pool, pool, _stamp, _expiry => {
            sqlx::query(prune)
                .bind(index)
                .bind(now)
                .execute(pool)
                .await
                .map_err(map_error)?;
            let rows = sqlx::query(list)
                .bind(index)
                .fetch_all(pool)
                .await
                .map_err(map_error)?;
            rows.iter()
                .map(|row| {
                    Ok(IndexEntry {
                        // MySQL reports the utf8mb4_bin column as VARBINARY: then read bytes.
                        key: row
                            .try_get::<String, _>(0)
                            .or_else(|_| {
                                row.try_get::<Vec<u8>, _>(0)
                                    .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                            })
                            .map_err(map_error)?,
                        created: number(row.try_get(1).map_err(map_error)?),
                        last_seen: number(row.try_get(2).map_err(map_error)?),
                        expires_at: number(row.try_get(3).map_err(map_error)?),
                    })
                })
                .collect()
        })
    }
}

/// A `LIKE` pattern matching the keys that start with `prefix`, with `!` as the escape
/// character (one that means nothing to any of the three databases' string literals).
fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '!' | '%' | '_') {
            pattern.push('!');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Now in Unix seconds.
fn session_core_unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
