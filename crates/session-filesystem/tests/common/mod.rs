//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use session_core::{IndexEntry, SessionStore, StoreError, StoredEntry};
use session_filesystem::FileStore;
use tempfile::TempDir;

/// A [`FileStore`] in a fresh temporary directory that is removed when the store (and so
/// the test holding it) is dropped.
pub struct TempStore {
    pub store: FileStore,
    // Dropped after `store`: fields drop in declaration order.
    pub temp: TempDir,
}

impl TempStore {
    pub fn new() -> TempStore {
        let temp = tempfile::tempdir().expect("temporary directory");
        let store = FileStore::open(temp.path().join("flask_session")).expect("open store");
        TempStore { store, temp }
    }

    pub fn dir(&self) -> &Path {
        self.store.dir()
    }
}

#[session_core::async_trait]
impl SessionStore for TempStore {
    async fn load(&self, key: &str) -> Result<Option<StoredEntry>, StoreError> {
        self.store.load(key).await
    }
    async fn create(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        self.store.create(key, value, ttl).await
    }
    async fn compare_and_set(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.store.compare_and_set(key, expected, value, ttl).await
    }
    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.store.touch(key, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.store.delete(key).await
    }
    async fn compare_and_delete(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        self.store.compare_and_delete(key, expected).await
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
        self.store.cleanup().await
    }
    fn owner_index(&self) -> bool {
        self.store.owner_index()
    }
    async fn index_put(&self, index: &str, entry: &IndexEntry) -> Result<(), StoreError> {
        self.store.index_put(index, entry).await
    }
    async fn index_remove(&self, index: &str, key: &str) -> Result<(), StoreError> {
        self.store.index_remove(index, key).await
    }
    async fn index_list(&self, index: &str) -> Result<Vec<IndexEntry>, StoreError> {
        self.store.index_list(index).await
    }
}

/// Every regular file under `dir`, recursively (none when `dir` does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// cacache's content files (one per stored session).
pub fn content_files(store: &FileStore) -> Vec<PathBuf> {
    files_under(&store.dir().join("content-v2"))
}

/// cacache's index bucket files (one per stored key).
pub fn index_files(store: &FileStore) -> Vec<PathBuf> {
    files_under(&store.dir().join("index-v5"))
}

/// Increments the decimal counter under `key` with load + compare_and_set, retrying on
/// conflict; returns how many attempts it took.
pub async fn increment(store: &dyn SessionStore, key: &str, ttl: Duration) -> u32 {
    for attempt in 1..=10_000 {
        let current = store
            .load(key)
            .await
            .expect("load")
            .expect("counter exists")
            .value;
        let n: u64 = std::str::from_utf8(&current)
            .expect("utf-8 counter")
            .parse()
            .expect("decimal counter");
        let next = (n + 1).to_string();
        if store
            .compare_and_set(key, &current, next.as_bytes(), ttl)
            .await
            .expect("compare_and_set")
        {
            return attempt;
        }
        tokio::task::yield_now().await;
    }
    panic!("an increment never succeeded");
}
