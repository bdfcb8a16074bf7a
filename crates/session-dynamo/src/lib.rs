#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod builder;
mod error;
mod store;

pub use builder::{
    DynamoStoreBuilder, DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_ENDPOINT_URL,
    DEFAULT_MAX_ATTEMPTS, DEFAULT_OPERATION_TIMEOUT, DEFAULT_REGION, DEFAULT_TABLE_NAME,
    DEFAULT_TABLE_READY_TIMEOUT,
};
pub use store::{
    DynamoStore, ATTR_EXPIRATION, ATTR_ID, ATTR_OWNER_INDEX, ATTR_OWNER_KEY, ATTR_VALUE,
    MAX_ITEM_BYTES, MAX_KEY_BYTES, MAX_VALUE_BYTES, OWNERS_EXPIRY_GRACE, OWNERS_TABLE_SUFFIX,
};

/// The DynamoDB client crate this store is built on, re-exported so that applications
/// passing their own [`Client`](aws_sdk_dynamodb::Client) use the same version.
pub use aws_sdk_dynamodb;
