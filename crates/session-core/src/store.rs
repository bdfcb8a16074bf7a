//! The store trait: opaque bytes under string keys, with an expiry.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::error::StoreError;

/// An entry read from a store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEntry {
    /// The stored bytes, exactly as written.
    pub value: Vec<u8>,
    /// When the entry expires, if the store can tell cheaply. The lifecycle uses it to skip
    /// expiry extensions while most of the lifetime remains; `None` means "always extend".
    pub expires_at: Option<SystemTime>,
}

/// Where sessions live: bytes under keys, with a time to live.
///
/// A store knows nothing of cookies, formats or session rules; `session-core` decides what
/// to write and when. Every method returns a typed [`StoreError`] and never panics.
/// Implementations must never return an expired entry from [`load`](Self::load).
///
/// The conformance kit (`session_core::testkit`, feature `testkit`) checks every
/// requirement below against a real server.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// The entry under `key`, or `None` when it is missing or expired.
    async fn load(&self, key: &str) -> Result<Option<StoredEntry>, StoreError>;

    /// Writes `value` under `key` (insert or overwrite), expiring after `ttl`.
    async fn save(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError>;

    /// Writes only when no live entry exists under `key`; `false` when one does.
    async fn create(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError>;

    /// Writes `value` only when the stored bytes are still exactly `expected`; `false`
    /// when they changed or the entry is gone. Atomic on the server.
    async fn compare_and_set(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Extends the expiry of a live entry to `ttl` from now without rewriting it;
    /// `false` when there is no live entry.
    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, StoreError>;

    /// Removes the entry; removing a missing entry is not an error.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// Moves a session to a new key (id rotation): writes `value` under `new_key` only if
    /// the entry under `old_key` still holds `expected` and `new_key` is free, then removes
    /// `old_key`. Returns `false`, having changed nothing, when either check fails.
    ///
    /// The default runs [`compare_and_set`](Self::compare_and_set)-style checks as separate
    /// calls, so data is never lost but a crash in between can leave the old entry until it
    /// expires. Stores that can, do it in one atomic step.
    async fn rotate(
        &self,
        old_key: &str,
        expected: &[u8],
        new_key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        match self.load(old_key).await? {
            Some(entry) if entry.value == expected => {}
            _ => return Ok(false),
        }
        if !self.create(new_key, value, ttl).await? {
            return Ok(false);
        }
        // The new entry exists; a failed delete leaves the old one to expire, no data lost.
        if let Err(error) = self.delete(old_key).await {
            tracing::warn!(%error, "old session entry not deleted after id rotation; it will expire");
        }
        Ok(true)
    }

    /// Removes expired entries and returns how many, for stores without native expiry.
    /// Stores with native TTL keep the default, which does nothing.
    async fn cleanup(&self) -> Result<u64, StoreError> {
        Ok(0)
    }
}

#[async_trait]
impl<S: SessionStore + ?Sized> SessionStore for Arc<S> {
    async fn load(&self, key: &str) -> Result<Option<StoredEntry>, StoreError> {
        (**self).load(key).await
    }
    async fn save(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        (**self).save(key, value, ttl).await
    }
    async fn create(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        (**self).create(key, value, ttl).await
    }
    async fn compare_and_set(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        (**self).compare_and_set(key, expected, value, ttl).await
    }
    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        (**self).touch(key, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        (**self).delete(key).await
    }
    async fn rotate(
        &self,
        old_key: &str,
        expected: &[u8],
        new_key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        (**self)
            .rotate(old_key, expected, new_key, value, ttl)
            .await
    }
    async fn cleanup(&self) -> Result<u64, StoreError> {
        (**self).cleanup().await
    }
}
