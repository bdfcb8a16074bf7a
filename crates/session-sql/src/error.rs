//! sqlx's errors mapped onto [`StoreError`], and the errors of building a store.

use session_core::{ConfigError, StoreError};
use sqlx::error::DatabaseError;

/// Why a [`SqlStore`](crate::SqlStore) could not be built.
///
/// The `Display` text never contains the connection URL (it may hold a password).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// An option is invalid; the message names it.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The connection URL cannot be used.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    /// The database could not be reached, or refused a statement while preparing the table.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// With `table_exists`, the table is missing or lacks Flask-Session's columns.
    #[error("session table {table} cannot be used: {source}")]
    Table {
        /// The table, schema-qualified when a schema is set.
        table: String,
        /// What the database answered.
        #[source]
        source: StoreError,
    },
}

impl SetupError {
    /// True when the database could not be reached (as opposed to a wrong setting).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, SetupError::Store(StoreError::Unavailable(_)))
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
/// connections) and 57P (server shutting down or starting); MySQL's lock wait timeout;
/// SQLite's busy, locked and cannot-open.
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
        if mysql.number() == LOCK_WAIT_TIMEOUT {
            return true;
        }
    }
    error.code().is_some_and(|state| {
        state.starts_with("08") || state.starts_with("53") || state.starts_with("57P")
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
    fn setup_errors_say_what_is_wrong() {
        let error = SetupError::from(ConfigError {
            option: "SESSION_SQLALCHEMY_TABLE",
            message: "the name is empty".into(),
        });
        assert_eq!(
            error.to_string(),
            "invalid SESSION_SQLALCHEMY_TABLE: the name is empty"
        );
        assert!(!error.is_unavailable());
        let error = SetupError::from(map_error(sqlx::Error::PoolTimedOut));
        assert!(error.is_unavailable());
    }
}
