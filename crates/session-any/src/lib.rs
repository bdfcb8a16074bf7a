#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod builder;
pub mod names;
mod session_type;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use session_core::{SessionStore, SetupError, StoreError, StoredEntry};

pub use builder::AnyStoreBuilder;
pub use names::{env_names, STORE_ENV_NAMES};
pub use session_type::SessionType;

/// The store `SESSION_TYPE` chose, behind one type: a [`SessionStore`] that hands every
/// call to the chosen store, and says which type it is.
///
/// Cheap to clone (clones share the store). For a `SessionManager`, prefer
/// `SessionManager::from_shared(store.into_shared(), config)` to `SessionManager::new(store,
/// config)`: [`into_shared`](Self::into_shared) hands over the chosen store itself, so each
/// store call is one dynamic call instead of two.
#[derive(Clone)]
pub struct AnyStore {
    /// Called through [`inner`](Self::inner), never on the `Arc` itself.
    store: Arc<dyn SessionStore>,
    session_type: SessionType,
}

impl fmt::Debug for AnyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyStore")
            .field("session_type", &self.session_type)
            .finish_non_exhaustive()
    }
}

impl AnyStore {
    /// The store the process environment configures (see the crate documentation for
    /// every variable). Shorthand for `AnyStoreBuilder::from_env().connect()`.
    pub async fn from_env() -> Result<AnyStore, SetupError> {
        AnyStoreBuilder::from_env().connect().await
    }

    /// The store the variables read through `lookup` configure. Shorthand for
    /// `AnyStoreBuilder::from_lookup(lookup).connect()`.
    pub async fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<AnyStore, SetupError> {
        AnyStoreBuilder::from_lookup(lookup).connect().await
    }

    /// A builder reading the process environment, for adjusting the chosen backend's
    /// builder in code. Same as [`AnyStoreBuilder::from_env`].
    pub fn builder() -> AnyStoreBuilder {
        AnyStoreBuilder::from_env()
    }

    /// Wraps a store built some other way, labelled `session_type`.
    pub fn from_shared(session_type: SessionType, store: Arc<dyn SessionStore>) -> AnyStore {
        AnyStore {
            store,
            session_type,
        }
    }

    /// The type of the chosen store.
    pub fn session_type(&self) -> SessionType {
        self.session_type
    }

    /// The chosen store, for calls: one dynamic call each. On the `Arc` itself, method
    /// resolution would pick `impl SessionStore for Arc<S>`, which adds a boxed future.
    fn inner(&self) -> &dyn SessionStore {
        self.store.as_ref()
    }

    /// The chosen store, shared, for `SessionManager::from_shared` or anything else that
    /// takes an `Arc<dyn SessionStore>`.
    pub fn into_shared(self) -> Arc<dyn SessionStore> {
        self.store
    }
}

/// Every call goes to the chosen store, its own overrides (atomic rotation, cleanup)
/// included.
#[async_trait]
impl SessionStore for AnyStore {
    async fn load(&self, key: &str) -> Result<Option<StoredEntry>, StoreError> {
        self.inner().load(key).await
    }

    async fn create(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        self.inner().create(key, value, ttl).await
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.inner()
            .compare_and_set(key, expected, value, ttl)
            .await
    }

    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.inner().touch(key, ttl).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner().delete(key).await
    }

    async fn compare_and_delete(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        self.inner().compare_and_delete(key, expected).await
    }

    async fn rotate(
        &self,
        old_key: &str,
        expected: &[u8],
        new_key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.store
            .rotate(old_key, expected, new_key, value, ttl)
            .await
    }

    async fn cleanup(&self) -> Result<u64, StoreError> {
        self.inner().cleanup().await
    }

    fn invalidations(&self) -> Option<session_core::InvalidationFeed> {
        self.inner().invalidations()
    }

    async fn scan(
        &self,
        prefix: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<session_core::ScanPage, StoreError> {
        self.inner().scan(prefix, cursor, limit).await
    }

    async fn count(&self, prefix: &str) -> Result<u64, StoreError> {
        self.inner().count(prefix).await
    }

    fn check_key(&self, key: &str) -> Result<(), StoreError> {
        self.inner().check_key(key)
    }

    // The owner index of the chosen store (docs/owners.md).
    fn owner_index(&self) -> bool {
        self.inner().owner_index()
    }

    async fn index_put(
        &self,
        index: &str,
        entry: &session_core::IndexEntry,
    ) -> Result<(), StoreError> {
        self.inner().index_put(index, entry).await
    }

    async fn index_remove(&self, index: &str, key: &str) -> Result<(), StoreError> {
        self.inner().index_remove(index, key).await
    }

    async fn index_list(&self, index: &str) -> Result<Vec<session_core::IndexEntry>, StoreError> {
        self.inner().index_list(index).await
    }
}
