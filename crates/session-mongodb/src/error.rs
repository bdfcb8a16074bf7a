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
    if let ErrorKind::ServerSelection { message, .. } = error.kind.as_ref() {
        return StoreError::unavailable(server_selection_summary(message));
    }
    if unavailable {
        StoreError::unavailable(error)
    } else {
        StoreError::backend(error)
    }
}

/// The driver's server-selection failure in one short line: its message embeds the whole
/// topology (every server with its labels and sources); what an operator needs is that no
/// server answered, and the first server's own error (`Connection refused`, a DNS failure).
fn server_selection_summary(message: &str) -> String {
    let first_line = message
        .split(". Topology:")
        .next()
        .unwrap_or(message)
        .trim();
    let cause = message
        .split_once("Error: Kind: ")
        .map(|(_, rest)| rest.split(", labels:").next().unwrap_or(rest).trim());
    match cause {
        Some(cause) if !cause.is_empty() => format!("{first_line} ({cause})"),
        _ => first_line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_selection_failure_is_one_short_line() {
        let message = "Server selection timeout: No available servers. Topology: { Type: Unknown, \
            Servers: [ { Address: 127.0.0.1:9, Type: Unknown, Error: Kind: I/O error: Connection \
            refused (os error 111), labels: {\"SystemOverloadedError\", \"RetryableError\"}, \
            source: None, server response: None } ] }, labels: {}";
        assert_eq!(
            server_selection_summary(message),
            "Server selection timeout: No available servers (I/O error: Connection refused (os error 111))"
        );
        assert_eq!(server_selection_summary("timed out"), "timed out");
    }
}
