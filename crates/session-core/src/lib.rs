#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod config;
mod data;
mod error;
mod format;
mod id;
mod manager;
mod memory;
mod session;
mod signer;
mod store;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use async_trait::async_trait;
pub use config::{SameSite, SessionConfig, SessionConfigBuilder, DEFAULT_LIFETIME};
pub use data::{SessionData, Value, PERMANENT_KEY};
pub use error::{BoxError, ConfigError, SessionError, SetupError, StoreError};
pub use format::{DecodeError, SerializationFormat};
pub use id::{SessionId, DEFAULT_ID_LENGTH, MAX_ID_CHARS, MAX_ID_LENGTH};
pub use manager::{FinishOutcome, SessionManager, CREATED_KEY};
pub use memory::{MemoryStore, DEFAULT_MAX_ENTRIES};
pub use session::Session;
pub use signer::Signer;
pub use store::{rotate_in_steps, SessionStore, StoredEntry};
