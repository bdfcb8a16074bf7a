#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod builder;
mod error;
mod lock;
mod modes;
mod ops;

/// The owner index's directory under the store's directory (docs/owners.md).
const OWNERS_DIR: &str = "owners-v1";

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use session_core::{IndexEntry, SessionStore, SetupError, StoreError, StoredEntry};

pub use crate::builder::FileStoreBuilder;
use crate::lock::{lock_keys_exclusive, lock_shard, shard_of, Mode};

/// Name of the default directory, as Flask-Session's `SESSION_FILE_DIR` default.
const DEFAULT_DIR_NAME: &str = "flask_session";

/// How long an operation waits for a key's lock by default before failing with
/// [`StoreError::Unavailable`]. See [`FileStoreBuilder::lock_timeout`].
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Sessions in files under one directory: no server, shared safely by every thread and
/// every process that opens the same directory.
///
/// Built on [`cacache`]: each session is an index entry holding its expiry, pointing at a
/// content file holding its bytes. Writes that must be atomic (`create`,
/// `compare_and_set`, `rotate`, `touch`, ...) run under an exclusive OS file lock on the
/// key's lock file, reads under a shared one, so concurrent requests in any number of
/// processes never lose an update. Expired entries are invisible at once and removed from
/// disk by [`cleanup`](SessionStore::cleanup).
///
/// Cloning is cheap and clones share the directory. Blocking file work runs on Tokio's
/// blocking pool when called inside a Tokio runtime (and inline otherwise).
///
/// ```
/// use std::time::Duration;
/// use session_core::SessionStore;
/// use session_filesystem::FileStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let temp = tempfile::tempdir().unwrap();
/// # let dir = temp.path().join("flask_session");
/// let store = FileStore::open(&dir)?;
/// assert!(store.create("session:abc", b"\x80", Duration::from_secs(60)).await?);
/// let entry = store.load("session:abc").await?.expect("just saved");
/// assert_eq!(entry.value, b"\x80");
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct FileStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: modes::Root,
    /// The owner index, in `<dir>/owners-v1` (see `owners.rs`).
    owners: session_core::file_index::FileOwnerIndex,
    lock_timeout: Duration,
}

impl FileStore {
    /// Opens (creating if needed) a store in `dir` with the default lock timeout.
    /// Shorthand for `FileStore::builder().dir(dir).build()`; see
    /// [`FileStoreBuilder::build`] for what it checks.
    pub fn open(dir: impl Into<PathBuf>) -> Result<FileStore, SetupError> {
        FileStore::builder().dir(dir).build()
    }

    /// A builder starting from the defaults: [`FileStore::default_dir`],
    /// [`DEFAULT_LOCK_TIMEOUT`].
    pub fn builder() -> FileStoreBuilder {
        FileStoreBuilder::default()
    }

    /// `flask_session` under the current working directory (Flask-Session's default
    /// `SESSION_FILE_DIR`); the relative path `flask_session` if the working directory
    /// cannot be read.
    pub fn default_dir() -> PathBuf {
        std::env::current_dir()
            .map(|cwd| cwd.join(DEFAULT_DIR_NAME))
            .unwrap_or_else(|_| PathBuf::from(DEFAULT_DIR_NAME))
    }

    /// The store's directory, as an absolute path.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The permission bits of every file the store writes (`SESSION_FILE_MODE`).
    pub fn file_mode(&self) -> u32 {
        self.inner.dir.file_mode()
    }

    /// How long a call waits for another thread or process to release a key's lock.
    pub fn lock_timeout(&self) -> Duration {
        self.inner.lock_timeout
    }

    /// Runs blocking file work off the async executor.
    async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        session_core::file_index::run_blocking("file store", move || work(&inner)).await
    }

    /// Runs `work` on `key` under the key's exclusive lock.
    async fn exclusive<T, F>(&self, key: &str, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&modes::Root, &str, u64) -> Result<T, StoreError> + Send + 'static,
    {
        let key = key.to_owned();
        self.run(move |inner| {
            let _lock = lock_shard(
                &inner.dir,
                shard_of(&key),
                Mode::Exclusive,
                inner.lock_timeout,
            )?;
            work(&inner.dir, &key, ops::now_ms())
        })
        .await
    }
}

#[async_trait]
impl SessionStore for FileStore {
    async fn load(&self, key: &str) -> Result<Option<StoredEntry>, StoreError> {
        let key = key.to_owned();
        self.run(move |inner| {
            let _lock = lock_shard(&inner.dir, shard_of(&key), Mode::Shared, inner.lock_timeout)?;
            ops::load(&inner.dir, &key, ops::now_ms())
        })
        .await
    }

    async fn create(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        let value = value.to_vec();
        self.exclusive(key, move |dir, key, now| {
            ops::create(dir, key, &value, ttl, now)
        })
        .await
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let (expected, value) = (expected.to_vec(), value.to_vec());
        self.exclusive(key, move |dir, key, now| {
            ops::compare_and_set(dir, key, &expected, &value, ttl, now)
        })
        .await
    }

    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.exclusive(key, move |dir, key, now| ops::touch(dir, key, ttl, now))
            .await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.exclusive(key, |dir, key, _| ops::delete(dir, key))
            .await
    }

    async fn compare_and_delete(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        let expected = expected.to_vec();
        self.exclusive(key, move |dir, key, now| {
            ops::compare_and_delete(dir, key, &expected, now)
        })
        .await
    }

    /// Atomic: both keys' locks are held while the old entry is checked, the new one
    /// written and the old one removed.
    async fn rotate(
        &self,
        old_key: &str,
        expected: &[u8],
        new_key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let (old_key, new_key) = (old_key.to_owned(), new_key.to_owned());
        let (expected, value) = (expected.to_vec(), value.to_vec());
        self.run(move |inner| {
            let _locks =
                lock_keys_exclusive(&inner.dir, &[&old_key, &new_key], inner.lock_timeout)?;
            ops::rotate(
                &inner.dir,
                &old_key,
                &expected,
                &new_key,
                &value,
                ttl,
                ops::now_ms(),
            )
        })
        .await
    }

    /// Removes every expired entry with its content file and returns how many. Entries
    /// this store did not write (no expiry in their metadata) count as expired. Owner
    /// index entries expired for over a minute are removed too (not counted).
    async fn cleanup(&self) -> Result<u64, StoreError> {
        self.run(|inner| {
            let now = ops::now_ms();
            let mut removed = 0;
            for key in ops::cleanup_candidates(&inner.dir, now) {
                let _lock = lock_shard(
                    &inner.dir,
                    shard_of(&key),
                    Mode::Exclusive,
                    inner.lock_timeout,
                )?;
                if ops::remove_if_expired(&inner.dir, &key, now)? {
                    removed += 1;
                }
            }
            // Owner index entries are not sessions: pruned, not counted.
            if let Err(error) = inner.owners.cleanup(now / 1000) {
                tracing::warn!(%error, "owner index not cleaned up");
            }
            Ok(removed)
        })
        .await
    }

    /// The live keys of cacache's index, sorted; the cursor is the last key of the
    /// previous page. Each page reads the whole index (an operator's tool, not a request's).
    async fn scan(
        &self,
        prefix: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<session_core::ScanPage, StoreError> {
        let prefix = prefix.to_owned();
        self.run(move |inner| {
            let keys = ops::live_keys(&inner.dir, ops::now_ms());
            Ok(session_core::ScanPage::from_keys(
                keys,
                &prefix,
                cursor.as_deref(),
                limit,
            ))
        })
        .await
    }

    /// The owner index is kept: one small file per entry under `<dir>/owners-v1`, written
    /// by an atomic rename, so no lock is taken (see the README's "Owner index").
    fn owner_index(&self) -> bool {
        true
    }

    async fn index_put(&self, index: &str, entry: &IndexEntry) -> Result<(), StoreError> {
        self.inner.owners.index_put(index, entry).await
    }

    async fn index_remove(&self, index: &str, key: &str) -> Result<(), StoreError> {
        self.inner.owners.index_remove(index, key).await
    }

    /// Entries expired for over a minute are left out (and removed), as are corrupt files.
    async fn index_list(&self, index: &str) -> Result<Vec<IndexEntry>, StoreError> {
        self.inner.owners.index_list(index).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Wake, Waker};

    struct NoopWake;
    impl Wake for NoopWake {
        fn wake(self: Arc<Self>) {}
    }

    #[test]
    fn works_without_a_tokio_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path().join("store")).unwrap();
        let waker = Waker::from(Arc::new(NoopWake));
        let mut cx = Context::from_waker(&waker);
        // Outside Tokio the work runs inline, so each call completes on its first poll.
        let create = pin!(store.create("k", b"v", Duration::from_secs(60)));
        assert!(matches!(create.poll(&mut cx), Poll::Ready(Ok(true))));
        let load = pin!(store.load("k"));
        match load.poll(&mut cx) {
            Poll::Ready(Ok(Some(entry))) => assert_eq!(entry.value, b"v"),
            other => panic!("load outside a runtime gave {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_panicking_operation_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path().join("store")).unwrap();
        let result: Result<(), _> = store.run(|_| panic!("simulated bug")).await;
        assert!(matches!(result, Err(StoreError::Backend(_))), "{result:?}");
    }
}
