//! cachelib's `FileSystemCache` layout, operation by operation, as cachelib 0.17's
//! `cachelib/file.py` does it. Everything here is synchronous file work; writes run under
//! the directory lock (see `lock.rs`), reads need none because every write replaces a file
//! by an atomic rename.
//!
//! - An entry is the file `<dir>/<hex digest of the key>`: a 4-byte expiry (absolute Unix
//!   seconds, native byte order, 0 = never) followed by the pickled value.
//! - Writes go to `tmpXXXXXXXX.__wz_cache` in the same directory (mkstemp's naming), get
//!   the configured mode, and are renamed over the entry.
//! - With a threshold, the file named by the digest of `__wz_cache_count` holds the number
//!   of entries (a pickled int, expiry 0): +1 when a write creates a file, -1 when a delete
//!   or a prune removes one, recounted when a cache is opened. Before every write, when the
//!   count is over the threshold, expired entries are removed, then the entries that expire
//!   first until the count is back at the threshold.

use std::fs;
use std::io::{self, ErrorKind, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rmpv::Value;
use session_core::StoreError;

use crate::error::io_error;
use crate::pickle;
use crate::FileNameHash;

/// cachelib's `_fs_transaction_suffix`: temporary files, skipped by listings.
pub(crate) const TEMP_SUFFIX: &str = ".__wz_cache";
/// cachelib's `_fs_count_file`: the key of the item-count entry.
pub(crate) const COUNT_KEY: &str = "__wz_cache_count";
/// Temporary files older than this are left over from a writer that died mid-write.
const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);

/// One entry's file, split into its expiry header and its payload.
#[derive(Debug)]
pub(crate) struct Entry {
    pub expires: u32,
    pub payload: Vec<u8>,
}

impl Entry {
    /// cachelib's rule: live when the expiry is 0 or not before now.
    pub fn is_live(&self, now: f64) -> bool {
        is_live(self.expires, now)
    }

    pub fn expires_at(&self) -> Option<SystemTime> {
        match self.expires {
            0 => None,
            seconds => UNIX_EPOCH.checked_add(Duration::from_secs(u64::from(seconds))),
        }
    }
}

fn is_live(expires: u32, now: f64) -> bool {
    expires == 0 || f64::from(expires) >= now
}

/// Seconds since the Unix epoch, as Python's `time()`.
pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |elapsed| elapsed.as_secs_f64())
}

/// The expiry header for `ttl` from `now`: rounded up, so an entry lives at least its TTL
/// (cachelib rounds down), and capped at the header's range (February 2106). Never 0,
/// which would mean "never expires".
pub(crate) fn expiry(now: f64, ttl: Duration) -> u32 {
    let at = (now + ttl.as_secs_f64()).ceil();
    if at >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        (at as u32).max(1)
    }
}

/// A directory laid out as cachelib's `FileSystemCache`.
#[derive(Debug)]
pub(crate) struct Layout {
    pub dir: PathBuf,
    pub hash: FileNameHash,
    pub threshold: u64,
    pub mode: u32,
    count_name: String,
}

impl Layout {
    pub fn new(dir: PathBuf, hash: FileNameHash, threshold: u64, mode: u32) -> Layout {
        Layout {
            count_name: hash.file_name(COUNT_KEY),
            dir,
            hash,
            threshold,
            mode,
        }
    }

    pub fn path(&self, key: &str) -> PathBuf {
        self.dir.join(self.hash.file_name(key))
    }

    fn counting(&self) -> bool {
        self.threshold != 0
    }

    /// The entry under `key`; `None` when there is no file, or when it is too short to
    /// hold an expiry (cachelib reads such a file as a miss too).
    pub fn read(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        read_entry(&self.path(key)).map_err(io_error)
    }

    /// cachelib's `set`: prune when over the threshold, write the entry, count it when
    /// its file is new.
    pub fn write(
        &self,
        key: &str,
        expires: u32,
        payload: &[u8],
        now: f64,
    ) -> Result<(), StoreError> {
        let mut count = self.counting().then(|| self.count());
        let before = count;
        if let Some(count) = count.as_mut() {
            self.prune(count, now);
        }
        let path = self.path(key);
        let overwrite = path.is_file();
        let written = self.write_file(&path, expires, payload).map_err(io_error);
        if let Some(count) = count.as_mut() {
            if written.is_ok() && !overwrite {
                *count += 1;
            }
        }
        if count != before {
            self.store_count(count.unwrap_or(0));
        }
        written
    }

    /// cachelib's `delete`: `true` when a file was removed (and uncounted).
    pub fn remove(&self, key: &str) -> Result<bool, StoreError> {
        match fs::remove_file(self.path(key)) {
            Ok(()) => {
                if self.counting() {
                    self.store_count(self.count() - 1);
                }
                Ok(true)
            }
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(false),
            Err(error) => Err(io_error(error)),
        }
    }

    /// What cachelib does when a cache is opened with a threshold: count the entries.
    pub fn recount(&self) -> Result<(), StoreError> {
        if self.counting() {
            let entries = self.list().map_err(io_error)?.len();
            self.write_count(i64::try_from(entries).unwrap_or(i64::MAX))
                .map_err(io_error)?;
        }
        Ok(())
    }

    /// Removes expired entries (and temporary files a crashed writer left behind); returns
    /// how many entries.
    pub fn cleanup(&self, now: f64) -> Result<u64, StoreError> {
        let mut removed = 0;
        for path in self.list().map_err(io_error)? {
            match read_expiry(&path) {
                Ok(Some(expires)) if !is_live(expires, now) => match fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(error) if error.kind() == ErrorKind::NotFound => {}
                    Err(error) => return Err(io_error(error)),
                },
                Ok(_) => {}
                Err(error) if error.kind() == ErrorKind::NotFound => {}
                Err(error) => tracing::warn!(%error, "cache file not checked for expiry"),
            }
        }
        if removed > 0 && self.counting() {
            self.store_count(self.count() - removed as i64);
        }
        self.remove_stale_temp_files();
        Ok(removed)
    }

    /// How many entry files are live: every cachelib entry of the directory, whatever its
    /// key (the names are hashes, so the key prefix cannot be told).
    pub fn count_live(&self, now: f64) -> Result<u64, StoreError> {
        let mut live = 0;
        for path in self.list().map_err(io_error)? {
            match read_expiry(&path) {
                Ok(Some(expires)) if is_live(expires, now) => live += 1,
                Ok(_) => {}
                Err(error) if error.kind() == ErrorKind::NotFound => {}
                Err(error) => return Err(io_error(error)),
            }
        }
        Ok(live)
    }

    /// The entry files: every name in the directory but the count file and temporary
    /// files, as cachelib's `_list_dir` (which also counts stray files and folders).
    fn list(&self) -> io::Result<Vec<PathBuf>> {
        let mut paths = Vec::new();
        for dir_entry in fs::read_dir(&self.dir)? {
            let dir_entry = dir_entry?;
            let name = dir_entry.file_name();
            let name = name.to_string_lossy();
            if name != self.count_name && !name.ends_with(TEMP_SUFFIX) {
                paths.push(dir_entry.path());
            }
        }
        Ok(paths)
    }

    fn remove_stale_temp_files(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for dir_entry in entries.flatten() {
            // Files only: the owner index's directory ends in the same suffix.
            let stale = dir_entry
                .file_name()
                .to_string_lossy()
                .ends_with(TEMP_SUFFIX)
                && dir_entry.file_type().is_ok_and(|kind| kind.is_file())
                && dir_entry
                    .metadata()
                    .and_then(|meta| meta.modified())
                    .ok()
                    .and_then(|modified| modified.elapsed().ok())
                    .is_some_and(|age| age > STALE_TEMP_AGE);
            if stale {
                if let Err(error) = fs::remove_file(dir_entry.path()) {
                    tracing::warn!(%error, "stale temporary cache file not removed");
                }
            }
        }
    }

    fn over(&self, count: i64) -> bool {
        self.counting() && count > i64::try_from(self.threshold).unwrap_or(i64::MAX)
    }

    /// cachelib's `_prune`, counting in `count`. Failures are logged and skipped, as
    /// cachelib does: pruning never fails a write.
    fn prune(&self, count: &mut i64, now: f64) {
        if !self.over(*count) {
            return;
        }
        let listed = match self.list() {
            Ok(listed) => listed,
            Err(error) => {
                tracing::warn!(%error, "cache directory not listed for pruning");
                return;
            }
        };
        // `_remove_expired`
        let mut dated = Vec::with_capacity(listed.len());
        for path in listed {
            let expires = match read_expiry(&path) {
                Ok(Some(expires)) => expires,
                Ok(None) => continue,
                Err(error) if error.kind() == ErrorKind::NotFound => continue,
                Err(error) => {
                    tracing::warn!(%error, "cache file not read while pruning");
                    continue;
                }
            };
            if expires != 0 && f64::from(expires) < now {
                match fs::remove_file(&path) {
                    Ok(()) => *count -= 1,
                    Err(error) if error.kind() == ErrorKind::NotFound => {}
                    Err(error) => tracing::warn!(%error, "expired cache file not removed"),
                }
            } else {
                dated.push((expires, path));
            }
        }
        if !self.over(*count) {
            return;
        }
        // `_remove_older`: earliest expiry first (0, "never", sorts first), stable.
        dated.sort_by_key(|(expires, _)| *expires);
        for (_, path) in dated {
            match fs::remove_file(&path) {
                Ok(()) => *count -= 1,
                Err(error) if error.kind() == ErrorKind::NotFound => {}
                Err(error) => {
                    tracing::warn!(%error, "cache file not removed while pruning");
                    return;
                }
            }
            if !self.over(*count) {
                break;
            }
        }
    }

    /// cachelib's `_file_count`: the count entry's int, 0 when missing or unreadable.
    pub fn count(&self) -> i64 {
        let path = self.dir.join(&self.count_name);
        match read_entry(&path) {
            Ok(Some(entry)) if entry.is_live(now()) => match pickle::loads(&entry.payload) {
                Ok(value) => value.as_i64().unwrap_or(0),
                Err(_) => 0,
            },
            Ok(_) => 0,
            Err(error) => {
                tracing::warn!(%error, "cache count file not read");
                0
            }
        }
    }

    fn store_count(&self, count: i64) {
        if let Err(error) = self.write_count(count) {
            tracing::warn!(%error, "cache count file not updated");
        }
    }

    fn write_count(&self, count: i64) -> io::Result<()> {
        let payload = pickle::dumps(&Value::from(count)).map_err(io::Error::other)?;
        self.write_file(&self.dir.join(&self.count_name), 0, &payload)
    }

    /// Writes a whole entry file atomically: a temporary file in the same directory, the
    /// mode set on it, then a rename over `path`. Readers see the old file or the new one,
    /// never part of one; a failure leaves no temporary file behind.
    fn write_file(&self, path: &Path, expires: u32, payload: &[u8]) -> io::Result<()> {
        let mut temp = tempfile::Builder::new()
            .prefix("tmp")
            .suffix(TEMP_SUFFIX)
            .rand_bytes(8)
            .tempfile_in(&self.dir)?;
        temp.write_all(&expires.to_ne_bytes())?;
        temp.write_all(payload)?;
        // Set on the open file, so the mode is exact whatever the umask, and the entry is
        // never visible with another one (cachelib chmods after the rename).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            temp.as_file()
                .set_permissions(fs::Permissions::from_mode(self.mode))?;
        }
        temp.persist(path).map_err(|error| error.error)?;
        Ok(())
    }
}

fn read_entry(path: &Path) -> io::Result<Option<Entry>> {
    let mut bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let Some(header) = bytes.first_chunk::<4>() else {
        tracing::warn!("cache file shorter than its expiry header; treating it as missing");
        return Ok(None);
    };
    let expires = u32::from_ne_bytes(*header);
    bytes.drain(..4);
    Ok(Some(Entry {
        expires,
        payload: bytes,
    }))
}

/// Only the 4-byte expiry of a file (what pruning and cleanup look at).
fn read_expiry(path: &Path) -> io::Result<Option<u32>> {
    use std::io::Read as _;
    let mut header = [0; 4];
    let mut file = fs::File::open(path)?;
    match file.read_exact(&mut header) {
        Ok(()) => Ok(Some(u32::from_ne_bytes(header))),
        Err(error) if error.kind() == ErrorKind::UnexpectedEof => Ok(None),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_rounds_up_and_stays_in_range() {
        assert_eq!(expiry(100.2, Duration::from_secs(10)), 111);
        assert_eq!(expiry(100.0, Duration::from_secs(10)), 110);
        assert_eq!(expiry(100.0, Duration::ZERO), 100);
        assert_eq!(expiry(0.0, Duration::ZERO), 1, "0 would mean never");
        assert_eq!(expiry(1.7e9, Duration::MAX), u32::MAX);
    }

    #[test]
    fn liveness_is_cachelibs() {
        assert!(is_live(0, 1e12), "0 never expires");
        assert!(is_live(100, 100.0));
        assert!(!is_live(100, 100.5));
    }
}
