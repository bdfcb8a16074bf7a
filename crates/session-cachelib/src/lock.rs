//! The directory lock that makes this store's writes atomic across threads and processes.
//!
//! Every write holds an exclusive `flock` on the cache directory itself (through `fs4`).
//! Why the directory and not lock files:
//!
//! - cachelib lists, counts and prunes every name in the directory, so a lock file there
//!   would be counted as an entry and, once old enough, "pruned" or read as a corrupt entry
//!   by Flask; a sibling folder would have to live in the directory's parent, which may
//!   not be writable and which two paths to one directory (a symlink, a bind mount) would
//!   not share. A lock on the directory's own inode adds no file anywhere and is the same
//!   lock through any path.
//! - The count file is one record shared by every write, so writes need one lock anyway;
//!   per-key locks would still have to meet there.
//!
//! `flock` locks belong to an open file description, so each acquisition opens its own
//! descriptor: two threads of one process exclude each other exactly as two processes do,
//! and a process that dies releases its lock with its descriptors. Readers take no lock.
//! Flask's writers take none either: cachelib has no locking, so they stay last-writer-wins
//! among themselves and against us.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use session_core::StoreError;

use crate::error::io_error;

/// Longest pause between two attempts to take a busy lock.
const MAX_BACKOFF: Duration = Duration::from_millis(2);

/// A held lock; dropping it closes the descriptor, which releases the lock.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

#[cfg(unix)]
fn open_dir(dir: &Path) -> std::io::Result<File> {
    File::open(dir)
}

#[cfg(not(unix))]
fn open_dir(_dir: &Path) -> std::io::Result<File> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "session-cachelib locks its directory with flock, which needs a Unix system",
    ))
}

/// Takes the exclusive lock of `dir`, waiting up to `timeout` for other holders.
///
/// Waiting polls with a growing, jittered pause instead of blocking in the kernel, so a
/// holder that hangs (a stopped process, a stuck network filesystem) turns into an
/// `Unavailable` error after `timeout` instead of tying up a blocking thread forever.
pub(crate) fn lock(dir: &Path, timeout: Duration) -> Result<DirLock, StoreError> {
    let file = open_dir(dir).map_err(io_error)?;
    let deadline = Instant::now() + timeout;
    let mut backoff = Duration::from_micros(20);
    loop {
        // Called through the trait: std has a method of the same name since Rust 1.89.
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => return Ok(DirLock { _file: file }),
            Err(fs4::TryLockError::WouldBlock) => {}
            Err(fs4::TryLockError::Error(error)) => return Err(io_error(error)),
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(StoreError::unavailable(format!(
                "session directory still locked by another thread or process after {timeout:?}"
            )));
        }
        let jitter = Duration::from_micros(fastrand::u64(0..=backoff.as_micros() as u64));
        std::thread::sleep((backoff + jitter).min(deadline - now));
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORT: Duration = Duration::from_millis(300);

    #[test]
    fn a_second_descriptor_of_the_same_process_waits_then_gets_it() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path(), SHORT).unwrap();
        let started = Instant::now();
        match lock(dir.path(), SHORT) {
            Err(StoreError::Unavailable(_)) => {}
            other => panic!("a second holder got in: {other:?}"),
        }
        assert!(started.elapsed() >= SHORT, "gave up before the timeout");
        drop(held);
        lock(dir.path(), SHORT).expect("free once the holder is dropped");
    }

    #[test]
    fn the_lock_adds_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let _held = lock(dir.path(), SHORT).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(lock(&dir.path().join("gone"), SHORT).is_err());
    }
}
