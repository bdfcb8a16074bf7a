//! Mapping of filesystem and cacache errors onto [`StoreError`].

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

pub(crate) fn cacache_error(error: cacache::Error) -> StoreError {
    match &error {
        cacache::Error::IoError(io, _) if is_unavailable(io.kind()) => {
            StoreError::unavailable(error)
        }
        _ => StoreError::backend(error),
    }
}

/// True when cacache reports that a file it looked for does not exist.
pub(crate) fn is_not_found(error: &cacache::Error) -> bool {
    matches!(error, cacache::Error::IoError(io, _) if io.kind() == ErrorKind::NotFound)
}
