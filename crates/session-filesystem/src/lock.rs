//! Advisory OS file locks that serialize access to keys across threads and processes.
//!
//! Keys are spread over [`SHARDS`] lock files under `<dir>/locks/`. Readers take a shared
//! lock on the key's shard, writers an exclusive one. The locks are `flock`-style locks
//! (via `fs4`): they belong to an open file description, so every acquisition opens its
//! own descriptor, which makes two threads of one process exclude each other just as two
//! processes do. Closing the descriptor (dropping the guard) releases the lock, also when
//! the process dies.

use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use session_core::StoreError;

use crate::error::io_error;

/// Number of lock files. More shards mean fewer unrelated keys waiting on each other.
pub(crate) const SHARDS: usize = 256;

/// Name of the folder holding the lock files, inside the store's directory.
pub(crate) const LOCK_DIR: &str = "locks";

/// Longest pause between two attempts to take a busy lock.
const MAX_BACKOFF: Duration = Duration::from_millis(2);

/// Whether other holders may hold the lock at the same time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Readers: any number at once, none while a writer holds the lock.
    Shared,
    /// Writers: one at a time, alone.
    Exclusive,
}

/// A held lock; dropping it closes the descriptor, which releases the lock.
#[derive(Debug)]
pub(crate) struct ShardGuard {
    _file: File,
}

/// The shard of `key`: FNV-1a, chosen because every process sharing the directory must
/// compute the same shard whatever its Rust version (std's hasher may change).
pub(crate) fn shard_of(key: &str) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    ((hash ^ (hash >> 32)) as usize) % SHARDS
}

pub(crate) fn lock_path(dir: &Path, shard: usize) -> PathBuf {
    dir.join(LOCK_DIR).join(format!("{shard:02x}.lock"))
}

fn open_lock_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        // The folder was removed after the store was opened: make it again.
        Err(error) if error.kind() == ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            options.open(path)
        }
        other => other,
    }
}

/// Takes the lock of `shard`, waiting up to `timeout` for other holders to let go.
///
/// Waiting polls with a growing, jittered pause instead of blocking in the kernel, so a
/// holder that hangs (a stuck network filesystem, a stopped process) turns into an
/// `Unavailable` error after `timeout` instead of tying up a blocking thread forever.
pub(crate) fn lock_shard(
    dir: &Path,
    shard: usize,
    mode: Mode,
    timeout: Duration,
) -> Result<ShardGuard, StoreError> {
    let path = lock_path(dir, shard);
    let file = open_lock_file(&path).map_err(io_error)?;
    let deadline = Instant::now() + timeout;
    let mut backoff = Duration::from_micros(20);
    loop {
        // Called through the trait: std has methods of the same names only since Rust 1.89.
        let attempt = match mode {
            Mode::Shared => fs4::FileExt::try_lock_shared(&file),
            Mode::Exclusive => fs4::FileExt::try_lock(&file),
        };
        match attempt {
            Ok(()) => return Ok(ShardGuard { _file: file }),
            Err(fs4::TryLockError::WouldBlock) => {}
            Err(fs4::TryLockError::Error(error)) => return Err(io_error(error)),
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(StoreError::unavailable(format!(
                "lock {} still held by another thread or process after {timeout:?}",
                path.display()
            )));
        }
        let jitter = Duration::from_micros(fastrand::u64(0..=backoff.as_micros() as u64));
        std::thread::sleep((backoff + jitter).min(deadline - now));
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Takes the exclusive locks of every key's shard, in shard order so that two callers
/// locking overlapping sets cannot deadlock. A shard is locked once even when several keys
/// map to it: a second descriptor of the same file would wait for the first forever.
pub(crate) fn lock_keys_exclusive(
    dir: &Path,
    keys: &[&str],
    timeout: Duration,
) -> Result<Vec<ShardGuard>, StoreError> {
    let mut shards: Vec<usize> = keys.iter().map(|key| shard_of(key)).collect();
    shards.sort_unstable();
    shards.dedup();
    shards
        .into_iter()
        .map(|shard| lock_shard(dir, shard, Mode::Exclusive, timeout))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORT: Duration = Duration::from_millis(300);

    #[test]
    fn flock_conflicts_between_descriptors_of_one_process() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_shard(dir.path(), 7, Mode::Exclusive, SHORT).unwrap();

        // A second descriptor of the same file, in the same process and thread.
        let other = open_lock_file(&lock_path(dir.path(), 7)).unwrap();
        assert!(
            matches!(
                fs4::FileExt::try_lock(&other),
                Err(fs4::TryLockError::WouldBlock)
            ),
            "a second descriptor took an exclusive lock that is already held"
        );
        assert!(
            matches!(
                fs4::FileExt::try_lock_shared(&other),
                Err(fs4::TryLockError::WouldBlock)
            ),
            "a second descriptor took a shared lock while an exclusive one is held"
        );

        drop(held);
        fs4::FileExt::try_lock(&other).expect("the lock is free once its holder is dropped");
    }

    #[test]
    fn shared_locks_coexist_and_exclude_writers() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock_shard(dir.path(), 3, Mode::Shared, SHORT).unwrap();
        let second = lock_shard(dir.path(), 3, Mode::Shared, SHORT).unwrap();
        match lock_shard(dir.path(), 3, Mode::Exclusive, SHORT) {
            Err(StoreError::Unavailable(_)) => {}
            other => panic!("a writer got in beside two readers: {other:?}"),
        }
        drop((first, second));
        lock_shard(dir.path(), 3, Mode::Exclusive, SHORT).expect("free after the readers left");
    }

    #[test]
    fn a_held_lock_times_out_as_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let _held = lock_shard(dir.path(), 0, Mode::Exclusive, SHORT).unwrap();
        let started = Instant::now();
        let result = lock_shard(dir.path(), 0, Mode::Exclusive, SHORT);
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
        assert!(started.elapsed() >= SHORT, "gave up before the timeout");
    }

    #[test]
    fn keys_sharing_a_shard_are_locked_once() {
        let dir = tempfile::tempdir().unwrap();
        let first = "session:a";
        let second = (0..)
            .map(|i| format!("session:{i}"))
            .find(|key| shard_of(key) == shard_of(first))
            .unwrap();
        let guards = lock_keys_exclusive(dir.path(), &[first, &second], SHORT)
            .expect("two keys of one shard must not wait on each other");
        assert_eq!(guards.len(), 1);
    }

    #[test]
    fn shards_are_stable_and_spread() {
        // Part of the on-disk protocol: processes built at different times must agree.
        assert_eq!(shard_of(""), 0xc1);
        assert_eq!(shard_of("session:abc"), 0x80);
        let used: std::collections::HashSet<usize> = (0..4096)
            .map(|i| shard_of(&format!("session:{i}")))
            .collect();
        assert!(
            used.len() > SHARDS * 9 / 10,
            "only {} shards used",
            used.len()
        );
    }

    #[test]
    fn a_missing_lock_folder_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        lock_shard(dir.path(), 1, Mode::Exclusive, SHORT).expect("lock folder created on demand");
        assert!(lock_path(dir.path(), 1).is_file());
    }
}
