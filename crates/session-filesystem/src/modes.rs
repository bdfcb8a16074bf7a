//! Permissions of everything the store writes (finding 11 of the reliability issue).
//!
//! An index bucket holds `session:<id>`, a bearer token, and a content file the session's
//! data. cacache creates buckets and directories with the process umask (often `0o644` and
//! `0o755`), so after each write the store sets the bucket and the content file to
//! `SESSION_FILE_MODE` and the directories above them to [`session_core::dir_mode`] of it.
//! The directories under the root that cacache would otherwise make are created by
//! [`Root::prepare`] first, so a file is never reachable by others, not even between
//! cacache's write and our `chmod`.
//!
//! The paths follow cacache 13's layout (`index-v5/aa/bb/<rest of sha1(key)>`,
//! `content-v2/<algorithm>/aa/bb/<rest of the hex digest>`); the tests walk the whole tree
//! after writes, so a change of layout shows up there.

use std::ops::Deref;
use std::path::{Path, PathBuf};

use cacache::Integrity;
use session_core::StoreError;

use crate::error::io_error;
use crate::lock::LOCK_DIR;

/// cacache's index directory (cacache 13).
const INDEX_DIR: &str = "index-v5";
/// cacache's content directory (cacache 13).
const CONTENT_DIR: &str = "content-v2";
/// cacache's temporary files, renamed into the content directory once written.
const TMP_DIR: &str = "tmp";
/// The digest cacache's `write_hash_sync` names content by.
const CONTENT_ALGORITHM: &str = "sha256";

/// The store's directory and the mode of its files; derefs to the directory.
#[derive(Debug)]
pub(crate) struct Root {
    path: PathBuf,
    file_mode: u32,
}

impl Deref for Root {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for Root {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Root {
    pub(crate) fn new(path: PathBuf, file_mode: u32) -> Root {
        Root { path, file_mode }
    }

    /// The mode of every file the store writes.
    pub(crate) fn file_mode(&self) -> u32 {
        self.file_mode
    }

    /// Creates the root and the directories below it that cacache writes into, private
    /// ([`session_core::dir_mode`]); existing ones get that mode (a store opened before
    /// the modes were enforced).
    pub(crate) fn prepare(&self) -> Result<(), StoreError> {
        let dir_mode = session_core::dir_mode(self.file_mode);
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, dir_mode);
        let content = self.path.join(CONTENT_DIR);
        for dir in [
            self.path.clone(),
            self.path.join(LOCK_DIR),
            self.path.join(INDEX_DIR),
            self.path.join(TMP_DIR),
            content.join(CONTENT_ALGORITHM),
            content,
        ] {
            builder.create(&dir).map_err(io_error)?;
            set_mode(&dir, dir_mode)?;
        }
        Ok(())
    }

    /// After cacache wrote `key`'s index bucket: the bucket gets the file mode, the two
    /// directories above it the directory mode.
    pub(crate) fn restrict_bucket(&self, key: &str) -> Result<(), StoreError> {
        use sha1::Digest as _;
        let hex = hex(&sha1::Sha1::digest(key.as_bytes()));
        let bucket = self
            .path
            .join(INDEX_DIR)
            .join(&hex[0..2])
            .join(&hex[2..4])
            .join(&hex[4..]);
        self.restrict(&bucket)
    }

    /// After cacache wrote a content file: the same for it.
    pub(crate) fn restrict_content(&self, integrity: &Integrity) -> Result<(), StoreError> {
        let (algorithm, hex) = integrity.to_hex();
        let file = self
            .path
            .join(CONTENT_DIR)
            .join(algorithm.to_string())
            .join(&hex[0..2])
            .join(&hex[2..4])
            .join(&hex[4..]);
        self.restrict(&file)
    }

    fn restrict(&self, file: &Path) -> Result<(), StoreError> {
        let dir_mode = session_core::dir_mode(self.file_mode);
        set_mode(file, self.file_mode)?;
        let mut parent = file.parent();
        for _ in 0..2 {
            if let Some(dir) = parent {
                set_mode(dir, dir_mode)?;
                parent = dir.parent();
            }
        }
        Ok(())
    }
}

/// `chmod`; a path that is gone already (removed meanwhile) is fine.
fn set_mode(path: &Path, mode: u32) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(io_error(error)),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
