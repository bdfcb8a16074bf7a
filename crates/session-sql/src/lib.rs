#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(not(any(feature = "postgres", feature = "mysql", feature = "sqlite")))]
compile_error!("session-sql needs at least one of the features `postgres`, `mysql`, `sqlite`");

mod builder;
mod clock;
mod error;
mod pool;
mod queries;
mod schema;
mod sqlalchemy_url;
mod store;

pub use builder::{
    SqlStoreBuilder, DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_CLEANUP_BATCH_SIZE, DEFAULT_MAX_CONNECTIONS,
};
pub use pool::SqlPool;
pub use schema::{
    Backend, TableOptions, DEFAULT_TABLE, MAX_IDENTIFIER_LEN, MAX_KEY_CHARS, MAX_OWNER_INDEX_CHARS,
    MYSQL_BLOB_MAX, MYSQL_LONGBLOB_MAX, MYSQL_MEDIUMBLOB_MAX,
};
pub use sqlalchemy_url::url_from_sqlalchemy;
pub use store::SqlStore;

/// The sqlx version this store is built on, re-exported so that pools passed to
/// [`SqlStoreBuilder::with_pool`] come from the same version.
pub use sqlx;
