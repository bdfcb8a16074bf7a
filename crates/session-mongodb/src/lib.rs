#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod builder;
mod error;
mod store;

pub use builder::{
    MongoStoreBuilder, DEFAULT_COLLECTION, DEFAULT_CONNECT_TIMEOUT, DEFAULT_DATABASE,
    DEFAULT_HEARTBEAT_FREQUENCY, DEFAULT_OPERATION_TIMEOUT, DEFAULT_SERVER_SELECTION_TIMEOUT,
    DEFAULT_URL,
};
pub use store::{
    MongoStore, EXPIRATION_INDEX, ID_INDEX, MAX_KEY_BYTES, MAX_VALUE_BYTES,
    OWNERS_COLLECTION_SUFFIX, OWNERS_EXPIRY_GRACE, OWNERS_KEY_INDEX,
};

/// The MongoDB driver this store is built on, re-exported so that applications passing
/// their own [`mongodb::Client`] to [`MongoStoreBuilder::client`] use the same version.
pub use mongodb;
