//! Mapping of filesystem errors onto [`StoreError`](session_core::StoreError): the rule
//! of every file-based store, in session-core.

pub(crate) use session_core::file_index::io_error;
