//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use session_core::testkit::Guarded;
use session_core::SessionStore;
use session_filesystem::FileStore;
use tempfile::TempDir;

/// A [`FileStore`] in a fresh temporary directory, removed when the store (and so the
/// test holding it) is dropped. Derefs to the store.
pub type TempStore = Guarded<FileStore, TempDir>;

pub fn temp_store() -> TempStore {
    let guard = tempfile::tempdir().expect("temporary directory");
    let store = FileStore::open(guard.path().join("flask_session")).expect("open store");
    Guarded { store, guard }
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
