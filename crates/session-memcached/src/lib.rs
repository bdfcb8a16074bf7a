#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod pool;
mod protocol;
mod ring;
mod store;

pub use store::{
    MemcachedStore, MemcachedStoreBuilder, DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_VALUE_BYTES, DEFAULT_POOL_SIZE, DEFAULT_PORT, DEFAULT_SERVER, MAX_KEY_BYTES,
    RELATIVE_EXPIRY_LIMIT_SECS,
};
