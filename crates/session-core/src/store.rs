//! The store trait: opaque bytes under string keys, with an expiry.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::cache::InvalidationFeed;
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

    /// Removes the entry only while it still holds exactly `expected`, atomically on the
    /// server; `false` when it changed or is gone. Id rotation is built on it (see
    /// [`rotate_in_steps`]), so that a rotation racing another writer or a logout loses
    /// nothing and revives nothing.
    async fn compare_and_delete(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError>;

    /// Moves a session to a new key (id rotation): writes `value` under `new_key` only if
    /// the entry under `old_key` still holds `expected` and `new_key` is free, then removes
    /// `old_key`. Returns `false`, having changed nothing, when either check fails.
    ///
    /// The default, [`rotate_in_steps`], creates the new entry, then removes the old one
    /// with [`compare_and_delete`](Self::compare_and_delete); when the old entry changed or
    /// vanished meanwhile (another request saved or logged out), or could not be removed,
    /// it undoes the rotation by deleting the new entry, so the old id never stays valid
    /// beside the new one and a logged-out session is never revived under a new id. A
    /// crash between the steps leaves at most an unreferenced new entry (its id was never
    /// sent to anyone) until it expires. Stores that can, do it in one atomic step.
    async fn rotate(
        &self,
        old_key: &str,
        expected: &[u8],
        new_key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        rotate_in_steps(self, old_key, expected, new_key, value, ttl).await
    }

    /// Removes expired entries and returns how many, for stores without native expiry.
    /// Stores with native TTL keep the default, which does nothing.
    async fn cleanup(&self) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// The feed through which the store reports keys that other writers changed, when it
    /// can notice them (Redis with client tracking). With one, core keeps a coherent cache
    /// of recently used sessions by default. A store that returns a feed promises that a
    /// key it has read or written for core stays reported until it is invalidated, and
    /// that any read or write it serves for core happens while the feed is tracking (or
    /// the feed is told otherwise). The default: no feed.
    fn invalidations(&self) -> Option<InvalidationFeed> {
        None
    }

    // ---- The owner index (`docs/owners.md`): which sessions belong to whom. ----
    //
    // Beside the sessions, in the store's own layout (a Redis hash per owner, a table next
    // to Flask's...), never changing what a Flask reader sees. Core keeps it in step with
    // its commits and prunes what it finds stale, so a store only stores and lists; the
    // defaults say the store has no index. `index` names one owner's index:
    // `SESSION_KEY_PREFIX` + `owner:` + the owner (so a key-value store can use it as a
    // key, and apps with different prefixes never share an index).

    /// Whether this store can hold a session under `key`, checked without I/O against the
    /// store's key rules (length, characters). [`SessionManager::try_new`] asks it for the
    /// longest key the configuration makes, so that a `SESSION_KEY_PREFIX` the store
    /// cannot hold is refused at start-up instead of failing every write. The default
    /// accepts every key.
    ///
    /// [`SessionManager::try_new`]: crate::SessionManager::try_new
    fn check_key(&self, key: &str) -> Result<(), StoreError> {
        let _ = key;
        Ok(())
    }

    /// Whether this store keeps an owner index. Core makes no index call on a store that
    /// does not, and [`SessionManager::sessions_of`](crate::SessionManager::sessions_of)
    /// answers [`StoreError::Unsupported`].
    fn owner_index(&self) -> bool {
        false
    }

    /// Records (or replaces) the entry for `entry.key` in the index named `index`. The index may
    /// keep it until `entry.expires_at` at least; entries past it may be dropped.
    async fn index_put(&self, index: &str, entry: &IndexEntry) -> Result<(), StoreError> {
        let _ = (index, entry);
        Err(no_owner_index())
    }

    /// Removes `key` from the index named `index`; removing a missing entry is not an error.
    async fn index_remove(&self, index: &str, key: &str) -> Result<(), StoreError> {
        let _ = (index, key);
        Err(no_owner_index())
    }

    /// Every entry of the index named `index`, in no particular order. It may include entries
    /// whose session has ended: core checks each against the session and prunes.
    async fn index_list(&self, index: &str) -> Result<Vec<IndexEntry>, StoreError> {
        let _ = index;
        Err(no_owner_index())
    }

    // ---- Listing (`session-cli count` and `list`): the keys the store holds. ----
    //
    // For operators, not for requests: a page may cost a scan of the server. The defaults
    // say the store cannot list.

    /// A page of about `limit` keys starting with `prefix` (at most `limit`, except where
    /// the server takes it as a hint: Redis), after `cursor` (`None`: from the start; then
    /// the previous page's [`ScanPage::next`]). Every live key present for the whole scan
    /// is listed (once, except Redis during a rehash); keys written or removed meanwhile
    /// may or may not be,
    /// and expired entries the store has not removed yet may be (callers that care
    /// [`load`](Self::load) each key). A store that cannot list answers
    /// [`StoreError::Unsupported`] saying why.
    async fn scan(
        &self,
        prefix: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        let _ = (prefix, cursor, limit);
        Err(StoreError::Unsupported(
            "this session store cannot list its sessions".to_owned(),
        ))
    }

    /// How many keys start with `prefix`. The default counts the pages of
    /// [`scan`](Self::scan); a store that can count without listing (or without knowing
    /// the keys, like cachelib's hashed file names) overrides it.
    async fn count(&self, prefix: &str) -> Result<u64, StoreError> {
        let mut cursor = None;
        let mut total = 0u64;
        loop {
            let page = self.scan(prefix, cursor, SCAN_PAGE).await?;
            total += page.keys.len() as u64;
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(total),
            }
        }
    }
}

/// The page size [`SessionStore::count`]'s default asks [`SessionStore::scan`] for.
pub const SCAN_PAGE: usize = 1000;

/// One page of [`SessionStore::scan`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanPage {
    /// Store keys (prefix included), in the store's order.
    pub keys: Vec<String>,
    /// Where the next page starts; `None` when this was the last.
    pub next: Option<String>,
}

impl ScanPage {
    /// The page after `cursor` of `keys` sorted and deduplicated, for stores that list
    /// every key at once (in memory, a directory index): the cursor is the last key given.
    pub fn from_keys(
        keys: impl IntoIterator<Item = String>,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> ScanPage {
        let mut keys: Vec<String> = keys
            .into_iter()
            .filter(|key| key.starts_with(prefix))
            .filter(|key| cursor.is_none_or(|cursor| key.as_str() > cursor))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let limit = limit.max(1);
        let next = (keys.len() > limit).then(|| keys[limit - 1].clone());
        keys.truncate(limit);
        ScanPage { keys, next }
    }
}

/// One session in an owner's index: its store key and times, in Unix seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// The session's store key.
    pub key: String,
    /// When the session was created (or got its owner).
    pub created: u64,
    /// When core last wrote or extended the session.
    pub last_seen: u64,
    /// When the session expires as of that write.
    pub expires_at: u64,
}

/// The error of a store without an owner index.
fn no_owner_index() -> StoreError {
    StoreError::Unsupported(
        "this session store keeps no owner index, so it cannot list or revoke a user's \
         sessions (docs/owners.md lists the stores that can)"
            .to_owned(),
    )
}

/// Id rotation from the store's own atomic steps, for stores (or cases, such as keys in
/// two Redis Cluster slots) where no single operation can do it: creates the new entry,
/// removes the old one with [`SessionStore::compare_and_delete`], and undoes the new entry
/// when the old one changed, vanished or could not be removed. The default
/// [`SessionStore::rotate`].
///
/// Undoing fails closed: when the removal of the old entry fails in a way that leaves
/// unknown whether it happened, the new entry is deleted all the same, so the session may
/// end (the user logs in again) but is never valid under two ids, and a session logged out
/// meanwhile is never revived.
pub async fn rotate_in_steps<S: SessionStore + ?Sized>(
    store: &S,
    old_key: &str,
    expected: &[u8],
    new_key: &str,
    value: &[u8],
    ttl: Duration,
) -> Result<bool, StoreError> {
    if !store.create(new_key, value, ttl).await? {
        return Ok(false);
    }
    let moved = store.compare_and_delete(old_key, expected).await;
    if !matches!(moved, Ok(true)) {
        // Nobody else knows the fresh key, so deleting it cannot remove anyone's session.
        if let Err(error) = store.delete(new_key).await {
            tracing::warn!(%error, "could not undo an id rotation; the unused new entry will expire");
        }
    }
    moved
}

/// Implements [`SessionStore`] for a type that derefs to a store, every method (defaulted
/// ones too) going to `**self`: the one delegation `Arc<S>` and `testkit::Guarded` share, so
/// a method added to the trait cannot be forgotten by either.
macro_rules! impl_store_by_deref {
    (impl<$($param:ident),*> for $ty:ty where $($bounds:tt)*) => {
        #[async_trait::async_trait]
        impl<$($param),*> $crate::SessionStore for $ty
        where
            $($bounds)*
        {
            async fn load(&self, key: &str) -> Result<Option<$crate::StoredEntry>, $crate::StoreError> {
                (**self).load(key).await
            }
            async fn create(&self, key: &str, value: &[u8], ttl: ::std::time::Duration) -> Result<bool, $crate::StoreError> {
                (**self).create(key, value, ttl).await
            }
            async fn compare_and_set(
                &self,
                key: &str,
                expected: &[u8],
                value: &[u8],
                ttl: ::std::time::Duration,
            ) -> Result<bool, $crate::StoreError> {
                (**self).compare_and_set(key, expected, value, ttl).await
            }
            async fn touch(&self, key: &str, ttl: ::std::time::Duration) -> Result<bool, $crate::StoreError> {
                (**self).touch(key, ttl).await
            }
            async fn delete(&self, key: &str) -> Result<(), $crate::StoreError> {
                (**self).delete(key).await
            }
            async fn compare_and_delete(&self, key: &str, expected: &[u8]) -> Result<bool, $crate::StoreError> {
                (**self).compare_and_delete(key, expected).await
            }
            async fn rotate(
                &self,
                old_key: &str,
                expected: &[u8],
                new_key: &str,
                value: &[u8],
                ttl: ::std::time::Duration,
            ) -> Result<bool, $crate::StoreError> {
                (**self)
                    .rotate(old_key, expected, new_key, value, ttl)
                    .await
            }
            async fn cleanup(&self) -> Result<u64, $crate::StoreError> {
                (**self).cleanup().await
            }
            fn invalidations(&self) -> Option<$crate::InvalidationFeed> {
                (**self).invalidations()
            }
            fn check_key(&self, key: &str) -> Result<(), $crate::StoreError> {
                (**self).check_key(key)
            }
            fn owner_index(&self) -> bool {
                (**self).owner_index()
            }
            async fn index_put(&self, index: &str, entry: &$crate::IndexEntry) -> Result<(), $crate::StoreError> {
                (**self).index_put(index, entry).await
            }
            async fn index_remove(&self, index: &str, key: &str) -> Result<(), $crate::StoreError> {
                (**self).index_remove(index, key).await
            }
            async fn index_list(&self, index: &str) -> Result<Vec<$crate::IndexEntry>, $crate::StoreError> {
                (**self).index_list(index).await
            }
            async fn scan(
                &self,
                prefix: &str,
                cursor: Option<String>,
                limit: usize,
            ) -> Result<$crate::ScanPage, $crate::StoreError> {
                (**self).scan(prefix, cursor, limit).await
            }
            async fn count(&self, prefix: &str) -> Result<u64, $crate::StoreError> {
                (**self).count(prefix).await
            }
        }
    };
}
// testkit::Guarded is the other user.
#[cfg(feature = "testkit")]
pub(crate) use impl_store_by_deref;

impl_store_by_deref!(impl<S> for Arc<S> where S: SessionStore + ?Sized);

#[cfg(test)]
mod scan_tests {
    use super::ScanPage;

    #[test]
    fn pages_of_sorted_keys_resume_after_the_cursor() {
        let keys = ["p:c", "p:a", "q:z", "p:b", "p:a"].map(str::to_owned);
        let first = ScanPage::from_keys(keys.clone(), "p:", None, 2);
        assert_eq!(first.keys, ["p:a", "p:b"]);
        assert_eq!(first.next.as_deref(), Some("p:b"));
        let last = ScanPage::from_keys(keys, "p:", first.next.as_deref(), 2);
        assert_eq!(last.keys, ["p:c"]);
        assert_eq!(last.next, None);
    }
}
