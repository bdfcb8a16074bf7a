//! The store's operations on its cacache directory. Everything here is synchronous file
//! work; the caller runs it on a blocking thread while holding the key's shard lock.
//!
//! Layout: each session is one cacache index entry (key → content integrity, with
//! `{"expires_at_ms": …, "appends": …}` as its JSON metadata) pointing at one content file.
//!
//! Content is addressed by its hash, so identical bytes written under two keys (or twice
//! under one key) would share one file, and removing it for one key would break the other.
//! Every write therefore stores a *sealed* blob: a version byte and 16 random bytes before
//! the session bytes. No two writes share content, so the content of a replaced, deleted
//! or expired entry is removed as soon as its index entry stops pointing at it.
//!
//! cacache appends a line to the key's index bucket on every write and never shrinks it.
//! `appends` counts those lines; once it reaches [`MAX_APPENDS`] the next write removes
//! the bucket first, so a long-lived, often-written session keeps a small bucket.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cacache::{Integrity, RemoveOpts, WriteOpts};
use session_core::{StoreError, StoredEntry};

use crate::error::{cacache_error, is_not_found};
use crate::modes::Root;

/// First byte of every sealed blob; a blob starting otherwise was not written by us.
const BLOB_VERSION: u8 = 1;
/// Random bytes after the version byte that make every blob unique.
const NONCE_LEN: usize = 16;
const HEADER_LEN: usize = 1 + NONCE_LEN;

/// Index lines a bucket may collect before the next write rewrites it from scratch.
pub(crate) const MAX_APPENDS: u64 = 8;

const EXPIRES_AT_MS: &str = "expires_at_ms";
const APPENDS: &str = "appends";

/// Milliseconds since the Unix epoch (0 for a clock set before 1970).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

/// The expiry `ttl` after `now_ms`, saturating instead of overflowing for huge TTLs.
pub(crate) fn expiry_ms(now_ms: u64, ttl: Duration) -> u64 {
    now_ms.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
}

/// What the index says about a key.
#[derive(Debug)]
struct IndexEntry {
    integrity: Integrity,
    size: usize,
    /// `None` when the metadata is not ours (or unreadable): such an entry is never live.
    expires_at_ms: Option<u64>,
    appends: u64,
}

impl IndexEntry {
    fn from_metadata(metadata: cacache::Metadata) -> IndexEntry {
        let field = |name| metadata.metadata.get(name).and_then(|v| v.as_u64());
        IndexEntry {
            expires_at_ms: field(EXPIRES_AT_MS),
            // Unknown line count: assume the bucket is full so the next write compacts it.
            appends: field(APPENDS).unwrap_or(MAX_APPENDS),
            integrity: metadata.integrity,
            size: metadata.size,
        }
    }

    fn is_live(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|expires| expires > now_ms)
    }

    fn expires_at(&self) -> Option<SystemTime> {
        UNIX_EPOCH.checked_add(Duration::from_millis(self.expires_at_ms?))
    }
}

fn find(dir: &Root, key: &str) -> Result<Option<IndexEntry>, StoreError> {
    match cacache::index::find(dir, key) {
        Ok(found) => Ok(found.map(IndexEntry::from_metadata)),
        Err(error) => Err(cacache_error(error)),
    }
}

fn seal(value: &[u8]) -> Result<Vec<u8>, StoreError> {
    let mut blob = vec![0; HEADER_LEN + value.len()];
    blob[0] = BLOB_VERSION;
    getrandom::fill(&mut blob[1..HEADER_LEN]).map_err(|error| {
        StoreError::backend(format!("no random bytes for a content nonce: {error}"))
    })?;
    blob[HEADER_LEN..].copy_from_slice(value);
    Ok(blob)
}

fn unseal(mut blob: Vec<u8>) -> Option<Vec<u8>> {
    if blob.len() < HEADER_LEN || blob[0] != BLOB_VERSION {
        return None;
    }
    blob.drain(..HEADER_LEN);
    Some(blob)
}

/// The session bytes of `entry`, or `None` when its content is gone or damaged (a damaged
/// entry reads as missing, like an expired one, and the next write under the key replaces
/// it). Errors are kept for failures that say nothing about the data (permissions, I/O).
fn read_value(dir: &Root, entry: &IndexEntry) -> Result<Option<Vec<u8>>, StoreError> {
    match cacache::read_hash_sync(dir, &entry.integrity) {
        Ok(blob) => {
            let value = unseal(blob);
            if value.is_none() {
                tracing::warn!("session content without a valid header; treating it as missing");
            }
            Ok(value)
        }
        Err(error @ (cacache::Error::IntegrityError(_) | cacache::Error::SizeMismatch(..))) => {
            tracing::warn!(%error, "damaged session content; treating it as missing");
            Ok(None)
        }
        Err(error) if is_not_found(&error) => {
            tracing::warn!("session content file is missing; treating the entry as missing");
            Ok(None)
        }
        Err(error) => Err(cacache_error(error)),
    }
}

/// The bytes of `entry` when it is live and readable.
fn live_value(
    dir: &Root,
    entry: Option<&IndexEntry>,
    now_ms: u64,
) -> Result<Option<Vec<u8>>, StoreError> {
    match entry {
        Some(entry) if entry.is_live(now_ms) => read_value(dir, entry),
        _ => Ok(None),
    }
}

/// Removes a content file no index entry points at any more. Failing here only leaves a
/// stray file behind, so it is logged, not returned.
fn remove_content(dir: &Root, integrity: &Integrity) {
    match cacache::remove_hash_sync(dir, integrity) {
        Ok(()) => {}
        Err(error) if is_not_found(&error) => {}
        Err(error) => tracing::warn!(%error, "stale session content not removed"),
    }
}

/// Deletes the key's index bucket file. A tombstone line goes in first so that cacache
/// no longer resolves the key to content (which may be missing) and only the bucket is
/// removed; should the removal fail, the key still reads as deleted.
fn unlink_bucket(dir: &Root, key: &str) -> Result<(), StoreError> {
    cacache::index::delete(dir, key).map_err(cacache_error)?;
    match RemoveOpts::new().remove_fully(true).remove_sync(dir, key) {
        Ok(()) => Ok(()),
        Err(error) if is_not_found(&error) => Ok(()),
        Err(error) => Err(cacache_error(error)),
    }
}

/// Points `key` at the content `target` with a new expiry, replacing `previous`, and
/// removes whichever content file is left without an index entry: `previous`'s on
/// success, `target`'s when nothing was indexed, both when a failure came after the
/// bucket was removed.
fn point(
    dir: &Root,
    key: &str,
    target: &Integrity,
    size: usize,
    expires_at_ms: u64,
    previous: Option<&IndexEntry>,
) -> Result<(), StoreError> {
    let compact = previous.is_some_and(|p| p.appends >= MAX_APPENDS);
    let appends = match previous {
        Some(p) if !compact => p.appends + 1,
        _ => 1,
    };
    let mut compacted = false;
    let mut index = || {
        if compact {
            unlink_bucket(dir, key)?;
            compacted = true;
        }
        insert_index(dir, key, target, size, expires_at_ms, appends)?;
        // Read our own write back: cacache stops reading a bucket at a line that is not
        // UTF-8, so a damaged bucket would hide every later entry. Start it afresh then.
        if indexes(dir, key, target)? {
            return Ok(());
        }
        tracing::warn!("damaged session index bucket; rewriting it");
        unlink_bucket(dir, key)?;
        compacted = true;
        insert_index(dir, key, target, size, expires_at_ms, 1)?;
        if indexes(dir, key, target)? {
            Ok(())
        } else {
            Err(StoreError::backend(
                "session index entry not readable right after writing it",
            ))
        }
    };
    let result = index();
    let current = match (&result, compacted) {
        (Ok(_), _) => Some(target),
        (Err(_), true) => None,
        (Err(_), false) => previous.map(|p| &p.integrity),
    };
    for candidate in [Some(target), previous.map(|p| &p.integrity)]
        .into_iter()
        .flatten()
    {
        if Some(candidate) != current {
            remove_content(dir, candidate);
        }
    }
    result
}

fn insert_index(
    dir: &Root,
    key: &str,
    target: &Integrity,
    size: usize,
    expires_at_ms: u64,
    appends: u64,
) -> Result<(), StoreError> {
    let metadata = serde_json::json!({ EXPIRES_AT_MS: expires_at_ms, APPENDS: appends });
    let options = WriteOpts::new()
        .integrity(target.clone())
        .size(size)
        .metadata(metadata);
    cacache::index::insert(dir, key, options).map_err(cacache_error)?;
    dir.restrict_bucket(key)
}

/// Whether the index resolves `key` to `target`.
fn indexes(dir: &Root, key: &str, target: &Integrity) -> Result<bool, StoreError> {
    Ok(find(dir, key)?.is_some_and(|entry| entry.integrity == *target))
}

/// Writes `value` under `key`, replacing `previous`.
fn write(
    dir: &Root,
    key: &str,
    value: &[u8],
    expires_at_ms: u64,
    previous: Option<&IndexEntry>,
) -> Result<(), StoreError> {
    let blob = seal(value)?;
    let integrity = cacache::write_hash_sync(dir, &blob).map_err(cacache_error)?;
    if let Err(error) = dir.restrict_content(&integrity) {
        remove_content(dir, &integrity);
        return Err(error);
    }
    point(dir, key, &integrity, blob.len(), expires_at_ms, previous)
}

/// Removes the index entry and the content of `entry`.
fn remove(dir: &Root, key: &str, entry: &IndexEntry) -> Result<(), StoreError> {
    unlink_bucket(dir, key)?;
    remove_content(dir, &entry.integrity);
    Ok(())
}

pub(crate) fn load(dir: &Root, key: &str, now_ms: u64) -> Result<Option<StoredEntry>, StoreError> {
    let Some(entry) = find(dir, key)? else {
        return Ok(None);
    };
    Ok(
        live_value(dir, Some(&entry), now_ms)?.map(|value| StoredEntry {
            value,
            expires_at: entry.expires_at(),
        }),
    )
}

pub(crate) fn create(
    dir: &Root,
    key: &str,
    value: &[u8],
    ttl: Duration,
    now_ms: u64,
) -> Result<bool, StoreError> {
    let previous = find(dir, key)?;
    if live_value(dir, previous.as_ref(), now_ms)?.is_some() {
        return Ok(false);
    }
    write(dir, key, value, expiry_ms(now_ms, ttl), previous.as_ref())?;
    Ok(true)
}

pub(crate) fn compare_and_set(
    dir: &Root,
    key: &str,
    expected: &[u8],
    value: &[u8],
    ttl: Duration,
    now_ms: u64,
) -> Result<bool, StoreError> {
    let previous = find(dir, key)?;
    if live_value(dir, previous.as_ref(), now_ms)?.as_deref() != Some(expected) {
        return Ok(false);
    }
    write(dir, key, value, expiry_ms(now_ms, ttl), previous.as_ref())?;
    Ok(true)
}

/// Re-inserts the index entry with the same content and a new expiry; the content file
/// is read (to report a damaged entry as missing, as `load` does) but never rewritten.
pub(crate) fn touch(dir: &Root, key: &str, ttl: Duration, now_ms: u64) -> Result<bool, StoreError> {
    let Some(entry) = find(dir, key)? else {
        return Ok(false);
    };
    if live_value(dir, Some(&entry), now_ms)?.is_none() {
        return Ok(false);
    }
    point(
        dir,
        key,
        &entry.integrity,
        entry.size,
        expiry_ms(now_ms, ttl),
        Some(&entry),
    )?;
    Ok(true)
}

pub(crate) fn delete(dir: &Root, key: &str) -> Result<(), StoreError> {
    match find(dir, key)? {
        Some(entry) => remove(dir, key, &entry),
        None => Ok(()),
    }
}

/// Removes the entry only while it holds exactly `expected` (called under the key's lock).
pub(crate) fn compare_and_delete(
    dir: &Root,
    key: &str,
    expected: &[u8],
    now_ms: u64,
) -> Result<bool, StoreError> {
    let Some(entry) = find(dir, key)? else {
        return Ok(false);
    };
    if live_value(dir, Some(&entry), now_ms)?.as_deref() != Some(expected) {
        return Ok(false);
    }
    remove(dir, key, &entry)?;
    Ok(true)
}

pub(crate) fn rotate(
    dir: &Root,
    old_key: &str,
    expected: &[u8],
    new_key: &str,
    value: &[u8],
    ttl: Duration,
    now_ms: u64,
) -> Result<bool, StoreError> {
    let old = find(dir, old_key)?;
    if live_value(dir, old.as_ref(), now_ms)?.as_deref() != Some(expected) {
        return Ok(false);
    }
    let new = find(dir, new_key)?;
    if live_value(dir, new.as_ref(), now_ms)?.is_some() {
        return Ok(false);
    }
    write(dir, new_key, value, expiry_ms(now_ms, ttl), new.as_ref())?;
    if let Some(old) = old {
        // As in the trait's default: the data is safe under the new key; the old entry
        // merely lingers until it expires.
        if let Err(error) = remove(dir, old_key, &old) {
            tracing::warn!(%error, "old session entry not deleted after id rotation; it will expire");
        }
    }
    Ok(true)
}

/// Keys whose index entry looked expired (or not ours) when listed. The listing takes no
/// lock; [`remove_if_expired`] checks again under the key's lock before removing.
pub(crate) fn cleanup_candidates(dir: &Root, now_ms: u64) -> Vec<String> {
    let mut keys = Vec::new();
    for listed in cacache::index::ls(dir) {
        match listed {
            Ok(metadata) => {
                let key = metadata.key.clone();
                if !IndexEntry::from_metadata(metadata).is_live(now_ms) {
                    keys.push(key);
                }
            }
            // A bucket removed while listing, or no index written yet.
            Err(error) if is_not_found(&error) => {}
            Err(error) => tracing::warn!(%error, "session index entry not listed for cleanup"),
        }
    }
    keys
}

/// The keys of the live entries in the index, in no order.
pub(crate) fn live_keys(dir: &Root, now_ms: u64) -> Vec<String> {
    let mut keys = Vec::new();
    for listed in cacache::index::ls(dir) {
        match listed {
            Ok(metadata) => {
                let key = metadata.key.clone();
                if IndexEntry::from_metadata(metadata).is_live(now_ms) {
                    keys.push(key);
                }
            }
            Err(error) if is_not_found(&error) => {}
            Err(error) => tracing::warn!(%error, "session index entry not listed"),
        }
    }
    keys
}

/// Removes the entry under `key` if it is expired (or not ours); `true` when removed.
pub(crate) fn remove_if_expired(dir: &Root, key: &str, now_ms: u64) -> Result<bool, StoreError> {
    match find(dir, key)? {
        Some(entry) if !entry.is_live(now_ms) => {
            remove(dir, key, &entry)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_blobs_of_equal_values_differ_and_unseal_to_the_value() {
        let (a, b) = (seal(b"same").unwrap(), seal(b"same").unwrap());
        assert_ne!(a, b, "two writes of the same bytes would share content");
        assert_eq!(unseal(a).as_deref(), Some(&b"same"[..]));
        assert_eq!(unseal(seal(b"").unwrap()).as_deref(), Some(&b""[..]));
    }

    #[test]
    fn foreign_or_short_blobs_do_not_unseal() {
        assert_eq!(unseal(Vec::new()), None);
        assert_eq!(unseal(vec![BLOB_VERSION; HEADER_LEN - 1]), None);
        assert_eq!(unseal(vec![0; 64]), None);
    }

    #[test]
    fn expiry_saturates() {
        assert_eq!(expiry_ms(u64::MAX - 1, Duration::from_secs(10)), u64::MAX);
        assert_eq!(expiry_ms(1_000, Duration::MAX), u64::MAX);
        assert_eq!(expiry_ms(1_000, Duration::from_millis(1_500)), 2_500);
    }

    #[test]
    fn buckets_are_compacted() {
        let temp = tempfile::tempdir().unwrap();
        let dir = Root::new(temp.path().join("store"), session_core::DEFAULT_FILE_MODE);
        dir.prepare().unwrap();
        let bucket_sizes = || -> u64 {
            walk(&dir.join("index-v5"))
                .iter()
                .map(|path| std::fs::metadata(path).unwrap().len())
                .sum()
        };
        assert!(create(&dir, "k", b"v", Duration::from_secs(60), now_ms()).unwrap());
        let one_line = bucket_sizes();
        for _ in 0..50 {
            assert!(
                compare_and_set(&dir, "k", b"v", b"v", Duration::from_secs(60), now_ms()).unwrap()
            );
            assert!(touch(&dir, "k", Duration::from_secs(60), now_ms()).unwrap());
        }
        assert!(
            bucket_sizes() <= one_line * (MAX_APPENDS + 1),
            "bucket grew to {} bytes",
            bucket_sizes()
        );
        let loaded = load(&dir, "k", now_ms()).unwrap().unwrap();
        assert_eq!(loaded.value, b"v");
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                files.extend(walk(&path));
            } else {
                files.push(path);
            }
        }
        files
    }
}
