//! Mapping of filesystem errors onto [`StoreError`].

use std::io::{self, ErrorKind};

use session_core::StoreError;

/// Kinds that mean "the storage did not answer" (a network filesystem gone away, a wait
/// cut short) rather than "the storage refused" (permissions, a full disk).
fn is_unavailable(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::TimedOut
            | ErrorKind::Interrupted
            | ErrorKind::WouldBlock
            | ErrorKind::NotConnected
            | ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
    )
}

pub(crate) fn io_error(error: io::Error) -> StoreError {
    if is_unavailable(error.kind()) {
        StoreError::unavailable(error)
    } else {
        StoreError::backend(error)
    }
}
