//! fred's errors mapped onto [`StoreError`].

use fred::error::{Error, ErrorKind};
use session_core::StoreError;

/// Error replies with which a healthy deployment answers while it is failing over, loading
/// its data set or busy: the server is (temporarily) not usable rather than the request wrong.
const TRANSIENT_REPLIES: [&str; 7] = [
    "LOADING",
    "MASTERDOWN",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "BUSY",
    "READONLY",
    "NOREPLICAS",
];

/// fred's error, of kind `Unknown`, for a command it found no connection to write to (the
/// connection is down and being re-established) and gave up on after its retries; its
/// replica variant starts the same way.
const UNROUTABLE: &str = "Failed to route command";

/// Whether `error` says the connection the command went out on was lost (closed, reset or
/// refused), so that nothing is known of the command's outcome but no answer will come.
/// A timeout is not: the server may still be working on the command.
pub(crate) fn connection_lost(error: &Error) -> bool {
    *error.kind() == ErrorKind::IO
}

/// Connection, I/O and timeout failures (and transient server states) become
/// [`StoreError::Unavailable`]; everything else [`StoreError::Backend`].
pub(crate) fn map_error(error: Error) -> StoreError {
    if *error.kind() == ErrorKind::IO {
        // fred's message for an I/O error is the Debug form of the io::Error.
        return StoreError::unavailable(readable_io_error(error.details()));
    }
    if is_unavailable(&error) {
        StoreError::unavailable(error)
    } else {
        StoreError::backend(error)
    }
}

/// `Os { code: 111, kind: ConnectionRefused, message: "Connection refused" }` →
/// `I/O error: Connection refused (os error 111)`; other texts are kept.
fn readable_io_error(details: &str) -> String {
    let message = details
        .split_once("message: \"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(message, _)| message);
    let code = details
        .split_once("code: ")
        .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
        .filter(|code| !code.is_empty());
    match (message, code) {
        (Some(message), Some(code)) => format!("I/O error: {message} (os error {code})"),
        (Some(message), None) => format!("I/O error: {message}"),
        _ => format!("I/O error: {details}"),
    }
}

fn is_unavailable(error: &Error) -> bool {
    match error.kind() {
        ErrorKind::IO
        | ErrorKind::Timeout
        | ErrorKind::Canceled
        | ErrorKind::Backpressure
        | ErrorKind::Cluster
        | ErrorKind::Sentinel
        | ErrorKind::Routing => true,
        _ => {
            let details = error.details();
            details.starts_with(UNROUTABLE)
                || TRANSIENT_REPLIES
                    .iter()
                    .any(|prefix| details.starts_with(prefix))
        }
    }
}

/// Whether the server did not know a script's digest (its script cache is empty after a
/// restart, a failover or `SCRIPT FLUSH`).
pub(crate) fn is_noscript(error: &Error) -> bool {
    error.details().starts_with("NOSCRIPT")
}

/// An answer of a shape the commands never produce.
pub(crate) fn unexpected_reply(command: &str, reply: &fred::types::Value) -> StoreError {
    StoreError::backend(format!(
        "unexpected reply to {command} from Redis: {:?}",
        reply.kind()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_read_as_one_line_without_debug_output() {
        assert_eq!(
            readable_io_error(
                r#"Os { code: 111, kind: ConnectionRefused, message: "Connection refused" }"#
            ),
            "I/O error: Connection refused (os error 111)"
        );
        assert_eq!(readable_io_error("early eof"), "I/O error: early eof");
    }

    fn kind_of(error: StoreError) -> &'static str {
        match error {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Backend(_) => "backend",
            _ => "other",
        }
    }

    #[test]
    fn connection_failures_are_unavailable() {
        for kind in [
            ErrorKind::IO,
            ErrorKind::Timeout,
            ErrorKind::Canceled,
            ErrorKind::Backpressure,
            ErrorKind::Cluster,
            ErrorKind::Sentinel,
            ErrorKind::Routing,
        ] {
            let error = Error::new(kind.clone(), "connection lost");
            assert_eq!(kind_of(map_error(error)), "unavailable", "{kind:?}");
        }
        // What fred answers for a command it had no connection for while the server was
        // down (seen in restart.rs: a load right after the kill).
        let unroutable = Error::new(ErrorKind::Unknown, "Failed to route command.");
        assert_eq!(kind_of(map_error(unroutable)), "unavailable");
        let other = Error::new(ErrorKind::Unknown, "something else");
        assert_eq!(kind_of(map_error(other)), "backend");
    }

    #[test]
    fn transient_replies_are_unavailable() {
        for reply in [
            "LOADING Redis is loading the dataset in memory",
            "MASTERDOWN Link with MASTER is down",
            "READONLY You can't write against a read only replica.",
            "BUSY Redis is busy running a script.",
        ] {
            let error = Error::new(ErrorKind::Unknown, reply);
            assert_eq!(kind_of(map_error(error)), "unavailable", "{reply}");
        }
    }

    #[test]
    fn other_errors_are_backend_errors() {
        for (kind, reply) in [
            (
                ErrorKind::InvalidArgument,
                "WRONGTYPE Operation against a key holding the wrong kind of value",
            ),
            (ErrorKind::Auth, "WRONGPASS invalid username-password pair"),
            (
                ErrorKind::Unknown,
                "ERR invalid expire time in 'set' command",
            ),
            (ErrorKind::Config, "bad config"),
            (ErrorKind::Parse, "bad frame"),
        ] {
            let error = Error::new(kind, reply);
            assert_eq!(kind_of(map_error(error)), "backend", "{reply}");
        }
    }

    #[test]
    fn noscript_is_recognised() {
        assert!(is_noscript(&Error::new(
            ErrorKind::Unknown,
            "NOSCRIPT No matching script. Please use EVAL."
        )));
        assert!(!is_noscript(&Error::new(
            ErrorKind::Unknown,
            "ERR something"
        )));
    }
}
