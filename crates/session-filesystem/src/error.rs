//! Mapping of filesystem and cacache errors onto [`StoreError`].

use std::io::ErrorKind;

use session_core::StoreError;

pub(crate) use session_core::file_index::{io_error, is_unavailable};

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
