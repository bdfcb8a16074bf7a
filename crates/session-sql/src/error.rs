//! sqlx's errors mapped onto [`StoreError`], and the error of a table that cannot be used.

use std::fmt;

use session_core::StoreError;
use sqlx::error::DatabaseError;

/// The session table is missing or lacks Flask-Session's columns: names the table, keeps
/// what the database answered as the source.
#[derive(Debug)]
pub(crate) struct TableUnusable {
    /// The table, schema-qualified when a schema is set.
    pub(crate) table: String,
    pub(crate) source: sqlx::Error,
}

impl fmt::Display for TableUnusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "session table {} cannot be used: {}",
            self.table, self.source
        )
    }
}

impl std::error::Error for TableUnusable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl TableUnusable {
    /// `Unavailable` when the database went away meanwhile, `Backend` otherwise.
    pub(crate) fn into_store_error(self) -> StoreError {
        if is_unavailable(&self.source) {
            StoreError::unavailable(self)
        } else {
            StoreError::backend(self)
        }
    }
}

/// Connection, I/O and pool timeouts (and server states that mean "not now") become
/// [`StoreError::Unavailable`]; everything else [`StoreError::Backend`].
pub(crate) fn map_error(error: sqlx::Error) -> StoreError {
    if is_unavailable(&error) {
        StoreError::unavailable(error)
    } else {
        StoreError::backend(error)
    }
}

fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(database) => database_unavailable(database.as_ref()),
        _ => false,
    }
}

/// SQLSTATE classes 08 (connection exception), 53 (insufficient resources, e.g. too many
/// connections) and 57P (server shutting down or starting); the timeouts the store sets
/// (PostgreSQL's `lock_timeout` 55P03 and `statement_timeout` 57014, MySQL's lock wait
/// timeout, MariaDB's `max_statement_time`, MySQL's `max_execution_time`): the database
/// gave up for now, so the request answers 503 like any other store timeout; SQLite's
/// busy, locked and cannot-open.
fn database_unavailable(error: &dyn DatabaseError) -> bool {
    #[cfg(feature = "sqlite")]
    if error
        .try_downcast_ref::<sqlx::sqlite::SqliteError>()
        .is_some()
    {
        const BUSY: u32 = 5;
        const LOCKED: u32 = 6;
        const CANTOPEN: u32 = 14;
        let primary = error
            .code()
            .and_then(|code| code.parse::<u32>().ok())
            .map(|code| code & 0xff);
        return matches!(primary, Some(BUSY | LOCKED | CANTOPEN));
    }
    #[cfg(feature = "mysql")]
    if let Some(mysql) = error.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        const LOCK_WAIT_TIMEOUT: u16 = 1205;
        const MARIADB_STATEMENT_TIMEOUT: u16 = 1969;
        const MYSQL_EXECUTION_TIMEOUT: u16 = 3024;
        if matches!(
            mysql.number(),
            LOCK_WAIT_TIMEOUT | MARIADB_STATEMENT_TIMEOUT | MYSQL_EXECUTION_TIMEOUT
        ) {
            return true;
        }
    }
    error.code().is_some_and(|state| {
        state.starts_with("08")
            || state.starts_with("53")
            || state.starts_with("57P")
            || state == "55P03"
            || state == "57014"
    })
}

/// A unique-key conflict (another writer holds the key).
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database) if database.is_unique_violation())
}

/// A deadlock or serialization failure: the transaction was rolled back and may be retried.
pub(crate) fn is_retryable(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database)
        if database.code().is_some_and(|state| state == "40001" || state == "40P01"))
}

/// MySQL's "data too long for column" (a value over the `data` column's size).
pub(crate) fn is_data_too_long(error: &sqlx::Error) -> bool {
    #[cfg(feature = "mysql")]
    if let sqlx::Error::Database(database) = error {
        if let Some(mysql) = database.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
            const DATA_TOO_LONG: u16 = 1406;
            return mysql.number() == DATA_TOO_LONG;
        }
    }
    let _ = error;
    false
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    fn kind_of(error: StoreError) -> &'static str {
        match error {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Backend(_) => "backend",
            _ => "other",
        }
    }

    #[test]
    fn connection_failures_are_unavailable() {
        let errors = [
            sqlx::Error::Io(io::Error::from(io::ErrorKind::ConnectionRefused)),
            sqlx::Error::Io(io::Error::from(io::ErrorKind::ConnectionReset)),
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::WorkerCrashed,
            sqlx::Error::Protocol("unexpected end of stream".into()),
        ];
        for error in errors {
            let text = error.to_string();
            assert_eq!(kind_of(map_error(error)), "unavailable", "{text}");
        }
    }

    #[test]
    fn other_errors_are_backend_errors() {
        let errors = [
            sqlx::Error::RowNotFound,
            sqlx::Error::ColumnNotFound("data".into()),
            sqlx::Error::Configuration("bad option".into()),
            sqlx::Error::Decode("not bytes".into()),
        ];
        for error in errors {
            let text = error.to_string();
            assert_eq!(kind_of(map_error(error)), "backend", "{text}");
            assert!(!is_unique_violation(&sqlx::Error::RowNotFound));
            assert!(!is_retryable(&sqlx::Error::RowNotFound));
            assert!(!is_data_too_long(&sqlx::Error::RowNotFound));
        }
    }

    #[test]
    fn a_missing_table_is_named() {
        let error = TableUnusable {
            table: "\"web\".\"sessions\"".to_owned(),
            source: sqlx::Error::ColumnNotFound("expiry".into()),
        };
        assert!(error
            .to_string()
            .starts_with("session table \"web\".\"sessions\" cannot be used: "));
        assert_eq!(kind_of(error.into_store_error()), "backend");
        let error = TableUnusable {
            table: "t".to_owned(),
            source: sqlx::Error::PoolTimedOut,
        };
        assert_eq!(kind_of(error.into_store_error()), "unavailable");
    }
}
