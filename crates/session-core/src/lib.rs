#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod boxing;
mod cache;
mod config;
mod cookie;
mod data;
mod error;
pub mod file_index;
mod file_mode;
mod format;
mod group_commit;
mod id;
mod lifecycle;
mod manager;
mod memory;
mod owner;
mod session;
mod signer;
mod store;
mod stripe;
mod timeouts;
pub mod timestamp;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use async_trait::async_trait;

/// What an application needs besides its framework adapter's `Session` extractor and
/// middleware; every adapter re-exports it, so that one dependency is enough.
pub mod prelude {
    pub use crate::{
        ConfigError, ErrorResponse, Keep, MemoryStore, OwnedSession, SameSite, SerializationFormat,
        SessionConfig, SessionConfigBuilder, SessionData, SessionError, SessionManager,
        SessionStore, StoreError, Value,
    };
}

/// For framework adapters: declares the request extractor `$name`, a newtype around
/// [`Session`] that derefs to it, so handlers call every session method on it directly.
/// The adapter then implements its framework's extractor trait for it (a foreign trait
/// needs a local type).
#[doc(hidden)]
#[macro_export]
macro_rules! session_extractor {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Debug)]
        pub struct $name(pub $crate::Session);

        impl ::core::ops::Deref for $name {
            type Target = $crate::Session;

            fn deref(&self) -> &$crate::Session {
                &self.0
            }
        }
    };
}
pub use boxing::box_in_place;
pub use cache::InvalidationFeed;
pub use config::{
    parse_bool, SameSite, SessionConfig, SessionConfigBuilder, DEFAULT_CACHE_MAX_BYTES,
    DEFAULT_CACHE_MAX_ENTRIES, DEFAULT_CLEANUP_MIN_INTERVAL, DEFAULT_LIFETIME,
    DEFAULT_STORE_TIMEOUT, MAX_LIFETIME,
};
pub use cookie::HeaderText;
pub use data::{SessionData, Value, PERMANENT_KEY};
pub use error::{BoxError, ConfigError, SessionError, SetupError, StoreError};
pub use file_mode::{
    check_file_mode, check_private_dir, dir_mode, parse_file_mode, DEFAULT_FILE_MODE,
    FILE_DIR_OPTION, FILE_MODE_OPTION,
};
pub use format::{DecodeError, JsonView, SerializationFormat};
pub use id::{SessionId, DEFAULT_ID_LENGTH, MAX_ID_CHARS, MAX_ID_LENGTH};
pub use lifecycle::{CREATED_KEY, LIFETIME_KEY};
pub use manager::{ErrorResponse, FinishOutcome, SessionManager};
pub use memory::{MemoryStore, DEFAULT_MAX_ENTRIES};
pub use owner::{Keep, OwnedSession, DEFAULT_OWNER_KEY, LAST_SEEN_RESOLUTION, MAX_OWNER_BYTES};
pub use session::Session;
pub use signer::Signer;
pub use store::{rotate_in_steps, IndexEntry, ScanPage, SessionStore, StoredEntry, SCAN_PAGE};
pub use timeouts::{driver_timeout, store_timeout_from_lookup, STORE_TIMEOUT_OPTION};
