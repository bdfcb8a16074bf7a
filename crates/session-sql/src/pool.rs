//! [`SqlPool`]: one sqlx pool of whichever database the store uses.

use crate::schema::Backend;

/// A sqlx connection pool for one of the supported databases.
///
/// Build a [`SqlStore`](crate::SqlStore) from a pool you already have (the equivalent of
/// Flask-Session's `SESSION_SQLALCHEMY`) with
/// [`SqlStoreBuilder::with_pool`](crate::SqlStoreBuilder::with_pool); the pools convert
/// into this type with `into()`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum SqlPool {
    /// A PostgreSQL pool.
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
    /// A MySQL or MariaDB pool.
    #[cfg(feature = "mysql")]
    MySql(sqlx::MySqlPool),
    /// A SQLite pool.
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
}

impl SqlPool {
    /// The database this pool talks to.
    pub fn backend(&self) -> Backend {
        match self {
            #[cfg(feature = "postgres")]
            SqlPool::Postgres(_) => Backend::Postgres,
            #[cfg(feature = "mysql")]
            SqlPool::MySql(_) => Backend::MySql,
            #[cfg(feature = "sqlite")]
            SqlPool::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Closes every connection of the pool (shared with any clones).
    pub async fn close(&self) {
        match self {
            #[cfg(feature = "postgres")]
            SqlPool::Postgres(pool) => pool.close().await,
            #[cfg(feature = "mysql")]
            SqlPool::MySql(pool) => pool.close().await,
            #[cfg(feature = "sqlite")]
            SqlPool::Sqlite(pool) => pool.close().await,
        }
    }
}

#[cfg(feature = "postgres")]
impl From<sqlx::PgPool> for SqlPool {
    fn from(pool: sqlx::PgPool) -> SqlPool {
        SqlPool::Postgres(pool)
    }
}

#[cfg(feature = "mysql")]
impl From<sqlx::MySqlPool> for SqlPool {
    fn from(pool: sqlx::MySqlPool) -> SqlPool {
        SqlPool::MySql(pool)
    }
}

#[cfg(feature = "sqlite")]
impl From<sqlx::SqlitePool> for SqlPool {
    fn from(pool: sqlx::SqlitePool) -> SqlPool {
        SqlPool::Sqlite(pool)
    }
}

/// Runs `$body` with `$pool` bound to the typed sqlx pool, `$stamp` to the function that
/// turns a naive-UTC timestamp into that database's parameter, and `$expiry` to the one
/// that reads an `expiry` column value back. The body is compiled once per database.
macro_rules! on_pool {
    ($sql_pool:expr, $pool:ident, $stamp:ident, $expiry:ident => $body:expr) => {
        match $sql_pool {
            #[cfg(feature = "postgres")]
            $crate::pool::SqlPool::Postgres($pool) => {
                #[allow(unused_variables)]
                let $stamp = $crate::clock::postgres_stamp;
                #[allow(unused_variables)]
                let $expiry =
                    |at: Option<::time::PrimitiveDateTime>| at.map($crate::clock::to_system_time);
                $body
            }
            #[cfg(feature = "mysql")]
            $crate::pool::SqlPool::MySql($pool) => {
                #[allow(unused_variables)]
                let $stamp = $crate::clock::mysql_stamp;
                #[allow(unused_variables)]
                let $expiry =
                    |at: Option<::time::PrimitiveDateTime>| at.map($crate::clock::to_system_time);
                $body
            }
            #[cfg(feature = "sqlite")]
            $crate::pool::SqlPool::Sqlite($pool) => {
                #[allow(unused_variables)]
                let $stamp = $crate::clock::sqlite_stamp;
                #[allow(unused_variables)]
                let $expiry = |at: Option<String>| {
                    at.as_deref()
                        .and_then($crate::clock::parse_sqlite)
                        .map($crate::clock::to_system_time)
                };
                $body
            }
        }
    };
}

pub(crate) use on_pool;
