#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

// The reply parser for the fuzz targets in fuzz/. A feature rather than an always-built
// hidden module: normal builds neither compile nor ship it, and cargo-fuzz asks for it by
// name. Unit tests build it too, so `clippy --all-targets` checks it without the feature.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod pool;
mod protocol;
mod ring;
mod store;

pub use store::{
    MemcachedStore, MemcachedStoreBuilder, DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_VALUE_BYTES, DEFAULT_POOL_SIZE, DEFAULT_PORT, DEFAULT_SERVER, MAX_KEY_BYTES,
    RELATIVE_EXPIRY_LIMIT_SECS,
};
