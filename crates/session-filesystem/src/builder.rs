//! [`FileStoreBuilder`]: the directory and the lock timeout, checked when the store opens.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use session_core::{ConfigError, SetupError};

use crate::error::io_error;
use crate::modes::Root;
use crate::{FileStore, Inner, DEFAULT_LOCK_TIMEOUT};

/// The environment name of the directory, named by configuration errors.
const DIR_OPTION: &str = "SESSION_FILE_DIR";

/// Configures and opens a [`FileStore`]. Start from [`FileStore::builder`], end with
/// [`build`](Self::build): nothing connects, so building is synchronous.
///
/// ```
/// use std::time::Duration;
/// use session_filesystem::FileStore;
///
/// # let temp = tempfile::tempdir().unwrap();
/// # let dir = temp.path().join("flask_session");
/// let store = FileStore::builder()
///     .dir(&dir)
///     .lock_timeout(Duration::from_secs(2))
///     .build()?;
/// assert_eq!(store.lock_timeout(), Duration::from_secs(2));
/// # Ok::<(), session_core::SetupError>(())
/// ```
#[derive(Clone, Debug)]
pub struct FileStoreBuilder {
    dir: Option<PathBuf>,
    lock_timeout: Duration,
    create_dir: bool,
    file_mode: u32,
}

impl Default for FileStoreBuilder {
    fn default() -> Self {
        FileStoreBuilder {
            dir: None,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            create_dir: true,
            file_mode: session_core::DEFAULT_FILE_MODE,
        }
    }
}

impl FileStoreBuilder {
    /// Where sessions live (default [`FileStore::default_dir`], `flask_session` under the
    /// working directory, as Flask-Session's `SESSION_FILE_DIR`). A relative path is
    /// resolved against the working directory when the store is built.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// How long an operation waits for another thread or process to release a key's lock
    /// before it fails with [`StoreError::Unavailable`](session_core::StoreError::Unavailable)
    /// (default [`DEFAULT_LOCK_TIMEOUT`]). Locks are held only for the few file operations
    /// of one call, so the wait matters only when a holder hangs, e.g. on a stuck network
    /// mount.
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// The permission bits of every file the store writes, index files included
    /// (`SESSION_FILE_MODE`, default `0o600`, whatever the umask); the owner must be able
    /// to read and write. Directories get [`session_core::dir_mode`] of it (`0o700`).
    /// Ignored outside Unix.
    pub fn file_mode(mut self, mode: u32) -> Self {
        self.file_mode = mode;
        self
    }

    /// `false`: the directory must exist already, and a missing one is an error instead of
    /// being created (default `true`). For tools that work on an existing store, such as a
    /// cleanup job, where a typo in the path must not start an empty store.
    pub fn create_dir(mut self, create: bool) -> Self {
        self.create_dir = create;
        self
    }

    /// Opens the store, creating the directory if needed (see
    /// [`create_dir`](Self::create_dir)).
    ///
    /// On Unix the directory, and the ones below it, get mode `0o700`
    /// ([`session_core::dir_mode`] of the file mode), and every file written the file mode:
    /// the index files name session ids, which are bearer tokens. Several stores, in one
    /// process or many, may open the same directory.
    ///
    /// Fails with [`SetupError::Config`] naming `SESSION_FILE_MODE` for a mode the owner
    /// cannot read and write, naming `SESSION_FILE_DIR` for an empty path, a
    /// path that is not a directory (or is missing, with `create_dir(false)`), an existing
    /// directory open to group or others beyond the file mode
    /// ([`session_core::check_private_dir`]; `chmod 700` it), or a
    /// directory holding Flask-Session's own filesystem
    /// sessions (cachelib's `FileSystemCache` files, which this store would neither read
    /// nor clean up: use `SESSION_TYPE=cachelib` for those), and with
    /// [`SetupError::Store`] when the system refuses to create the directory.
    pub fn build(self) -> Result<FileStore, SetupError> {
        session_core::check_file_mode(self.file_mode)?;
        let dir = self.dir.unwrap_or_else(FileStore::default_dir);
        if dir.as_os_str().is_empty() {
            return Err(ConfigError::new(DIR_OPTION, "the path is empty").into());
        }
        let dir = std::path::absolute(&dir).map_err(io_error)?;
        if dir.exists() {
            if !dir.is_dir() {
                return Err(ConfigError::new(
                    DIR_OPTION,
                    format!("{} is not a directory", dir.display()),
                )
                .into());
            }
            refuse_cachelib_files(&dir)?;
            session_core::check_private_dir(&dir, self.file_mode)?;
        } else if !self.create_dir {
            return Err(
                ConfigError::new(DIR_OPTION, format!("{} does not exist", dir.display())).into(),
            );
        }
        let dir = Root::new(dir, self.file_mode);
        dir.prepare()?;
        let owners = session_core::file_index::FileOwnerIndex::new(
            dir.join(crate::OWNERS_DIR),
            self.file_mode,
        );
        Ok(FileStore {
            inner: Arc::new(Inner {
                dir,
                owners,
                lock_timeout: self.lock_timeout,
            }),
        })
    }
}

/// Fails when `dir` holds a file cachelib's `FileSystemCache` writes: a regular file at
/// the top level named by the hex digest of its key, 32 characters (md5, cachelib up to
/// 0.15) or 64 (sha256, 0.16 on). This store's own files all live in subdirectories, so
/// one such file means the directory is a Flask app's.
fn refuse_cachelib_files(dir: &Path) -> Result<(), SetupError> {
    let entries = std::fs::read_dir(dir).map_err(io_error)?;
    for entry in entries {
        let entry = entry.map_err(io_error)?;
        let name = entry.file_name();
        let is_file = entry.file_type().map_err(io_error)?.is_file();
        if is_file && name.to_str().is_some_and(is_cachelib_name) {
            return Err(ConfigError::new(
                DIR_OPTION,
                format!(
                    "{} holds Flask-Session filesystem sessions (cachelib FileSystemCache \
                     files, such as {}): use SESSION_TYPE=cachelib to share them, or give \
                     this store a directory of its own",
                    dir.display(),
                    name.to_string_lossy()
                ),
            )
            .into());
        }
    }
    Ok(())
}

/// A cachelib file name: the md5 (32) or sha256 (64) hex digest, lowercase.
fn is_cachelib_name(name: &str) -> bool {
    matches!(name.len(), 32 | 64) && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cachelib_names_are_recognised() {
        assert!(is_cachelib_name("32607b0dcb9d5a58fbe913b473137833"));
        assert!(is_cachelib_name(&"a0".repeat(32)));
        for other in [
            "32607B0DCB9D5A58FBE913B473137833", // upper case: not hexdigest()
            "32607b0dcb9d5a58fbe913b47313783",  // 31
            "32607b0dcb9d5a58fbe913b473137833.__wz_cache",
            "locks",
            "index-v5",
            &"g".repeat(32),
        ] {
            assert!(!is_cachelib_name(other), "{other}");
        }
    }

    #[test]
    fn a_missing_directory_is_created_unless_told_not_to() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("sessions");
        match FileStore::builder().dir(&dir).create_dir(false).build() {
            Err(SetupError::Config(error)) => {
                assert_eq!(error.option, "SESSION_FILE_DIR");
                assert!(error.message.contains("does not exist"), "{error}");
            }
            other => panic!("{other:?}"),
        }
        assert!(!dir.exists());
        FileStore::open(&dir).unwrap();
        FileStore::builder()
            .dir(&dir)
            .create_dir(false)
            .build()
            .expect("the directory exists now");
    }

    #[test]
    fn an_empty_path_is_a_config_error() {
        match FileStore::open("") {
            Err(SetupError::Config(error)) => assert_eq!(error.option, "SESSION_FILE_DIR"),
            other => panic!("{other:?}"),
        }
    }
}
