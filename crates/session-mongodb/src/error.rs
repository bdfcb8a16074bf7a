//! Mapping of driver errors onto [`StoreError`].

use mongodb::error::{Error, ErrorKind, WriteFailure};
use session_core::StoreError;

/// MongoDB's `DuplicateKey` code: an insert or upsert hit the unique index on `id`.
pub(crate) const DUPLICATE_KEY: i32 = 11000;

/// Server error codes that mean "not now" rather than "never": the node is stepping down,
/// shutting down, not (yet) primary, or a network hop failed behind it.
const TRANSIENT_CODES: &[i32] = &[
    6,     // HostUnreachable
    7,     // HostNotFound
    50,    // MaxTimeMSExpired
    89,    // NetworkTimeout
    91,    // ShutdownInProgress
    189,   // PrimarySteppedDown
    262,   // ExceededTimeLimit
    9001,  // SocketException
    10107, // NotWritablePrimary
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
];

/// The server's error code, for command and write errors.
pub(crate) fn error_code(error: &Error) -> Option<i32> {
    match error.kind.as_ref() {
        ErrorKind::Command(command) => Some(command.code),
        ErrorKind::Write(WriteFailure::WriteError(write)) => Some(write.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(concern)) => Some(concern.code),
        _ => None,
    }
}

/// Whether `error` is a duplicate-key violation.
pub(crate) fn is_duplicate_key(error: &Error) -> bool {
    error_code(error) == Some(DUPLICATE_KEY)
}

/// Connection, server-selection and transient server states are
/// [`StoreError::Unavailable`]; everything else the server or driver reports is
/// [`StoreError::Backend`].
pub(crate) fn map_error(error: Error) -> StoreError {
    let unavailable = match error.kind.as_ref() {
        ErrorKind::ServerSelection { .. }
        | ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::DnsResolve { .. } => true,
        _ => error_code(&error).is_some_and(|code| TRANSIENT_CODES.contains(&code)),
    };
    if unavailable {
        StoreError::unavailable(error)
    } else {
        StoreError::backend(error)
    }
}
