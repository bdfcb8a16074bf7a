//! The owner index (`docs/owners.md`) for stores that keep sessions in a directory
//! (session-filesystem, session-cachelib): one small file per entry, in a directory the
//! store names.
//!
//! Layout, under that directory:
//!
//! ```text
//! <sha256 hex of the index name>/<sha256 hex of the session key>
//! ```
//!
//! Each file holds one line, `v1 <created> <last_seen> <expires_at> <key>` (Unix seconds,
//! then the key itself, which may contain anything). Names are digests so that any owner
//! and any key make a short, safe file name.
//!
//! - put writes a temporary file (`.tmp-<random>`, in the index's own directory, with the
//!   store's file mode set on the open file) and renames it over the entry: readers see the
//!   old entry or the new one, never part of one, and no lock is needed between processes;
//! - remove unlinks the entry (a missing one is fine), then tries to remove the index's
//!   directory, which succeeds only once it is empty. A put that finds its directory gone
//!   meanwhile creates it again and retries: its temporary file keeps the directory
//!   non-empty from then on;
//! - list reads the directory. Files that do not parse, or whose name is not the digest of
//!   the key inside, are corrupt: skipped and removed, never an error. Entries past their
//!   expiry by more than [`EXPIRED_GRACE`] are skipped and removed; temporary files older
//!   than `STALE_TEMP_AGE` (a writer that died mid-write) are removed.
//!
//! Directories are created with [`dir_mode`](crate::dir_mode) of the file mode (`0o700` for
//! `0o600`), files get the file mode, whatever the umask.

use std::fs;
use std::io::{self, ErrorKind, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::Digest as _;

use crate::{IndexEntry, StoreError};

/// The first word of every entry file.
const VERSION: &str = "v1";

/// How long past its expiry an entry is still listed (and kept): a session's expiry is
/// set by the write that follows its index entry, so it can outlast the entry's
/// `expires_at` by the time that write took, and an expiry extension refreshes the entry
/// only after it extended the session.
pub const EXPIRED_GRACE: u64 = 60;

/// Temporary files older than this were left by a writer that died mid-write.
const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);

/// The prefix of temporary files; entry names are hex digests, so they never start with it.
const TEMP_PREFIX: &str = ".tmp-";

/// How many times a put recreates its directory when a concurrent remove took it away.
const PUT_ATTEMPTS: u32 = 8;

/// One directory of owner indexes, and the mode of the files written there. `put`,
/// `remove`, `list` and `cleanup` block (plain file I/O); the `index_*` methods run them
/// off the async threads and are what a store's [`SessionStore`](crate::SessionStore)
/// methods of the same names call.
#[derive(Clone, Debug)]
pub struct FileOwnerIndex {
    dir: PathBuf,
    file_mode: u32,
}

impl FileOwnerIndex {
    /// The owner indexes under `dir` (created on the first put), with files of `file_mode`.
    pub fn new(dir: PathBuf, file_mode: u32) -> FileOwnerIndex {
        FileOwnerIndex { dir, file_mode }
    }

    /// [`put`](Self::put) on the blocking pool.
    pub async fn index_put(&self, index: &str, entry: &IndexEntry) -> Result<(), StoreError> {
        let (this, index, entry) = (self.clone(), index.to_owned(), entry.clone());
        run_blocking("owner index", move || this.put(&index, &entry)).await
    }

    /// [`remove`](Self::remove) on the blocking pool.
    pub async fn index_remove(&self, index: &str, key: &str) -> Result<(), StoreError> {
        let (this, index, key) = (self.clone(), index.to_owned(), key.to_owned());
        run_blocking("owner index", move || this.remove(&index, &key)).await
    }

    /// [`list`](Self::list) as of now, on the blocking pool.
    pub async fn index_list(&self, index: &str) -> Result<Vec<IndexEntry>, StoreError> {
        let (this, index) = (self.clone(), index.to_owned());
        run_blocking("owner index", move || {
            this.list(&index, crate::owner::unix_now())
        })
        .await
    }

    fn index_dir(&self, index: &str) -> PathBuf {
        self.dir.join(digest(index))
    }

    /// Records `entry` in `index`, replacing any entry of the same key.
    /// [`SessionStore::index_put`](crate::SessionStore::index_put).
    pub fn put(&self, index: &str, entry: &IndexEntry) -> Result<(), StoreError> {
        let dir = self.index_dir(index);
        let target = dir.join(digest(&entry.key));
        let line = format!(
            "{VERSION} {} {} {} {}",
            entry.created, entry.last_seen, entry.expires_at, entry.key
        );
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .create_dirs(&dir)
                .and_then(|()| self.write_temp(&dir, line.as_bytes()))
            {
                Ok(temp) => {
                    // The temporary file keeps the directory from being removed as empty.
                    let renamed = fs::rename(&temp, &target);
                    if renamed.is_err() {
                        let _ = fs::remove_file(&temp);
                    }
                    return renamed.map_err(io_error);
                }
                // A removal of the index's last entry removed the directory between our
                // create and our chmod or write: create it again.
                Err(error) if error.kind() == ErrorKind::NotFound && attempt < PUT_ATTEMPTS => {}
                Err(error) => return Err(io_error(error)),
            }
        }
    }

    /// Removes `key` from `index`; a missing entry is not an error. The index's directory
    /// goes with its last entry.
    /// [`SessionStore::index_remove`](crate::SessionStore::index_remove).
    pub fn remove(&self, index: &str, key: &str) -> Result<(), StoreError> {
        let dir = self.index_dir(index);
        match fs::remove_file(dir.join(digest(key))) {
            Ok(()) => {}
            Err(error) if error.kind() == ErrorKind::NotFound => {}
            Err(error) => return Err(io_error(error)),
        }
        // Fails (and is meant to) while the directory holds anything.
        let _ = fs::remove_dir(&dir);
        Ok(())
    }

    /// The entries of `index` at `now` (Unix seconds), pruning what is corrupt, long
    /// expired or left over.
    /// [`SessionStore::index_list`](crate::SessionStore::index_list), as of `now` (Unix
    /// seconds): long-expired and corrupt entries are left out and removed.
    pub fn list(&self, index: &str, now: u64) -> Result<Vec<IndexEntry>, StoreError> {
        list_dir(&self.index_dir(index), now)
    }

    /// Prunes every index as a listing would, and removes the directories left empty (the
    /// store's `cleanup`, for owners nobody lists).
    pub fn cleanup(&self, now: u64) -> Result<(), StoreError> {
        let indexes = match fs::read_dir(&self.dir) {
            Ok(indexes) => indexes,
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(io_error(error)),
        };
        for index in indexes {
            let dir = index.map_err(io_error)?.path();
            if dir.is_dir() {
                list_dir(&dir, now)?;
                // Fails (and is meant to) while the directory holds anything.
                let _ = fs::remove_dir(&dir);
            }
        }
        Ok(())
    }

    /// Creates the owners directory and `dir` in it, private.
    fn create_dirs(&self, dir: &Path) -> io::Result<()> {
        let mode = crate::dir_mode(self.file_mode);
        for dir in [&self.dir, dir] {
            let mut builder = fs::DirBuilder::new();
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, mode);
            match builder.create(dir) {
                // The umask may have taken bits the mode gives (group read for 0o640).
                Ok(()) => set_mode(dir, mode)?,
                Err(error) if error.kind() == ErrorKind::AlreadyExists => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Writes `bytes` to a new temporary file in `dir` with the file mode; its path.
    fn write_temp(&self, dir: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
        let path = dir.join(format!("{TEMP_PREFIX}{:016x}", fastrand::u64(..)));
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, self.file_mode);
        let mut file = options.open(&path)?;
        let written = (|| {
            // Set on the open file: exact whatever the umask, before anything is in it.
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                file.set_permissions(fs::Permissions::from_mode(self.file_mode))?;
            }
            file.write_all(bytes)
        })();
        match written {
            Ok(()) => Ok(path),
            Err(error) => {
                let _ = fs::remove_file(&path);
                Err(error)
            }
        }
    }
}

/// The entries in the index directory `dir`, pruning what is corrupt, long expired or
/// left over.
/// Runs blocking file work of `what` (named in errors, e.g. "file store") on Tokio's
/// blocking pool. The work finishes even if the caller's future is dropped, so a file
/// operation is never cut off halfway; without a Tokio runtime (another executor) it runs
/// on the caller's thread rather than panic.
pub async fn run_blocking<T, F>(what: &'static str, work: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => runtime.spawn_blocking(work).await.map_err(|error| {
            if error.is_panic() {
                StoreError::backend(format!("{what} operation panicked"))
            } else {
                StoreError::unavailable(format!(
                    "{what} operation cancelled: the runtime is shutting down"
                ))
            }
        })?,
        Err(_) => work(),
    }
}

/// A file operation's error as a [`StoreError`]: `Unavailable` for the kinds that mean the
/// storage did not answer (a network filesystem gone away, a wait cut short),
/// `Backend` for a refusal (permissions, a full disk).
pub fn io_error(error: io::Error) -> StoreError {
    if is_unavailable(error.kind()) {
        StoreError::unavailable(error)
    } else {
        StoreError::backend(error)
    }
}

/// Whether an I/O error of `kind` means "the storage did not answer" rather than "the
/// storage refused".
pub fn is_unavailable(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::TimedOut
            | ErrorKind::Interrupted
            | ErrorKind::WouldBlock
            | ErrorKind::NotConnected
            | ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
    )
}

fn list_dir(dir: &Path, now: u64) -> Result<Vec<IndexEntry>, StoreError> {
    let names = match fs::read_dir(dir) {
        Ok(names) => names,
        Err(error) if error.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(io_error(error)),
    };
    let mut entries = Vec::new();
    for name in names {
        let name = name.map_err(io_error)?;
        let path = name.path();
        let file_name = name.file_name();
        let file_name = file_name.to_string_lossy();
        if file_name.starts_with(TEMP_PREFIX) {
            remove_if_stale_temp(&path);
            continue;
        }
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            // Removed since the listing.
            Err(error) if error.kind() == ErrorKind::NotFound => continue,
            // A directory or something else unreadable in our place: not an entry.
            Err(error) if error.kind() == ErrorKind::IsADirectory => continue,
            Err(error) => return Err(io_error(error)),
        };
        match parse(&bytes).filter(|entry| digest(&entry.key) == file_name) {
            Some(entry) if entry.expires_at.saturating_add(EXPIRED_GRACE) < now => {
                let _ = fs::remove_file(&path);
            }
            Some(entry) => entries.push(entry),
            None => {
                tracing::warn!(path = %path.display(), "corrupt owner index entry removed");
                let _ = fs::remove_file(&path);
            }
        }
    }
    Ok(entries)
}

/// The lowercase hex SHA-256 of `text`.
fn digest(text: &str) -> String {
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// An entry file's contents; `None` when it is not one.
fn parse(bytes: &[u8]) -> Option<IndexEntry> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut fields = text.splitn(5, ' ');
    if fields.next()? != VERSION {
        return None;
    }
    let created = fields.next()?.parse().ok()?;
    let last_seen = fields.next()?.parse().ok()?;
    let expires_at = fields.next()?.parse().ok()?;
    let key = fields.next()?.to_owned();
    Some(IndexEntry {
        key,
        created,
        last_seen,
        expires_at,
    })
}

fn remove_if_stale_temp(path: &Path) {
    let stale = fs::symlink_metadata(path)
        .ok()
        .filter(|meta| meta.is_file())
        .and_then(|meta| meta.modified().ok())
        .and_then(|modified| modified.elapsed().ok())
        .is_some_and(|age| age > STALE_TEMP_AGE);
    if stale {
        let _ = fs::remove_file(path);
    }
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, expires_at: u64) -> IndexEntry {
        IndexEntry {
            key: key.to_owned(),
            created: 1,
            last_seen: 2,
            expires_at,
        }
    }

    #[test]
    fn entries_round_trip_with_any_key() {
        for key in ["session:abc", "a b\nc é/..", ""] {
            let line = format!("{VERSION} 1 2 3 {key}");
            assert_eq!(parse(line.as_bytes()), Some(entry(key, 3)));
        }
        for bad in [
            &b""[..],
            b"v2 1 2 3 k",
            b"v1 1 2 k",
            b"v1 x 2 3 k",
            b"\xff\xfe",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn corrupt_and_long_expired_entries_are_skipped_and_removed() {
        let temp = tempfile::tempdir().unwrap();
        let owners = FileOwnerIndex::new(temp.path().join("owners"), 0o600);
        let now = 1_000_000;
        owners.put("i", &entry("live", now + 10)).unwrap();
        owners.put("i", &entry("just-expired", now - 1)).unwrap();
        owners
            .put("i", &entry("long-expired", now - EXPIRED_GRACE - 1))
            .unwrap();
        let dir = owners.index_dir("i");
        fs::write(dir.join(digest("garbage")), b"\x00\x01 not an entry").unwrap();
        // A valid entry under another key's name (a file moved by hand) is corrupt too.
        fs::copy(dir.join(digest("live")), dir.join(digest("elsewhere"))).unwrap();
        fs::create_dir(dir.join("a-directory")).unwrap();
        let mut listed = owners.list("i", now).unwrap();
        listed.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(
            listed,
            vec![entry("just-expired", now - 1), entry("live", now + 10)]
        );
        let mut left: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|name| name.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut expected = vec![
            digest("live"),
            digest("just-expired"),
            "a-directory".to_owned(),
        ];
        expected.sort();
        assert_eq!(left, expected);
    }

    #[cfg(unix)]
    #[test]
    fn files_and_directories_get_the_store_modes_whatever_the_umask() {
        use std::os::unix::fs::PermissionsExt as _;
        let temp = tempfile::tempdir().unwrap();
        let owners = FileOwnerIndex::new(temp.path().join("owners"), 0o640);
        owners.put("i", &entry("k", 10)).unwrap();
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&temp.path().join("owners")), 0o750);
        assert_eq!(mode(&owners.index_dir("i")), 0o750);
        assert_eq!(mode(&owners.index_dir("i").join(digest("k"))), 0o640);
    }

    #[test]
    fn puts_racing_removals_of_the_last_entry_never_fail() {
        let temp = tempfile::tempdir().unwrap();
        let owners = std::sync::Arc::new(FileOwnerIndex::new(temp.path().join("owners"), 0o600));
        // Each thread's removal of its own entry may empty and remove the shared directory
        // while the other thread is putting: the put must recreate it and succeed.
        let threads: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|key| {
                let owners = owners.clone();
                std::thread::spawn(move || {
                    for _ in 0..500 {
                        owners.put("i", &entry(key, 10)).unwrap();
                        owners.remove("i", key).unwrap();
                    }
                    owners.put("i", &entry(key, 10)).unwrap();
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let mut listed = owners.list("i", 0).unwrap();
        listed.sort_by(|x, y| x.key.cmp(&y.key));
        assert_eq!(listed, vec![entry("a", 10), entry("b", 10)]);
    }

    #[test]
    fn the_last_removal_removes_the_directory_and_a_put_recreates_it() {
        let temp = tempfile::tempdir().unwrap();
        let owners = FileOwnerIndex::new(temp.path().join("owners"), 0o600);
        owners.put("i", &entry("k", 10)).unwrap();
        owners.remove("i", "k").unwrap();
        owners.remove("i", "k").unwrap();
        assert!(!owners.index_dir("i").exists());
        assert_eq!(owners.list("i", 0).unwrap(), vec![]);
        owners.put("i", &entry("k", 10)).unwrap();
        assert_eq!(owners.list("i", 0).unwrap(), vec![entry("k", 10)]);
    }
}
