#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod batch;
mod builder;
mod cluster;
mod error;
mod scripts;
mod store;
mod tracking;

pub use builder::{
    default_pool_size, RedisStoreBuilder, DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_POOL_SIZE, DEFAULT_RECONNECT_MAX_DELAY, DEFAULT_URL,
};
pub use store::{RedisStore, MAX_VALUE_BYTES};

/// The Redis client crate this store is built on, re-exported so that
/// [`RedisStore::from_pool`] users configure the same version.
pub use fred;
