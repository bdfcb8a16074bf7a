#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod error;
mod files;
mod lock;
pub mod pickle;
mod transcode;

/// The owner index's directory in the session directory. It ends in cachelib's
/// transaction suffix ([`files::TEMP_SUFFIX`]), which cachelib's `_list_dir` skips: Flask's
/// cache never counts, prunes or clears it, and this store's own listings skip it.
const OWNERS_DIR: &str = "owners-v1.__wz_cache";

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use session_core::{ConfigError, IndexEntry, SessionStore, SetupError, StoreError, StoredEntry};

use crate::files::{expiry, now, Layout};
use crate::transcode::Decoded;

/// Flask-Session's default `SESSION_FILE_DIR` (and `SESSION_CACHELIB`'s directory):
/// `flask_session` under the working directory.
pub const DEFAULT_DIR: &str = "flask_session";

/// Flask-Session's default `SESSION_FILE_THRESHOLD` (and cachelib's): 500 entries.
pub const DEFAULT_THRESHOLD: u64 = 500;

/// Flask-Session's default `SESSION_FILE_MODE` (and cachelib's): `0o600`
/// ([`session_core::DEFAULT_FILE_MODE`]).
pub const DEFAULT_MODE: u32 = session_core::DEFAULT_FILE_MODE;

/// How long a write waits for the directory lock by default before failing with
/// [`StoreError::Unavailable`]. See [`CachelibStoreBuilder::lock_timeout`].
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// How a key becomes a file name: the hex digest of its UTF-8 bytes.
///
/// cachelib changed its default in 0.16.0; a Flask app on an older cachelib (or passing
/// `hash_method=hashlib.md5`) needs [`Md5`](FileNameHash::Md5), or neither side sees the
/// other's sessions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FileNameHash {
    /// SHA-256, cachelib 0.16.0 and later.
    #[default]
    Sha256,
    /// MD5, cachelib 0.15 and earlier.
    Md5,
}

impl FileNameHash {
    /// The file name of `key`: the lowercase hex digest of its UTF-8 bytes.
    pub fn file_name(self, key: &str) -> String {
        use sha2::Digest as _;
        let digest = match self {
            FileNameHash::Sha256 => sha2::Sha256::digest(key.as_bytes()).to_vec(),
            FileNameHash::Md5 => md5::Md5::digest(key.as_bytes()).to_vec(),
        };
        digest.iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

/// Sessions in Flask's own filesystem layout: cachelib's `FileSystemCache`, the storage of
/// Flask-Session's `SESSION_TYPE = "filesystem"` and of `"cachelib"` with a
/// `FileSystemCache`. A Flask app and a Rust service can share the directory.
///
/// Each session is one file named by the digest of its key, holding a 4-byte expiry and
/// the session dict as a pickle. [`load`](SessionStore::load) reads that pickle with this
/// crate's own [`pickle`] reader (which never runs anything) and hands session-core msgpack;
/// writes turn session-core's msgpack (or JSON) into the pickle Flask reads. Files this
/// store cannot read (a class it does not know, damage) load as no session, with a warning.
///
/// Writes are atomic across threads and processes: each one holds an exclusive lock on the
/// directory while it checks and replaces a file (through a temporary file and a rename),
/// so `create`, `compare_and_set`, `compare_and_delete` and `rotate` never lose an update
/// to another writer using this store. Flask's own writes take no lock and stay
/// last-writer-wins, as in cachelib.
///
/// Cloning is cheap and clones share the directory. Blocking file work runs on Tokio's
/// blocking pool when called inside a Tokio runtime (and inline otherwise).
///
/// ```
/// use std::time::Duration;
/// use session_core::SessionStore;
/// use session_cachelib::CachelibStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let temp = tempfile::tempdir()?;
/// # let dir = temp.path().join("flask_session");
/// let store = CachelibStore::open(&dir)?;
/// // A session as session-core writes it: the msgpack map {"user": "ann"}.
/// let session = b"\x81\xa4user\xa3ann";
/// assert!(store.create("session:abc", session, Duration::from_secs(60)).await?);
/// assert_eq!(store.load("session:abc").await?.unwrap().value, session);
/// // On disk: what Flask-Session would have written for {"user": "ann"}.
/// let file = std::fs::read(store.file_path("session:abc"))?;
/// assert_eq!(&file[4..6], b"\x80\x05");
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct CachelibStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    layout: Layout,
    /// The owner index, in `<dir>/owners-v1.__wz_cache` (see `owners.rs`).
    owners: session_core::file_index::FileOwnerIndex,
    lock_timeout: Duration,
}

/// Options of a [`CachelibStore`], with Flask-Session's defaults.
///
/// ```
/// use session_cachelib::{CachelibStore, FileNameHash};
///
/// # let temp = tempfile::tempdir().unwrap();
/// # let dir = temp.path().join("flask_session");
/// let store = CachelibStore::builder()
///     .dir(&dir)                             // SESSION_FILE_DIR
///     .file_name_hash(FileNameHash::Sha256)  // cachelib >= 0.16
///     .threshold(500)                        // SESSION_FILE_THRESHOLD
///     .mode(0o600)                           // SESSION_FILE_MODE
///     .build()?;
/// # Ok::<(), session_core::SetupError>(())
/// ```
#[derive(Clone, Debug)]
pub struct CachelibStoreBuilder {
    dir: PathBuf,
    hash: FileNameHash,
    threshold: u64,
    mode: u32,
    lock_timeout: Duration,
}

impl Default for CachelibStoreBuilder {
    fn default() -> Self {
        CachelibStoreBuilder {
            dir: PathBuf::from(DEFAULT_DIR),
            hash: FileNameHash::default(),
            threshold: DEFAULT_THRESHOLD,
            mode: DEFAULT_MODE,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
        }
    }
}

impl CachelibStoreBuilder {
    /// The directory (`SESSION_FILE_DIR`, default [`DEFAULT_DIR`] under the working
    /// directory). A relative path is resolved when the store is built.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = dir.into();
        self
    }

    /// How keys become file names (default [`FileNameHash::Sha256`], cachelib >= 0.16).
    pub fn file_name_hash(mut self, hash: FileNameHash) -> Self {
        self.hash = hash;
        self
    }

    /// Entries kept before writes prune (`SESSION_FILE_THRESHOLD`, default
    /// [`DEFAULT_THRESHOLD`]); 0 keeps no count and never prunes, as in cachelib.
    ///
    /// Pruning is cachelib's: once the count is over the threshold, a write first removes
    /// expired entries, then the entries that expire soonest, **live sessions included**,
    /// until the count is back at the threshold. Flask does the same on its writes.
    pub fn threshold(mut self, threshold: u64) -> Self {
        self.threshold = threshold;
        self
    }

    /// Permission bits of every file written (`SESSION_FILE_MODE`, default
    /// [`DEFAULT_MODE`]); must let the owner read. Ignored outside Unix.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// How long a write waits for another thread or process holding the directory lock
    /// before it fails with [`StoreError::Unavailable`] (default [`DEFAULT_LOCK_TIMEOUT`]).
    /// The lock is held only for the few file operations of one call (a whole directory
    /// scan for [`cleanup`](SessionStore::cleanup) and for pruning).
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// A builder with the options Flask-Session reads from its config, taken from the
    /// process environment (see [`from_lookup`](Self::from_lookup)).
    pub fn from_env() -> Result<CachelibStoreBuilder, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// A builder with `SESSION_FILE_DIR`, `SESSION_FILE_THRESHOLD` and `SESSION_FILE_MODE`
    /// read through `lookup`; unset or blank names keep their defaults. The mode is
    /// decimal as in Flask's config (`384`) or octal with a `0o` prefix (`0o600`); a
    /// leading zero alone (`0600`) is refused as ambiguous.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<CachelibStoreBuilder, ConfigError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let mut builder = CachelibStoreBuilder::default();
        if let Some(dir) = get("SESSION_FILE_DIR") {
            builder.dir = PathBuf::from(dir);
        }
        if let Some(threshold) = get("SESSION_FILE_THRESHOLD") {
            builder.threshold = threshold.trim().parse().map_err(|_| {
                ConfigError::new(
                    "SESSION_FILE_THRESHOLD",
                    format!("{threshold:?} is not a whole number of entries (0: no limit)"),
                )
            })?;
        }
        if let Some(mode) = get("SESSION_FILE_MODE") {
            builder.mode = session_core::parse_file_mode(&mode)?;
        }
        Ok(builder)
    }

    /// Creates the directory if needed (on Unix with [`session_core::dir_mode`] of the file
    /// mode, `0o700` by default; an existing one keeps its permissions), checks that it can be locked, and, with a threshold, recounts its
    /// entries into cachelib's count file as opening a `FileSystemCache` does. Blocking,
    /// but only a few file operations and one directory listing.
    pub fn build(self) -> Result<CachelibStore, SetupError> {
        if self.dir.as_os_str().is_empty() {
            return Err(ConfigError::new("SESSION_FILE_DIR", "must not be empty").into());
        }
        session_core::check_file_mode(self.mode)?;
        let dir_error = |error: std::io::Error| {
            ConfigError::new(
                "SESSION_FILE_DIR",
                format!("cannot use {}: {error}", self.dir.display()),
            )
        };
        let dir = std::path::absolute(&self.dir).map_err(dir_error)?;
        // An existing directory is not refused when others can list it (as core's
        // check_private_dir would): Flask's cachelib creates it with the umask, the file
        // names are hashes of the keys, and every file carries the mode.
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, session_core::dir_mode(self.mode));
        builder.create(&dir).map_err(dir_error)?;
        let layout = Layout::new(dir, self.hash, self.threshold, self.mode);
        {
            let _lock = lock::lock(&layout.dir, self.lock_timeout)?;
            layout.recount()?;
        }
        let owners =
            session_core::file_index::FileOwnerIndex::new(layout.dir.join(OWNERS_DIR), self.mode);
        Ok(CachelibStore {
            inner: Arc::new(Inner {
                layout,
                owners,
                lock_timeout: self.lock_timeout,
            }),
        })
    }
}

impl CachelibStore {
    /// A builder with Flask-Session's defaults.
    pub fn builder() -> CachelibStoreBuilder {
        CachelibStoreBuilder::default()
    }

    /// A store in `dir` with the other options at their defaults (SHA-256 names,
    /// threshold 500, mode `0o600`).
    pub fn open(dir: impl Into<PathBuf>) -> Result<CachelibStore, SetupError> {
        CachelibStore::builder().dir(dir).build()
    }

    /// The store's directory, as an absolute path.
    pub fn dir(&self) -> &Path {
        &self.inner.layout.dir
    }

    /// The file that holds `key` (whether or not it exists).
    pub fn file_path(&self, key: &str) -> PathBuf {
        self.inner.layout.path(key)
    }

    /// The number cachelib's count file holds (0 when there is none, as for a threshold
    /// of 0). cachelib keeps it approximately: Flask's writers update it without a lock.
    pub async fn count(&self) -> Result<i64, StoreError> {
        self.run(|inner| Ok(inner.layout.count())).await
    }

    /// Runs blocking file work off the async executor.
    async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        session_core::file_index::run_blocking("cachelib store", move || work(&inner)).await
    }

    /// Runs `work` under the directory lock, with the time it started.
    async fn locked<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Layout, f64) -> Result<T, StoreError> + Send + 'static,
    {
        self.run(move |inner| {
            let _lock = lock::lock(&inner.layout.dir, inner.lock_timeout)?;
            work(&inner.layout, now())
        })
        .await
    }
}

/// The live entry under `key`, read: `None` when missing, expired or unreadable (logged).
fn live(
    layout: &Layout,
    key: &str,
    now: f64,
) -> Result<Option<(files::Entry, Decoded)>, StoreError> {
    let Some(entry) = layout.read(key)? else {
        return Ok(None);
    };
    if !entry.is_live(now) {
        return Ok(None);
    }
    match transcode::decode(&entry.payload) {
        Ok(decoded) => Ok(Some((entry, decoded))),
        Err(error) => {
            tracing::warn!(%error, "session file this store cannot read; treating it as no session");
            Ok(None)
        }
    }
}

#[async_trait]
impl SessionStore for CachelibStore {
    /// Reads the file without a lock: writers replace files by renaming, so a read sees
    /// one whole version.
    async fn load(&self, key: &str) -> Result<Option<StoredEntry>, StoreError> {
        let key = key.to_owned();
        self.run(move |inner| {
            Ok(
                live(&inner.layout, &key, now())?.map(|(entry, decoded)| StoredEntry {
                    expires_at: entry.expires_at(),
                    value: decoded.into_bytes(),
                }),
            )
        })
        .await
    }

    /// Refuses while a live file exists, even one this store cannot read (a Flask session
    /// holding a class it does not know is still somebody's session).
    async fn create(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        let payload = transcode::encode(value)?;
        let key = key.to_owned();
        self.locked(move |layout, now| {
            if layout.read(&key)?.is_some_and(|entry| entry.is_live(now)) {
                return Ok(false);
            }
            layout.write(&key, expiry(now, ttl), &payload, now)?;
            Ok(true)
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
        let payload = transcode::encode(value)?;
        let (key, expected) = (key.to_owned(), expected.to_vec());
        self.locked(move |layout, now| match live(layout, &key, now)? {
            Some((_, current)) if current.matches(&expected) => {
                layout.write(&key, expiry(now, ttl), &payload, now)?;
                Ok(true)
            }
            _ => Ok(false),
        })
        .await
    }

    /// Rewrites the file with the same payload and a new expiry (the expiry is part of
    /// the file, and files are only ever replaced whole).
    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.locked(move |layout, now| match layout.read(&key)? {
            Some(entry) if entry.is_live(now) => {
                layout.write(&key, expiry(now, ttl), &entry.payload, now)?;
                Ok(true)
            }
            _ => Ok(false),
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.locked(move |layout, _| layout.remove(&key).map(|_| ()))
            .await
    }

    async fn compare_and_delete(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        let (key, expected) = (key.to_owned(), expected.to_vec());
        self.locked(move |layout, now| match live(layout, &key, now)? {
            Some((_, current)) if current.matches(&expected) => layout.remove(&key),
            _ => Ok(false),
        })
        .await
    }

    /// Atomic: the directory lock is held while the old entry is checked, the new one
    /// written and the old one removed. Should the removal fail, the new entry is removed
    /// again, so the session is never valid under two ids.
    async fn rotate(
        &self,
        old_key: &str,
        expected: &[u8],
        new_key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let payload = transcode::encode(value)?;
        let (old_key, new_key, expected) =
            (old_key.to_owned(), new_key.to_owned(), expected.to_vec());
        self.locked(move |layout, now| {
            match live(layout, &old_key, now)? {
                Some((_, current)) if current.matches(&expected) => {}
                _ => return Ok(false),
            }
            if layout.read(&new_key)?.is_some_and(|entry| entry.is_live(now)) {
                return Ok(false);
            }
            layout.write(&new_key, expiry(now, ttl), &payload, now)?;
            if let Err(error) = layout.remove(&old_key) {
                if let Err(undo) = layout.remove(&new_key) {
                    tracing::warn!(error = %undo, "could not undo an id rotation; the unused new entry will expire");
                }
                return Err(error);
            }
            Ok(true)
        })
        .await
    }

    /// Removes every expired file in the directory (sessions and any other cachelib
    /// entries, as cachelib's own pruning would) and returns how many; also removes
    /// temporary files more than an hour old, left by a writer that died mid-write.
    ///
    /// Owner index entries expired for over a minute are removed too (not counted).
    async fn cleanup(&self) -> Result<u64, StoreError> {
        let removed = self.locked(|layout, now| layout.cleanup(now)).await?;
        // Outside the directory lock: the index needs none (see `owners.rs`).
        self.run(|inner| {
            if let Err(error) = inner.owners.cleanup(now() as u64) {
                tracing::warn!(%error, "owner index not cleaned up");
            }
            Ok(())
        })
        .await?;
        Ok(removed)
    }

    /// Unsupported: cachelib names each file after a hash of its key, so the ids cannot be
    /// recovered from the directory ([`count`](SessionStore::count) works).
    async fn scan(
        &self,
        prefix: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<session_core::ScanPage, StoreError> {
        let _ = (prefix, cursor, limit);
        Err(StoreError::Unsupported(
            "cachelib's files are named after a hash of the session id, so the ids cannot be \
             listed (count works)"
                .to_owned(),
        ))
    }

    /// The live entries of the directory, whatever their key: the file names are hashes,
    /// so `prefix` cannot be told and is ignored (every cachelib entry in the directory
    /// counts, as in cachelib's own count file).
    async fn count(&self, prefix: &str) -> Result<u64, StoreError> {
        let _ = prefix;
        self.locked(|layout, now| layout.count_live(now)).await
    }

    /// The owner index is kept: one small file per entry in `<dir>/owners-v1.__wz_cache`,
    /// a directory Flask's cachelib never counts, prunes or clears (its name ends in
    /// cachelib's transaction suffix). Written by an atomic rename, so without the
    /// directory lock (see the README's "Owner index").
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
        let store = CachelibStore::open(dir.path()).unwrap();
        let waker = Waker::from(Arc::new(NoopWake));
        let mut cx = Context::from_waker(&waker);
        // Outside Tokio the work runs inline, so each call completes on its first poll.
        let create = pin!(store.create("k", b"\x81\xa1a\x01", Duration::from_secs(60)));
        assert!(matches!(create.poll(&mut cx), Poll::Ready(Ok(true))));
        let load = pin!(store.load("k"));
        match load.poll(&mut cx) {
            Poll::Ready(Ok(Some(entry))) => assert_eq!(entry.value, b"\x81\xa1a\x01"),
            other => panic!("load outside a runtime gave {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_panicking_operation_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = CachelibStore::open(dir.path()).unwrap();
        let result: Result<(), _> = store.run(|_| panic!("simulated bug")).await;
        assert!(matches!(result, Err(StoreError::Backend(_))), "{result:?}");
    }

    #[test]
    fn file_names_are_cachelibs() {
        // hashlib.sha256(b"session:abc").hexdigest() / hashlib.md5(...).hexdigest()
        assert_eq!(
            FileNameHash::Sha256.file_name("session:abc"),
            "a29d803b477eb42083ebd25596356c45c98474d5c0dacb79829833ca2176e85b"
        );
        assert_eq!(
            FileNameHash::Md5.file_name("session:abc"),
            "32607b0dcb9d5a58fbe913b473137833"
        );
    }

    #[test]
    fn options_are_checked_and_named_by_their_flask_names() {
        let bad_mode = CachelibStore::builder().mode(0o200).build().unwrap_err();
        assert!(matches!(&bad_mode, SetupError::Config(e) if e.option == "SESSION_FILE_MODE"));
        let too_big = CachelibStore::builder().mode(0o10600).build().unwrap_err();
        assert!(matches!(&too_big, SetupError::Config(e) if e.option == "SESSION_FILE_MODE"));
        let empty = CachelibStore::builder().dir("").build().unwrap_err();
        assert!(matches!(&empty, SetupError::Config(e) if e.option == "SESSION_FILE_DIR"));

        let lookup = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| value.to_string())
            }
        };
        let builder = CachelibStoreBuilder::from_lookup(lookup(&[
            ("SESSION_FILE_DIR", "/tmp/x"),
            ("SESSION_FILE_THRESHOLD", " 7 "),
            ("SESSION_FILE_MODE", "384"),
        ]))
        .unwrap();
        assert_eq!((builder.threshold, builder.mode), (7, 0o600));
        assert_eq!(builder.dir, PathBuf::from("/tmp/x"));
        let octal =
            CachelibStoreBuilder::from_lookup(lookup(&[("SESSION_FILE_MODE", "0o640")])).unwrap();
        assert_eq!(octal.mode, 0o640);
        let defaults =
            CachelibStoreBuilder::from_lookup(lookup(&[("SESSION_FILE_MODE", " ")])).unwrap();
        assert_eq!(
            (defaults.dir, defaults.threshold, defaults.mode),
            (PathBuf::from(DEFAULT_DIR), 500, 0o600)
        );
        for (name, value) in [
            ("SESSION_FILE_MODE", "0600"),
            ("SESSION_FILE_MODE", "rw"),
            ("SESSION_FILE_MODE", "0o9"),
            ("SESSION_FILE_THRESHOLD", "-1"),
            ("SESSION_FILE_THRESHOLD", "many"),
        ] {
            let pairs: &'static [(&'static str, &'static str)] =
                Box::leak(vec![(name, value)].into_boxed_slice());
            let error = CachelibStoreBuilder::from_lookup(lookup(pairs)).unwrap_err();
            assert_eq!(error.option, name, "{value}");
        }
    }
}
